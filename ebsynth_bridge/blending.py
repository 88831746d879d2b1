"""Blending the forward and backward propagations of a key interval (ebsynth.md §3.4).

Between keyframes ``a < b`` every in-between frame gets two syntheses: ``forward`` (from key ``a``) and
``backward`` (from key ``b``). These functions merge them, following "Stylizing Video by Example"
(Jamriška et al. 2019) as simplified by Rerender-A-Video:

1. :func:`selection_mask` — per pixel, the direction with the lower (temporally weighted) patch error,
   kept temporally coherent by OR-ing in the previous frame's mask carried along the flow;
2. :func:`histogram_preserving_blend` — a cross-fade that keeps the contrast and colour statistics of
   the selected image instead of washing out;
3. :func:`poisson_blend` — optionally, a gradient-domain (screened Poisson) reconstruction that takes
   its gradients from the selected side, solved exactly with a DCT;
4. :func:`agreement_blend` — cross-fade where the two syntheses agree in structure (averaging
   two estimates lowers the error), follow the selected side where their edges differ (averaging two
   different structures would ghost and blur);
5. :func:`reconstruction_weights` + :func:`weighted_blend` + :func:`match_sharpness` — ours, the
   default: weigh each candidate (the two syntheses and the two keyframes warped along the flow) per
   pixel by how well the same correspondence reconstructs the current *source* frame, then give the
   average back the detail contrast that averaging lost, up to a share of the keyframes' sharpness.

Images are RGB channels-last, uint8 in [0, 255] or float32 in [0, 1]; outputs keep the input dtype.
The colour work happens in float CIE Lab (no 8-bit round trip, which costs Rerender ≈ 0.03 SSIM).
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft

#: Rerender's Poisson gradient weights for (L, a, b): luminance edges matter most.
RERENDER_GRADIENT_WEIGHTS = (2.5, 0.5, 0.5)
#: How :func:`agreement_blend` measures where the two passes disagree.
AGREEMENT_MEASURES = ("magnitude", "difference")


def selection_mask(
    forward_error: np.ndarray,
    backward_error: np.ndarray,
    backward_weight: float,
    previous_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Which pixels take the backward synthesis: the lower error, weighted by temporal distance.

    A pixel takes the backward result when ``backward_weight · forward_error ≥ (1 − backward_weight) ·
    backward_error``, i.e. errors count more the farther their keyframe is. With ``previous_mask`` (the
    previous frame's mask warped onto this frame) a pixel that switched to backward stays switched
    (Rerender's temporally coherent mask), so the seam moves monotonically through the interval.

    Args:
        forward_error, backward_error: per-pixel patch errors of the two syntheses (any unit, the same).
        backward_weight: temporal position in the interval, 0 at the forward key, 1 at the backward key.
            At exactly 0 (1) the mask is all False (True): the weights select one side.
        previous_mask: optional bool mask of the previous frame, already warped to this frame.

    Returns:
        bool mask, True where the backward result is taken.

    Raises:
        ValueError: mismatched shapes or a weight outside [0, 1].

    Shape: errors (H, W), previous_mask (H, W) -> (H, W) bool.
    """
    _check_weight(backward_weight)
    if forward_error.shape != backward_error.shape or forward_error.ndim != 2:
        raise ValueError(
            f"`forward_error` and `backward_error` must be two (H, W) arrays of one shape, got "
            f"{forward_error.shape} and {backward_error.shape}"
        )
    if backward_weight <= 0.0:
        mask = np.zeros(forward_error.shape, bool)
    elif backward_weight >= 1.0:
        mask = np.ones(forward_error.shape, bool)
    else:
        mask = backward_weight * forward_error >= (1.0 - backward_weight) * backward_error
    if previous_mask is not None:
        if previous_mask.shape != mask.shape:
            raise ValueError(f"`previous_mask` must have shape {mask.shape}, got {previous_mask.shape}")
        if backward_weight > 0.0:
            mask |= previous_mask.astype(bool)
    return mask


