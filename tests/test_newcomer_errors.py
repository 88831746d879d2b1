"""What a new user runs into with wrong inputs: each case a defect found by using the CLI and the docs as a
newcomer would, with the behaviour that should have happened (the argument as typed, the value, what is valid;
exit 2 for usage errors, before any expensive work)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerender.cli import main
from rerender.config import RerenderConfig, apply_overrides
from rerender.environment import family_report
from rerender.errors import ConfigError, InputNotFoundError
from rerender.weights import detect_family

REPO = Path(__file__).resolve().parents[1]


def test_a_local_model_path_that_is_not_there_has_no_family(tmp_path):
    # was: "sd15", and `rerender env` said it was "read from the model's configs" although nothing was read
    missing = tmp_path / "my-modle"
    with pytest.raises(InputNotFoundError, match=rf"`model.base_model` '{missing}' does not exist"):
        detect_family(str(missing))
    report = family_report(apply_overrides(RerenderConfig(), {"base_model": str(missing)}))
    assert report["family"] is None and report["how"] == "not readable" and str(missing) in report["error"]


def test_a_file_that_is_no_checkpoint_has_no_family(tmp_path):
    # was: "sd15" for any existing file (a README, a video) given as the model
    notes = tmp_path / "notes.md"
    notes.write_text("# not a model\n")
    with pytest.raises(ConfigError, match=r"`model.base_model` '.*notes.md' is a '.md' file.*\.safetensors"):
        detect_family(str(notes))
    report = family_report(apply_overrides(RerenderConfig(), {"base_model": str(notes)}))
    assert report["family"] is None and "notes.md" in report["error"]


def test_downloading_a_local_model_path_that_is_not_there_is_a_usage_error(tmp_path, capsys, monkeypatch):
    # was: "local path not found" then the rest fetched, exit 0; now refused before the hub is asked (no network
    # here: an unreachable hub would be exit 1)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from rerender import weights

    monkeypatch.setattr(weights, "hub_reachable", lambda *a, **k: pytest.fail("the hub was asked"))
    missing = tmp_path / "my-modle"
    assert main(["download", "--no-flow", "--model", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--model '{missing}' does not exist" in err and "hub id (owner/name)" in err


def _still(path, size=(64, 48), value=None):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if value is not None:
        pixels[:] = value
    Image.fromarray(pixels).save(path)
    return str(path)


def test_a_flat_depth_map_is_refused_naming_depth_and_the_file(tmp_path, capsys):
    # was: "the depth map must be a finite 2-D map with some variation", naming neither --depth nor the file
    still, flat = _still(tmp_path / "photo.png"), _still(tmp_path / "flat.png", value=7)
    out = tmp_path / "out.mp4"
    code = main(["animate", still, "-p", "x", "-o", str(out), "--motion", "orbit", "--depth", flat])
    err = capsys.readouterr().err
    assert code == 2 and f"--depth '{flat}'" in err and "constant" in err and "larger = nearer" in err
    assert not out.exists() and not (tmp_path / "out.mp4.work").exists()  # refused before any work


def test_an_unreadable_still_is_named_once(tmp_path, capsys):
    # was: "IMAGE 'x.png' is not a readable image (PNG, …): 'x.png' is not a readable image (supported: …)"
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"not an image at all")
    assert main(["animate", str(garbage), "-p", "x", "-o", str(tmp_path / "out.mp4")]) == 2
    err = capsys.readouterr().err
    assert f"IMAGE '{garbage}' is not a readable image (supported: .png" in err and err.count(str(garbage)) == 1


def test_the_soundtrack_of_a_silent_video_is_refused_naming_audio_prompt(tmp_path, capsys):
    # was: "`prompt.audio_prompt (the video's soundtrack)` 'demo.mp4' has no audio track" (the option unreadable)
    demo = str(REPO / "rerender" / "assets" / "demo.mp4")  # no audio track
    out = tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--audio-prompt", "source"]) == 2
    err = capsys.readouterr().err
    assert f"--audio-prompt 'source' takes the video's soundtrack, and '{demo}' has no audio track" in err
    assert "`" not in err and not out.exists()


def test_env_on_flux_without_a_controlnet_says_translate_refuses(tmp_path, capsys, monkeypatch):
    # was: "translate will render keyframes with: diffusion", while translate refuses a Flux base without a
    # ControlNet named (Flux has no default ControlNet)
    from tests.tiny_flux import save_tiny_flux

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base, control = save_tiny_flux(tmp_path)
    assert main(["env", "--model", str(base)]) == 0
    out = capsys.readouterr().out
    assert "translate will render keyframes with: diffusion" not in out
    assert "translate refuses" in out and "--set control.0.model=ID" in out
    assert main(["env", "--model", str(base), "--set", f"control.0.model={control}"]) == 0
    assert "translate will render keyframes with: diffusion" in capsys.readouterr().out


def test_translate_on_flux_without_a_controlnet_says_how_to_name_one(tmp_path, capsys, monkeypatch):
    # was: "`control.model` must name a Flux ControlNet", an option no CLI flag or --set path spells
    from tests.tiny_flux import save_tiny_flux

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base, _ = save_tiny_flux(tmp_path)
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    argv = ["translate", demo, "-p", "x", "-o", str(out), "--model", str(base), "--set", "size_multiple=16"]
    assert main([*argv, "--stage", "first"]) == 2
    err = capsys.readouterr().err
    assert "`control[0].model` must name a Flux ControlNet" in err and "--set control.0.model=ID" in err


def test_a_controlnet_folder_given_as_the_model_is_refused(tiny_pipeline_dir, tmp_path, capsys):
    # was: read as an SD 1.5 base (its root config.json taken for a UNet's); translate then fell back to the
    # classic stylizer and exited 0, `rerender env` said "SD 1.5"
    controlnet = tiny_pipeline_dir / "controlnet"
    with pytest.raises(ConfigError, match=r"is a ControlNet \(ControlNetModel\), not a base model.*control\.0\.model"):
        detect_family(str(controlnet))
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--model", str(controlnet), "--stage", "first"]) == 2
    err = capsys.readouterr().err
    assert f"--model '{controlnet}' is a ControlNet" in err and not (tmp_path / "out.mp4.work").exists()


def test_an_unknown_set_key_is_named_as_typed(tmp_path, capsys):
    # was: "unknown option --max-frames; did you mean 'start_frame'?": a flag translate does not have (eval's)
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--set", "max_frames=0"]) == 2
    err = capsys.readouterr().err
    assert "unknown option `max_frames`" in err and "--max-frames" not in err


@pytest.mark.parametrize(
    "frames, said",
    [
        (1, "the clip has 1 frame, fewer than K = 10: it is the only keyframe"),
        (2, "the clip has 2 frames, fewer than K = 10: keyframes at its first and last frames [0, 1]"),
    ],
)
def test_the_short_clip_message_reads_right(frames, said, caplog):
    # was: "the clip has 1 frames, fewer than K = 10: keyframes at its first and last frames [0]"
    from rerender.config import KeyframeConfig
    from rerender.keyframes import select_keyframes

    with caplog.at_level("WARNING", logger="rerender.keyframes"):
        assert select_keyframes(frames, KeyframeConfig(keyframe_interval=10)) == sorted({0, frames - 1})
    assert [record.getMessage() for record in caplog.records] == [said]


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1, 1.5, True, "1"])
def test_ray_propagation_gpus_out_of_range_is_named(value):
    # was: OverflowError ("cannot convert float infinity to integer") for inf, from the check itself
    pytest.importorskip("ray")
    from rerender.workflow.executors.ray import RayExecutor

    with pytest.raises(ConfigError, match=r"`propagation_gpus` must be None \(automatic\), 0, a fraction"):
        RayExecutor(propagation_gpus=value)


def test_info_on_a_still_too_small_to_animate_says_so(tmp_path, capsys):
    # was: "run: a still image: `rerender animate …` makes a clip of it", which animate then refuses (< 2×2)
    import json

    tiny = _still(tmp_path / "dot.png", size=(1, 1))
    assert main(["info", tiny, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["run"].startswith("too small to animate: `rerender animate` needs at least 2×2 pixels, this is 1×1")
    assert main(["info", _still(tmp_path / "ok.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"].startswith("a still image: `rerender animate")


@pytest.mark.parametrize(
    "overrides, fetched",
    [
        (
            {
                "base_model": "black-forest-labs/FLUX.1-schnell",
                "control.0.model": "InstantX/FLUX.1-dev-Controlnet-Canny",
            },
            "ControlNet (canny): InstantX/FLUX.1-dev-Controlnet-Canny",
        ),
        ({"control.0.type": "depth"}, "ControlNet (depth): lllyasviel/sd-controlnet-depth"),
    ],
)
def test_the_fetch_command_env_prints_fetches_the_configs_controlnet(overrides, fetched, capsys, monkeypatch):
    # was: `rerender download --model black-forest-labs/FLUX.1-schnell` for configs/flux.yaml, which fetches no
    # ControlNet (Flux has no default), and plain `rerender download` for a depth ControlNet (it fetched canny's)
    import shlex

    from rerender.weights import fetch_commands, weight_sources

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = apply_overrides(RerenderConfig(), overrides)
    command = fetch_commands(config, weight_sources(config))[0]
    assert main([*shlex.split(command)[1:], "--dry-run", "--no-flow"]) == 0
    assert fetched in capsys.readouterr().out


def test_batch_names_its_jobs_argument_as_the_usage_line_does(tmp_path, capsys):
    # was: "`jobs`: the folder … holds no video", the Python argument; the CLI's is JOBS
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "-p", "x", "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"error: JOBS: the folder '{tmp_path / 'empty'}' holds no video")


def test_a_lora_scale_that_is_no_number_is_named(tmp_path, capsys):
    # was: "`model.loras[0].path` 'style.safetensors:abc' does not exist": the scale taken for part of the path
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--lora", f"{lora}:abc", "--stage", "first"]) == 2
    err = capsys.readouterr().err
    assert f"--lora '{lora}:abc': the scale after ':' must be a number" in err and "PATH[:SCALE]" in err
    from rerender.cli.options import parse_lora

    assert parse_lora(f"{lora}:0.5") == {"path": str(lora), "scale": 0.5}
    assert parse_lora(r"C:\loras\style.safetensors") == {"path": r"C:\loras\style.safetensors", "scale": 1.0}
    odd = tmp_path / "a:b.safetensors"  # a file whose name holds a colon is still a path
    odd.write_bytes(b"")
    assert parse_lora(str(odd)) == {"path": str(odd), "scale": 1.0}


def test_a_missing_lora_is_named_as_typed(tmp_path, capsys):
    # was: "`model.loras[0].path` '…' does not exist" after --lora …
    missing = tmp_path / "nolora.safetensors"
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--lora", str(missing), "--stage", "first"]) == 2
    assert f"error: --lora '{missing}' does not exist" in capsys.readouterr().err


def test_downloading_for_a_model_that_is_no_model_is_a_usage_error(tmp_path, capsys, monkeypatch):
    # was: "base model (SD 1.5): notes.md: local, nothing to fetch", the rest fetched, exit 0
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from rerender import weights

    monkeypatch.setattr(weights, "hub_reachable", lambda *a, **k: pytest.fail("the hub was asked"))
    notes = tmp_path / "notes.md"
    notes.write_text("# not a model\n")
    assert main(["download", "--no-flow", "--model", str(notes)]) == 2
    assert f"--model '{notes}' is a '.md' file, not a model" in capsys.readouterr().err
