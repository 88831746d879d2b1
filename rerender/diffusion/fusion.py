"""The cross-frame constraints of keyframe rendering as pure tensor functions (paper §4.1).

Rerender-A-Video (Yang et al., SIGGRAPH Asia 2023) keeps each keyframe consistent with the first rendered
frame (the *anchor*) and the previous keyframe with a hierarchy of constraints. The attention part lives in
`rerender.diffusion.attention`; everything that acts on latents or images is here, one function per formula:

* `active_steps`, `window_steps`, `may_fold`: which DDIM steps a period ``(start, end)`` of the *full* schedule
  switches on, and when a window that SDEdit skips still acts.
* `predict_original`, `ddim_update`: the DDIM decomposition ``x_t = √ᾱ_t·x̂0 + √(1−ᾱ_t)·ε̂`` the fusions edit.
* `shape_aware_fusion`: early steps take the flow-warped anchor's predicted x̂0 where the flow is trusted.
* `composite_references`: the pixel-space fusion target from the warped anchor and previous keyframe (Eq. 10).
* `noise_rescale`, `flat_regions`, `pixel_aware_fusion`: the soft latent blend toward that target (Eq. 11,
  with the official code's noise rescale and smooth boundary).
* `fidelity_oriented_encode`: VAE encoding that compensates the encode/decode loss (Eq. 8–9).
* `channel_statistics`, `adain`: colour-aware adaptive latent adjustment of x̂0.

Conventions: latents ``(B, 4, h, w)``, images ``(B, 3, H, W)`` float in [0, 1], masks ``(B, 1, ·, ·)`` with
the meaning stated in each function ("trusted" = 1 where the warped reference may be used). Nothing here
stores state; the pipeline (`rerender.diffusion.pipeline`) calls these functions at the steps `active_steps` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rerender.errors import ConfigError

__all__ = [
    "FOLD_NOISE_LIMIT",
    "may_fold",
    "active_steps",
    "window_steps",
    "predict_original",
    "ddim_update",
    "shape_aware_fusion",
    "composite_references",
    "flat_regions",
    "noise_rescale",
    "pixel_aware_fusion",
    "fidelity_oriented_encode",
    "channel_statistics",
    "adain",
]

# --------------------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------------------


FOLD_NOISE_LIMIT = 0.5
"""A window that ends before the SDEdit start is moved onto the first executed step only while that step's
timestep is at least this fraction of the training timesteps (the noisier half of the schedule)."""


def may_fold(first_timestep: int, num_train_timesteps: int = 1000) -> bool:
    """Whether a window that ends before the SDEdit start may act at the first executed step instead.

    The rule is defined by noise level: only while the first executed timestep is in the noisier half of the
    diffusion process, ``t ≥ FOLD_NOISE_LIMIT·T`` (t ≥ 500 of SD's 1000). Early-window constraints (shape-aware
    fusion, pixel-aware fusion) replace or blend latents; moved into the low-noise end they cannot be repaired
    by later steps, and the paper (§4.1.2) warns that late latent fusion blurs and distorts. At the default
    strength 0.75 (20 steps) the first step is t = 701, so shape-aware fusion acts there; at 0.5 or below
    (t ≤ 451) a window that ended earlier does not act.

    Args:
        first_timestep: the timestep of the first executed step.
        num_train_timesteps: T, the scheduler's training timesteps.

    Returns:
        True when a folded window acts.

    Example:
        >>> may_fold(701), may_fold(151)
        (True, False)
    """
    return first_timestep >= FOLD_NOISE_LIMIT * num_train_timesteps


def active_steps(
    period: tuple[float, float] | None,
    num_inference_steps: int,
    first_step: int = 0,
    inclusive: bool = True,
    fold: bool = True,
) -> list[int]:
    """Indices of the executed DDIM steps at which a constraint with this period acts.

    A period is a window of the *full* schedule of `num_inference_steps` steps, step 0 being the noisiest:
    step ``i`` lies in ``(start, end)`` when ``start·N ≤ i ≤ end·N`` (``inclusive``, as the official code does
    for cross-frame attention, shape-aware fusion and AdaIN) or ``start·N < i < end·N`` (pixel-aware fusion).

    SDEdit (denoising strength below 1) starts sampling at `first_step`; the steps before it are replaced by
    one jump of the forward process. A window with executed steps acts at those. A window that lies wholly
    before `first_step` is *folded* onto the first executed step when `fold` is set (the caller decides with
    `may_fold`: only while that step is in the noisier half of the schedule), so the constraint still acts
    once instead of being silently lost (the official sampler computes the skipped steps, then overwrites
    their effect: no shape-aware fusion at the WebUI's default strength 0.75); otherwise it does not act.
    A window is never moved later than its own steps except by this fold.

    Args:
        period: ``(start, end)`` fractions with ``0 ≤ start ≤ end ≤ 1``, or None (the constraint is off).
        num_inference_steps: N, the number of steps of the full schedule.
        first_step: index of the first executed step (``N − int(N·strength)``).
        inclusive: include the window's end points.
        fold: move a window that ends before `first_step` onto `first_step`.

    Returns:
        Sorted step indices in ``[first_step, N)``.

    Raises:
        ConfigError: a period outside [0, 1] or reversed, or `first_step` outside [0, N].

    Example:
        >>> active_steps((0.0, 0.1), 20), active_steps((0.5, 0.8), 20, inclusive=False)
        ([0, 1, 2], [11, 12, 13, 14, 15])
        >>> active_steps((0.0, 0.1), 20, first_step=5)  # folded onto the SDEdit start
        [5]
        >>> active_steps((0.0, 0.1), 20, first_step=16, fold=False)  # t = 151: too late to act
        []
    """
    if not 0 <= first_step <= num_inference_steps:
        raise ConfigError(f"`first_step` must be in [0, {num_inference_steps}], got {first_step}")
    if period is None:
        return []
    start, end = period
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0) or start > end:
        raise ConfigError(f"a period must satisfy 0 ≤ start ≤ end ≤ 1 (None turns it off), got {tuple(period)!r}")
    window = window_steps(period, num_inference_steps, inclusive)
    executed = [i for i in window if i >= first_step]
    if window and not executed and fold and first_step < num_inference_steps:
        executed = [first_step]
    return executed


def window_steps(period: tuple[float, float] | None, num_inference_steps: int, inclusive: bool = True) -> list[int]:
    """The steps of the full schedule a period covers, before SDEdit truncation (see `active_steps`)."""
    if period is None:
        return []
    low, high = period[0] * num_inference_steps, period[1] * num_inference_steps
    if inclusive:
        return [i for i in range(num_inference_steps) if low <= i <= high]
    return [i for i in range(num_inference_steps) if low < i < high]


# --------------------------------------------------------------------------------------------------------
# DDIM decomposition
# --------------------------------------------------------------------------------------------------------


def predict_original(
    latents: torch.Tensor, model_output: torch.Tensor, alpha_cumprod: float, prediction_type: str = "epsilon"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a noisy latent into the predicted clean latent x̂0 and the predicted noise ε̂ (DDIM, eta = 0).

    ``x_t = √ᾱ_t·x̂0 + √(1−ᾱ_t)·ε̂``. For ``"epsilon"`` models ε̂ is the model output; for ``"v_prediction"``
    ``x̂0 = √ᾱ·x_t − √(1−ᾱ)·v`` and ``ε̂ = √ᾱ·v + √(1−ᾱ)·x_t``.

    Args:
        latents: x_t.
        model_output: the UNet output at timestep t (after classifier-free guidance).
        alpha_cumprod: ᾱ_t.
        prediction_type: "epsilon" or "v_prediction".

    Returns:
        ``(x̂0, ε̂)``.

    Raises:
        ConfigError: an unsupported prediction type.

    Shape:
        - latents, model_output: (B, C, h, w)
        - Output: (B, C, h, w), (B, C, h, w)
    """
    signal, noise = math.sqrt(alpha_cumprod), math.sqrt(1.0 - alpha_cumprod)
    if prediction_type == "epsilon":
        return (latents - noise * model_output) / signal, model_output
    if prediction_type == "v_prediction":
        return signal * latents - noise * model_output, signal * model_output + noise * latents
    raise ConfigError(f"`prediction_type` must be 'epsilon' or 'v_prediction', got {prediction_type!r}")


def ddim_update(
    original: torch.Tensor, noise: torch.Tensor, alpha_cumprod_previous: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step from a (possibly edited) x̂0: ``x_{t−1} = √ᾱ_{t−1}·x̂0 + d``.

    ``d = √(1−ᾱ_{t−1})·ε̂`` is the "direction pointing to x_t" of DDIM (Song et al. 2021, Eq. 12, σ = 0).
    Pixel-aware fusion needs it at the next step, so it is returned too.

    Args:
        original: x̂0 after the constraints.
        noise: ε̂ of the model.
        alpha_cumprod_previous: ᾱ of the next (less noisy) timestep.

    Returns:
        ``(x_{t−1}, d)``.

    Shape:
        - original, noise: (B, C, h, w)
        - Output: (B, C, h, w), (B, C, h, w)
    """
    direction = math.sqrt(1.0 - alpha_cumprod_previous) * noise
    return math.sqrt(alpha_cumprod_previous) * original + direction, direction


# --------------------------------------------------------------------------------------------------------
# shape-aware fusion
# --------------------------------------------------------------------------------------------------------


def shape_aware_fusion(
    original: torch.Tensor, warped_anchor_original: torch.Tensor, trusted: torch.Tensor
) -> torch.Tensor:
    """Shape-aware cross-frame latent fusion: ``x̂0 ← M·w(x̂0_anchor) + (1 − M)·x̂0`` (paper §4.1.2).

    At early steps the predicted clean latent is replaced, where the flow from the anchor is trusted, by the
    anchor's x̂0 of the same step warped into the current frame (nearest-neighbour warp on the latent grid, see
    `rerender.flow.warp`). Replacement is full: no blend weight, as in the official code.

    Args:
        original: x̂0 of the current keyframe.
        warped_anchor_original: the anchor's x̂0 at the same step, warped to the current frame.
        trusted: M, 1 where the anchor → current flow is trusted (``1 − mask_to_latent(soft occlusion)``).

    Returns:
        The fused x̂0.

    Shape:
        - original, warped_anchor_original: (B, C, h, w)
        - trusted: (B, 1, h, w) or (1, 1, h, w)
        - Output: (B, C, h, w)

    Example:
        >>> x0, anchor = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
        >>> shape_aware_fusion(x0, anchor, torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]]))[0, 0].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    trusted = trusted.to(original.dtype)
    return trusted * warped_anchor_original.to(original.dtype) + (1.0 - trusted) * original


