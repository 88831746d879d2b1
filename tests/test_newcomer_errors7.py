"""What a new user runs into (seventh round): each case a defect found by following the docs' Python examples,
the three-stage workflow with options changed between stages, the web page's callbacks with odd values, and the
videos users really have (portrait phone clips, variable rate, gaps in an image folder), with the behaviour that
should have happened."""

from __future__ import annotations

from pathlib import Path

import pytest

import rerender
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FAST = {"renderer": "classic", "resolution": 64, "size_multiple": 8, "flow_estimator": "dis", "progress": False}


def test_a_refused_stage_propagate_keeps_the_keyframes_it_refused_to_use(silent_clip, tmp_path):
    # was: `--stage propagate -K 5` after `--stage keyframes -K 4` logged "redoing keyframes", deleted every
    # rendered keyframe (hours of GPU work) and only then refused for want of keyframes
    output = tmp_path / "out.mp4"
    rerender.translate(silent_clip, "a cat", K=4, output=output, stage="keyframes", **FAST)
    keyframes = sorted(p.name for p in (tmp_path / "out.mp4.work" / "keyframes").iterdir())
    assert keyframes
    changed = r"`stage` 'propagate'.*rendered with other options \(config changed: keyframes\)"
    with pytest.raises(ConfigError, match=changed):
        rerender.translate(silent_clip, "a cat", K=5, output=output, stage="propagate", **FAST)
    assert sorted(p.name for p in (tmp_path / "out.mp4.work" / "keyframes").iterdir()) == keyframes
    result = rerender.translate(silent_clip, "a cat", K=4, output=output, stage="keyframes", **FAST)
    assert "keyframes" in result.reused and not result.redone
