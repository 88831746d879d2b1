"""What a new user runs into (sixth round): each case a defect found by using the CLI, the Python API and the docs
as a newcomer would, with the behaviour that should have happened (the argument as typed, the value, what is valid;
exit 2 for usage errors, before any expensive work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerender.cli import main
from rerender.config import ControlConfig, RerenderConfig, apply_overrides, config_from_dict
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "mode"), [("openpose", 0), ("depth", 1), ("scribble", 2), ("mlsd", 3), ("tile", 6)])
def test_a_union_control_mode_may_be_given_by_name(name, mode):
    # was: "`control.1.control_mode` must be an integer, got 'depth'", with no list of the modes
    config = config_from_dict({"control": [{"type": "canny"}, {"type": "precomputed", "maps": "m", "model": "u",
                                                                "control_mode": name}]})  # fmt: skip
    # the name is resolved where the model is known (tests/test_union_modes.py): with the SDXL Union's numbering
    from rerender.diffusion.control import union_control_mode

    assert union_control_mode(config.control[1]) == mode
    assert union_control_mode(ControlConfig(control_mode=name)) == mode


def test_an_unknown_union_control_mode_lists_the_numbers_and_the_names():
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"control": [{"control_mode": "pose"}]})
    message = str(caught.value)
    assert "an integer or one of" in message and "'openpose'" in message and "'repaint'" in message
    assert "'pose'" in message
    with pytest.raises(ConfigError, match=r"control_mode.*'openpose'.*got 'pose'"):
        ControlConfig(control_mode="pose")


def test_control_mode_by_name_on_the_cli(silent_clip, tmp_path, capsys):
    config = apply_overrides(RerenderConfig(), {"control.0.control_mode": "depth"})
    assert config.control[0].control_mode == "depth"  # its number depends on the base (tests/test_union_modes.py)
    out = tmp_path / "out.mp4"
    assert (
        main(["translate", str(silent_clip), "-p", "a cat", "--set", "control.0.control_mode=hedge", "-o", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert "control_mode` must be an integer or one of 'openpose'" in err and "got 'hedge'" in err
    assert not out.exists()


def _tiny_video(count: int = 4):
    import numpy as np

    frames = [np.full((32, 32, 3), 10 * t, np.uint8) for t in range(count)]
    return frames, {0: np.full((32, 32, 3), 200, np.uint8), count - 1: np.full((32, 32, 3), 50, np.uint8)}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"engine": "numba", "chunk_pixels": 4096}, "chunk_pixels"),
        ({"engine": "torch", "device": "cpu", "workers": 3}, "workers"),
    ],
)
def test_a_propagation_option_the_engine_does_not_use_is_warned_about_once(options, field, caplog):
    # was: silently unused
    from rerender.propagation import PropagationOptions, engine, propagate_video

    engine._WARNED.clear()
    frames, keys = _tiny_video()
    opts = PropagationOptions.preset("fast", **options)
    with caplog.at_level("WARNING", logger="rerender.propagation"):
        propagate_video(frames, keys, options=opts, progress=False)
        propagate_video(frames, keys, options=opts, progress=False)
    warned = [record.getMessage() for record in caplog.records if f"propagation.{field}=" in record.getMessage()]
    assert len(warned) == 1 and "not used by the" in warned[0], caplog.text
    caplog.clear()
    engine._WARNED.clear()
    with caplog.at_level("WARNING", logger="rerender.propagation"):  # the default: nothing to say
        propagate_video(
            frames, keys, options=PropagationOptions.preset("fast", engine=options["engine"]), progress=False
        )
    assert "not used by the" not in caplog.text


def test_batch_jobs_with_ray_warns_that_ray_schedules_the_jobs(silent_clip, tmp_path, capsys, caplog):
    # was: --jobs 4 --ray ... silently ran as many jobs at once as Ray liked
    import shutil

    pytest.importorskip("ray")
    import rerender

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(silent_clip, clips / "a.mp4")
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="rerender.workflow.batching"):  # the CLI shows the library's warning
        assert main(["batch", str(clips), "-p", "a cat", "-o", str(out), "--ray", "Local", "--jobs", "4", "-q"]) == 2
    assert "(--jobs 4) is ignored with `ray` (--ray)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rerender.workflow.batching"), pytest.raises(ConfigError):
        rerender.batch(clips, "a cat", out, parallel=4, ray="Local")
    assert "`parallel=4` (--jobs 4) is ignored with `ray`" in caplog.text


def test_the_flux_controlnet_need_names_the_config_key_and_the_cli_flag(monkeypatch):
    # was: "name a Flux ControlNet with --set control.0.model=ID", the CLI flag alone, to Python callers too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from rerender.weights import download_sources

    config = config_from_dict(
        {"model": {"base_model": "black-forest-labs/FLUX.1-dev", "family": "flux"}, "flow": {"flow_estimator": "dis"}}
    )
    (need,) = download_sources(config, include_flow=False)[1]
    assert "`control[0].model` (CLI: --set control.0.model=ID)" in need


def test_a_batch_job_whose_workspace_is_not_ours_says_how_to_fix_it_without_a_workspace_argument(
    silent_clip, tmp_path, capsys
):
    # was: "... choose another `workspace`" (→ "--workspace" on the CLI): batch has no such argument or flag
    import shutil

    import rerender
    from rerender.workflow.workspace import WorkspaceOwnershipError

    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(silent_clip, clips / "a.mp4")
    out = tmp_path / "out"
    (out / "a.mp4.work").mkdir(parents=True)
    (out / "a.mp4.work" / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceOwnershipError) as caught:
        rerender.batch(clips, "a cat", out, renderer="classic")
    message = str(caught.value)
    assert message.startswith("job 1 (a.mp4): the workspace") and "give the job another output" in message
    assert "workspace`" not in message
    assert main(["batch", str(clips), "-p", "a cat", "-o", str(out), "--renderer", "classic", "-q"]) == 2
    err = capsys.readouterr().err
    assert "give the job another output" in err and "--workspace" not in err, err
    assert (out / "a.mp4.work" / "notes.txt").read_text() == "mine" and not (out / "a.mp4").exists()


@pytest.mark.parametrize(
    ("contents", "what"), [({"notes.txt": "x"}, "holds files that are not images"), ({}, "holds no")]
)
def test_keyframe_folder_errors_name_the_argument_as_typed(silent_clip, tmp_path, capsys, contents, what):
    # was: "the keyframe folder 'k2' holds ...", naming neither `keyframes` nor --keyframes
    import rerender
    from rerender.errors import RerenderError

    keys = tmp_path / "k2"
    keys.mkdir()
    for name, text in contents.items():
        (keys / name).write_text(text)
    out = tmp_path / "out.mp4"
    with pytest.raises(RerenderError, match=rf"^`keyframes` '{keys}' {what}"):
        rerender.propagate_keyframes(silent_clip, keys, out)
    assert main(["propagate", str(silent_clip), "--keyframes", str(keys), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--keyframes '{keys}' {what}" in err and "keyframe folder" not in err, err
    assert not out.exists()


def test_a_quoted_home_path_is_expanded_by_the_cli_for_every_path_argument(silent_clip, tmp_path, monkeypatch, capsys):
    # was: only --model's "~" was expanded; a quoted "~/clip.mp4", --keyframes "~/keys" or -o "~/out.mp4" was refused
    import shutil

    from PIL import Image

    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copy(silent_clip, tmp_path / "clip.mp4")
    assert main(["info", "~/clip.mp4"]) == 0
    assert "64" in capsys.readouterr().out
    keys = tmp_path / "keys"
    keys.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(keys / "0000.png")
    assert main(["propagate", "~/clip.mp4", "--keyframes", "~/keys", "-o", "~/out.mp4", "-q"]) == 0, (
        capsys.readouterr()
    )
    assert (tmp_path / "out.mp4").is_file() and not (tmp_path / "~").exists()
    from rerender.video import read_frames

    frames = list(read_frames(tmp_path / "out.mp4"))
    assert len(frames) == 12 and abs(int(frames[6][24, 32, 0]) - 200) < 40  # the red key carried to the middle


def test_every_path_argument_the_cli_expands_is_an_argument_of_some_command():
    import argparse

    from rerender.cli import build_parser
    from rerender.cli.options import PATH_ARGUMENTS

    def dests(parser: argparse.ArgumentParser) -> set[str]:  # every command's, sub-commands' too (config show)
        found = set()
        for action in parser._actions:
            found.add(action.dest)
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    found |= dests(command)
        return found

    assert set(PATH_ARGUMENTS) <= dests(build_parser()), set(PATH_ARGUMENTS) - dests(build_parser())


def _checkpoint(path: Path, keys) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({key: torch.zeros(1) for key in keys}, str(path))
    return path


_SD15_FULL = (
    "model.diffusion_model.input_blocks.0.0.weight",
    "first_stage_model.decoder.conv_in.weight",
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
)


def test_a_unet_only_single_file_is_refused_in_preflight_naming_model_the_file_and_what_is_missing(
    silent_clip, tmp_path, capsys
):
    # was: refused only when the model loaded (diffusers' "does not seem to contain a valid CLIP model"), after
    # the frames were decoded
    path = _checkpoint(tmp_path / "unet only.safetensors", _SD15_FULL[:1])
    out = tmp_path / "out.mp4"
    argv = ["translate", str(silent_clip), "-p", "a cat", "--model", str(path), "-o", str(out), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--model {str(path)!r} is a single-file SD 1.5 checkpoint without the VAE" in err, err
    assert "the text encoder (cond_stage_model.transformer" in err and "the UNet" not in err
    assert not out.exists() and not (tmp_path / "out.mp4.work").exists()


def test_the_single_file_check_reads_what_each_family_needs(tmp_path):
    from rerender.config import ModelConfig
    from rerender.errors import CheckpointError
    from rerender.weights import check_single_file_parts

    folder = tmp_path
    full = _checkpoint(folder / "full.safetensors", _SD15_FULL)
    check_single_file_parts(ModelConfig(base_model=str(full)), "sd15")  # the whole model: nothing to say
    no_vae = _checkpoint(folder / "no vae.safetensors", (_SD15_FULL[0], _SD15_FULL[2]))
    with pytest.raises(CheckpointError, match=r"^`model.base_model` .* without the VAE \(first_stage_model\.\*"):
        check_single_file_parts(ModelConfig(base_model=str(no_vae)), "sd15")
    check_single_file_parts(ModelConfig(base_model=str(no_vae), vae="stabilityai/sd-vae-ft-mse"), "sd15")
    xl = _checkpoint(
        folder / "xl.safetensors",
        ("model.diffusion_model.label_emb.0.0.weight", "conditioner.embedders.1.model.positional_embedding"),
    )
    with pytest.raises(CheckpointError) as caught:
        check_single_file_parts(ModelConfig(base_model=str(xl), dtype="float32"), "sdxl")
    message = str(caught.value)
    assert "SDXL" in message and "the VAE" in message and "the text encoder (CLIP ViT-L)" in message
    assert "second text encoder" not in message and "the UNet" not in message
