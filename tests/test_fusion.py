"""Each fusion formula against its definition, with hand-computed values (rerender-method.md §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rerender.color import correct_colors, luminosity_blend, match_color_histograms
from rerender.diffusion.fusion import (
    active_steps,
    adain,
    channel_statistics,
    composite_references,
    ddim_update,
    fidelity_oriented_encode,
    flat_regions,
    may_fold,
    noise_rescale,
    pixel_aware_fusion,
    predict_original,
    shape_aware_fusion,
)
from rerender.errors import ConfigError

# --------------------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------------------


def test_active_steps_match_the_official_table_at_20_steps():
    # rerender-method.md §1.3: cross (0, 1) all; warp (0, 0.1) → 0, 1, 2; mask (0.5, 0.8) strict → 11…15;
    # ada (0.8, 1) → 16…19
    assert active_steps((0.0, 1.0), 20) == list(range(20))
    assert active_steps((0.0, 0.1), 20) == [0, 1, 2]
    assert active_steps((0.5, 0.8), 20, inclusive=False) == [11, 12, 13, 14, 15]
    assert active_steps((0.8, 1.0), 20) == [16, 17, 18, 19]
    assert active_steps(None, 20) == []


def test_windows_before_the_sdedit_start_fold_onto_the_first_executed_step():
    # strength 0.75 → first step 5: shape-aware fusion would otherwise be lost (the official pitfall)
    assert active_steps((0.0, 0.1), 20, first_step=5) == [5]
    assert active_steps((0.0, 1.0), 20, first_step=5) == list(range(5, 20))
    assert active_steps((0.5, 0.8), 20, first_step=14, inclusive=False) == [14, 15]
    assert active_steps((0.9, 1.0), 20, first_step=5) == [18, 19]
    assert active_steps((0.0, 0.1), 20, first_step=20) == []  # strength 0: nothing runs
    # without the fold a window wholly before the start does not act; one that reaches past it is unchanged
    assert active_steps((0.0, 0.1), 20, first_step=16, fold=False) == []
    assert active_steps((0.5, 0.8), 20, first_step=14, inclusive=False, fold=False) == [14, 15]


def test_folding_is_allowed_only_in_the_noisier_half_of_the_schedule():
    assert may_fold(701) and may_fold(500) and may_fold(951)
    assert not may_fold(499) and not may_fold(151) and not may_fold(1)
    assert may_fold(600, num_train_timesteps=1200) and not may_fold(599, num_train_timesteps=1200)


@pytest.mark.parametrize("period", [(-0.1, 0.5), (0.2, 1.5), (0.6, 0.3)])
def test_active_steps_reject_bad_periods(period):
    with pytest.raises(ConfigError, match=r"0 ≤ start ≤ end ≤ 1"):
        active_steps(period, 20)


# --------------------------------------------------------------------------------------------------------
# DDIM decomposition
# --------------------------------------------------------------------------------------------------------


def test_ddim_decomposition_round_trips():
    torch.manual_seed(0)
    original, noise = torch.randn(2, 1, 4, 3, 3)
    alpha = 0.3
    latents = math.sqrt(alpha) * original + math.sqrt(1 - alpha) * noise
    predicted, predicted_noise = predict_original(latents, noise, alpha)
    assert torch.allclose(predicted, original, atol=1e-5) and torch.equal(predicted_noise, noise)
    velocity = math.sqrt(alpha) * noise - math.sqrt(1 - alpha) * original
    predicted, predicted_noise = predict_original(latents, velocity, alpha, "v_prediction")
    assert torch.allclose(predicted, original, atol=1e-5) and torch.allclose(predicted_noise, noise, atol=1e-5)
    updated, direction = ddim_update(original, noise, 0.6)
    assert torch.allclose(direction, math.sqrt(0.4) * noise)
    assert torch.allclose(updated, math.sqrt(0.6) * original + direction)
    with pytest.raises(ConfigError, match="prediction_type"):
        predict_original(latents, noise, alpha, "sample")


# --------------------------------------------------------------------------------------------------------
# shape-aware fusion
# --------------------------------------------------------------------------------------------------------


def test_shape_aware_fusion_with_zero_flow_and_all_valid_mask_returns_the_anchor():
    from rerender.flow import warp

    torch.manual_seed(0)
    current, anchor = torch.randn(2, 1, 4, 8, 8)
    warped = warp(anchor, torch.zeros(1, 2, 8, 8), mode="nearest")
    assert torch.equal(shape_aware_fusion(current, warped, torch.ones(1, 1, 8, 8)), anchor)
    assert torch.equal(shape_aware_fusion(current, warped, torch.zeros(1, 1, 8, 8)), current)


def test_shape_aware_fusion_replaces_only_trusted_cells():
    current, anchor = torch.zeros(1, 4, 2, 2), torch.full((1, 4, 2, 2), 3.0)
    trusted = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    fused = shape_aware_fusion(current, anchor, trusted)
    assert fused[0, :, 0, 0].tolist() == [3.0] * 4 and fused[0, :, 1, 1].tolist() == [0.0] * 4


# --------------------------------------------------------------------------------------------------------
# pixel-aware fusion
# --------------------------------------------------------------------------------------------------------


def test_composite_prefers_anchor_then_previous_then_direct():
    direct, anchor, previous = (
        torch.full((1, 3, 1, 3), 0.1),
        torch.full((1, 3, 1, 3), 0.5),
        torch.full((1, 3, 1, 3), 0.9),
    )
    anchor_occlusion = torch.tensor([[[[0.0, 1.0, 1.0]]]])
    previous_occlusion = torch.tensor([[[[1.0, 0.0, 1.0]]]])
    blend = composite_references(direct, anchor, anchor_occlusion, previous, previous_occlusion)
    assert blend[0, 0, 0].tolist() == pytest.approx([0.5, 0.9, 0.1])
    # a soft mask blends: Eq. 10 with M_0 = 0.5, M_prev = 0.25
    soft = composite_references(
        direct, anchor, torch.full((1, 1, 1, 3), 0.5), previous, torch.full((1, 1, 1, 3), 0.25)
    )
    expected = 0.5 * (0.25 * 0.1 + 0.75 * 0.9) + 0.5 * 0.5
    assert soft[0, 0, 0, 0].item() == pytest.approx(expected)


def test_flat_regions_mark_zero_prewitt_gradient():
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 2:, 2:] = 1.0
    flat = flat_regions(mask)[0, 0]
    assert flat[0, 0] == 1 and flat[4, 4] == 1  # far from the edge
    assert flat[1, 1] == 0 and flat[2, 2] == 0 and flat[3, 1] == 0  # next to the corner or edge
    assert torch.equal(flat_regions(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))


def test_noise_rescale_formula_and_smooth_boundary():
    weight = torch.tensor([0.0, 0.3, 0.5, 1.0])
    rescale = noise_rescale(weight, 0.9)
    expected = [max(1 - w, math.sqrt(1 - w * w) * 0.9) for w in weight.tolist()]
    assert rescale.tolist() == pytest.approx(expected)
    # inner strength 1 keeps the noise variance: w² + r² = 1
    rescale = noise_rescale(weight, 1.0)
    assert (weight**2 + rescale**2).tolist() == pytest.approx([1.0] * 4)
    # smooth boundary: r = 1 − w where the mask is not flat, unchanged where it is
    flat = torch.tensor([1.0, 0.0, 1.0, 0.0])
    smoothed = noise_rescale(weight, 0.9, flat)
    assert smoothed.tolist() == pytest.approx([expected[0], 0.7, expected[2], 0.0])


def test_pixel_aware_fusion_matches_hand_computed_values():
    latents, direction = torch.tensor([[[[2.0]]]]), torch.tensor([[[[0.5]]]])
    target, noise = torch.tensor([[[[1.0]]]]), torch.tensor([[[[-1.0]]]])
    alpha, weight = 0.64, torch.tensor([[[[0.5]]]])
    rescale = noise_rescale(weight, 0.9)
    fused = pixel_aware_fusion(latents, direction, target, noise, alpha, weight, rescale)
    noised_target = 0.8 * 1.0 + 0.6 * -1.0  # 0.2
    r = max(0.5, math.sqrt(0.75) * 0.9)
    expected = 0.5 * noised_target + 0.5 * (2.0 - 0.5) + r * 0.5
    assert fused.item() == pytest.approx(expected)
    # weight 0 leaves the latent untouched (x − d + 1·d)
    zero = torch.zeros(1, 1, 1, 1)
    assert pixel_aware_fusion(latents, direction, target, noise, alpha, zero, noise_rescale(zero, 0.9)).item() == 2.0


def test_fidelity_oriented_encoding_equals_its_formula():
    # A lossy linear "VAE": encode = 2×2 average × 0.5, decode = nearest upsampling × 2 (then E(D(x)) = x for
    # smooth images), plus a constant bias so that each round trip loses a fixed amount.
    def encode(image):
        return 0.5 * F.avg_pool2d(image, 2) + 0.05

    def decode(latents):
        return (2.0 * F.interpolate(latents, scale_factor=2, mode="nearest")).clamp(0, 1)

    torch.manual_seed(0)
    image = torch.rand(1, 3, 8, 8) * 0.5
    x = encode(image)
    x_r = encode(decode(x))
    compensated = x + (x - x_r)
    error = 2 * (decode(compensated) - image).abs().mean(dim=1, keepdim=True)
    for threshold in (10.0, 0.0):  # everything trusted / nothing trusted
        result = fidelity_oriented_encode(image, encode, decode, threshold=threshold)
        bad = F.max_pool2d(
            (F.interpolate((error > threshold).float(), size=x.shape[-2:], mode="bilinear") > 0).float(), 3, 1, 1
        )
        expected = x + (1 - bad) * (x - x_r)
        assert torch.allclose(result, expected, atol=1e-6)
    assert torch.allclose(fidelity_oriented_encode(image, encode, decode, threshold=10.0), compensated, atol=1e-6)
    assert torch.allclose(fidelity_oriented_encode(image, encode, decode, threshold=0.0), x, atol=1e-6)


def test_fidelity_encoding_skips_the_test_decode_only_where_no_error_can_exceed_the_threshold():
    # errors between two images in [0, 1] are at most 2 on the [−1, 1] scale: threshold 2 trusts everything
    # without the test decode D(E′(I)); the result is E′(I) exactly
    decodes = []

    def encode(image):
        return 0.5 * F.avg_pool2d(image, 2) + 0.05

    def decode(latents):
        decodes.append(1)
        return (2.0 * F.interpolate(latents, scale_factor=2, mode="nearest")).clamp(0, 1)

    torch.manual_seed(0)
    image = torch.rand(1, 3, 8, 8)
    x = encode(image)
    compensated = x + (x - encode(decode(x)))
    decodes.clear()
    assert torch.equal(fidelity_oriented_encode(image, encode, decode, threshold=2.0), compensated)
    assert len(decodes) == 1  # the round trip's only
    decodes.clear()
    fidelity_oriented_encode(image, encode, decode, threshold=1.99)
    assert len(decodes) == 2
    decodes.clear()
    fidelity_oriented_encode(image * 3.0 - 1.0, encode, decode, threshold=2.0)  # not in [0, 1]: no guarantee
    assert len(decodes) == 2


# --------------------------------------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------------------------------------


def test_adain_output_has_the_anchor_statistics():
    torch.manual_seed(0)
    current = torch.randn(1, 4, 16, 16) * 3.0 + 1.0
    anchor = torch.randn(1, 4, 16, 16) * torch.tensor([0.5, 1.0, 2.0, 0.1]).view(1, 4, 1, 1) - 0.7
    mean, std = channel_statistics(anchor)
    adjusted = adain(current, mean, std)
    adjusted_mean, adjusted_std = channel_statistics(adjusted)
    assert torch.allclose(adjusted_mean, mean, atol=1e-4)
    assert torch.allclose(adjusted_std, std, rtol=0.02)  # biased vs unbiased variance differ by 1/256
    assert adjusted.dtype == current.dtype and adjusted.shape == current.shape


def test_histogram_matching_gives_the_reference_distribution():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
    reference = rng.integers(100, 256, (24, 40, 3), dtype=np.uint8)
    import cv2

    matched = cv2.cvtColor(match_color_histograms(image, reference), cv2.COLOR_RGB2LAB).astype(float)
    reference_lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(float)
    image_lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(float)
    for channel in range(3):  # closer to the reference than the input was (LAB↔RGB rounding blurs exactness)
        assert (
            abs(matched[..., channel].mean() - reference_lab[..., channel].mean())
            < 0.3 * abs(image_lab[..., channel].mean() - reference_lab[..., channel].mean()) + 2.0
        )


def test_luminosity_blend_keeps_luminosity_and_takes_colour():
    grey = np.full((2, 2, 3), 128, np.uint8)
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 200
    blended = luminosity_blend(red, grey).astype(float)
    luma = blended @ np.array([0.3, 0.59, 0.11])
    assert np.allclose(luma, 128, atol=1.5)
    assert (blended[..., 0] > blended[..., 1]).all()  # still red-ish
    assert correct_colors(grey, red).shape == (2, 2, 3)


def test_pixel_aware_fusion_is_a_convex_blend_on_soft_mask_cells():
    # The target is not multiplied by the mask (the official code does): a target equal to the current clean
    # latent leaves the latent unchanged for any weight, soft boundary cells included.
    torch.manual_seed(0)
    alpha = 0.4
    clean = torch.randn(1, 4, 4, 4)
    direction = torch.randn(1, 4, 4, 4) * (1 - alpha) ** 0.5
    latents = alpha**0.5 * clean + direction
    weight = torch.linspace(0.0, 0.5, 16).view(1, 1, 4, 4)  # mask strength 0.5 × a mask from 0 to 1
    rescale = torch.ones_like(weight)
    fused = pixel_aware_fusion(latents, direction, clean, torch.zeros_like(clean), alpha, weight, rescale)
    # with zero target noise and r = 1: w·√ᾱ·x̃ + (1 − w)·√ᾱ·x̂0 + d = x_t
    assert torch.allclose(fused, latents, atol=1e-6)
    # and the target's share of the clean part is w itself on every cell
    other = torch.randn(1, 4, 4, 4)
    fused = pixel_aware_fusion(latents, direction, other, torch.zeros_like(other), alpha, weight, rescale)
    expected = weight * alpha**0.5 * other + (1 - weight) * alpha**0.5 * clean + direction
    assert torch.allclose(fused, expected, atol=1e-6)
