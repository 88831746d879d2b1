"""The lead's leftovers of round 7: one rule each (other tools' words, typed values, the --jobs/--ray warning, the
single-file parts, `~` in path options, Z-Image-Turbo's detection, generate's size help)."""

from __future__ import annotations

import csv

import pytest

from rerender.config import RerenderConfig, apply_overrides, config_from_dict, load_config
from rerender.errors import ConfigError

# ------------------------------------------------------------------------------------ 1. other tools' words


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ({"steps": 30}, "'num_inference_steps'"),  # a leaf name: as before
        ({"sampling.steps": 30}, "'sampling.num_inference_steps'"),  # was: the section's 7 valid keys
        ({"video.max_frames": 30}, "'video.end_frame'"),  # was: did you mean 'start_frame'?
    ],
)
def test_another_tool_s_word_in_an_override_suggests_the_option_it_means(given, suggested):
    with pytest.raises(ConfigError, match=rf"unknown option `{next(iter(given))}`; did you mean {suggested}\?$"):
        apply_overrides(RerenderConfig(), given)


@pytest.mark.parametrize(
    ("data", "suggested"),
    [
        ({"sampling": {"cfg_scale": 7}}, "`sampling.cfg_scale`; did you mean 'guidance_scale'"),  # was: valid keys
        ({"keyframes": {"K": 5}}, "`keyframes.K`; did you mean 'keyframe_interval'"),
        ({"steps": 30}, "`steps`; did you mean 'sampling.num_inference_steps'"),  # top level: the section too
        ({"model": {"loras": [{"path": "a.safetensors", "strength": 0.8}]}}, r"`model.loras\[0\].strength`; did you "
         "mean 'scale'"),  # a LoRA's strength is its scale, not the run's denoising strength
    ],
)  # fmt: skip
def test_another_tool_s_word_in_a_config_file_suggests_the_option_it_means_there(data, suggested):
    with pytest.raises(ConfigError, match=rf"unknown option {suggested}\?$"):
        config_from_dict(data)


# ------------------------------------------------------------------------------------ 2. one reader of typed text


def _cell(tmp_path, column: str, cell: str):
    """The override a CSV job list's cell gives `column` (the row's video exists: nothing else is checked)."""
    from rerender.workflow.batching import load_jobs

    (tmp_path / "a.mp4").write_bytes(b"not decoded")  # not empty: an empty video is refused with the list
    with open(tmp_path / "jobs.csv", "w", newline="", encoding="utf-8") as file:  # a spreadsheet quotes "[0, 10]"
        csv.writer(file).writerows([["video", column], ["a.mp4", cell]])
    (job,) = load_jobs(tmp_path / "jobs.csv", "a cat", tmp_path / "out")
    return job.overrides[column]


@pytest.mark.parametrize(
    ("column", "text", "value"),
    [
        ("chunk_pixels", "1e6", 1_000_000),
        ("chunk_pixels", "1_000", 1000),
        ("denoising_strength", "1", 1.0),
        ("last_frame_keyframe", "yes", True),
        ("last_frame_keyframe", "true", True),
        ("keep_audio", "0", False),  # was: --set keep_audio=0 refused, the CSV took it
        ("seed", "none", None),  # was: --set seed=none refused, the CSV took it
        ("end_frame", "null", None),
        ("blend_mode", "poisson", "poisson"),
        ("keyframe_indices", "[0, 10]", [0, 10]),
        ("negative_prompt", "no", "no"),  # text stays text (YAML reads it as false)
        ("prompt_language", "auto", "auto"),
    ],
)
def test_a_job_list_cell_and_a_set_value_read_the_same(tmp_path, column, text, value):
    from rerender.config import parse_override

    key, given = parse_override(f"{column}={text}")
    assert key == column and given == value and type(given) is type(value)
    read = _cell(tmp_path, column, text)
    assert read == value and type(read) is type(value)
    apply_overrides(RerenderConfig(), {column: value})  # a value the config takes


@pytest.mark.parametrize(
    ("column", "text", "error"),
    [
        ("denoising_strength", "strong", "`denoising_strength` must be a number, got 'strong'"),
        ("keyframe_interval", "8.5", "`keyframe_interval` must be an integer, got 8.5"),
        ("propagation.engine", "cuda", "`propagation.engine` must be one of 'auto', 'numba', 'torch', got 'cuda'"),
    ],
)
def test_a_bad_cell_and_a_bad_set_value_say_the_same(tmp_path, column, text, error):
    from rerender.config import parse_override

    with pytest.raises(ConfigError) as raised:
        parse_override(f"{column}={text}")
    assert str(raised.value) == error
    with pytest.raises(ConfigError) as raised:
        _cell(tmp_path, column, text)
    assert str(raised.value).endswith(f"row 1, column {column!r}: {error}"), raised.value


