"""What a new user who brings their own models runs into (ninth round): diffusers folders that miss a part, hub
ids typed as URLs, LoRA files of every kind, reference images, dtype and device options on a CPU machine; each
case a defect found by doing so, with the behaviour that should have happened."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rerender.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs/tiny.yaml")


def _translate_args(clip, out, model, *extra):
    return ["translate", str(clip), "-p", "x", "-o", str(out), "--model", str(model), "--config", TINY, *extra]


@pytest.mark.parametrize(("fixture", "component"), [("tiny_pipeline_dir", "vae"), ("tiny_sdxl_dir", "tokenizer_2")])
def test_a_model_folder_missing_a_component_is_refused_naming_it_before_any_frame_is_decoded(
    silent_clip, tmp_path, capsys, request, fixture, component
):
    # was: no vae/ decoded the frames, loaded, then "no file named config.json found in directory <model>" (the
    # model folder's, which is not what is missing); no tokenizer_2/ on SDXL loaded and failed in the first
    # denoising step with "OverflowError: int too big to convert"
    model = tmp_path / "my model"
    shutil.copytree(request.getfixturevalue(fixture), model, ignore=shutil.ignore_patterns(component))
    out = tmp_path / "out.mp4"
    assert main(_translate_args(silent_clip, out, model, "--renderer", "diffusion")) == 2
    err = capsys.readouterr().err
    assert f"--model '{model}'" in err and f"lists {component}/ but the folder has no such sub-folder" in err
    assert not (tmp_path / "out.mp4.work").exists()


def test_a_folder_of_fp16_variant_weights_only_loads_in_float32_on_the_cpu(tiny_pipeline_dir, tmp_path):
    # was: a folder `rerender download --precision fp16` (or diffusers' variant="fp16") filled, run on a CPU
    # (float32): the frames decoded, then "no file named diffusion_pytorch_model.bin found in directory …/vae"
    import torch
    from safetensors.torch import load_file

    from rerender.config import ModelConfig
    from rerender.diffusion.loading import load_pipeline

    model = tmp_path / "fp16 model"
    shutil.copytree(tiny_pipeline_dir, model, ignore=shutil.ignore_patterns("controlnet"))
    for weights in model.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    pipe = load_pipeline(ModelConfig(base_model=str(model), dtype="float32"), controls=(), device="cpu")
    assert pipe.unet.dtype == torch.float32
    saved = load_file(tiny_pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors")
    name, tensor = next(iter(saved.items()))
    assert torch.equal(pipe.unet.state_dict()[name], tensor.float())


@pytest.mark.parametrize(
    "typed",
    [
        "runwayml/stable-diffusion-v1-5/",
        "https://huggingface.co/runwayml/stable-diffusion-v1-5",
        "https://huggingface.co/runwayml/stable-diffusion-v1-5/tree/main",
    ],
)
def test_a_hub_id_typed_as_its_page_url_or_with_a_trailing_slash_names_the_hub_id_to_pass(
    silent_clip, tmp_path, capsys, typed
):
    # was: "does not exist (looked for '…/https:/huggingface.co/…'); pass … a Hugging Face hub id (owner/name)":
    # the user, who did pass the hub id as the browser shows it, was not told what to change
    assert main(_translate_args(silent_clip, tmp_path / "out.mp4", typed, "--renderer", "diffusion")) == 2
    err = capsys.readouterr().err
    assert f"--model '{typed}' does not exist" in err
    assert "pass its hub id 'runwayml/stable-diffusion-v1-5' (owner/name, no URL or trailing slash)" in err
    assert not (tmp_path / "out.mp4.work").exists()


def test_download_dry_run_of_a_hub_page_url_names_the_hub_id(capsys):
    # was: "local path not found (nothing to fetch; check the path)": the path was a URL, not a path
    url = "https://huggingface.co/runwayml/stable-diffusion-v1-5"
    assert main(["download", "--model", url, "--dry-run", "--no-flow"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(
        f"{url}: local path not found (nothing to fetch; for the Hugging Face model, pass its hub "
        "id 'runwayml/stable-diffusion-v1-5')"
    )


def test_a_missing_model_folder_that_is_no_hub_id_keeps_the_general_advice(tmp_path):
    from rerender.errors import InputNotFoundError
    from rerender.weights import detect_family

    with pytest.raises(InputNotFoundError, match=r"does not exist .*; pass a local diffusers folder"):
        detect_family(str(tmp_path / "a" / "b" / "c"))


def _diffusers_lora_folder(folder: Path, cross_attention_dim: int) -> Path:
    """A LoRA folder as diffusers' `save_lora_weights` writes it: pytorch_lora_weights.safetensors, peft key names."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir()
    layer = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k"
    save_file(
        {f"{layer}.lora_A.weight": torch.zeros(4, cross_attention_dim), f"{layer}.lora_B.weight": torch.zeros(8, 4)},
        str(folder / "pytorch_lora_weights.safetensors"),
    )
    return folder