# --------------------------------------------------------------------------------------------------------
# pixel-aware fusion
# --------------------------------------------------------------------------------------------------------


def composite_references(
    direct: torch.Tensor,
    warped_anchor: torch.Tensor,
    anchor_occlusion: torch.Tensor,
    warped_previous: torch.Tensor,
    previous_occlusion: torch.Tensor,
) -> torch.Tensor:
    """The pixel-aware fusion target Ĩ′_i: warped anchor, else warped previous keyframe, else the direct result.

    Paper Eq. 10: ``Ĩ′ = M_0·(M_{i−1}·Ī′ + (1 − M_{i−1})·w_{i−1}(I′_{i−1})) + (1 − M_0)·w_0(I′_0)``, where the
    M's are (soft) occlusion masks, 1 where a warped reference is *not* trusted, and Ī′ is the keyframe rendered
    without pixel-aware fusion. The anchor takes priority over the previous keyframe.

    Args:
        direct: Ī′, the keyframe rendered directly (pass A).
        warped_anchor: the rendered anchor warped to this frame.
        anchor_occlusion: M_0, soft occlusion of the anchor → current flow, in [0, 1].
        warped_previous: the rendered previous keyframe warped to this frame.
        previous_occlusion: M_{i−1}, soft occlusion of the previous → current flow.

    Returns:
        The composite image, in the range of the inputs.

    Shape:
        - direct, warped_anchor, warped_previous: (B, 3, H, W)
        - anchor_occlusion, previous_occlusion: (B, 1, H, W)
        - Output: (B, 3, H, W)
    """
    blend = (1.0 - previous_occlusion) * warped_previous + previous_occlusion * direct
    return (1.0 - anchor_occlusion) * warped_anchor + anchor_occlusion * blend


