"""The synthetic known-motion clips: ground truth is consistent with the frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rerender.synthetic import MOTIONS, make_synthetic_video


def _backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("motion", MOTIONS)
def test_backward_flow_reconstructs_next_frame_outside_occlusions(motion):
    video = make_synthetic_video(num_frames=5, width=96, height=64, motion=motion)
    assert video.frames.shape == (5, 64, 96, 3) and video.frames.dtype == np.uint8
    assert video.forward_flow.shape == video.backward_flow.shape == (4, 64, 96, 2)
    for t in range(4):
        reconstructed = _backward_warp(video.frames[t], video.backward_flow[t]).astype(np.float32)
        visible = ~video.backward_occlusion[t]
        error = np.abs(reconstructed - video.frames[t + 1])[visible].mean()
        assert error < 4.0, (motion, t, error)
        moving = visible & (np.linalg.norm(video.backward_flow[t], axis=-1) > 0.5)
        if moving.any():  # where things move, the flow explains the change far better than no motion
            flow_error = np.abs(reconstructed - video.frames[t + 1])[moving].mean()
            identity_error = np.abs(video.frames[t].astype(np.float32) - video.frames[t + 1])[moving].mean()
            assert flow_error < identity_error / 2, (motion, t, flow_error, identity_error)


def test_translation_flow_is_the_known_constant():
    video = make_synthetic_video(num_frames=3, width=96, height=64, motion="translation")
    background = video.forward_flow[0][2, 2]  # a corner pixel belongs to the panning background
    np.testing.assert_allclose(background, [-2.0, -1.0], atol=1e-4)
    np.testing.assert_allclose(video.backward_flow[0][2, 2], [2.0, 1.0], atol=1e-4)


def test_forward_and_backward_flow_are_inverse_where_visible():
    video = make_synthetic_video(num_frames=3, width=96, height=64, motion="rotation")
    forward, backward = video.forward_flow[0], video.backward_flow[0]
    composed = forward + _backward_warp(backward, forward)
    visible = ~video.forward_occlusion[0]
    assert np.abs(composed[visible]).mean() < 0.05


def test_occluder_covers_a_growing_region():
    video = make_synthetic_video(num_frames=6, width=96, height=64, motion="occluder")
    covered = video.backward_occlusion.reshape(5, -1).mean(axis=1)
    assert (covered > 0).all()  # each step uncovers/covers a strip of the scene


def test_same_seed_same_video_and_bad_arguments():
    first = make_synthetic_video(num_frames=3, width=48, height=32, seed=3)
    second = make_synthetic_video(num_frames=3, width=48, height=32, seed=3)
    np.testing.assert_array_equal(first.frames, second.frames)
    with pytest.raises(ValueError, match="motion"):
        make_synthetic_video(motion="spin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_frames"):
        make_synthetic_video(num_frames=1)
