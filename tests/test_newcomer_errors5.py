"""What a new user runs into (fifth round): each case a defect found by using the CLI, the Python API and the docs
as a newcomer would (SDXL bases, the torch propagation engine, painted keyframes, Ray), with the behaviour that
should have happened (the argument as typed, the value, what is valid; exit 2 for usage errors, before any
expensive work)."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rerender.cli import main

REPO = Path(__file__).resolve().parents[1]


def _keys(folder: Path, names_and_sizes: dict[str, tuple[int, int]]) -> Path:
    """Painted keyframes: flat grey images of the given (width, height), by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (width, height) in names_and_sizes.items():
        Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(folder / name)
    return folder


def _propagate(clip: Path, keys: Path, out: Path, *more: str) -> list[str]:
    return ["propagate", str(clip), "--keyframes", str(keys), "-o", str(out), "-q", *more]


def test_a_keyframe_past_the_last_frame_names_the_first_number_flag_on_the_cli(silent_clip, tmp_path, capsys):
    # was: "... FFmpeg's %04d.png from 1: set `first_number`" on the CLI, whose option is --first-number
    keys = _keys(tmp_path / "keys", {"0001.png": (64, 48), "0012.png": (64, 48)})  # frames 1 … 12 of a 12-frame clip
    assert main(_propagate(silent_clip, keys, tmp_path / "out.mp4")) == 2
    err = capsys.readouterr().err
    assert "'0012.png' is for frame 12" in err and "set --first-number to 1" in err and "`first_number`" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_keyframes_of_several_sizes_are_named_by_file(silent_clip, tmp_path, capsys):
    # was: "keyframes must all have one size, got [(40, 30), (64, 48)]": which of 30 files is the odd one?
    keys = _keys(tmp_path / "keys", {"0000.png": (64, 48), "0005.png": (40, 30), "0011.png": (64, 48)})
    assert main(_propagate(silent_clip, keys, tmp_path / "out.mp4")) == 2
    err = capsys.readouterr().err
    assert "64×48: 0000.png, 0011.png" in err and "40×30: 0005.png" in err, err


@pytest.mark.parametrize("name", ["Thumbs.db", "desktop.ini"])
def test_the_files_windows_explorer_writes_into_a_keyframe_folder_are_ignored(name, silent_clip, tmp_path, capsys):
    # was: "the keyframe folder ... holds files that are not images: ['Thumbs.db']": Explorer writes it there itself
    from rerender.workflow.keyframe_folder import read_keyframe_folder

    keys = _keys(tmp_path / "keys", {"0000.png": (64, 48), "0011.png": (64, 48)})
    (keys / name).write_bytes(b"\xd0\xcf\x11\xe0")
    assert sorted(read_keyframe_folder(keys, 12)) == [0, 11]
    (keys / "notes.txt").write_text("a file the user put there is still refused")
    with pytest.raises(Exception, match=r"not images: \['notes.txt'\]"):
        read_keyframe_folder(keys, 12)


def test_the_fetch_command_quotes_a_model_path_with_spaces(tmp_path):
    # was: "rerender download --model my xl model.safetensors": three arguments when pasted into a shell
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.weights import fetch_commands

    model, vae = tmp_path / "my xl model.safetensors", tmp_path / "my vae.safetensors"
    config = apply_overrides(RerenderConfig(), {"base_model": str(model), "vae": str(vae)})
    words = shlex.split(fetch_commands(config, [])[0])
    assert words[words.index("--model") + 1] == str(model) and words[words.index("--vae") + 1] == str(vae)


def test_a_single_sdxl_file_diffusers_cannot_read_is_named_with_what_it_must_hold(tiny_sdxl_dir, tmp_path):
    # was: "Error: The provided checkpoint does not seem to contain a valid CLIP model." (diffusers' ValueError,
    # naming neither --model nor the file), e.g. for a UNet-only SDXL file
    import torch
    from safetensors.torch import save_file

    from rerender.config import ControlConfig, ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.errors import CheckpointError

    keys = (
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.label_emb.0.0.weight",
        "conditioner.embedders.1.model.positional_embedding",
    )
    path = tmp_path / "my xl model.safetensors"
    save_file({key: torch.zeros(1) for key in keys}, str(path))
    with pytest.raises(CheckpointError) as error:
        load_pipeline(
            ModelConfig(base_model=str(path)),
            [ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))],
            single_file_config=tiny_sdxl_dir,
            device="cpu",
        )
    message = str(error.value)
    assert f"`model.base_model` {str(path)!r}" in message and "SDXL" in message
    assert "valid CLIP model" in message and "text encoder" in message  # diffusers' reason, and what is needed


