"""Last round's "noticed, not mended" list: results name absolute paths, `generate` takes `callback` and `cancel`,
`download` refuses a sound prompt the run would refuse, `env` names the flags the user typed and runs the run's own
checks, `batch` names every empty video up front, GPU placement of the depth annotator and CLAP, the IP-Adapter's
image encoder leaves the offload hooks, a loaded pipeline beside `base_model`/`vae`, and concurrent `loading_bars`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

FAST = dict(
    resolution=64,
    size_multiple=16,
    propagation_preset="fast",
    workers=1,
    flow_estimator="dis",
    dis_preset="fast",
    frame_stride=6,
    keyframe_interval=1,
)

# 1. Results name absolute paths: a relative one would stop naming the file after the caller's `os.chdir`


def test_translate_result_paths_are_absolute_and_survive_chdir(silent_clip, tmp_path, monkeypatch):
    import rerender

    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    # the caller's callback moves the working folder during the run (a notebook cell, another thread)
    result = rerender.translate(
        silent_clip,
        "a cartoon",
        output="out.mp4",
        renderer="classic",
        progress=False,
        stage="first",
        callback=lambda stage, done, total: os.chdir(tmp_path),
        **FAST,
    )
    assert Path.cwd() == tmp_path
    assert result.workspace == tmp_path / "run" / "out.mp4.work" and result.workspace.is_dir()
    assert result.previews["first"].parent.parent == result.workspace and result.previews["first"].is_file()


def test_generation_animation_and_job_paths_are_absolute(tmp_path, monkeypatch):
    from rerender.camera import KnownMotionFlow
    from rerender.workflow.animation import AnimationResult
    from rerender.workflow.batching import Job
    from rerender.workflow.generation import GenerationResult
    from rerender.workflow.translation import TranslationResult

    monkeypatch.chdir(tmp_path)
    generated = GenerationResult(Path("out.mp4"), [0], [], 1)
    assert generated.output == tmp_path / "out.mp4"
    job = Job(Path("clips/../a.mp4"), Path("styled/a.mp4"))
    assert (job.video, job.output, job.workspace) == (
        tmp_path / "a.mp4",
        tmp_path / "styled" / "a.mp4",
        tmp_path / "styled" / "a.mp4.work",
    )
    translation = TranslationResult(None, [0], 1, {}, Path("w"), "classic", previews={"first": Path("w/k.png")})
    assert translation.output is None and translation.workspace == tmp_path / "w"
    animation = AnimationResult(translation, None, Path("out_clip_frames"), KnownMotionFlow.__new__(KnownMotionFlow))
    assert animation.clip is None and animation.clip_frames == tmp_path / "out_clip_frames"
