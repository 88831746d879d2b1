"""Pose-guided generation: the preset, and examples/pose_guided.py with precomputed pose maps and the tiny model."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from rerender.config import load_config
from rerender.video import probe_video, write_png_sequence

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "resolution=64",
    "--set",
    "size_multiple=16",
    "--set",
    "num_inference_steps=2",
    "--set",
    "device=cpu",
    "--set",
    "dtype=float32",
    "--set",
    "added_prompt=''",
    "--set",
    "negative_prompt=''",
    "--set",
    "flow_estimator=dis",
    "--set",
    "propagation_preset=fast",
    "--set",
    "workers=1",
    "--set",
    "end_frame=9",
]


def stick_figure(frame_index: int, width: int = 96, height: int = 64) -> np.ndarray:
    """An OpenPose-like map: coloured limbs on black, the right arm raised a little more each frame."""
    pose = np.zeros((height, width, 3), np.uint8)
    neck, hip = (48, 18), (48, 40)
    cv2.line(pose, neck, hip, (255, 0, 0), 3)
    cv2.circle(pose, (48, 10), 5, (255, 255, 0), -1)
    angle = np.deg2rad(-60 + 12 * frame_index)
    cv2.line(pose, neck, (int(48 + 20 * np.cos(angle)), int(18 + 20 * np.sin(angle))), (0, 255, 0), 3)
    cv2.line(pose, neck, (30, 34), (0, 0, 255), 3)
    cv2.line(pose, hip, (40, 60), (255, 0, 255), 3)
    cv2.line(pose, hip, (56, 60), (0, 255, 255), 3)
    return pose


def test_preset_is_one_openpose_controlnet_at_full_strength():
    config = load_config(REPO / "configs" / "pose_guided.yaml")
    assert [(control.type, control.strength) for control in config.control] == [("openpose", 1.0)]
    assert config.control[0].resolved_model == "lllyasviel/sd-controlnet-openpose"
    assert config.sampling.denoising_strength == 1.0


def test_pose_example_conditions_the_controlnet_on_the_pose_maps(
    synthetic_clip, tmp_path, tiny_pipeline_dir, monkeypatch
):
    from diffusers import ControlNetModel

    poses = [stick_figure(index) for index in range(20)]
    write_png_sequence(poses, tmp_path / "poses")
    received = []
    forward = ControlNetModel.forward

    def recording_forward(self, *args, **kwargs):
        received.append(kwargs["controlnet_cond"][0].permute(1, 2, 0).float().numpy())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(ControlNetModel, "forward", recording_forward)
    output = tmp_path / "out.mp4"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "pose_guided.py",
            str(synthetic_clip),
            str(tmp_path / "poses"),
            "a robot",
            str(output),
            "--model",
            str(tiny_pipeline_dir),
            "--pose-controlnet",
            str(tiny_pipeline_dir / "controlnet"),
            *TINY,
        ],
    )
    with pytest.raises(SystemExit) as exited:  # the example ends with sys.exit(run_example(main))
        runpy.run_path(str(REPO / "examples" / "pose_guided.py"), run_name="__main__")
    assert exited.value.code == 0

    assert probe_video(output).frame_count == 9
    # Two UNet steps per keyframe (0, 8): each ControlNet call saw the pose map of the frame being rendered,
    # not the video frame and not another frame's pose.
    assert len(received) == 4
    height, width = received[0].shape[:2]
    resized = [cv2.resize(pose, (width, height), interpolation=cv2.INTER_AREA) / 255.0 for pose in poses]
    for call, control in enumerate(received):
        distances = [np.abs(control - pose).mean() for pose in resized]
        keyframe = [0, 8][call // 2]
        assert int(np.argmin(distances)) == keyframe and distances[keyframe] < 0.02, (
            call,
            keyframe,
            np.argmin(distances),
        )


def test_pose_example_without_weights_fails_loudly(synthetic_clip, tmp_path):
    import os
    import subprocess

    write_png_sequence([stick_figure(index) for index in range(20)], tmp_path / "poses")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "pose_guided.py"),
            str(synthetic_clip),
            str(tmp_path / "poses"),
            "a robot",
            str(tmp_path / "o.mp4"),
            "--model",
            "no-owner/not-cached-model",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode != 0 and "not-cached-model" in result.stderr and not (tmp_path / "o.mp4").exists()


def test_strength_one_starts_from_pure_noise_without_encoding_the_frame(tiny_pipeline_dir, monkeypatch):
    import torch

    from rerender.config import ConstraintConfig
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    schedule = pipeline.prepare_schedule(4, 1.0, ConstraintConfig(), report=False)
    assert schedule.first_step == 0 and float(schedule.alphas[0]) ** 0.5 > 0.05  # SDEdit would keep √ᾱ of the frame
    monkeypatch.setattr(pipeline, "encode_images", lambda frame: pytest.fail("the frame was encoded at strength 1"))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    bright, dark = torch.ones(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    latents, direction = pipeline.prepare_latents(bright, schedule, noise)
    torch.testing.assert_close(latents, noise * pipeline.scheduler.init_noise_sigma)
    torch.testing.assert_close(pipeline.prepare_latents(dark, schedule, noise)[0], latents)  # nothing of the source
    torch.testing.assert_close(direction, latents)