def test_a_mistyped_ray_address_is_named_as_the_python_argument_and_as_the_cli_flag(silent_clip, tmp_path, capsys):
    # was: "`ray`: 'Local' is not 'local', ..." from `RayExecutor(address=...)` (no argument `ray` there), and
    # the same "`ray`" on the CLI, whose option is --ray
    import shutil

    pytest.importorskip("ray")
    from rerender.errors import ConfigError
    from rerender.workflow.executors import RayExecutor

    with pytest.raises(ConfigError, match=r"^`address` 'Local' is not 'local', 'auto' or a cluster address"):
        RayExecutor("Local")
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(silent_clip, clips / "a.mp4")
    assert main(["batch", str(clips), "-p", "a cat", "-o", str(tmp_path / "out"), "--ray", "Local", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--ray 'Local' is not 'local', 'auto'" in err and "`ray`" not in err, err


@pytest.mark.parametrize("value", ["0,0,10,0", 10])  # None is no crop now (tests/test_leftovers8.py)
def test_a_crop_that_is_no_mapping_says_which_keys_a_crop_takes(value):
    # was: "`video.crop` must not be null (expected Crop)": after `real2sculpture.yaml` (which crops 180 px) on
    # another clip, `crop=null` looked like the way to undo it, and the message never said what a Crop is
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=r"`video.crop` .*a mapping of left, top, right, bottom") as error:
        apply_overrides(RerenderConfig(), {"crop": value})
    assert repr(value) in str(error.value)
    crop = apply_overrides(RerenderConfig(), {"crop": {"left": 0, "right": 0}}).video.crop  # what it says works
    assert crop.is_empty


@pytest.mark.parametrize(
    ("text", "key", "value"), [("1e6", "chunk_pixels", 1_000_000), ("5e-1", "denoising_strength", 0.5)]
)
def test_a_number_in_exponent_notation_is_read_as_the_number_it_is(text, key, value, tmp_path, capsys):
    # was: "`propagation.chunk_pixels` must be an integer, got '1e6'": YAML 1.1 (PyYAML) reads 1e6 as a string
    # (it wants 1.0e+6), though every other reader of numbers (JSON, YAML 1.2, Python) takes it
    from rerender.config import RerenderConfig, apply_overrides, load_config

    assert main(["config", "show", "--set", f"{key}={text}"]) == 0
    assert f"{key}: {value}" in capsys.readouterr().out
    config_file = tmp_path / "mine.yaml"
    section = "propagation" if key == "chunk_pixels" else "sampling"
    config_file.write_text(f"{section}:\n  {key}: {text}\n")
    assert getattr(getattr(load_config(config_file), section), key) == value
    with pytest.raises(Exception, match="must be an integer, got '1.5e0'"):
        apply_overrides(RerenderConfig(), {"chunk_pixels": "1.5e0"})  # not a whole number: still refused


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_propagate_warns_that_device_is_the_diffusion_model_s_not_the_propagation_engine_s(
    device, silent_clip, tmp_path, caplog
):
    # was: `rerender propagate ... --set device=cuda` (and `propagate_keyframes(..., device="cuda")`) set
    # `model.device`, which propagation never reads: the run went on, silently, with numba on the CPU
    import logging

    from rerender.errors import InputNotFoundError
    from rerender.workflow.keyframe_folder import propagate_keyframes

    (tmp_path / "keys").mkdir()
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(InputNotFoundError, match="no keyframes"):
        propagate_keyframes(silent_clip, tmp_path / "keys", tmp_path / "out.mp4", device=device, progress=False)
    assert f"`model.device` {device!r}" in caplog.text and "`propagation.device` ('cpu' or 'cuda'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(InputNotFoundError):
        propagate_keyframes(silent_clip, tmp_path / "keys", tmp_path / "out.mp4", progress=False)
    assert "model.device" not in caplog.text


@pytest.mark.parametrize(("count", "size", "message"), [(6, (64, 48), "holds 6 maps"), (12, (32, 24), "are 32×24")])
def test_precomputed_maps_that_do_not_fit_name_their_controlnet_s_position(
    count, size, message, silent_clip, tmp_path
):
    # was: "`control.maps` 'my maps' holds 6 maps ...": with a Union's canny + precomputed depth, which control?
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.errors import ConfigError
    from rerender.video import probe_video
    from rerender.workflow.stages import control_map_reader

    maps = _keys(tmp_path / "my maps", {f"{index:04d}.png": size for index in range(count)})
    union = "xinsir/controlnet-union-sdxl-1.0"
    config = apply_overrides(
        RerenderConfig(),
        {"control": [{"type": "canny", "model": union}, {"type": "precomputed", "maps": str(maps), "model": union}]},
    )
    with pytest.raises(ConfigError, match=rf"^`control\[1\].maps` '{maps}' {message}"):
        control_map_reader(config, probe_video(silent_clip))


class _Stop(Exception):
    """Raised by a stand-in once the keyframe renderer is reached."""


def test_generate_warns_that_the_config_s_resolution_does_not_size_its_frames(
    tiny_sdxl_dir, tmp_path, monkeypatch, caplog
):
    # was: `rerender generate --config configs/sdxl.yaml` (resolution 1024) made 512×512 SDXL frames, without a
    # word on why or how to get 1024 (generate's frames are --width/--height, `size` in Python)
    import logging

    import rerender.workflow.generation as generation
    from rerender.diffusion import loading

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(generation, "render_text_keyframes", stop)
    monkeypatch.setattr(loading, "load_pipeline", lambda *args, **kwargs: object())
    common = dict(frames=3, K=2, progress=False, output=tmp_path / "a.mp4", base_model=str(tiny_sdxl_dir))
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(_Stop):
        generation.generate("a cat", config=REPO / "configs" / "sdxl.yaml", **common)
    assert "`video.resolution` 1024 does not size generate's frames: they are 512×512 (`size`" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerender"), pytest.raises(_Stop):
        generation.generate("a cat", size=(1024, 768), config=REPO / "configs" / "sdxl.yaml", **common)
    assert "video.resolution" not in caplog.text  # a size given: the user chose it


@pytest.mark.parametrize(
    ("prompt", "language"), [("一只猫, 水彩画", "Chinese"), ("một con mèo, tranh màu nước", "Vietnamese")]
)
def test_a_prompt_in_another_language_read_as_english_is_warned_about(prompt, language, caplog):
    # was: `rerender translate clip.mp4 -p "一只猫, 水彩画"` (prompt_language 'en' by default) sent the
    # Chinese to CLIP, which reads English, without a word; the docs' fix (--prompt-language auto) was never suggested
    import logging

    from rerender.languages import translate_prompt

    with caplog.at_level(logging.WARNING, logger="rerender"):
        record = translate_prompt(prompt, "en")
    assert record.english == prompt  # nothing translated: the language was said to be English
    assert f"the prompt looks like {language}" in caplog.text and "`prompt_language` 'auto'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerender"):
        translate_prompt("Pokémon in a café, 浮世絵 style", "en")
    assert caplog.text == ""


