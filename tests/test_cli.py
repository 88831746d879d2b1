"""The `rerender` CLI: subcommands, exit codes 0/1/2, one-line errors, no tracebacks for user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rerender.cli import main
from rerender.video import probe_video

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_everywhere(capsys):
    for args in ([], ["config", "show"], ["config", "validate"], ["info"], ["env"], ["preprocess"]):
        code, out, _ = run_cli(capsys, *args, "--help")
        assert code == 0 and "usage:" in out


def test_verbose_before_or_after_the_command(capsys, synthetic_clip):
    for args in (["-v", "info", synthetic_clip], ["info", synthetic_clip, "--verbose"]):
        code, out, _ = run_cli(capsys, *args)
        assert code == 0 and "96×64" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("rerender ")


def test_config_show_defaults_and_overrides(capsys):
    code, out, _ = run_cli(capsys, "config", "show", "--json", "--set", "denoising_strength=0.6", "--set", "video.resolution=256")
    assert code == 0
    data = json.loads(out)
    assert data["sampling"]["denoising_strength"] == 0.6 and data["video"]["resolution"] == 256
    code, out, _ = run_cli(capsys, "config", "show", REPO / "configs" / "tiny.yaml")
    assert code == 0 and "resolution: 64" in out


def test_config_validate(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "config", "validate", REPO / "configs" / "default.yaml")
    assert code == 0 and "valid" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("keyframes:\n  keyframe_interval: 0\n")
    code, _, err = run_cli(capsys, "config", "validate", bad)
    assert code == 2 and "keyframe_interval` must be ≥ 1, got 0" in err and "Traceback" not in err
    typo = tmp_path / "typo.yaml"
    typo.write_text("video:\n  resolutoin: 256\n")
    code, _, err = run_cli(capsys, "config", "validate", typo)
    assert code == 2 and "did you mean 'resolution'" in err
    code, _, err = run_cli(capsys, "config", "validate", tmp_path / "missing.yaml")
    assert code == 2 and "not found" in err


def test_info(capsys, synthetic_clip):
    code, out, _ = run_cli(capsys, "info", synthetic_clip, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["frame_count"] == 20 and record["fps"] == "25" and record["has_audio"] is True
    assert (record["width"], record["height"]) == (96, 64)
    code, out, _ = run_cli(capsys, "info", synthetic_clip)
    assert code == 0 and "96×64" in out and "aac" in out


def test_env(capsys):
    code, out, _ = run_cli(capsys, "env", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["packages"]["torch"] and "cuda_available" in report["devices"]
    assert "huggingface_hub_cache" in report["weights"]


def test_preprocess_to_video_keeps_fps_and_audio(capsys, synthetic_clip, tmp_path):
    output = tmp_path / "pre processed.mp4"
    code, _, err = run_cli(
        capsys, "preprocess", synthetic_clip, "-o", output, "-q",
        "--set", "resolution=64", "--set", "size_multiple=16", "--set", "start_frame=4", "--set", "frame_stride=2",
    )
    assert code == 0, err
    info = probe_video(output)
    assert info.frame_count == 8 and info.fps == 12.5 and (info.width, info.height) == (64, 48) and info.has_audio


def test_preprocess_to_png_folder(capsys, synthetic_clip, tmp_path):
    code, _, _ = run_cli(capsys, "preprocess", synthetic_clip, "-o", tmp_path / "frames", "-q", "--set", "end_frame=3")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["0000.png", "0001.png", "0002.png"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "missing.mp4"], "video not found"),
        (["preprocess", "{clip}", "-o", "{tmp}/no/such/dir/out.mp4", "-q"], "output folder does not exist"),
        (["preprocess", "{clip}", "-o", "{clip}", "-q"], "is the input"),
        (["preprocess", "{clip}", "-o", "{tmp}/o.mp4", "--set", "start_frame=99", "-q"], "`start` must be in [0, 19]"),
        (["preprocess", "{clip}", "-o", "{tmp}/o.mp4", "--set", "resolution=32", "-q"], "must be in [64, 4096]"),
        (["info", "{clip}", "--set", "crop.left=500"], "crop"),
        (["info", "{clip}", "--set", "nonsense"], "key=value"),
        (["bogus"], "invalid choice"),
        (["config"], "choose an action"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, synthetic_clip, tmp_path, args, message):
    args = [a.format(clip=synthetic_clip, tmp=tmp_path) for a in args]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert probe_video(synthetic_clip).frame_count == 20  # the input is untouched


def test_runtime_failure_exits_1(capsys, monkeypatch, synthetic_clip, tmp_path):
    import rerender.video

    def broken(*args, **kwargs):
        raise RuntimeError("disk exploded")

    monkeypatch.setattr(rerender.video, "write_video", broken)
    code, _, err = run_cli(capsys, "preprocess", synthetic_clip, "-o", tmp_path / "o.mp4", "-q")
    assert code == 1 and "disk exploded" in err and "Traceback" not in err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "rerender.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "rerender" in result.stdout


FAST_SETS = ["--set", "resolution=64", "--set", "size_multiple=16", "--set", "propagation_preset=fast",
             "--set", "workers=1", "--set", "flow_estimator=dis"]


def test_translate_stages_and_resume(capsys, synthetic_clip, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output, workspace = tmp_path / "out.mp4", tmp_path / "ws"
    common = [synthetic_clip, "-p", "a cartoon", "-K", "8", "--workspace", workspace, "-q", *FAST_SETS]
    code, out, err = run_cli(capsys, "translate", *common, "-o", output, "--stage", "first")
    assert code == 0, err
    assert "classic stylizer" in err or "classic" in out  # no weights here: the fallback says so
    assert not output.exists() and (workspace / "keyframes" / "0000.png").is_file()
    code, out, _ = run_cli(capsys, "keyframes", *common, "-o", output)
    assert code == 0 and "[0, 8, 16]" in out and not output.exists()
    code, out, _ = run_cli(capsys, "translate", *common, "-o", output)
    assert code == 0 and "reused the keyframes stage" in out
    assert probe_video(output).frame_count == 20
    code, out, err = run_cli(capsys, "translate", *common, "-o", output, "--set", "denoising_strength=0.5")
    assert code == 0 and "redoing keyframes, propagation: config changed (sampling)" in caplog.text  # no --force
    assert "reused the frames stage" in out and "reused the keyframes stage" not in out
    assert f"workspace: {workspace} (" in out and " MB)" in out
    code, _, err = run_cli(capsys, "translate", *common, "-o", tmp_path / "again.mp4", "--workspace", tmp_path)
    assert code == 2 and "rerender did not make" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "translate", synthetic_clip, "-p", "x", "-K", "0", "-o", tmp_path / "k.mp4", "-q")
    assert code == 2 and "keyframe_interval" in err


def test_translate_with_a_missing_model_path_fails_clearly(capsys, synthetic_clip, tmp_path):
    code, _, err = run_cli(capsys, "translate", synthetic_clip, "-p", "x", "-o", tmp_path / "o.mp4", "-q",
                           "--model", tmp_path / "no_such_model.safetensors", *FAST_SETS)
    assert code == 2 and "no_such_model.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4.work").exists()  # refused before any work


def test_propagate_and_eval_commands(capsys, synthetic_clip, tmp_path):
    from rerender.stylizer import ClassicStylizer
    from rerender.video import read_frames, write_image

    keys = tmp_path / "keys"
    keys.mkdir()
    frames = list(read_frames(synthetic_clip))
    for index in (0, 19):
        write_image(ClassicStylizer()(frames[index]), keys / f"{index:04d}.png")
    output = tmp_path / "prop.mp4"
    code, out, err = run_cli(capsys, "propagate", synthetic_clip, "--keyframes", keys, "-o", output, "-q",
                             "--preset", "fast", "--workers", "1", "--blend", "histogram")
    assert code == 0, err
    assert "[0, 19]" in out and probe_video(output).frame_count == 20
    report_path = tmp_path / "report.json"
    code, out, err = run_cli(capsys, "eval", output, "--source", synthetic_clip, "--no-clip", "--json", report_path)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["frames"] == 20 and report["warp_error"] > 0 and "warp_error_excess" in report
    code, _, err = run_cli(capsys, "propagate", synthetic_clip, "--keyframes", tmp_path / "nope", "-o", output, "-q")
    assert code == 2 and "not found" in err


def test_translate_with_a_local_model_folder_runs_diffusion(capsys, synthetic_clip, tmp_path, tiny_pipeline_dir):
    # The tiny pipeline folder holds its ControlNet in controlnet/, which is used when none is named.
    output = tmp_path / "sd.mp4"
    code, out, err = run_cli(
        capsys, "translate", synthetic_clip, "-p", "a cat", "-o", output, "-K", "10", "-q", "--model", tiny_pipeline_dir,
        *FAST_SETS, "--set", "vae=null", "--set", "num_inference_steps=2", "--set", "device=cpu",
        "--set", "negative_prompt=", "--set", "added_prompt=",
    )
    assert code == 0, err
    assert "keyframes (diffusion): [0, 10]" in out
    assert probe_video(output).frame_count == 20
