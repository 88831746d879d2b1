"""The Rerender constraints on a flow-matching schedule (Z-Image, Flux, SD3): the maths, as pure functions.

A rectified-flow model is trained on the straight path between data and noise,

    ``x_σ = (1 − σ)·x₀ + σ·ε``,   σ ∈ [0, 1] (σ = 1 is pure noise),                                   (FM-1)

and predicts its velocity ``v = dx_σ/dσ = ε − x₀``. From one prediction both ends of the path follow:

    ``x̂₀ = x_σ − σ·v``,   ``ε̂ = x_σ + (1 − σ)·v``.                                                    (FM-2)

The Euler step of diffusers' `FlowMatchEulerDiscreteScheduler`, ``x_{σ'} = x_σ + (σ' − σ)·v``, is exactly the
deterministic re-composition ``x_{σ'} = (1 − σ')·x̂₀ + σ'·ε̂`` (substitute FM-2), so the constraints that Rerender
applies to x̂₀ between DDIM steps (shape-aware fusion, AdaIN) apply unchanged here: edit x̂₀, then re-compose
(`flow_matching_update`). `tests/test_flow_matching.py` checks this identity against the scheduler itself.

DDIM's ``x_t = √ᾱ·x₀ + √(1−ᾱ)·ε`` has the same form with other coefficients. Writing
``c = √((1 − σ)² + σ²)``, a flow-matching latent is ``c`` times a variance-preserving one with
``√ᾱ = (1 − σ)/c`` (`vp_equivalent`); the pixel-aware fusion of `rerender.diffusion.fusion`, linear in the
latent, therefore applies to ``x_σ / c`` and the result is scaled back by ``c``
(`flow_matching_pixel_fusion`). No formula is written twice.

SDEdit (Meng et al. 2022) on this schedule starts from the source latent noised by FM-1 to the σ of the first
executed step. Steps are chosen by σ (`first_step_for_strength`): every step whose σ ≤ strength is executed, and
the latent is noised to exactly that step's σ, so no model call is spent on a latent the model was not told the
noise level of, and none is thrown away.

Conventions: latents ``(B, C, h, w)`` on the VAE grid (16 channels for Z-Image and Flux), σ a float in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rerender.diffusion.fusion import pixel_aware_fusion
from rerender.errors import ConfigError

__all__ = [
    "noise_to_sigma",
    "predict_original_from_velocity",
    "flow_matching_update",
    "vp_equivalent",
    "flow_matching_pixel_fusion",
    "first_step_for_strength",
    "renoise",
]


def noise_to_sigma(original: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """Noise a clean latent to σ on the straight path: ``x_σ = (1 − σ)·x₀ + σ·ε`` (FM-1; SDEdit's start).

    Args:
        original: x₀, the encoded source frame.
        noise: ε, standard Gaussian noise.
        sigma: σ in [0, 1].

    Raises:
        ConfigError: σ outside [0, 1].

    Shape:
        - original, noise: (B, C, h, w)
        - Output: (B, C, h, w)
    """
    if not 0.0 <= sigma <= 1.0:
        raise ConfigError(f"`sigma` must be in [0, 1], got {sigma!r}")
    return (1.0 - sigma) * original + sigma * noise


def predict_original_from_velocity(
    latents: torch.Tensor, velocity: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x_σ`` into the predicted clean latent and noise from the velocity ``v = ε − x₀`` (FM-2).

    ``x̂₀ = x_σ − σ·v`` and ``ε̂ = x_σ + (1 − σ)·v``. `velocity` must be in the scheduler's convention (the one
    `FlowMatchEulerDiscreteScheduler.step` integrates with ``x + (σ' − σ)·v``); Z-Image's transformer returns
    ``−v`` and its pipeline negates it, as `RerenderTransformerPipeline` does.

    Returns:
        ``(x̂₀, ε̂)``.

    Shape:
        - latents, velocity: (B, C, h, w)
        - Output: (B, C, h, w), (B, C, h, w)
    """
    return latents - sigma * velocity, latents + (1.0 - sigma) * velocity


def flow_matching_update(
    original: torch.Tensor, noise: torch.Tensor, sigma_next: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-compose the latent at the next σ from a (possibly edited) x̂₀: ``x_{σ'} = (1 − σ')·x̂₀ + d``.

    ``d = σ'·ε̂`` is the noise term, returned for pixel-aware fusion at the next step (as `ddim_update` does on
    DDIM). With an unedited x̂₀ this is exactly the scheduler's Euler step.

    Returns:
        ``(x_{σ'}, d)``.

    Shape:
        - original, noise: (B, C, h, w)
        - Output: (B, C, h, w), (B, C, h, w)
    """
    direction = sigma_next * noise
    return (1.0 - sigma_next) * original + direction, direction


def vp_equivalent(sigma: float) -> tuple[float, float]:
    """The variance-preserving ᾱ and the scale c with ``x_σ = c·(√ᾱ·x₀ + √(1−ᾱ)·ε)``.

    ``c = √((1 − σ)² + σ²)``, ``√ᾱ = (1 − σ)/c``, so ``√(1−ᾱ) = σ/c``.

    Returns:
        ``(ᾱ, c)``.
    """
    scale = math.sqrt((1.0 - sigma) ** 2 + sigma**2)
    return ((1.0 - sigma) / scale) ** 2, scale


def flow_matching_pixel_fusion(
    latents: torch.Tensor,
    direction: torch.Tensor,
    target: torch.Tensor,
    noise: torch.Tensor,
    sigma: float,
    weight: torch.Tensor,
    rescale: torch.Tensor,
) -> torch.Tensor:
    """Pixel-aware fusion (paper Eq. 11, `rerender.diffusion.fusion.pixel_aware_fusion`) at σ of a flow-matching path.

    ``x_ref = (1 − σ)·x̃ + σ·ε``;  ``x_σ ← w·x_ref + (1 − w)·(x_σ − d) + r·d`` with ``x_σ − d = (1 − σ)·x̂₀``. It is
    the variance-preserving formula applied to ``x_σ/c`` with ᾱ from `vp_equivalent`, scaled back by c.

    Shape:
        - latents, direction, target, noise: (B, C, h, w)
        - weight, rescale: (B, 1, h, w)
        - Output: (B, C, h, w)
    """
    alpha_cumprod, scale = vp_equivalent(sigma)
    fused = pixel_aware_fusion(latents / scale, direction / scale, target, noise, alpha_cumprod, weight, rescale)
    return fused * scale


def first_step_for_strength(sigmas: Sequence[float], strength: float) -> int:
    """The first executed step of an SDEdit run of `strength` on a schedule: the first σ_i ≤ strength.

    Args:
        sigmas: σ at each step of the full schedule, noisiest first (without the final 0).
        strength: SDEdit strength in [0, 1]; 1 starts from pure noise at step 0.

    Returns:
        An index into `sigmas`; ``len(sigmas)`` when no step is that quiet (nothing is denoised).

    Raises:
        ConfigError: strength outside [0, 1].
    """
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"`strength` must be in [0, 1], got {strength!r}")
    for index, sigma in enumerate(sigmas):
        if sigma <= strength + 1e-6:
            return index
    return len(sigmas)


def renoise(latents: torch.Tensor, sigma_from: float, sigma_to: float, noise: torch.Tensor) -> torch.Tensor:
    """Move a latent on the straight path to a noisier σ (the flow-matching form of DDPM's forward jump, T2V-Zero Eq. 8).

    ``x_{σ'} = a·x_σ + √(σ'² − a²σ²)·ε`` with ``a = (1 − σ')/(1 − σ)``: the clean part keeps the coefficient
    ``1 − σ'`` of FM-1 and the noise, old and new together, has standard deviation σ'.

    Raises:
        ConfigError: ``σ' < σ`` (that is denoising, not noising) or σ = 1.

    Shape:
        - latents, noise: (B, C, h, w)
        - Output: (B, C, h, w)
    """
    if not 0.0 <= sigma_from <= sigma_to <= 1.0 or sigma_from == 1.0:
        raise ConfigError(f"`renoise` needs 0 ≤ σ < 1 and σ ≤ σ' ≤ 1, got σ={sigma_from!r}, σ'={sigma_to!r}")
    scale = (1.0 - sigma_to) / (1.0 - sigma_from)
    return scale * latents + math.sqrt(max(sigma_to**2 - (scale * sigma_from) ** 2, 0.0)) * noise