def test_a_quoted_home_path_is_refused_with_its_expanded_form(silent_clip, tmp_path, monkeypatch, capsys):
    # was: -o "~/out.mp4" → "output folder does not exist: '~' ... create it first" (a folder named "~", which a
    # later `rm -rf ~` turns into a disaster); "~/clip.mp4" → "video not found" without a word on the "~"
    import shutil

    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copy(silent_clip, tmp_path / "clip.mp4")
    # (the CLI now expands a quoted "~" as the shell does: tests/test_newcomer_errors6.py; the library does not)
    import rerender
    from rerender.errors import RerenderError

    with pytest.raises(RerenderError) as caught:
        rerender.propagate_keyframes("~/clip.mp4", tmp_path / "keys", tmp_path / "out.mp4")
    assert "'~' is not expanded" in str(caught.value) and repr(str(tmp_path / "clip.mp4")) in str(caught.value)
    keys = _keys(tmp_path / "keys", {"0000.png": (64, 48)})
    with pytest.raises(RerenderError) as caught:
        rerender.propagate_keyframes(tmp_path / "clip.mp4", keys, "~/out.mp4")
    message = str(caught.value)
    assert "'~' is not expanded" in message and "create it first" not in message
    assert repr(str(tmp_path / "out.mp4")) in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end": 50}, r"`end` must be in \[1, 12\]"),
        ({"start": 12}, r"`start` must be in \[0, 11\]"),
        ({"stride": 0}, "`stride` must be ≥ 1"),
        ({"crop": (0, 0, 64, 0)}, "`crop`"),
        ({"crop": "none"}, "`crop` must be a Crop"),
    ],
)
def test_read_frames_refuses_a_bad_range_with_the_project_s_error(kwargs, message, silent_clip):
    # was: a plain ValueError from the docs' `read_frames("clip.mp4", end=50, ...)` on a short clip, not one of
    # `rerender.errors` (which callers catch as RerenderError)
    from rerender.errors import ConfigError
    from rerender.video import read_frames

    with pytest.raises(ConfigError, match=message):
        read_frames(silent_clip, **kwargs)