def flat_regions(mask: torch.Tensor) -> torch.Tensor:
    """1 where a mask is locally constant: the 3×3 Prewitt gradient is exactly zero (replicate border).

    Pixel-aware fusion's smooth boundary uses it to find the seams of the fusion mask.

    Args:
        mask: any single-channel map, typically the latent fusion weight.

    Returns:
        float {0, 1}, 1 = flat.

    Shape:
        - mask: (B, 1, h, w)
        - Output: (B, 1, h, w)

    Example:
        >>> mask = torch.zeros(1, 1, 1, 6); mask[..., 3:] = 1
        >>> flat_regions(mask)[0, 0, 0].tolist()
        [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    """
    prewitt_x = torch.tensor([[-1.0, 0.0, 1.0]] * 3, dtype=torch.float32, device=mask.device)
    kernels = torch.stack((prewitt_x, prewitt_x.T)).unsqueeze(1)  # (2, 1, 3, 3)
    padded = F.pad(mask.float(), (1, 1, 1, 1), mode="replicate")
    gradients = F.conv2d(padded, kernels)  # (B, 2, h, w)
    return (gradients.abs().sum(dim=1, keepdim=True) == 0).to(mask.dtype)


def noise_rescale(weight: torch.Tensor, inner_strength: float, flat: torch.Tensor | None = None) -> torch.Tensor:
    """Scale r of the noise ("direction") term kept by pixel-aware fusion.

    ``r = max(1 − w, √(1 − w²)·inner_strength)``. With ``inner_strength = 1`` the blend keeps the noise
    variance (``w² + r² = 1``); smaller values drop some noise, which sharpens detail (the official "detail
    level"). With a `flat` map (smooth boundary), r falls back to the linear ``1 − w`` where the mask varies:
    ``r ← (1 − w)·(1 − flat) + r·flat``, which avoids seams at the mask boundary.

    Args:
        weight: w, the per-pixel fusion weight in [0, 1].
        inner_strength: in [0, 1].
        flat: `flat_regions` of the mask, or None to skip the smooth boundary.

    Returns:
        r, the shape of `weight`.

    Shape:
        - weight, flat: (B, 1, h, w)
        - Output: (B, 1, h, w)

    Example:
        >>> noise_rescale(torch.tensor([0.6]), 1.0).item()  # sqrt(1 - 0.36)
        0.800000011920929
    """
    rescale = torch.maximum(1.0 - weight, torch.sqrt((1.0 - weight * weight).clamp_min(0.0)) * inner_strength)
    if flat is not None:
        rescale = (1.0 - weight) * (1.0 - flat) + rescale * flat
    return rescale