# ------------------------------------------------------------------------------------ 3. --jobs with --ray: one warning


def test_batch_jobs_with_ray_warns_once_on_the_cli_naming_the_flag(silent_clip, tmp_path, monkeypatch):
    # was: the CLI printed its own line and kept the library's quiet by passing parallel=1: two sources
    import io
    import logging
    import shutil
    import sys

    pytest.importorskip("ray")
    from rerender.cli import main

    monkeypatch.setattr(logging.root, "handlers", [])  # the CLI's own logging set-up, as in a terminal (not pytest's)
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    # a stream that stays open: libraries first imported here (ray, huggingface_hub) keep handlers on it
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(silent_clip, clips / "a.mp4")
    code = main(["batch", str(clips), "-p", "a cat", "-o", str(tmp_path / "out"), "--ray", "Local", "--jobs", "4"])
    err = sys.stderr.getvalue()
    assert code == 2  # "Local" is no address: refused, after the warning
    assert err.count("is ignored with") == 1 and "(--jobs 4) is ignored with `ray` (--ray)" in err, err


# ------------------------------------------------------------------------------------ 6. single files of the other bases


def _checkpoint(path, keys):
    import torch
    from safetensors.torch import save_file

    save_file({key: torch.zeros(1) for key in keys}, str(path))
    return path


@pytest.mark.parametrize(
    ("keys", "name", "example"),
    [
        (["double_blocks.0.img_attn.norm.key_norm.scale", "img_in.weight"], "Flux", "black-forest-labs/FLUX.1-dev"),
        # ComfyUI's packing: the SD rule (model.diffusion_model.*) read it as SD 1.5, loaded later as a UNet
        (["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"], "Flux", "FLUX.1-dev"),
        (["model.diffusion_model.layers.0.adaLN_modulation.0.weight"], "Z-Image", "Tongyi-MAI/Z-Image-Turbo"),
        (["layers.0.adaLN_modulation.0.weight", "cap_embedder.0.weight"], "Z-Image", "Z-Image-Turbo"),
    ],
)
def test_a_single_file_flux_or_zimage_transformer_is_refused_naming_the_folder_to_give(tmp_path, keys, name, example):
    from rerender.weights import detect_family

    path = _checkpoint(tmp_path / "transformer.safetensors", keys)
    with pytest.raises(ConfigError, match=rf"^`model.base_model` .* is a single-file {name} checkpoint") as raised:
        detect_family(str(path))
    assert example in str(raised.value) and "diffusers folder or hub id" in str(raised.value)