@pytest.mark.parametrize("suffix", [".csv", ".yaml"])
def test_a_job_list_takes_a_whole_number_in_exponent_notation(suffix, silent_clip, tmp_path):
    # was: "column 'chunk_pixels': '1e6' is not a whole number", though `--set chunk_pixels=1e6` takes it
    import shutil

    from rerender.config import RerenderConfig
    from rerender.errors import ConfigError
    from rerender.workflow.batching import load_jobs

    shutil.copy(silent_clip, tmp_path / "a.mp4")
    jobs = tmp_path / f"jobs{suffix}"
    rows = {".csv": "video,chunk_pixels\na.mp4,{}\n", ".yaml": "- video: a.mp4\n  chunk_pixels: {}\n"}[suffix]
    jobs.write_text(rows.format("1e6"))
    (job,) = load_jobs(jobs, "a cat", tmp_path / "out", RerenderConfig())
    assert job.overrides["chunk_pixels"] == 1_000_000
    jobs.write_text(rows.format("2.5e0"))
    with pytest.raises(ConfigError, match="is not a whole number|must be an integer"):
        load_jobs(jobs, "a cat", tmp_path / "out", RerenderConfig())


def test_a_retouched_keyframe_saved_at_another_size_is_named_with_the_size_to_keep(silent_clip, tmp_path, capsys):
    # was: "error: every frame must be 64×48, got 128×96 at frame 1" (a bare ValueError of the preview writer):
    # which frame, of what? The keyframe the user retouched and saved at another size, in the workspace
    out = tmp_path / "out.mp4"
    common = ["translate", str(silent_clip), "-p", "a cat", "-o", str(out), "-K", "5", "--renderer", "classic", "-q"]
    common += ["--set", "resolution=64", "--set", "flow_estimator=dis", "--set", "propagation_preset=fast"]
    assert main([*common, "--stage", "keyframes"]) == 0
    retouched = tmp_path / "out.mp4.work" / "keyframes" / "0005.png"
    with Image.open(retouched) as image:
        size = image.size
        image.resize((size[0] * 2, size[1] * 2)).save(retouched)
    capsys.readouterr()
    assert main([*common, "--stage", "propagate"]) == 2
    err = capsys.readouterr().err
    assert f"keyframe {str(retouched)!r} is {size[0] * 2}×{size[1] * 2}" in err, err
    assert f"{size[0]}×{size[1]}" in err and "at frame 1" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("propagation_device", "propagation.device"),
        ("propagation_engine", "propagation.engine"),
        ("constraints_reference_storage", "constraints.reference_storage"),
    ],
)
def test_a_section_joined_to_its_option_by_an_underscore_suggests_the_dotted_path(typed, meant):
    # was: translate(..., propagation_device="cuda") → "did you mean 'propagation_preset'?", another option
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"unknown option `{typed}`; did you mean '{meant}'\?"):
        apply_overrides(RerenderConfig(), {typed: "auto"})


def test_a_missing_style_image_is_named_as_the_style_image_option(silent_clip, tmp_path, capsys):
    # was: "error: image not found: 'my style.png'": which image, of a run that reads a video, keyframes, maps?
    out = tmp_path / "out.mp4"
    missing = tmp_path / "my style.png"
    args = ["translate", str(silent_clip), "-p", "a cat", "-o", str(out), "--style-image", str(missing), "-q"]
    for renderer in ("classic", "auto"):
        assert main([*args, "--renderer", renderer]) == 2
        err = capsys.readouterr().err
        assert f"--style-image {str(missing)!r} not found" in err, err
    assert not out.exists()


def test_propagate_names_its_keep_intermediates_option_for_a_folder_it_will_not_write_into(
    silent_clip, tmp_path, capsys
):
    # was: "... so choose another --workspace": `propagate` has no --workspace, its option is --keep-intermediates
    keys = _keys(tmp_path / "keys", {"0000.png": (64, 48)})
    theirs = tmp_path / "my folder"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert main(_propagate(silent_clip, keys, tmp_path / "out.mp4", "--keep-intermediates", str(theirs))) == 2
    err = capsys.readouterr().err
    assert "--keep-intermediates" in err and "--workspace" not in err, err
    assert (theirs / "notes.txt").read_text() == "mine" and len(list(theirs.iterdir())) == 1


