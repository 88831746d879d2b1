"""`rerender.generate`: text-to-video by Text2Video-Zero keyframes and known-motion propagation, with the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rerender.text_video as text_video
from rerender.errors import ConfigError
from rerender.text_video import MAX_GENERATED_FRAMES, generate, render_text_keyframes, translate_latents
from rerender.video import probe_video, read_frames

SETTINGS = {"num_inference_steps": 4, "guidance_scale": 2.0, "noise_steps": (1, 2)}


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pipeline_dir):
    from rerender.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_translate_latents_moves_by_the_shift():
    latents = torch.randn(2, 4, 12, 16)
    moved = translate_latents(latents, (3, -2))
    torch.testing.assert_close(moved[..., 0:10, 3:16], latents[..., 2:12, 0:13])  # out(p) = in(p − shift)
    torch.testing.assert_close(translate_latents(latents, (0, 0)), latents)
    # values are moved, never blended: the noise keeps its statistics
    assert set(moved.flatten().tolist()) <= set(latents.flatten().tolist())


def test_keyframes_follow_the_configured_motion_and_the_seed(tiny_pipeline, monkeypatch):
    shifts = []
    original = text_video.translate_latents
    monkeypatch.setattr(text_video, "translate_latents", lambda latents, shift: shifts.append(shift) or original(latents, shift))
    run = lambda seed: render_text_keyframes(tiny_pipeline, "a red cube", [0, 4, 8], (4.0, -2.0), (64, 64),
                                             generator=torch.Generator().manual_seed(seed), **SETTINGS)
    first, again, other = run(0), run(0), run(1)
    factor = tiny_pipeline.vae_scale_factor
    assert shifts[:2] == [(4 * 4.0 / factor, 4 * -2.0 / factor), (8 * 4.0 / factor, 8 * -2.0 / factor)]
    assert [image.shape for image in first] == [(1, 3, 64, 64)] * 3
    for image, same in zip(first, again, strict=True):
        torch.testing.assert_close(image, same)
    assert not torch.allclose(first[1], other[1])
    assert all(0 <= float(image.min()) and float(image.max()) <= 1 for image in first)


def test_generate_writes_every_frame(tiny_pipeline, tmp_path):
    result = generate("a red cube", frames=6, K=3, output=tmp_path / "gen.mp4", pipeline=tiny_pipeline,
                      motion=(2.0, 0.0), size=(64, 64), fps=6, progress=False, **SETTINGS)
    info = probe_video(result.output)
    assert (info.frame_count, float(info.fps), info.width, info.height) == (6, 6.0, 64, 64)
    assert result.keyframe_indices == [0, 3]
    video = np.stack(list(read_frames(result.output)))
    # each keyframe is in the video where it belongs (H.264 of random-weight noise changes it a little)
    errors = np.array([[np.abs(frame.astype(int) - keyframe).mean() for keyframe in result.keyframes] for frame in video])
    for position, index in enumerate(result.keyframe_indices):
        assert errors[index, position] < 0.5 * errors[index].max()
    assert not list(tmp_path.glob(".generate-*"))  # scratch removed


@pytest.mark.parametrize("frames", [0, -3, MAX_GENERATED_FRAMES + 1, 2.5])
def test_frames_out_of_range_fail_before_any_model_loads(frames, tmp_path, monkeypatch):
    import rerender.models

    monkeypatch.setattr(rerender.models, "load_pipeline", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(ConfigError, match=f"`frames` must be an integer in \\[1, {MAX_GENERATED_FRAMES}\\]"):
        generate("a cat", frames=frames, output=tmp_path / "o.mp4")
    with pytest.raises(ConfigError, match="`motion`"):
        generate("a cat", frames=4, motion=(float("nan"), 0), output=tmp_path / "o.mp4")
    assert not list(tmp_path.iterdir())


def test_cli_generate_with_a_local_model_and_its_errors(capsys, tiny_pipeline_dir, tmp_path):
    from rerender.cli import main

    output = tmp_path / "cli.mp4"
    code = main(["generate", "-p", "a red cube", "--frames", "3", "-K", "2", "--width", "64", "--height", "64",
                 "--steps", "3", "--model", str(tiny_pipeline_dir), "-o", str(output), "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert probe_video(output).frame_count == 3 and "keyframes (diffusion): [0, 2]" in captured.out
    code = main(["generate", "-p", "x", "--frames", "0", "-o", str(tmp_path / "bad.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "`frames` must be an integer in [1, 3000], got 0" in err


@pytest.mark.slow
def test_generate_example(tiny_pipeline_dir, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "generate_from_text.py"
    result = subprocess.run(
        [sys.executable, str(example), "a red cube", str(tmp_path / "o.mp4"), "--frames", "5", "-K", "2", "--size",
         "64", "64", "--steps", "3", "--model", str(tiny_pipeline_dir)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert probe_video(tmp_path / "o.mp4").frame_count == 5 and "keyframes [0, 2, 4]" in result.stdout
