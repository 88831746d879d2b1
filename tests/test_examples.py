"""Examples run as users would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rerender.video import probe_video

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_preprocess_example(synthetic_clip, tmp_path):
    output = tmp_path / "out.mp4"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "preprocess_video.py"), str(synthetic_clip), str(output),
         "--resolution", "64", "--stride", "2", "--start", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    info = probe_video(output)
    assert info.frame_count == 9 and info.fps == 12.5 and info.has_audio


def test_optical_flow_example(synthetic_clip, tmp_path):
    output = tmp_path / "check.png"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "optical_flow.py"), str(synthetic_clip), "--first", "2", "--second", "4",
         "--estimator", "dis", "--out", str(output)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert output.is_file() and "dis-medium" in result.stdout