def test_a_diffusers_lora_folder_of_the_other_family_is_refused_before_the_model_loads(
    tiny_pipeline_dir, tiny_sdxl_dir, tmp_path
):
    # was: a LoRA folder (no weight_name) was not read by the family check: the frames decoded and the whole model
    # loaded before "size mismatch for mid_block…lora_A…" from inside diffusers
    import json

    from rerender.config import LoraConfig, ModelConfig
    from rerender.diffusion.loading import check_families

    width = json.loads((tiny_sdxl_dir / "unet" / "config.json").read_text())["cross_attention_dim"]
    folder = _diffusers_lora_folder(tmp_path / "xl lora", width)
    model = ModelConfig(base_model=str(tiny_pipeline_dir), loras=(LoraConfig(path=str(folder)),))
    with pytest.raises(
        Exception, match=r"`model.loras\[0\].path` '.*xl lora' is made for SDXL, but the base model is SD"
    ):
        check_families(model, (), tiny_pipeline_dir)


def test_a_whole_checkpoint_given_as_a_lora_is_refused_naming_it_as_a_base_model(silent_clip, tmp_path, capsys):
    # was: the frames decoded and the model loaded, then "does not fit the base model (a LoRA must be made for the
    # same Stable Diffusion version): Invalid LoRA checkpoint. Make sure all LoRA param names contain `'lora'`"
    from tests.test_newcomer_errors6 import _SD15_FULL, _checkpoint

    civitai = _checkpoint(tmp_path / "dreamshaper_8.safetensors", _SD15_FULL)
    args = _translate_args(
        silent_clip, tmp_path / "out.mp4", civitai, "--renderer", "diffusion", "--lora", str(civitai)
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"--lora {str(civitai)!r} is a whole model checkpoint" in err and "pass it as the base model (--model)" in err
    )
    assert not (tmp_path / "out.mp4.work").exists()


@pytest.mark.parametrize(("device", "available"), [("cuda", "CUDA"), ("mps", "MPS")])
def test_a_device_this_machine_lacks_is_refused_before_any_frame_is_decoded(
    silent_clip, tiny_pipeline_dir, tmp_path, capsys, monkeypatch, device, available
):
    # was: "cuda" was refused only after the frames were decoded; "mps" failed at loading with a bare
    # "RuntimeError: PyTorch is not linked with support for mps devices"
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    args = _translate_args(silent_clip, tmp_path / "out.mp4", tiny_pipeline_dir, "--set", f"model.device={device}")
    assert main([*args, "--renderer", "diffusion"]) == 2
    assert f"`model.device` is '{device}' but {available}" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4.work").exists()


def test_a_cuda_index_past_the_machine_s_gpus_is_refused_naming_the_ones_there(monkeypatch):
    import torch

    from rerender.diffusion.loading import resolve_device
    from rerender.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"'cuda:2' but this machine has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_float16_on_the_cpu_is_warned_about_naming_dtype(tiny_pipeline_dir, caplog):
    # was: float16 on the CPU ran without a word at ~4 times float32's seconds per step (4.5 s against 1.2 s on
    # the tiny model here, 2 shared cores): a user who copied a GPU config waited hours longer
    from rerender.config import ModelConfig
    from rerender.diffusion.loading import load_pipeline

    with caplog.at_level("WARNING"):
        pipe = load_pipeline(
            ModelConfig(base_model=str(tiny_pipeline_dir), dtype="float16"), controls=(), device="cpu"
        )
    assert str(pipe.unet.dtype) == "torch.float16"
    assert "`model.dtype` is 'float16' on the CPU, which runs several times slower than float32" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_pipeline(ModelConfig(base_model=str(tiny_pipeline_dir), dtype="auto"), controls=(), device="cpu")
    assert "float16" not in caplog.text


def test_env_says_translate_refuses_a_model_folder_missing_a_component(tiny_pipeline_dir, tmp_path):
    # was: `rerender env --model <folder without vae/>` said "base model present", "translate will render
    # keyframes with: diffusion", and translate then refused it
    from rerender.config import ModelConfig, RerenderConfig
    from rerender.environment import model_report

    model = tmp_path / "no vae"
    shutil.copytree(tiny_pipeline_dir, model, ignore=shutil.ignore_patterns("vae"))
    report = model_report(RerenderConfig(model=ModelConfig(base_model=str(model))))
    assert (
        report["translate"].startswith("refused: ") and "lists vae/ but the folder has no such" in report["translate"]
    )
    assert model_report(RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir))))["translate"] == (
        "diffusion"
    )


