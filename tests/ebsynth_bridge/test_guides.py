"""Guides and flow helpers: shapes, dtypes, known answers, invariants, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import ebsynth_bridge
from ebsynth_bridge import (
    advect_coordinates,
    advect_nnf,
    coordinates_to_nnf,
    edge_guide,
    fill_occluded,
    identity_coordinates,
    identity_nnf,
    occlusion_mask,
    positional_guide,
    warp,
)


def texture(height: int = 30, width: int = 40) -> np.ndarray:
    return cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 1.0)


def constant_flow(height: int, width: int, x: float, y: float) -> np.ndarray:
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = x, y
    return flow


def test_edge_guide_is_half_on_flat_images_and_marks_edges():
    flat = np.full((8, 10, 3), 77, np.uint8)
    np.testing.assert_allclose(edge_guide(flat), 0.5)
    step = np.zeros((8, 10), np.uint8)
    step[:, 5:] = 255
    edges = edge_guide(step)
    assert edges.shape == (8, 10, 1) and edges.dtype == np.float32
    assert edges[:, 4, 0].min() < 0.5 < edges[:, 5, 0].max()  # both sides of the step are kept
    np.testing.assert_allclose(edges[:, :3], 0.5)


def test_positional_guide_spans_zero_to_one():
    guide = positional_guide(identity_coordinates(5, 9), (5, 9))
    assert guide.shape == (5, 9, 2)
    np.testing.assert_allclose(guide[0, 0], [0, 0])
    np.testing.assert_allclose(guide[-1, -1], [1, 1])


def test_warp_with_zero_flow_is_identity_and_integer_flow_is_a_shift():
    image = texture()
    np.testing.assert_array_equal(warp(image, constant_flow(30, 40, 0, 0)), image)
    shifted = warp(image, constant_flow(30, 40, -2, -1), nearest=True)  # out(p) = image(p - (2, 1))
    np.testing.assert_array_equal(shifted[1:, 2:], image[:-1, :-2])


def test_occlusion_mask_consistent_flows_and_leaving_the_frame():
    backward = constant_flow(20, 30, -3, 0)  # current(p) = previous(p - (3, 0))
    forward = constant_flow(20, 30, 3, 0)
    occluded = occlusion_mask(backward, forward)
    assert occluded.dtype == bool
    assert occluded[:, :3].all()  # p - 3 falls outside the previous frame
    assert not occluded[:, 3:].any()
    inconsistent = occlusion_mask(backward, constant_flow(20, 30, 0, 0))
    assert inconsistent.all()


def test_fill_occluded_keeps_valid_pixels_and_fills_holes_smoothly():
    image = np.full((24, 32, 2), 5.0, np.float32)
    image[..., 1] = np.linspace(0, 31, 32, dtype=np.float32)[None, :]
    hole = np.zeros((24, 32), bool)
    hole[8:16, 10:20] = True
    corrupted = image.copy()
    corrupted[hole] = 1000.0
    filled = fill_occluded(corrupted, hole)
    np.testing.assert_array_equal(filled[~hole], image[~hole])
    np.testing.assert_allclose(filled[hole][:, 0], 5.0, atol=1e-4)  # constant channel stays constant
    assert 8.0 < filled[hole][:, 1].min() and filled[hole][:, 1].max() < 22.0  # ramp interpolated, not 1000


def test_advecting_coordinates_and_nnf_by_a_constant_flow():
    backward = constant_flow(16, 20, -2, 0)
    coordinates = advect_coordinates(identity_coordinates(16, 20), backward)
    np.testing.assert_allclose(coordinates[:, 2:, 0], identity_coordinates(16, 20)[:, 2:, 0] - 2)
    nnf = advect_nnf(identity_nnf(16, 20), backward)
    np.testing.assert_array_equal(nnf[:, 2:], coordinates_to_nnf(coordinates, (16, 20))[:, 2:])
    assert nnf.dtype == np.int32


def test_bad_flows_are_clear_errors():
    image = texture()
    with pytest.raises(ValueError, match="backward_flow.*\\(H, W, 2\\)"):
        warp(image, np.zeros((30, 41, 2), np.float32))
    with pytest.raises(TypeError, match="float32"):
        warp(image, np.zeros((30, 40, 2), np.float64))
    with pytest.raises(ValueError, match="forward_flow"):
        occlusion_mask(np.zeros((30, 40, 2), np.float32), np.zeros((30, 40, 3), np.float32))


def test_ebsynth_bridge_imports_nothing_of_ours_or_of_diffusion():
    import subprocess
    import sys

    code = (
        "import sys, ebsynth_bridge; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rerender', 'diffusers', 'transformers')); print(bad); sys.exit(1 if bad else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert ebsynth_bridge.__all__  # the public API is declared


def test_carry_visibility_zeroes_occlusions_and_moves_with_the_flow():
    from ebsynth_bridge import carry_visibility

    visibility = np.ones((10, 12), np.float32)
    occlusion = np.zeros((10, 12), bool)
    occlusion[2:4, 3:5] = True
    flow = np.zeros((10, 12, 2), np.float32)
    step1 = carry_visibility(visibility, flow, occlusion)
    assert step1[2:4, 3:5].max() == 0.0 and step1.sum() == 10 * 12 - 4
    # one pixel to the right per frame: the hole moves right, nothing new is occluded
    flow[..., 0] = -1.0
    step2 = carry_visibility(step1, flow, np.zeros((10, 12), bool))
    assert step2[2:4, 4:6].max() == 0.0 and step2[2:4, 3].min() == 1.0


def test_flow_render_draws_the_key_at_subpixel_coordinates_where_the_match_agrees():
    from ebsynth_bridge import flow_render, identity_coordinates

    rng = np.random.default_rng(0)
    key = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    coordinates = identity_coordinates(16, 20) + np.float32(0.5)  # half a pixel off, right and down
    nnf = np.rint(coordinates).astype(np.int32)
    synthesis = np.zeros_like(key)
    out = flow_render(key, synthesis, nnf, coordinates, interpolation="linear", smoothing=0.0)
    expected = cv2.remap(
        key, coordinates[..., 0], coordinates[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    assert np.array_equal(out, expected)
    # where the search moved the match away from the flow, the synthesis stays
    nnf[:, :8] += 5
    out = flow_render(key, synthesis, nnf, coordinates, interpolation="linear", smoothing=0.0)
    assert out[:, :8].max() == 0 and np.array_equal(out[:, 8:], expected[:, 8:])
    with pytest.raises(ValueError, match="interpolation"):
        flow_render(key, synthesis, nnf, coordinates, interpolation="lanczos")
