"""The compiled PatchMatch kernels against their definitions, and their fast paths against their general ones."""

from __future__ import annotations

import numpy as np
import pytest

from ebsynth_bridge import patchmatch


def _padded(rng: np.random.Generator, height: int, width: int, channels: int, patch_size: int) -> np.ndarray:
    radius = patch_size // 2
    shape = (height + 2 * radius, width + 2 * radius, channels)
    # channels of very different magnitudes, as weighted guides are
    return (rng.random(shape) * 10.0 ** rng.uniform(-2, 2.5, channels)).astype(np.float32)


@pytest.mark.parametrize("patch_size", [3, 5, 7])
@pytest.mark.parametrize("channels", [1, 6, 11])
def test_nnf_error_is_the_patch_ssd(patch_size, channels):
    rng = np.random.default_rng(patch_size * 100 + channels)
    height, width = 9, 11
    target = _padded(rng, height, width, channels, patch_size)
    source = _padded(rng, height + 3, width + 2, channels, patch_size)
    nnf = np.stack([rng.integers(0, width + 2, (height, width)), rng.integers(0, height + 3, (height, width))], 2)
    nnf = nnf.astype(np.int32)
    error = patchmatch.nnf_error(target, source, nnf, patch_size)
    expected = np.empty((height, width))
    for y in range(height):
        for x in range(width):
            source_x, source_y = nnf[y, x]
            target_patch = target[y : y + patch_size, x : x + patch_size].astype(np.float64)
            source_patch = source[source_y : source_y + patch_size, source_x : source_x + patch_size]
            expected[y, x] = ((target_patch - source_patch) ** 2).sum()
    np.testing.assert_allclose(error, expected, rtol=1e-5)
    assert patchmatch.nnf_error.serial(target, source, nnf, patch_size).tobytes() == error.tobytes()


@pytest.mark.parametrize("error_scale", [0.0, 75.0])
def test_vote_of_a_three_channel_style_equals_the_general_path(error_scale):
    """The 3-channel path keeps its sums in registers; a 4-channel style takes the general path."""
    rng = np.random.default_rng(3)
    style = (rng.random((13, 17, 4)) * 255).astype(np.float32)
    nnf = np.stack([rng.integers(0, 17, (11, 15)), rng.integers(0, 13, (11, 15))], 2).astype(np.int32)
    error = (rng.random((11, 15)) * 500).astype(np.float32)
    three = patchmatch.vote(np.ascontiguousarray(style[..., :3]), nnf, error, 5, error_scale)
    general = patchmatch.vote(style, nnf, error, 5, error_scale)
    assert three.tobytes() == np.ascontiguousarray(general[..., :3]).tobytes()
    # and the definition: a pixel far from the border averages the 25 patches covering it
    y, x = 5, 7
    values, weights = [], []
    for offset_y in range(-2, 3):
        for offset_x in range(-2, 3):
            centre_y, centre_x = y - offset_y, x - offset_x
            source_x = min(max(nnf[centre_y, centre_x, 0] + offset_x, 0), 16)
            source_y = min(max(nnf[centre_y, centre_x, 1] + offset_y, 0), 12)
            weight = 1.0 if error_scale == 0 else 1.0 / (1.0 + error[centre_y, centre_x] / error_scale)
            values.append(weight * style[source_y, source_x, :3].astype(np.float64))
            weights.append(weight)
    np.testing.assert_allclose(three[y, x], np.sum(values, axis=0) / np.sum(weights), rtol=1e-6)


@pytest.mark.parametrize("jumps, found", [((1,), False), (patchmatch.PROPAGATION_JUMPS, True)])
def test_sweep_jumps_carry_a_match_across_a_barrier(jumps, found):
    """A known answer: the target is the source moved 3 px left, but a 6-px bar of new content (black, matched
    exactly elsewhere in the source) cuts every row. Left of the bar the field holds the answer, right of it a
    wrong one; no random search. Neighbour-to-neighbour propagation (``(1,)``, the old sweep) cannot cross the bar,
    whose pixels hold another offset; the 8-px jump carries the offset over it, exactly."""
    rng = np.random.default_rng(7)
    height, width, shift = 16, 64, 3
    source = (rng.random((height, 80, 1)) * 255).astype(np.float32)
    source[:, 70:] = 0.0  # a black strip: where the bar matches exactly
    target = source[:, shift : shift + width].copy()
    target[:, 20:26] = 0.0  # the bar
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    nnf = np.stack([grid_x, grid_y], 2).astype(np.int32)  # right of the bar: the identity, wrong
    nnf[:, :20, 0] += shift  # left of the bar: the answer
    nnf[:, 20:26, 0] += 50  # the bar: the black strip, exact at its centre
    padded_target, padded_source = (np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="edge") for image in (target, source))
    error = patchmatch.nnf_error(padded_target, padded_source, nnf, 5)
    occupancy, active = np.zeros(source.shape[:2], np.float32), np.ones((height, width), np.uint8)
    for sweep in range(2):
        patchmatch.patchmatch_sweep(
            padded_target, padded_source, nnf, error, occupancy, 0.0, active, 5, 0, bool(sweep), 1, np.array(jumps)
        )
    right = np.s_[:, 30:60]  # patches clear of the bar and of the right border
    answer = grid_x[right] + shift
    assert np.array_equal(nnf[right][..., 0] == answer, np.full(answer.shape, found))
    if found:
        assert np.array_equal(nnf[right][..., 1], grid_y[right]) and error[right].max() == 0.0