def pixel_aware_fusion(
    latents: torch.Tensor,
    direction: torch.Tensor,
    target: torch.Tensor,
    noise: torch.Tensor,
    alpha_cumprod: float,
    weight: torch.Tensor,
    rescale: torch.Tensor,
) -> torch.Tensor:
    """Pixel-aware cross-frame latent fusion toward the encoded fusion target, before a UNet call.

    The paper's Eq. 11 replaces the latent by the noised target inside the mask (Blended Latent Diffusion).
    The official code softens this into

        ``x_ref = √ᾱ_t·x̃ + √(1−ᾱ_t)·ε``  (the target, noised to this step)
        ``x_t ← w·x_ref + (1 − w)·(x_t − d) + r·d``

    where ``x_t − d = √ᾱ_t·x̂0`` is the clean part of the current latent, d its noise term from the previous
    DDIM step (`ddim_update`), w the fusion weight (mask × mask strength) and r its `noise_rescale`.
    Where w = 0 the latent is unchanged.

    Unlike the official code, the target x̃ is *not* multiplied by the fusion mask m first. There the clean
    part becomes ``w·m·x̃ + (1 − w)·x̂0``: on cells with a soft mask (0 < m < 1) the weights sum to
    ``1 − w·(1 − m) < 1``, so the blend pulls the latent toward zero instead of toward the target. Measured
    with DIS flow on four shared clips (512², anchor/previous/current 10 frames apart, default mask strength
    0.5): soft cells are 9 % (car-turn), 45 % (woman-running), 48 % (boxer) and 59 % (dog) of the fused
    cells; on them the official clean part loses on average 8 % (at most 12.5 %) of its magnitude at every
    pixel-aware step, and the target keeps only 40–52 % of its intended share. Here the clean part is the
    convex blend ``w·x̃ + (1 − w)·x̂0``: a target equal to the current x̂0 leaves the latent unchanged.

    Args:
        latents: x_t.
        direction: d, the noise term of x_t.
        target: x̃, the fidelity-encoded fusion target (`fidelity_oriented_encode`).
        noise: ε, fresh Gaussian noise for the target.
        alpha_cumprod: ᾱ_t.
        weight: w in [0, 1].
        rescale: r.

    Returns:
        The fused x_t.

    Shape:
        - latents, direction, target, noise: (B, C, h, w)
        - weight, rescale: (B, 1, h, w)
        - Output: (B, C, h, w)
    """
    noised_target = math.sqrt(alpha_cumprod) * target + math.sqrt(1.0 - alpha_cumprod) * noise
    weight, rescale = weight.to(latents.dtype), rescale.to(latents.dtype)
    return weight * noised_target + (1.0 - weight) * (latents - direction) + rescale * direction