def test_propagating_before_any_keyframes_names_stage_as_each_caller_spelled_it(silent_clip, tmp_path, capsys):
    # was: "--stage propagate propagates finished keyframes ..." also for translate(..., stage="propagate")
    import rerender
    from rerender.errors import ConfigError

    out = tmp_path / "out.mp4"
    with pytest.raises(ConfigError, match=r"^`stage` 'propagate' propagates finished keyframes") as error:
        rerender.translate(silent_clip, "a cat", output=out, stage="propagate", renderer="classic", progress=False)
    assert "--stage" not in str(error.value) and "`stage` 'keyframes'" in str(error.value)
    assert main(["translate", str(silent_clip), "-p", "a cat", "-o", str(out), "--stage", "propagate", "-q"]) == 2
    assert "--stage 'propagate' propagates finished keyframes" in capsys.readouterr().err


@pytest.mark.parametrize("word", ["weight", "strength", "alpha"])
def test_a_lora_weight_under_another_tool_s_name_suggests_scale(word, tmp_path):
    # was: "unknown option `model.loras[0].weight`; did you mean 'weight_name'?" (the file inside a repository):
    # A1111 and diffusers call the adapter's scale its weight
    from rerender.config import load_config
    from rerender.errors import ConfigError

    path = tmp_path / "mine.yaml"
    path.write_text(f"model:\n  loras:\n    - {{path: pixel_art_xl.safetensors, {word}: 0.8}}\n")
    with pytest.raises(ConfigError, match=rf"unknown option `model.loras\[0\].{word}`; did you mean 'scale'\?"):
        load_config(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"K": 0}, r"^`K` must be an integer ≥ 1, got 0$"),
        ({"prompt": ["a cat"]}, r"^`prompt` must be a string, got \['a cat'\]$"),
        ({"config": {"propagation": {"engine": "torch"}}}, r"^`config` must be a RerenderConfig, .*got a dict"),
    ],
)
def test_translate_names_its_own_arguments(kwargs, message, silent_clip, tmp_path):
    # was: "`keyframes.keyframe_interval` must be ≥ 1, got 0" for K=0, "`prompt.prompt` must be a string" for
    # prompt=[...] (config paths the caller never typed), and a bare TypeError for a dict as `config`
    import rerender
    from rerender.errors import ConfigError

    arguments = {"prompt": "a cat", **kwargs}
    with pytest.raises(ConfigError, match=message):
        rerender.translate(silent_clip, output=tmp_path / "out.mp4", renderer="classic", progress=False, **arguments)
    assert not (tmp_path / "out.mp4.work").exists()


def test_env_says_translate_refuses_a_lora_of_the_other_family(tiny_sdxl_dir, tmp_path, capsys):
    # was: `rerender env` with an SD 1.5 LoRA on an SDXL model said "translate will render keyframes with:
    # diffusion", and translate then refused the LoRA
    import torch
    from safetensors.torch import save_file

    lora = tmp_path / "sd15 style.safetensors"  # an SD 1.5 kohya LoRA: cross-attention keys 768 wide
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    save_file({f"{key}.lora_down.weight": torch.zeros(4, 768), f"{key}.lora_up.weight": torch.zeros(32, 4)}, str(lora))
    base = ["env", "--model", str(tiny_sdxl_dir)]
    assert main([*base, "--set", f"loras=[{{path: '{lora}'}}]"]) == 0
    out = capsys.readouterr().out
    assert "translate refuses this config: `model.loras[0].path`" in out and "made for SD 1.5" in out, out
    assert main(base) == 0
    assert "translate will render keyframes with: diffusion" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("steps", "num_inference_steps"),  # was: did you mean 'fps'?
        ("cfg", "guidance_scale"),  # was: 'crf'
        ("cfg_scale", "guidance_scale"),  # was: 'true_cfg_scale' (Flux's true guidance)
        ("strength", "denoising_strength"),  # was: 'mask_strength'
        ("max_frames", "end_frame"),  # was: 'start_frame'
        ("K", "keyframe_interval"),  # was: no suggestion
        ("style_image_weight", "style_image_scale"),  # was: 'style_image'
    ],
)
def test_another_tool_s_word_for_an_option_suggests_that_option(typed, meant, capsys):
    # `--set steps=30` is what a diffusers / A1111 user types first; the nearest spelling pointed elsewhere
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"unknown option `{typed}`; did you mean '{meant}'\?"):
        apply_overrides(RerenderConfig(), {typed: 1})
    apply_overrides(RerenderConfig(), {meant: 1 if meant != "end_frame" else 5})  # the suggestion is an option
