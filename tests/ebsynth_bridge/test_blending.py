"""Blending invariants: weights at the ends select one side, statistics are preserved, solvers exact."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ebsynth_bridge import (
    agreement_blend,
    gradient_energy,
    histogram_preserving_blend,
    linear_blend,
    match_sharpness,
    poisson_blend,
    reconstruction_weights,
    select,
    selection_mask,
    weighted_blend,
)


def image(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def lab_statistics(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    return lab.mean(axis=(0, 1)), lab.std(axis=(0, 1))


def test_selection_weights_at_the_ends_select_one_side():
    forward_error = np.random.default_rng(0).random((6, 7)).astype(np.float32)
    backward_error = np.random.default_rng(1).random((6, 7)).astype(np.float32)
    assert not selection_mask(forward_error, backward_error, 0.0).any()
    assert selection_mask(forward_error, backward_error, 1.0).all()
    middle = selection_mask(forward_error, backward_error, 0.5)
    np.testing.assert_array_equal(middle, forward_error >= backward_error)


def test_selection_mask_is_temporally_coherent():
    errors = np.ones((4, 4), np.float32)
    previous = np.zeros((4, 4), bool)
    previous[1, 2] = True
    mask = selection_mask(errors * 0.1, errors, 0.2, previous_mask=previous)  # forward clearly better
    assert mask[1, 2] and mask.sum() == 1  # a pixel that switched to backward stays switched


def test_linear_and_agreement_blends_at_the_ends_return_one_side():
    forward, backward = image(0), image(1)
    mask = np.zeros(forward.shape[:2], bool)
    np.testing.assert_array_equal(linear_blend(forward, backward, 0.0), forward)
    np.testing.assert_array_equal(linear_blend(forward, backward, 1.0), backward)
    np.testing.assert_array_equal(agreement_blend(forward, backward, 0.0, mask), forward)
    np.testing.assert_array_equal(agreement_blend(forward, backward, 1.0, ~mask), backward)


def test_agreement_blend_averages_agreement_and_selects_disagreement():
    forward = np.full((20, 40, 3), 100, np.uint8)
    backward = forward.copy()
    backward[:, :20] = 140  # left: same (flat) structure, other colour -> cross-faded
    backward[:, 29:31] = 0  # right: an edge only the backward side has -> the selected side wins
    mask = np.ones((20, 40), bool)  # backward selected everywhere
    blended = agreement_blend(forward, backward, 0.5, mask, tolerance=50, smoothing=0)
    assert np.all(blended[:, :18] == 120)
    np.testing.assert_array_equal(blended[:, 28:32], backward[:, 28:32])
    np.testing.assert_array_equal(blended[:, 34:], forward[:, 34:])  # both agree: unchanged
    # tolerance -> 0 is the plain selection where structure differs, -> infinity the cross-fade
    np.testing.assert_array_equal(
        agreement_blend(forward, backward, 0.5, mask, tolerance=1e-6, smoothing=0)[:, 28:32],
        select(forward, backward, mask)[:, 28:32],
    )
    np.testing.assert_allclose(
        agreement_blend(forward, backward, 0.3, mask, tolerance=1e9).astype(int),
        linear_blend(forward, backward, 0.3).astype(int),
        atol=1,
    )


def test_histogram_blend_preserves_the_reference_statistics():
    forward, backward, reference = image(2), image(3), (image(4) // 2 + 60).astype(np.uint8)
    blended = histogram_preserving_blend(forward, backward, 0.4, reference)
    assert blended.shape == forward.shape and blended.dtype == np.uint8
    mean, std = lab_statistics(blended)
    reference_mean, reference_std = lab_statistics(reference)
    np.testing.assert_allclose(mean, reference_mean, atol=0.6)
    np.testing.assert_allclose(std, reference_std, rtol=0.03, atol=0.3)
    # at the ends the blend is that side, restyled to the reference (here: itself)
    np.testing.assert_allclose(
        histogram_preserving_blend(forward, backward, 0.0, forward).astype(int), forward.astype(int), atol=1
    )


def test_poisson_blend_reproduces_consistent_inputs_and_takes_selected_gradients():
    forward = image(5)
    mask = np.zeros(forward.shape[:2], bool)
    np.testing.assert_allclose(poisson_blend(forward, forward, mask, forward).astype(int), forward.astype(int), atol=1)
    # with a flat base and strong gradient weights the result has the forward side's structure
    flat = np.full_like(forward, 128)
    result = poisson_blend(forward, flat, mask, flat, gradient_weights=(30.0, 30.0, 30.0), max_gradient=1e9)
    centred = result.astype(float) - result.mean(axis=(0, 1))
    expected = forward.astype(float) - forward.mean(axis=(0, 1))
    assert np.corrcoef(centred.ravel(), expected.ravel())[0, 1] > 0.98


def test_float_images_keep_their_dtype():
    forward, backward = image(6).astype(np.float32) / 255, image(7).astype(np.float32) / 255
    mask = np.zeros(forward.shape[:2], bool)
    for blended in (
        linear_blend(forward, backward, 0.5),
        agreement_blend(forward, backward, 0.5, mask),
        histogram_preserving_blend(forward, backward, 0.5, forward),
        poisson_blend(forward, backward, mask, forward),
    ):
        assert blended.dtype == np.float32 and 0.0 <= blended.min() and blended.max() <= 1.0


def test_bad_blend_inputs_are_clear_errors():
    forward = image(8)
    with pytest.raises(ValueError, match="backward_weight.*\\[0, 1\\].*1.5"):
        linear_blend(forward, forward, 1.5)
    with pytest.raises(ValueError, match="share shape and dtype"):
        linear_blend(forward, forward[:10], 0.5)
    with pytest.raises(ValueError, match="share shape and dtype"):
        linear_blend(forward, forward.astype(np.float32), 0.5)
    with pytest.raises(ValueError, match="mask"):
        agreement_blend(forward, forward, 0.5, np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="tolerance"):
        agreement_blend(forward, forward, 0.5, np.zeros(forward.shape[:2], bool), tolerance=0)
    with pytest.raises(ValueError, match="forward_error"):
        selection_mask(np.zeros((3, 3)), np.zeros((3, 4)), 0.5)


def test_confidence_weight_is_time_alone_without_maps_and_follows_visibility():
    from ebsynth_bridge import confidence_weight

    assert confidence_weight(0.3) == 0.3
    visible = np.ones((10, 12), np.float32)
    assert np.allclose(confidence_weight(0.3, visible, visible, smoothing=0.0), 0.3)
    # the left half was revealed since the forward key: the backward pass takes it over
    forward_visibility = visible.copy()
    forward_visibility[:, :6] = 0.0
    weight = confidence_weight(0.3, forward_visibility, visible, smoothing=0.0, floor=0.05)
    expected = 0.3 * 1.05 / (0.3 * 1.05 + 0.7 * 0.05)
    assert np.allclose(weight[:, :6], expected) and np.allclose(weight[:, 6:], 0.3)
    # at the keys time decides whatever the maps say
    assert np.all(confidence_weight(0.0, forward_visibility, visible) == 0.0)
    assert np.all(confidence_weight(1.0, visible, forward_visibility) == 1.0)


def test_confidence_weight_with_errors_favours_the_lower_error_side():
    from ebsynth_bridge import confidence_weight

    low, high = np.full((8, 8), 10.0, np.float32), np.full((8, 8), 30.0, np.float32)
    weight = confidence_weight(0.5, forward_error=high, backward_error=low, error_power=1.0, smoothing=0.0)
    # mean error 20: forward confidence 0.5 / 2.5, backward 0.5 / 1.5
    assert np.allclose(weight, (0.5 / 1.5) / (0.5 / 1.5 + 0.5 / 2.5))
    with pytest.raises(ValueError, match="backward_visibility"):
        confidence_weight(0.5, low, None)


def test_agreement_blend_accepts_a_per_pixel_weight():
    forward, backward = image(1), image(2)
    weight = np.zeros(forward.shape[:2], np.float32)
    weight[:, 16:] = 1.0
    out = agreement_blend(forward, backward, weight, np.zeros(forward.shape[:2], bool), tolerance=1e9)
    assert np.array_equal(out[:, :16], forward[:, :16]) and np.array_equal(out[:, 16:], backward[:, 16:])
    with pytest.raises(ValueError, match="backward_weight"):
        agreement_blend(forward, backward, weight[:5], np.zeros(forward.shape[:2], bool))


def test_agreement_difference_measure_sees_unaligned_textures():
    # the same texture shifted by two pixels: equal gradient magnitudes, different structure
    texture = image(3)
    shifted = np.roll(texture, 2, axis=1)
    mask = np.ones(texture.shape[:2], bool)
    by_magnitude = agreement_blend(texture, shifted, 0.5, mask, tolerance=20.0, smoothing=0.0)
    by_difference = agreement_blend(texture, shifted, 0.5, mask, tolerance=20.0, smoothing=0.0, measure="difference")
    # the difference measure follows the selected (backward) side; the magnitude one averages more
    error_difference = np.abs(by_difference.astype(int) - shifted).mean()
    error_magnitude = np.abs(by_magnitude.astype(int) - shifted).mean()
    assert error_difference < error_magnitude
    with pytest.raises(ValueError, match="measure"):
        agreement_blend(texture, shifted, 0.5, mask, measure="phase")


# --------------------------------------------------------------------------------------------------
# reconstruction-weighted blend and sharpness matching
# --------------------------------------------------------------------------------------------------


def test_reconstruction_weights_sum_to_one_and_follow_the_errors():
    exact, wrong = np.zeros((16, 20), np.float32), np.full((16, 20), 60.0, np.float32)
    wrong[:, :10] = 0.0  # both exact on the left half
    weights = reconstruction_weights([exact, wrong], [0.5, 0.5], smoothing=0.0)
    np.testing.assert_allclose(weights[0] + weights[1], 1.0, rtol=1e-6)
    # equal errors: the temporal weights decide; one 60-off: (1/1) / (1/1 + 1/61)
    np.testing.assert_allclose(weights[0][:, :10], 0.5, rtol=1e-6)
    np.testing.assert_allclose(weights[0][:, 10:], 61 / 62, rtol=1e-5)
    times = reconstruction_weights([exact, exact, exact], [3.0, 1.0, 0.0])
    np.testing.assert_allclose([w[0, 0] for w in times], [0.75, 0.25, 0.0], rtol=1e-6)
    # power 0: time alone, whatever the errors
    np.testing.assert_allclose(reconstruction_weights([exact, wrong], [0.2, 0.8], power=0.0)[1], 0.8, rtol=1e-6)


def test_weighted_blend_is_the_weighted_sum():
    first, second = image(1), image(2)
    ramp = np.tile(np.linspace(0, 1, first.shape[1], dtype=np.float32), (first.shape[0], 1))
    blended = weighted_blend([first, second], [1 - ramp, ramp])
    np.testing.assert_allclose(blended, first * (1 - ramp[..., None]) + second * ramp[..., None], atol=1e-3)
    np.testing.assert_array_equal(blended[:, 0], first[:, 0].astype(np.float32))


def test_match_sharpness_restores_averaged_detail_and_leaves_agreement_alone():
    texture = cv2.resize(
        np.random.default_rng(3).integers(0, 256, (32, 64, 3), dtype=np.uint8),
        (256, 128),
        interpolation=cv2.INTER_NEAREST,
    )
    shifted = texture.copy()
    shifted[:, 128:] = np.roll(texture, 4, axis=1)[:, 128:]  # the candidates disagree on the right half only
    candidates = [texture, shifted]
    weights = [np.full(texture.shape[:2], 0.5, np.float32)] * 2
    blended = weighted_blend(candidates, weights)
    assert gradient_energy(blended) < 0.9 * gradient_energy(texture)  # averaging washed the right half out
    # already sharp enough: returned as is
    same, strength = match_sharpness(blended, candidates, weights, 0.5 * gradient_energy(texture))
    assert strength == 0.0 and same is blended
    target = 0.95 * gradient_energy(texture)
    restored, strength = match_sharpness(blended, candidates, weights, target)
    assert 0.0 < strength <= 1.0
    assert target <= gradient_energy(restored) < 1.02 * target  # reaches the target, and no further
    # the left half (far from the seam) was one structure: untouched; only detail changed on the right
    np.testing.assert_allclose(restored[:, :80], blended[:, :80], atol=0.05)
    np.testing.assert_allclose(
        cv2.GaussianBlur(restored, (0, 0), 12.0)[:, 150:-20],
        cv2.GaussianBlur(blended, (0, 0), 12.0)[:, 150:-20],
        atol=2.0,
    )


def test_reconstruction_blend_bad_inputs_are_clear_errors():
    errors = [np.zeros((4, 4), np.float32)] * 2
    with pytest.raises(ValueError, match="equal length"):
        reconstruction_weights(errors, [1.0])
    with pytest.raises(ValueError, match="not all 0"):
        reconstruction_weights(errors, [0.0, 0.0])
    with pytest.raises(ValueError, match="one shape"):
        reconstruction_weights([np.zeros((4, 4)), np.zeros((4, 5))], [1.0, 1.0])
    with pytest.raises(ValueError, match="one weight map per candidate"):
        weighted_blend([image(1)], [])
