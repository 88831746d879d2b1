"""Examples run as users would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rerender.video import probe_video

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_preprocess_example(synthetic_clip, tmp_path):
    output = tmp_path / "out.mp4"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "preprocess_video.py"),
            str(synthetic_clip),
            str(output),
            "--resolution",
            "64",
            "--stride",
            "2",
            "--start",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    info = probe_video(output)
    assert info.frame_count == 9 and info.fps == 12.5 and info.has_audio


def test_optical_flow_example(synthetic_clip, tmp_path):
    output = tmp_path / "check.png"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "optical_flow.py"),
            str(synthetic_clip),
            "--first",
            "2",
            "--second",
            "4",
            "--estimator",
            "dis",
            "--out",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert output.is_file() and "dis-fine" in result.stdout


def _run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.slow
def test_translate_example(synthetic_clip, tmp_path):
    result = _run(
        EXAMPLES / "translate_video.py",
        synthetic_clip,
        "a watercolor",
        tmp_path / "o.mp4",
        "-K",
        "8",
        "--renderer",
        "classic",
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "o.mp4").frame_count == 20


@pytest.mark.slow
def test_propagate_painted_keyframes_example(synthetic_clip, tmp_path):
    result = _run(
        EXAMPLES / "propagate_painted_keyframes.py",
        synthetic_clip,
        tmp_path / "keys",
        tmp_path / "o.mp4",
        "--demo-keys",
        "0",
        "10",
        "19",
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "o.mp4").frame_count == 20


@pytest.mark.slow
def test_progress_callback_example(synthetic_clip, tmp_path):
    result = _run(
        EXAMPLES / "progress_callback.py", synthetic_clip, "a cartoon", tmp_path / "o.mp4", "--renderer", "classic"
    )
    assert result.returncode == 0, result.stderr
    assert "propagation" in result.stdout and "writing" in result.stdout


@pytest.mark.slow
def test_batch_example(synthetic_clip, silent_clip, tmp_path):
    (tmp_path / "clips").mkdir()
    for clip in (synthetic_clip, silent_clip):
        (tmp_path / "clips" / clip.name).symlink_to(clip)
    result = _run(
        EXAMPLES / "batch_translate.py",
        tmp_path / "clips",
        "a watercolor",
        tmp_path / "out",
        "--renderer",
        "classic",
        "--resolution",
        "64",
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "out" / "synthetic clip.mp4").frame_count == 20
    assert probe_video(tmp_path / "out" / "silent.mp4").frame_count == 12
    assert "2 done, 0 skipped, 0 failed" in result.stdout


def test_an_example_that_needs_weights_prints_the_cli_line_not_a_traceback(synthetic_clip, tmp_path):
    # Offline with no cached weights: refused before decoding, as `rerender translate --renderer diffusion` is.
    result = _run(
        EXAMPLES / "translate_video.py",
        synthetic_clip,
        "a watercolor",
        tmp_path / "o.mp4",
        "--renderer",
        "diffusion",
        "--model",
        tmp_path / "no_model.safetensors",
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no_model.safetensors" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.mp4").exists()