@pytest.mark.parametrize("option", ["--model", "--lora"])
def test_a_safetensors_file_saved_without_its_suffix_is_named_with_the_name_to_give_it(
    silent_clip, tiny_pipeline_dir, tmp_path, capsys, option
):
    # was: a Civitai download a browser saved as "dreamshaper_8" was "a 'suffix-less' file, not a model" (what to
    # do?); as a LoRA, the frames decoded and the model loaded before "Unable to load weights from checkpoint file"
    from tests.test_newcomer_errors6 import _SD15_FULL, _checkpoint

    saved = _checkpoint(tmp_path / "dreamshaper_8", _SD15_FULL if option == "--model" else ("lora_unet_x.alpha",))
    model = saved if option == "--model" else tiny_pipeline_dir
    extra = ["--lora", str(saved)] if option == "--lora" else []
    assert main(_translate_args(silent_clip, tmp_path / "out.mp4", model, "--renderer", "diffusion", *extra)) == 2
    err = capsys.readouterr().err
    assert f"{option} {str(saved)!r}" in err
    assert "it is a .safetensors file saved without its suffix" in err and f"rename it to '{saved}.safetensors'" in err
    assert not (tmp_path / "out.mp4.work").exists()


def test_a_model_folder_of_an_unsupported_pipeline_names_its_class_and_what_rerender_reads(tmp_path):
    # was: "is a folder without unet/config.json: not a Stable Diffusion model folder" for an SD3 folder (a Stable
    # Diffusion model, to its user), without naming what it is or which folders rerender reads
    import json

    from rerender.errors import ConfigError
    from rerender.weights import detect_family

    folder = tmp_path / "stable-diffusion-3-medium"
    (folder / "transformer").mkdir(parents=True)
    index = {"_class_name": "StableDiffusion3Pipeline", "transformer": ["diffusers", "SD3Transformer2DModel"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    (folder / "transformer" / "config.json").write_text(json.dumps({"_class_name": "SD3Transformer2DModel"}))
    with pytest.raises(ConfigError, match=r"model_index.json names StableDiffusion3Pipeline; rerender reads SD 1.5"):
        detect_family(str(folder))


def test_a_hub_lora_loads_from_the_cache_offline_and_an_uncached_one_is_refused_before_work(
    tiny_pipeline_dir, silent_clip, tmp_path, monkeypatch, capsys
):
    # was: `--lora owner/name` offline decoded the frames, loaded the model, then "does not fit the base model
    # (a LoRA must be made for the same Stable Diffusion version): When using the offline mode, you must specify a
    # `weight_name`", cached or not
    from diffusers import UNet2DConditionModel
    from huggingface_hub import constants

    from rerender.config import LoraConfig, ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from tests.test_models import _write_kohya_lora

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repository = tmp_path / "hub" / "models--someone--tiny-style" / "snapshots" / ("a" * 40)
    repository.mkdir(parents=True)
    (repository.parents[1] / "refs").mkdir()
    (repository.parents[1] / "refs" / "main").write_text("a" * 40)
    _write_kohya_lora(
        repository / "pytorch_lora_weights.safetensors",
        UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet"),
    )
    model = ModelConfig(base_model=str(tiny_pipeline_dir), loras=(LoraConfig(path="someone/tiny-style", scale=0.5),))
    pipe = load_pipeline(model, controls=(), device="cpu")
    assert pipe.get_active_adapters() == ["lora_0"]

    args = _translate_args(silent_clip, tmp_path / "out.mp4", tiny_pipeline_dir, "--lora", "someone/other-style")
    assert main([*args, "--renderer", "diffusion"]) == 2
    err = capsys.readouterr().err
    assert (
        "--lora 'someone/other-style' is a hub id whose LoRA file ('pytorch_lora_weights.safetensors') is not" in err
    )
    assert "hf download someone/other-style pytorch_lora_weights.safetensors" in err
    assert not (tmp_path / "out.mp4.work").exists()


def test_a_folder_given_as_the_style_image_is_named_as_a_folder(silent_clip, tiny_pipeline_dir, tmp_path, capsys):
    # was: "--style-image '/path/refs' not found": the folder is there, the user had dragged it in instead of a file
    refs = tmp_path / "refs"
    refs.mkdir()
    args = _translate_args(silent_clip, tmp_path / "out.mp4", tiny_pipeline_dir, "--style-image", str(refs))
    assert main([*args, "--renderer", "diffusion"]) == 2
    assert f"--style-image {str(refs)!r} is a folder, not an image" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4.work").exists()


def test_a_lora_folder_is_read_as_load_lora_weights_reads_it_and_several_files_are_refused(
    tiny_pipeline_dir, tiny_sdxl_dir, tmp_path
):
    # was: a folder of two LoRA files loaded one of them without a word; a folder of one SDXL LoRA file (not named
    # pytorch_lora_weights.safetensors) escaped the family check and failed inside diffusers after the frames decoded
    import json

    from rerender.config import LoraConfig, ModelConfig
    from rerender.diffusion.loading import check_families
    from rerender.errors import ConfigError

    width = json.loads((tiny_sdxl_dir / "unet" / "config.json").read_text())["cross_attention_dim"]
    folder = _diffusers_lora_folder(tmp_path / "downloads", width)
    (folder / "pytorch_lora_weights.safetensors").rename(folder / "pixel-art-xl.safetensors")
    model = ModelConfig(base_model=str(tiny_pipeline_dir), loras=(LoraConfig(path=str(folder)),))
    with pytest.raises(ConfigError, match=r"is made for SDXL, but the base model is SD 1.5"):
        check_families(model, (), tiny_pipeline_dir)
    shutil.copy(folder / "pixel-art-xl.safetensors", folder / "film-grain.safetensors")
    with pytest.raises(ConfigError, match=r"is a folder of 2 .safetensors files \(film-grain.safetensors, pixel-art"):
        check_families(model, (), tiny_pipeline_dir)


def test_env_and_download_list_a_hub_lora_and_env_says_translate_refuses_it_offline(tiny_pipeline_dir, capsys):
    # was: a config naming a hub LoRA was "diffusion" in `env` (translate then failed after decoding), and
    # `rerender download --config …` did not fetch it, so the run could never work offline
    from rerender.config import LoraConfig, ModelConfig, RerenderConfig
    from rerender.environment import model_report

    lora = LoraConfig(path="nerijs/pixel-art-xl", weight_name="pixel-art-xl.safetensors")
    report = model_report(RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir), loras=(lora,))))
    row = next(source for source in report["sources"] if source["role"] == "LoRA")
    assert (row["key"], row["location"], row["present"]) == ("model.loras[0].path", "nerijs/pixel-art-xl", False)
    assert report["translate"].startswith("refused: `model.loras[0].path` 'nerijs/pixel-art-xl' is a hub id")
    assert "hf download nerijs/pixel-art-xl pixel-art-xl.safetensors" in report["fetch"]
    setting = "model.loras=[{path: nerijs/pixel-art-xl, weight_name: pixel-art-xl.safetensors}]"
    args = ["download", "--model", str(tiny_pipeline_dir), "--set", setting, "--dry-run", "--no-flow"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("LoRA: nerijs/pixel-art-xl: 1 files, size unknown -> (dry run)")
    assert lines[at + 1] == "  fetch pixel-art-xl.safetensors"


def test_a_file_of_a_model_folder_or_a_lora_given_as_the_model_says_what_to_pass(tiny_pipeline_dir, tmp_path):
    # was: "is a '.json' file, not a model" for the folder's model_index.json, and "not a Stable Diffusion checkpoint
    # in the original layout" for unet/diffusion_pytorch_model.safetensors or a kohya LoRA, without what to pass
    from rerender.errors import ConfigError
    from rerender.weights import detect_family
    from tests.test_newcomer_errors6 import _checkpoint

    folder = rf"it is a file of the diffusers model folder '{tiny_pipeline_dir}': pass that folder"
    with pytest.raises(ConfigError, match=r"is a '\.json' file, not a model: .*" + folder):
        detect_family(str(tiny_pipeline_dir / "model_index.json"))
    with pytest.raises(ConfigError, match=r"not a Stable Diffusion checkpoint in the original layout .*" + folder):
        detect_family(str(tiny_pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    lora = _checkpoint(tmp_path / "style.safetensors", ("lora_unet_down_blocks_0_attn1_to_q.lora_down.weight",))
    with pytest.raises(
        ConfigError, match=r"its key names are a LoRA's: give it as a LoRA \(`model.loras`; CLI: --lora"
    ):
        detect_family(str(lora))


def test_env_and_download_take_lora_as_translate_does(tiny_pipeline_dir, capsys):
    # was: `rerender env --lora X` and `rerender download --lora X` stopped at "unrecognized arguments"; only
    # `--set model.loras=[…]` reached them, although the flag is how translate takes a LoRA
    assert main(["download", "--model", str(tiny_pipeline_dir), "--lora", "nerijs/pixel-art-xl:0.8", "--dry-run",
                 "--no-flow"]) == 0  # fmt: skip
    assert any(line.startswith("LoRA: nerijs/pixel-art-xl") for line in capsys.readouterr().out.splitlines())
    assert main(["env", "--model", str(tiny_pipeline_dir), "--lora", "nerijs/pixel-art-xl"]) == 0
    out = capsys.readouterr().out
    assert "LoRA" in out and "nerijs/pixel-art-xl" in out and "translate refuses this config" in out
