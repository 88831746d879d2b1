"""Cancelling a run through `cancel=threading.Event`: it stops at a safe point and the workspace resumes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rerender.errors import CancelledError, RerenderError
from rerender.video import read_image
from rerender.workflow.translation import ClassicRenderer, translate

FAST = dict(
    resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast"
)


def _cancel_at(event: threading.Event, stage: str, done: int):
    """A callback that sets `event` once `stage` reports `done` units, recording every event it sees."""
    seen = []

    def callback(name, count, total):
        seen.append((name, count, total))
        if name == stage and count >= done:
            event.set()

    return callback, seen


def test_cancel_mid_propagation_then_resume_equals_an_uninterrupted_run(synthetic_clip, tmp_path):
    renderer = ClassicRenderer("a cartoon")
    reference = translate(
        synthetic_clip,
        "a cartoon",
        K=4,
        output=tmp_path / "ref.mp4",
        workspace=tmp_path / "ref",
        renderer=renderer,
        progress=False,
        **FAST,
    )

    # Cancel once half of the frames are propagated: propagation stops at the next frame.
    cancel = threading.Event()
    callback, seen = _cancel_at(cancel, "propagation", 10)
    with pytest.raises(CancelledError, match="propagation stage .*resume") as caught:
        translate(
            synthetic_clip,
            "a cartoon",
            K=4,
            output=tmp_path / "out.mp4",
            workspace=tmp_path / "ws",
            renderer=renderer,
            progress=False,
            callback=callback,
            cancel=cancel,
            **FAST,
        )
    assert isinstance(caught.value, RerenderError) and str(tmp_path / "ws") in str(caught.value)
    assert not (tmp_path / "out.mp4").exists()
    propagation = [done for name, done, _ in seen if name == "propagation"]
    assert propagation[-1] >= 10 and propagation[-1] < 20 and "writing" not in {name for name, _, _ in seen}

    resumed = translate(
        synthetic_clip,
        "a cartoon",
        K=4,
        output=tmp_path / "out.mp4",
        workspace=tmp_path / "ws",
        renderer=renderer,
        progress=False,
        **FAST,
    )
    assert resumed.reused == ["frames", "keyframes"] and resumed.frame_count == 20 and "propagation" in resumed.timings
    for index in range(20):
        np.testing.assert_array_equal(
            read_image(tmp_path / "ws" / "propagated" / f"{index:04d}.png"),
            read_image(reference.workspace / "propagated" / f"{index:04d}.png"),
        )


def test_cancel_between_keyframes_keeps_the_finished_ones(synthetic_clip, tmp_path):
    cancel = threading.Event()
    callback, _ = _cancel_at(cancel, "keyframes", 2)
    with pytest.raises(CancelledError, match="keyframes stage \\(2/6\\)"):
        translate(
            synthetic_clip,
            "a cartoon",
            K=4,
            output=tmp_path / "o.mp4",
            workspace=tmp_path / "ws",
            renderer=ClassicRenderer("a cartoon"),
            progress=False,
            callback=callback,
            cancel=cancel,
            **FAST,
        )
    assert sorted(path.name for path in (tmp_path / "ws" / "keyframes").glob("*.png")) == ["0000.png", "0004.png"]


def test_an_event_set_before_the_call_stops_before_any_keyframe(synthetic_clip, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError, match="frames stage"):
        translate(
            synthetic_clip,
            "a cartoon",
            K=4,
            output=None,
            stage="first",
            workspace=tmp_path / "ws",
            renderer=ClassicRenderer("a cartoon"),
            progress=False,
            cancel=cancel,
            **FAST,
        )
    assert not list((tmp_path / "ws").glob("keyframes/*.png"))


def test_cancel_between_denoising_steps_then_resume_exactly(synthetic_clip, tmp_path, tiny_pipeline_dir):
    """With diffusion keyframes the callback counts denoising steps, so a cancel stops inside a keyframe."""
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    settings = dict(
        resolution=64,
        size_multiple=16,
        num_inference_steps=4,
        vae=None,
        device="cpu",
        dtype="float32",
        added_prompt="",
        negative_prompt="",
        flow_estimator="dis",
        dis_preset="fast",
    )
    reference = translate(
        synthetic_clip,
        "a cat",
        K=8,
        output=None,
        stage="keyframes",
        workspace=tmp_path / "ref",
        pipeline=pipeline,
        progress=False,
        **settings,
    )
    cancel = threading.Event()
    callback, seen = _cancel_at(cancel, "keyframes", 5)
    with pytest.raises(CancelledError, match=r"keyframes stage \(5/"):
        translate(
            synthetic_clip,
            "a cat",
            K=8,
            output=None,
            stage="keyframes",
            workspace=tmp_path / "ws",
            pipeline=pipeline,
            progress=False,
            callback=callback,
            cancel=cancel,
            **settings,
        )
    total = [total for name, _, total in seen if name == "keyframes"][-1]
    assert total > 5  # denoising steps, not keyframes: it stopped inside the keyframe stage's steps
    translate(
        synthetic_clip,
        "a cat",
        K=8,
        output=None,
        stage="keyframes",
        workspace=tmp_path / "ws",
        pipeline=pipeline,
        progress=False,
        **settings,
    )
    for index in reference.keyframe_indices:
        np.testing.assert_array_equal(
            read_image(tmp_path / "ws" / "keyframes" / f"{index:04d}.png"),
            read_image(reference.workspace / "keyframes" / f"{index:04d}.png"),
        )


@pytest.mark.slow  # two CLI runs in subprocesses (about 30 s)
def test_ctrl_c_in_the_cli_stops_at_a_safe_point_and_the_rerun_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from rerender.synthetic import write_synthetic_video

    clip = tmp_path / "clip.mp4"
    write_synthetic_video(clip, num_frames=150, width=128, height=96, motion="mixed", fps=25, audio=False)
    command = [
        sys.executable,
        "-m",
        "rerender.cli",
        "translate",
        str(clip),
        "-p",
        "a cartoon",
        "-o",
        str(tmp_path / "o.mp4"),
        "--renderer",
        "classic",
        "-K",
        "10",
        "--set",
        "resolution=64",
        "--set",
        "size_multiple=16",
        "--set",
        "propagation_preset=fast",
        "--set",
        "flow_estimator=dis",
        "--set",
        "dis_preset=fast",
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)
    workspace = tmp_path / "o.mp4.work" / "propagated"
    deadline = time.monotonic() + 120
    while (
        not (workspace.is_dir() and any(workspace.iterdir()))
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert (
        stderr.strip().splitlines()[-1].startswith("interrupted; finished work is kept in")
        and "Traceback" not in stderr
    )
    assert not (tmp_path / "o.mp4").exists()
    rerun = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "reused the frames stage" in rerun.stdout and "reused the keyframes stage" in rerun.stdout
