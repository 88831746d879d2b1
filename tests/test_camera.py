"""Camera moves over a still: the clip they render and the exact flow `KnownMotionFlow` gives between its frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from rerender.camera import (
    AffinePath,
    KnownMotionFlow,
    PathKeyframe,
    motion_path,
    parse_path,
    path_from_keyframes,
    render_clip,
)
from rerender.errors import ConfigError, InputNotFoundError
from rerender.flow.ops import compose_flows, warp_with_validity

SIZE = (128, 96)


def textured_still(width=160, height=120, seed=0):
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.5)


def to_tensor(frame):
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255


def ramp_disparity(width=160, height=120):
    return np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))  # far on the left, near on the right


MOVES = {
    "zoom-in": {},
    "zoom-out": {},
    "pan-left": {},
    "pan-down": {},
    "path": {"path": "t=0,scale=1.3;t=0.5,scale=1.5,rotation=6,x=0.05;t=1,scale=1.8,rotation=-4,y=-0.08"},
    "orbit": {"disparity": ramp_disparity()},
}


@pytest.mark.parametrize("motion", MOVES)
def test_warping_one_frame_by_the_flow_reproduces_the_other(motion):
    path = motion_path(motion, 6, SIZE, **MOVES[motion])
    frames = list(render_clip(textured_still(), path))
    estimator = KnownMotionFlow(path, frames)
    for first, second in ((0, 5), (2, 3), (4, 1)):
        forward, backward = estimator.flows(first, second)
        warped, valid = warp_with_validity(to_tensor(frames[first]), torch.from_numpy(backward)[None])
        interior = valid[..., 4:-4, 4:-4]
        error = ((warped - to_tensor(frames[second])).abs()[..., 4:-4, 4:-4] * interior).sum() / interior.sum() / 3
        unmoved = (to_tensor(frames[first]) - to_tensor(frames[second])).abs()[..., 4:-4, 4:-4].mean()
        assert interior.mean() > 0.5
        assert error < 0.006 and error < unmoved / 4, (motion, first, second, float(error), float(unmoved))
        # forward then backward lands where it started, wherever the forward flow stays in the frame
        round_trip = compose_flows(torch.from_numpy(forward)[None], torch.from_numpy(backward)[None])
        _, stays = warp_with_validity(torch.ones(1, 1, *forward.shape[1:]), torch.from_numpy(forward)[None])
        inner = torch.nn.functional.max_pool2d(1 - stays, 5, stride=1, padding=2) == 0  # 2 px from leaving
        assert inner.float().mean() > 0.4 and (round_trip.abs() * inner).max() < 0.05


def test_known_displacements_of_zoom_and_pan():
    zoom = motion_path("zoom-in", 5, SIZE, 0.25)  # scale 1 → 1.25 geometrically
    estimator = KnownMotionFlow(zoom, render_clip(textured_still(), zoom))
    forward, _ = estimator.flows(0, 4)
    # the pixel centred at (x + 0.5 − W/2) from the middle moves to 1.25 times that
    for x, y in ((0, 0), (100, 20), (127, 95)):
        offset = np.array([x + 0.5 - SIZE[0] / 2, y + 0.5 - SIZE[1] / 2])
        np.testing.assert_allclose(forward[:, y, x], 0.25 * offset, atol=1e-4)
    assert np.abs(forward[:, 47:49, 63:65]).max() < 0.2  # the centre stays
    pan = motion_path("pan-right", 5, SIZE, 0.2)  # zoom 1.2, the view crosses its whole margin
    forward, backward = KnownMotionFlow(pan, render_clip(textured_still(), pan)).flows(0, 4)
    crossing = 2 * (0.5 - 0.5 / 1.2) * SIZE[0] * 1.2  # margin in still units × zoom = pixels on screen
    np.testing.assert_allclose(forward[0], -crossing, atol=1e-4)  # the camera goes right: content goes left
    np.testing.assert_allclose(forward[1], 0, atol=1e-6)
    np.testing.assert_allclose(backward, -forward, atol=1e-4)


def test_rotation_about_the_centre_moves_pixels_along_a_circle():
    path = path_from_keyframes([PathKeyframe(0, 1.5), PathKeyframe(1, 1.5, rotation=10)], 2, SIZE)
    forward, _ = KnownMotionFlow(path, render_clip(textured_still(), path)).flows(0, 1)
    x, y = 100, 30
    offset = np.array([x + 0.5 - SIZE[0] / 2, y + 0.5 - SIZE[1] / 2])
    moved = offset + forward[:, y, x]
    assert np.linalg.norm(moved) == pytest.approx(np.linalg.norm(offset), abs=1e-4)
    angle = np.degrees(np.arctan2(moved[1], moved[0]) - np.arctan2(offset[1], offset[0]))
    assert angle == pytest.approx(10, abs=1e-3)  # y points down: the picture turns clockwise as the camera turns back


def test_orbit_parallax_moves_near_and_far_in_opposite_directions():
    path = motion_path("orbit", 5, SIZE, 0.03, disparity=ramp_disparity())
    forward, _ = KnownMotionFlow(path, render_clip(textured_still(), path)).flows(0, 4)
    far, middle, near = forward[0, 48, 10], forward[0, 48, 64], forward[0, 48, 118]
    assert far * near < 0 and abs(middle) < 0.1 * max(abs(far), abs(near))
    assert abs(near) > 3 and np.abs(forward[1]).max() < 1e-6


def test_estimator_interface_finds_the_frames_at_any_size():
    path = motion_path("path", 6, SIZE, path="t=0,scale=1.2;t=1,scale=1.6,rotation=5")
    frames = list(render_clip(textured_still(), path))
    estimator = KnownMotionFlow(path, frames)
    assert estimator.name.startswith("camera-") and [estimator.frame_index(f) for f in frames] == list(range(6))
    forward, backward = estimator(
        to_tensor(frames[1]).repeat(2, 1, 1, 1), torch.cat([to_tensor(frames[4]), to_tensor(frames[1])])
    )
    np.testing.assert_allclose(forward[0].numpy(), estimator.flows(1, 4)[0], atol=1e-6)
    np.testing.assert_allclose(forward[1].numpy(), 0, atol=1e-5)
    half = [cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA) for frame in (frames[0], frames[5])]
    small, _ = estimator(to_tensor(half[0]), to_tensor(half[1]))
    full = estimator.flows(0, 5)[0]
    np.testing.assert_allclose(
        small[0].numpy(),
        cv2.resize(full.transpose(1, 2, 0), (64, 48), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) / 2,
        atol=0.05,
    )


@pytest.mark.parametrize("motion", MOVES)
def test_no_black_borders(motion):
    white = np.full((120, 160, 3), 255, np.uint8)
    frames = np.stack(list(render_clip(white, motion_path(motion, 4, SIZE, **MOVES[motion]))))
    assert frames.shape == (4, 96, 128, 3) and frames.min() == 255


def test_zoom_in_starts_on_the_whole_still():
    still = textured_still(128, 96)
    first = next(render_clip(still, motion_path("zoom-in", 3, SIZE)))
    assert np.abs(first.astype(int) - still).max() <= 1


@pytest.mark.parametrize(
    "spec, message",
    [
        ("t=0,scale=0", "scale"),
        ("t=0,scale=1;t=1,scale=-2", "scale"),
        ("t=0.5,scale=1;t=0.2,scale=2", "strictly increase"),
        ("t=0,scale=1;t=1.5,scale=2", "[0, 1]"),
        ("t=0,scale=1;t=1,scale=0.5", "leaves the image"),
        ("t=0,scale=1.1,rotation=30", "needs scale ≥"),
        ("t=0,scale=2,x=0.7", "x"),
        ("t=0,scale=nan", "finite"),
        ("t=0,rotate=2", "did you mean 'rotation'"),
        ("t=0,scale=two", "must be a number"),
        ("scale=2", "needs a time"),
        ("t=0 scale=2", "must be a number"),
        ("t=0,scale", "key=value"),
    ],
)
def test_impossible_paths_are_clear_errors(spec, message):
    with pytest.raises(ConfigError, match=None) as error:
        motion_path("path", 10, SIZE, path=spec)
    assert message in str(error.value)


def test_path_files(tmp_path):
    (tmp_path / "path.yaml").write_text("keyframes:\n  - {t: 0, scale: 1}\n  - {t: 1, scale: 2, rotation: 3}\n")
    (tmp_path / "path.json").write_text('[{"t": 0, "scale": 1}, {"t": 1, "scale": 2, "rotation": 3}]')
    from_yaml, from_json = parse_path(tmp_path / "path.yaml"), parse_path(tmp_path / "path.json")
    assert from_yaml == from_json == [PathKeyframe(0, 1), PathKeyframe(1, 2, 3)]
    path = path_from_keyframes(from_yaml, 3, SIZE)
    np.testing.assert_allclose(path.scales, [1, 2**0.5, 2])  # geometric: a steady zoom speed
    with pytest.raises(InputNotFoundError, match="missing.json"):
        parse_path(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="depth map"):
        motion_path("orbit", 3, SIZE)
    with pytest.raises(ConfigError, match="motion"):
        motion_path("spin", 3, SIZE)
    with pytest.raises(ConfigError, match="leaves the image at frame 0"):
        AffinePath([1.0], [0.0], np.array([[10.0, 0.0]]), SIZE)


def test_orbit_at_full_size():
    path = motion_path(
        "orbit", 2, (640, 360), 0.03, disparity=ramp_disparity(320, 180)
    )  # more points than cv2's 32767
    frames = list(render_clip(textured_still(320, 180), path))
    forward, _ = KnownMotionFlow(path, frames).flows(0, 1)
    assert frames[0].shape == (360, 640, 3) and forward[0, 180, 10] * forward[0, 180, 630] < 0


def step_disparity(width=128, height=96):
    """A near box on a far wall: sharp depth edges, where a large orbit would fold the warp."""
    disparity = np.zeros((height, width), np.float32)
    disparity[20:70, 40:90] = 1.0
    return disparity


def _flow_error(path, first, second):
    """Largest distance, in still pixels, between what a pixel shows and what its flow target shows."""
    estimator = KnownMotionFlow(path, [np.zeros((path.size[1], path.size[0], 3), np.uint8)] * path.frame_count)
    forward, _ = estimator.flows(first, second)
    width, height = path.size
    x, y = np.meshgrid(np.arange(width) + 0.5 - width / 2, np.arange(height) + 0.5 - height / 2)
    points = np.stack([x, y], axis=-1)
    landed = points + forward.transpose(1, 2, 0)
    return float(np.abs(path.source_points(second, landed) - path.source_points(first, points)).max())


def test_an_orbit_that_would_fold_is_refused_naming_the_largest_amount():
    from rerender.camera import ParallaxPath

    # 0.2 used to be accepted here and its "exact" flow was off by tens of pixels at the box's edges.
    with pytest.raises(ConfigError, match=r"`amount` 0.2 would fold .*allows at most 0\.0\d\d"):
        motion_path("orbit", 9, SIZE, 0.2, disparity=step_disparity())
    largest = ParallaxPath(step_disparity(), 9, SIZE, 0.01).max_amount
    assert 0.03 < largest < 0.2
    assert motion_path("orbit", 9, SIZE, 0.2, disparity=ramp_disparity()).amount == 0.2  # a gentle map allows more


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_the_orbits_flow_is_exact_up_to_the_largest_accepted_amount(share):
    from rerender.camera import ParallaxPath

    amount = ParallaxPath(step_disparity(), 9, SIZE, 0.01).max_amount * share
    path = motion_path("orbit", 9, SIZE, amount, disparity=step_disparity())
    for first, second in ((0, 8), (8, 0), (3, 5)):
        assert _flow_error(path, first, second) < 0.01