def test_a_single_file_stated_to_be_a_transformer_base_is_refused_and_ckpt_headers_are_never_unpickled(tmp_path):
    from rerender.config import ModelConfig
    from rerender.weights import check_single_file_parts

    path = _checkpoint(tmp_path / "mine.safetensors", ["model.diffusion_model.input_blocks.0.0.weight"])
    with pytest.raises(ConfigError, match=r"single-file Z-Image checkpoint \(`model.family` is 'zimage'\)"):
        check_single_file_parts(ModelConfig(base_model=str(path), family="zimage"), "zimage")
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04cos\nsystem\n(S'echo unpickled'\ntR.")  # a pickle that would run code
    check_single_file_parts(ModelConfig(base_model=str(pickle)), "sd15")  # skipped: nothing read, nothing said


# ------------------------------------------------------------------------------------ 7. `~` in path options


def test_a_tilde_in_a_path_option_is_the_home_folder_from_set_and_config_files(tmp_path, monkeypatch):
    # was: kept as "~/…", so `--set base_model=~/models/x.safetensors` (quoted, or after `=`, where shells do not
    # expand it) looked for a folder named "~" in the working folder
    from rerender.config import parse_override

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    config = apply_overrides(
        RerenderConfig(), dict([parse_override("base_model=~/models/x.safetensors"), ("control.maps", "~/maps")])
    )
    assert config.model.base_model == str(home / "models" / "x.safetensors")
    assert config.control[0].maps == str(home / "maps")
    path = tmp_path / "mine.yaml"
    path.write_text(
        "model:\n  loras: [{path: ~/loras/a.safetensors}]\nflow:\n  flow_checkpoint: ~/gmflow.pth\n"
        "prompt:\n  prompt: ~ a tilde in a prompt stays\n  negative_prompt: ~/not a path\n"
    )
    config = load_config(path)
    assert config.model.loras[0].path == str(home / "loras" / "a.safetensors")
    assert config.flow.flow_checkpoint == str(home / "gmflow.pth")
    assert config.prompt.prompt == "~ a tilde in a prompt stays" and config.prompt.negative_prompt == "~/not a path"


def test_the_path_options_are_options_and_every_option_naming_a_file_or_folder_is_one():
    from rerender.config import field_help, field_type, option_paths
    from rerender.config.convert import PATH_OPTIONS

    assert PATH_OPTIONS <= set(option_paths())
    named = set()
    for path in option_paths():
        help_text = field_help(path).lower()
        if str in (field_type(path), *getattr(field_type(path), "__args__", ())) and (
            "folder" in help_text or "file" in help_text.split(" name")[0]
        ):
            named.add(path)
    # relative to another option; a colour (its help names image folders)
    inside_a_repository = {"model.ip_adapter_weight_name", "model.loras.weight_name", "video.background"}
    assert named - inside_a_repository <= PATH_OPTIONS, named - inside_a_repository - PATH_OPTIONS
    assert len(named & PATH_OPTIONS) >= 8, named  # the rule finds most of them: it can fail


# ------------------------------------------------------------------------------------ 8. Z-Image-Turbo by its configs


def _zimage_folder(folder, shift: float | None):
    """A Z-Image repository's configs in its layout (weights are not read): Tongyi-MAI/Z-Image-Turbo's with
    `shift` 3, Tongyi-MAI/Z-Image's with 6; `shift` None: no scheduler folder."""
    import json

    index = {
        "_class_name": "ZImagePipeline",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Qwen3Model"],
        "tokenizer": ["transformers", "Qwen2Tokenizer"],
        "transformer": ["diffusers", "ZImageTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    transformer = {"_class_name": "ZImageTransformer2DModel", "dim": 3840, "n_layers": 30, "n_heads": 30}
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps(index))
    (folder / "transformer" / "config.json").write_text(json.dumps(transformer))
    if shift is not None:
        (folder / "scheduler").mkdir()
        scheduler = {
            "_class_name": "FlowMatchEulerDiscreteScheduler",
            "num_train_timesteps": 1000,
            "use_dynamic_shifting": False,
            "shift": shift,
        }
        (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return folder


@pytest.mark.parametrize(
    ("name", "shift", "variant", "defaults", "rule"),
    [
        ("my-zimage", 3.0, "zimage-turbo", (9, 1.0), "by its scheduler's shift 3"),  # was: 50 steps, guidance 6
        ("Z-Image-Turbo-finetune", 6.0, "zimage", (50, 6.0), "by its scheduler's shift 6"),
        ("my-turbo", None, "zimage-turbo", (9, 1.0), "by its name (no scheduler config here)"),
        ("my-zimage", 4.5, "zimage", (50, 6.0), "by its name (its scheduler's shift 4.5 is neither 3 nor 6)"),
    ],
)
def test_zimage_turbo_is_told_by_its_scheduler_then_its_name(tmp_path, caplog, name, shift, variant, defaults, rule):
    from rerender.config import FAMILY_DEFAULTS
    from rerender.weights import base_variant
    from rerender.workflow.preflight import check_run

    folder = _zimage_folder(tmp_path / name, shift)
    with caplog.at_level("INFO", logger="rerender.weights"):
        assert base_variant(str(folder), "zimage") == variant
    assert rule in caplog.text
    config = check_run(None, overrides={"base_model": str(folder)}, stage="keyframes", check_model=False).config
    used = (config.sampling.num_inference_steps, config.sampling.guidance_scale)
    assert used == defaults == tuple(FAMILY_DEFAULTS[f"sampling.{key}"][variant] for key in ("num_inference_steps",
                                                                                           "guidance_scale"))  # fmt: skip
    overridden = {"base_model": str(folder), "num_inference_steps": 12, "guidance_scale": 2.0}  # the user's word wins
    config = check_run(None, overrides=overridden, stage="keyframes", check_model=False).config
    assert (config.sampling.num_inference_steps, config.sampling.guidance_scale) == (12, 2.0)


# ------------------------------------------------------------------------------------ 9. generate's size in its help


def test_generate_s_size_help_says_the_size_generate_uses(capsys, monkeypatch):
    # the help wrote "default: 512" by hand beside a `None` default that `generate` turned into 512×512 itself, and
    # the CLI filled a missing side with its own 512: three copies, now one (`GENERATED_SIZE`)
    import rerender.workflow.generation as generation
    from rerender.cli import main
    from rerender.config import GENERATED_SIZE

    assert main(["generate", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for flag, side in (("--width", 0), ("--height", 1)):
        assert f"{flag} {flag[2:].upper()} frame {flag[2:]} in pixels (default: {GENERATED_SIZE[side]} " in help_text

    class Stop(Exception):
        pass

    sizes = []

    def fake_generate(prompt, **kwargs):
        sizes.append(kwargs["size"])
        raise Stop

    monkeypatch.setattr(generation, "generate", fake_generate)
    for given, size in (([], None), (["--width", "320"], (320, GENERATED_SIZE[1]))):
        main(["generate", "-p", "a cat", *given])  # stops in the stand-in, before any model or file
        assert sizes.pop() == size