def confidence_weight(
    backward_weight: float,
    forward_visibility: np.ndarray | None = None,
    backward_visibility: np.ndarray | None = None,
    forward_error: np.ndarray | None = None,
    backward_error: np.ndarray | None = None,
    error_power: float = 0.0,
    smoothing: float = 2.0,
    floor: float = 0.05,
) -> np.ndarray | float:
    """Per-pixel cross-fade weight of the backward pass from how much each pass can be trusted there.

    Each side's confidence is its temporal weight (``1 − w`` forward, ``w`` backward) times its visibility
    (``V + floor``: a region revealed since that side's keyframe is a guess) times ``(1 + E / Ē)^−p``
    (its patch error against the mean error ``Ē`` of both sides); the result is the backward side's
    share ``c_b / (c_f + c_b)``. With no maps (or visibilities of 1 and ``p = 0``) it is ``w``; at
    ``w = 0`` (1) it is 0 (1) whatever the maps say.

    Args:
        backward_weight: temporal position ``w`` in the interval, 0 at the forward key, 1 at the backward key.
        forward_visibility, backward_visibility: optional (H, W) maps in [0, 1], both or neither
            (:func:`ebsynth_bridge.carry_visibility`).
        forward_error, backward_error: optional (H, W) patch errors, both or neither; used when
            ``error_power > 0``.
        error_power: how strongly errors steer the weight (0 = not at all).
        smoothing: Gaussian sigma in pixels applied to the maps first (0 = none), so that the weight
            varies smoothly instead of following pixel noise.
        floor: added to visibilities, so that where neither side is visible time decides.

    Returns:
        ``w`` (a float) when no maps apply, else an (H, W) float32 map in [0, 1].

    Raises:
        ValueError: a weight outside [0, 1], maps given singly or of different shapes, negative
            ``error_power``, ``smoothing`` or ``floor``.

    Shape: maps (H, W) -> (H, W).
    """
    _check_weight(backward_weight)
    if error_power < 0 or smoothing < 0 or not floor > 0:
        raise ValueError(
            f"`error_power` and `smoothing` must be ≥ 0 and `floor` > 0, got {error_power}, {smoothing}, {floor}"
        )
    forward_confidence: np.ndarray | float = 1.0 - backward_weight
    backward_confidence: np.ndarray | float = backward_weight
    pairs = [("visibility", forward_visibility, backward_visibility)]
    if error_power > 0:
        pairs.append(("error", forward_error, backward_error))
    for name, forward_map, backward_map in pairs:
        if (forward_map is None) != (backward_map is None):
            raise ValueError(f"give both `forward_{name}` and `backward_{name}`, or neither")
        if forward_map is None:
            continue
        if forward_map.shape != backward_map.shape or forward_map.ndim != 2:
            raise ValueError(
                f"`forward_{name}` and `backward_{name}` must be two (H, W) maps of one shape, got "
                f"{forward_map.shape} and {backward_map.shape}"
            )
        forward_map, backward_map = (_smooth(image, smoothing) for image in (forward_map, backward_map))
        if name == "visibility":
            forward_confidence = forward_confidence * (np.clip(forward_map, 0.0, 1.0) + np.float32(floor))
            backward_confidence = backward_confidence * (np.clip(backward_map, 0.0, 1.0) + np.float32(floor))
        else:
            mean_error = np.float32(0.5 * (forward_map.mean() + backward_map.mean()) + 1e-6)
            forward_confidence = forward_confidence * (1.0 + forward_map / mean_error) ** np.float32(-error_power)
            backward_confidence = backward_confidence * (1.0 + backward_map / mean_error) ** np.float32(-error_power)
    if isinstance(forward_confidence, float) and isinstance(backward_confidence, float):
        return backward_weight
    if backward_weight <= 0.0 or backward_weight >= 1.0:
        return np.full(np.shape(forward_confidence + backward_confidence), np.float32(backward_weight))
    return (backward_confidence / (forward_confidence + backward_confidence)).astype(np.float32)


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    image = np.ascontiguousarray(image, np.float32)
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