def fidelity_oriented_encode(
    image: torch.Tensor,
    encode: Callable[[torch.Tensor], torch.Tensor],
    decode: Callable[[torch.Tensor], torch.Tensor],
    threshold: float = 0.25,
    compensation: float = 1.0,
) -> torch.Tensor:
    """Fidelity-oriented image encoding E*(I), which compensates the VAE's encode/decode loss (paper Eq. 8–9).

    The information an autoencoding round loses is roughly the same each time, so it can be predicted:

        ``x = E(I)``, ``x_r = E(D(x))``, ``E′(I) = x + λ·(x − x_r)``  (Eq. 8)
        ``E*(I) = x + M_E·λ·(x − x_r)``  (Eq. 9)

    M_E is 0 where compensation overshoots: pixels whose mean absolute error between ``D(E′(I))`` and I, on the
    [−1, 1] scale, exceeds `threshold`, brought to the latent grid (bilinear, any overlap counts) and dilated
    by 3×3, as in the official code. With ``threshold ≥ 2`` and I in [0, 1] no error can exceed it (both images
    lie in [0, 1]): M_E is all ones and the test decode ``D(E′(I))`` is skipped (E*(I) = E′(I), the same result).

    Args:
        image: I, RGB in [0, 1].
        encode: image in [0, 1] → latents (scaled, as the UNet sees them).
        decode: latents → image in [0, 1].
        threshold: largest trusted error on the [−1, 1] scale (official 0.25).
        compensation: λ_E (the paper uses 1).

    Returns:
        E*(I).

    Shape:
        - image: (B, 3, H, W)
        - Output: (B, C, h, w), the shape `encode` returns
    """
    latents = encode(image)
    round_trip = encode(decode(latents))
    compensated = latents + compensation * (latents - round_trip)  # E′(I)
    if threshold >= 2.0 and bool(image.min() >= 0.0) and bool(image.max() <= 1.0):  # M_E = 1: no test decode
        return latents + torch.ones_like(latents) * compensation * (latents - round_trip)
    error = 2.0 * (decode(compensated).float() - image.float()).abs().mean(dim=1, keepdim=True)  # [−1, 1] scale
    overshoot = F.interpolate(
        (error > threshold).float(), size=latents.shape[-2:], mode="bilinear", align_corners=False
    )
    overshoot = F.max_pool2d((overshoot > 0).float(), kernel_size=3, stride=1, padding=1)
    keep = (1.0 - overshoot).to(latents.dtype)  # M_E
    return latents + keep * compensation * (latents - round_trip)


# --------------------------------------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------------------------------------


def channel_statistics(latents: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over space (unbiased variance + eps), as the official AdaIN stores.

    Shape:
        - latents: (B, C, h, w)
        - Output: (B, C, 1, 1), (B, C, 1, 1)
    """
    flat = latents.float().flatten(2)
    mean = flat.mean(dim=2)[..., None, None]
    std = (flat.var(dim=2, unbiased=True) + eps).sqrt()[..., None, None]
    return mean.to(latents.dtype), std.to(latents.dtype)


def adain(
    original: torch.Tensor, anchor_mean: torch.Tensor, anchor_std: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Colour-aware adaptive latent adjustment: give x̂0 the anchor's per-channel statistics (paper §4.1).

    ``x̂0 ← (x̂0 − μ(x̂0)) / √(σ²(x̂0) + eps) · σ_anchor + μ_anchor`` (instance normalisation with biased
    variance, as `torch.nn.functional.instance_norm`), applied in late steps so every keyframe keeps the
    anchor's colours.

    Args:
        original: x̂0 of the current keyframe.
        anchor_mean, anchor_std: `channel_statistics` of the anchor's x̂0 at the same step.
        eps: added to the variance.

    Returns:
        The adjusted x̂0.

    Shape:
        - original: (B, C, h, w)
        - anchor_mean, anchor_std: (B, C, 1, 1) or (1, C, 1, 1)
        - Output: (B, C, h, w)
    """
    normalized = F.instance_norm(original.float(), eps=eps)
    return (normalized * anchor_std.float() + anchor_mean.float()).to(original.dtype)