def select(forward: np.ndarray, backward: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``backward`` where ``mask`` else ``forward``.

    Shape: forward, backward (H, W, C), mask (H, W) -> (H, W, C).
    """
    _check_pair(forward, backward)
    return np.where(mask[..., None], backward, forward)


def linear_blend(forward: np.ndarray, backward: np.ndarray, backward_weight: float) -> np.ndarray:
    """Plain cross-fade ``(1 − w) · forward + w · backward`` (ghosts where the two disagree).

    Shape: forward, backward (H, W, C) -> (H, W, C).
    """
    _check_pair(forward, backward)
    _check_weight(backward_weight)
    blended = (1.0 - backward_weight) * _to_float(forward) + backward_weight * _to_float(backward)
    return _from_float(blended, forward.dtype)


def agreement_blend(
    forward: np.ndarray,
    backward: np.ndarray,
    backward_weight: float | np.ndarray,
    mask: np.ndarray,
    tolerance: float = 110.0,
    smoothing: float = 2.0,
    measure: str = "magnitude",
) -> np.ndarray:
    """Cross-fade where forward and backward agree in structure, take the selected side where they don't.

    With ``D = | |∇forward| − |∇backward| |`` the difference of their luminance gradient magnitudes
    (3×3 Sobel on the 0–255 scale) smoothed by a Gaussian of ``smoothing`` px, each pixel takes
    ``backward`` with weight ``a = w + (mask − w) · min(D / tolerance, 1)``: the temporal cross-fade
    ``w`` where the two agree, the error-selected side (:func:`selection_mask`) where their edges differ.
    Averaging two estimates of the same structure lowers the error (also where only their colours
    differ); averaging two different structures (an edge here in one, there in the other) would leave
    both at half contrast — the ghosting that blurs cross-faded propagation. On the propagation
    benchmark this keeps Rerender's sharpness at warp-blend PSNR (see ``PropagationOptions``).

    Args:
        forward, backward: the two syntheses, RGB (uint8 or float32 in [0, 1]).
        backward_weight: 0 at the forward key, 1 at the backward key; a number or a per-pixel (H, W) map
            in [0, 1] (:func:`confidence_weight`).
        mask: bool, True where the backward side is selected (:func:`selection_mask`).
        tolerance: gradient-magnitude difference (Sobel, 0–255 scale) at and above which the selected
            side wins outright; lower is sharper, higher averages more (``→ 0``: :func:`select`,
            ``→ ∞``: :func:`linear_blend`).
        smoothing: Gaussian sigma in pixels applied to the disagreement map (0 = none).
        measure: ``"magnitude"`` (``D`` as above) or ``"difference"`` (``D = |∇(forward − backward)|``,
            which also sees two textures of equal contrast that are not aligned, whose average would blur).

    Returns:
        The blend, with the inputs' dtype.

    Raises:
        ValueError: mismatched shapes, a weight outside [0, 1] or a tolerance ≤ 0.

    Shape: forward, backward (H, W, 3), mask (H, W) -> (H, W, 3).
    """
    _check_pair(forward, backward)
    if np.ndim(backward_weight) == 0:
        _check_weight(float(backward_weight))
    elif np.shape(backward_weight) != forward.shape[:2] or not (
        0.0 <= np.min(backward_weight) <= np.max(backward_weight) <= 1.0
    ):
        raise ValueError(
            f"a per-pixel `backward_weight` must be an {forward.shape[:2]} map in [0, 1], got shape "
            f"{np.shape(backward_weight)}"
        )
    if mask.shape != forward.shape[:2]:
        raise ValueError(f"`mask` must have shape {forward.shape[:2]}, got {mask.shape}")
    if not tolerance > 0:
        raise ValueError(f"`tolerance` must be > 0 (Sobel magnitude, 0–255 scale), got {tolerance}")
    if not smoothing >= 0:
        raise ValueError(f"`smoothing` must be ≥ 0 pixels, got {smoothing}")
    if measure not in AGREEMENT_MEASURES:
        raise ValueError(f"`measure` must be one of {AGREEMENT_MEASURES}, got {measure!r}")
    forward_float, backward_float = _to_float(forward), _to_float(backward)
    if measure == "magnitude":
        disagreement = np.abs(_gradient_magnitude(forward_float) - _gradient_magnitude(backward_float))
    else:  # the gradient of their difference: also sees textures of equal contrast that are not aligned
        disagreement = _gradient_magnitude(np.clip(0.5 + forward_float - backward_float, 0.0, 1.0))
    if smoothing > 0:
        disagreement = cv2.GaussianBlur(disagreement, (0, 0), smoothing)
    certainty = np.minimum(disagreement / np.float32(tolerance), 1.0)
    backward_weight = np.asarray(backward_weight, np.float32)
    weight = backward_weight + (mask.astype(np.float32) - backward_weight) * certainty
    blended = forward_float + weight[..., None] * (backward_float - forward_float)
    return _from_float(blended, forward.dtype)


def _gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """3×3 Sobel gradient magnitude of the luminance of a float [0, 1] RGB image, on the 0–255 scale."""
    luminance = (
        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) * np.float32(255.0)
        if rgb.shape[2] == 3
        else rgb.mean(axis=2) * np.float32(255.0)
    )
    gradient_x = cv2.Sobel(luminance, cv2.CV_32F, 1, 0, ksize=3)
    gradient_y = cv2.Sobel(luminance, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gradient_x * gradient_x + gradient_y * gradient_y)


def histogram_preserving_blend(
    forward: np.ndarray, backward: np.ndarray, backward_weight: float, reference: np.ndarray
) -> np.ndarray:
    """Cross-fade that keeps the colour statistics of ``reference`` (Rerender's histogram blend).

    In Lab, both inputs are normalised per channel to zero mean and unit standard deviation, mixed as
    ``(1 − w) · forward + w · backward`` and the mix is given the per-channel mean and standard deviation
    of ``reference`` (normally the error-selected image, :func:`select`). A linear cross-fade of two
    unaligned textures loses contrast; restoring the statistics keeps it (Jamriška et al. 2019, §4).

    Args:
        forward, backward: the two syntheses, RGB.
        backward_weight: 0 at the forward key, 1 at the backward key.
        reference: RGB image whose Lab mean and standard deviation the result takes.

    Returns:
        RGB image with the inputs' dtype; at weight 0 (1) it is ``forward`` (``backward``) restyled to the
        reference's statistics.

    Shape: (H, W, 3) each -> (H, W, 3).
    """
    _check_pair(forward, backward)
    _check_pair(forward, reference)
    _check_weight(backward_weight)
    forward_lab, backward_lab, reference_lab = (_rgb_to_lab(image) for image in (forward, backward, reference))
    mixed = (1.0 - backward_weight) * _standardise(forward_lab) + backward_weight * _standardise(backward_lab)
    mixed = _standardise(mixed)
    result = mixed * reference_lab.std(axis=(0, 1)) + reference_lab.mean(axis=(0, 1))
    return _from_float(_lab_to_rgb(result), forward.dtype)


def poisson_blend(
    forward: np.ndarray,
    backward: np.ndarray,
    mask: np.ndarray,
    base: np.ndarray,
    gradient_weights: tuple[float, float, float] = RERENDER_GRADIENT_WEIGHTS,
    max_gradient: float = 100.0,
) -> np.ndarray:
    """Gradient-domain fusion: gradients of the selected side, colours close to ``base``.

    Per Lab channel c, minimises ``g_c² · |∇x − G|² + |x − base|²`` where ``G`` is the forward-difference
    gradient of ``forward`` where ``mask`` is False and of ``backward`` where it is True (clipped to
    ``±max_gradient`` on the 8-bit Lab scale), as Rerender's ``poisson_fusion`` does with LSQR. Here the
    screened Poisson equation ``(1 + g² · (−Δ)) x = base + g² · div* G`` with Neumann borders is solved
    exactly by a 2-D DCT (O(N log N), ≈ 10 ms at 512 px instead of ≈ 1 s for LSQR).

    Args:
        forward, backward: the two syntheses, RGB.
        mask: True where the backward side provides the gradients (:func:`selection_mask`).
        base: RGB image that fixes the colours (e.g. :func:`histogram_preserving_blend`'s output).
        gradient_weights: ``g`` for (L, a, b); 0 returns ``base`` for that channel.
        max_gradient: gradient clip in 8-bit Lab units (0–255 scale).

    Shape: forward, backward, base (H, W, 3), mask (H, W) -> (H, W, 3).
    """
    _check_pair(forward, backward)
    _check_pair(forward, base)
    if mask.shape != forward.shape[:2]:
        raise ValueError(f"`mask` must have shape {forward.shape[:2]}, got {mask.shape}")
    if len(gradient_weights) != 3 or any(weight < 0 for weight in gradient_weights):
        raise ValueError(f"`gradient_weights` must be three numbers ≥ 0 for (L, a, b), got {gradient_weights}")
    # 8-bit Lab scale (L·255/100, a, b), so the weights and the clip mean what they mean in Rerender
    lab_scale = np.array([255.0 / 100.0, 1.0, 1.0], np.float32)
    forward_lab = _rgb_to_lab(forward) * lab_scale
    backward_lab = _rgb_to_lab(backward) * lab_scale
    base_lab = _rgb_to_lab(base) * lab_scale
    height, width = mask.shape
    selected = np.where(mask[..., None], backward_lab, forward_lab)
    gradient_x = np.clip(np.diff(selected, axis=1), -max_gradient, max_gradient)  # (H, W-1, 3)
    gradient_y = np.clip(np.diff(selected, axis=0), -max_gradient, max_gradient)  # (H-1, W, 3)
    # D^T G for forward differences: G[i-1] - G[i] with zero outside
    divergence = np.zeros((height, width, 3), np.float64)
    divergence[:, 1:] += gradient_x
    divergence[:, :-1] -= gradient_x
    divergence[1:] += gradient_y
    divergence[:-1] -= gradient_y
    eigen_y = 2.0 - 2.0 * np.cos(np.pi * np.arange(height) / height)
    eigen_x = 2.0 - 2.0 * np.cos(np.pi * np.arange(width) / width)
    laplacian_eigenvalues = eigen_y[:, None] + eigen_x[None, :]
    result = np.empty_like(base_lab)
    for channel, weight in enumerate(gradient_weights):
        weight_squared = float(weight) ** 2
        right_hand_side = base_lab[..., channel] + weight_squared * divergence[..., channel]
        spectrum = scipy.fft.dctn(right_hand_side, type=2, norm="ortho")
        spectrum /= 1.0 + weight_squared * laplacian_eigenvalues
        result[..., channel] = scipy.fft.idctn(spectrum, type=2, norm="ortho")
    return _from_float(_lab_to_rgb(result / lab_scale), forward.dtype)


def _standardise(lab: np.ndarray) -> np.ndarray:
    return (lab - lab.mean(axis=(0, 1))) / np.maximum(lab.std(axis=(0, 1)), 1e-6)


def _rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """RGB (uint8 or float32 [0, 1]) -> float32 Lab, L in [0, 100], a and b about [-128, 127]."""
    return cv2.cvtColor(np.ascontiguousarray(_to_float(image), dtype=np.float32), cv2.COLOR_RGB2Lab)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)


def _to_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    return image.astype(np.float32)


def _from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _check_pair(first: np.ndarray, second: np.ndarray) -> None:
    if first.shape != second.shape or first.dtype != second.dtype:
        raise ValueError(
            f"images to blend must share shape and dtype, got {first.shape} {first.dtype} and "
            f"{second.shape} {second.dtype}"
        )
    if first.dtype not in (np.uint8, np.float32):
        raise TypeError(f"images must be uint8 (0–255) or float32 (0–1), got dtype {first.dtype}")


def _check_weight(weight: float) -> None:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"`backward_weight` must be in [0, 1], got {weight}")


# --------------------------------------------------------------------------------------------------
# reconstruction-weighted blend and sharpness matching
# --------------------------------------------------------------------------------------------------


def reconstruction_weights(
    errors: list[np.ndarray],
    temporal_weights: list[float],
    *,
    smoothing: float = 2.0,
    floor: float = 1.0,
    power: float = 1.0,
) -> list[np.ndarray]:
    """Per-pixel weights of several candidate syntheses of one frame, from how well each explains it.

    A candidate synthesis draws every pixel from somewhere in its keyframe (a patch match, a flow
    sample). Drawing the keyframe's *source* frame through the same correspondence gives its
    reconstruction of the current source frame; where that reconstruction is wrong (an occlusion, a
    flow or patch error) the stylised pixel drawn the same way is wrong too, whatever the style. With
    ``e_k = Σ_channels |reconstruction_k − source|`` (0–255 scale) candidate ``k`` weighs
    ``c_k = t_k · (G_σ * e_k + floor)^−power``, normalised to sum to 1 (``t_k``: its temporal weight).
    Unlike the patch error this needs no guide weights and compares single pixels, so thin structures
    count; the Gaussian keeps the weights from following pixel noise.

    Args:
        errors: per candidate, its ``(H, W)`` reconstruction error ``e_k`` (≥ 0, 0–255 scale summed over
            channels).
        temporal_weights: per candidate, a number ≥ 0 (how near its keyframe is; not all 0).
        smoothing: Gaussian sigma in pixels applied to each error map (0 = none).
        floor: added to the smoothed error, so that two exact reconstructions share the pixel by their
            temporal weights (> 0).
        power: how sharply the error decides (0 = time alone).

    Returns:
        One float32 ``(H, W)`` weight map per candidate; they sum to 1 at every pixel.

    Raises:
        ValueError: mismatched shapes or lengths, or weights that are negative or all 0.

    Shape: errors k × (H, W) -> k × (H, W).

    Example:
        >>> import numpy as np
        >>> near, far = np.zeros((4, 4), np.float32), np.full((4, 4), 99.0, np.float32)
        >>> [round(float(w[0, 0]), 2) for w in reconstruction_weights([near, far], [0.5, 0.5])]
        [0.99, 0.01]
    """
    if len(errors) != len(temporal_weights) or not errors:
        raise ValueError(
            f"`errors` and `temporal_weights` must be non-empty and of equal length, got "
            f"{len(errors)} and {len(temporal_weights)}"
        )
    if any(not weight >= 0 for weight in temporal_weights) or sum(temporal_weights) <= 0:
        raise ValueError(f"`temporal_weights` must be numbers ≥ 0, not all 0, got {list(temporal_weights)}")
    if not (floor > 0 and power >= 0 and smoothing >= 0):
        raise ValueError(f"need floor > 0, power ≥ 0 and smoothing ≥ 0, got {floor}, {power}, {smoothing}")
    if any(error.ndim != 2 or error.shape != errors[0].shape for error in errors):
        raise ValueError(f"`errors` must be (H, W) maps of one shape, got {[error.shape for error in errors]}")
    confidences = [
        np.float32(weight) * (_smooth(error, smoothing) + np.float32(floor)) ** np.float32(-power)
        for error, weight in zip(errors, temporal_weights)
    ]
    total = np.maximum(np.sum(confidences, axis=0), np.float32(1e-30))
    return [confidence / total for confidence in confidences]


def weighted_blend(candidates: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """``Σ_k weights_k · candidates_k``, in float32 on the candidates' own scale.

    Shape: candidates k × (H, W, C), weights k × (H, W) -> (H, W, C) float32.
    """
    if len(candidates) != len(weights) or not candidates:
        raise ValueError(f"need one weight map per candidate, got {len(candidates)} and {len(weights)}")
    blended = np.zeros(candidates[0].shape, np.float32)
    for candidate, weight in zip(candidates, weights):
        if candidate.shape != blended.shape or weight.shape != blended.shape[:2]:
            raise ValueError(
                f"candidates must share one (H, W, C) shape with (H, W) weights, got "
                f"{candidate.shape} and {weight.shape}"
            )
        blended += candidate.astype(np.float32) * weight[..., None]
    return blended


def gradient_energy(image: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the luminance, on the 0–255 scale (the sharpness measure).

    Shape: (H, W, 3) RGB, uint8 or float on the 0–255 scale -> scalar.
    """
    return float(_gradient_magnitude(np.clip(image, 0, 255).astype(np.float32) / np.float32(255.0)).mean())


def match_sharpness(
    blended: np.ndarray,
    candidates: list[np.ndarray],
    weights: list[np.ndarray],
    target_energy: float,
    *,
    detail_sigma: float = 5.0,
    energy_sigma: float = 8.0,
    max_gain: float = 3.0,
    max_scale: float = 4.0,
) -> tuple[np.ndarray, float]:
    """Give a blend of several candidates back the detail that averaging them washed out.

    Averaging candidates that disagree in their fine detail (a texture, an ink line a pixel apart) keeps
    the error low but leaves the detail at a fraction of its contrast: in-between frames look soft next
    to their keyframes. With ``D = blended − G_s * blended`` (the detail band, ``s = detail_sigma``), the
    local gain ``g = clip(√(Σ w_k E_k / E_D), 1, max_gain)`` (energies ``E`` = Gaussian-smoothed
    squared detail, ``energy_sigma``) restores each region's detail to the weighted energy its
    candidates had, so detail they agree on is untouched. The strength ``β`` of ``1 + β(g − 1)``
    (beyond 1: ``β·g``, up to ``max_scale``) is found by bisection so that the result's
    :func:`gradient_energy` reaches ``target_energy``, and no further; a blend already that sharp is
    returned as is. (In the spirit of Rerender's histogram-preserving blend, which restores the contrast
    a cross-fade loses, applied to detail.)

    Args:
        blended: ``(H, W, C)`` float32 on the 0–255 scale (:func:`weighted_blend`).
        candidates, weights: what was blended, with its per-pixel weights.
        target_energy: wanted :func:`gradient_energy`, e.g. a fraction of the keyframes'.
        detail_sigma, energy_sigma: Gaussian sigmas in pixels of the detail band and of the energies.
        max_gain: cap of the local gain ``g``.
        max_scale: cap of ``β``.

    Returns:
        ``(image, β)``: the float32 result (not clipped) and the strength used (0 = unchanged).

    Shape: blended (H, W, C), candidates k × (H, W, C), weights k × (H, W) -> (H, W, C), scalar.
    """
    if gradient_energy(blended) >= target_energy:
        return blended, 0.0
    base = _smooth(blended, detail_sigma)
    detail = blended - base

    def energy(image: np.ndarray) -> np.ndarray:
        band = image.astype(np.float32) - _smooth(image.astype(np.float32), detail_sigma)
        return _smooth((band * band).sum(axis=2), energy_sigma)

    expected = sum(weight * energy(candidate) for candidate, weight in zip(candidates, weights))
    gain = np.clip(
        np.sqrt(expected / (_smooth((detail * detail).sum(axis=2), energy_sigma) + np.float32(1e-3))), 1.0, max_gain
    )[..., None].astype(np.float32)

    def render(strength: float) -> np.ndarray:
        factor = 1 + strength * (gain - 1) if strength <= 1 else strength * gain
        return base + factor * detail

    low, high = 0.0, float(max_scale)
    if gradient_energy(render(high)) < target_energy:
        return render(high), high
    for _ in range(8):
        middle = (low + high) / 2
        if gradient_energy(render(middle)) < target_energy:
            low = middle
        else:
            high = middle
    return render(high), high
