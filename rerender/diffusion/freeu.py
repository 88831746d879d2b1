"""FreeU (Si et al., CVPR 2024) as Rerender-A-Video applies it to the SD 1.5 decoder, and diffusers' variant.

FreeU re-weights each decoder stage's two inputs: it amplifies half of the backbone features ``h`` and damps
the low frequencies of the skip features. The two implementations differ in where and how:

* ``"rerender"`` (the paper's, official ``src/freeu.py``): stages are chosen by the **channel count of h**.
  On SD 1.5 the 1280-channel stage is ``up_blocks.0``, ``up_blocks.1`` and the first resnet of
  ``up_blocks.2``; the 640-channel stage is the rest of ``up_blocks.2`` and the first resnet of
  ``up_blocks.3``. The backbone scale is *structure-aware*, ``(b − 1)·m + 1`` with m the per-sample min-max
  normalised channel mean of h, and the ControlNet residual is added to the skip **after** the Fourier filter.
* ``"diffusers"`` (`UNet2DConditionModel.enable_freeu`): stages are ``up_blocks.0`` (b1, s1) and
  ``up_blocks.1`` (b2, s2), both 1280-channel on SD 1.5, with a constant scale b, and the filter acts on the
  skip *with* the ControlNet residual already in it. With Rerender's values (1.1, 1.2, 1, 0.2) s2 = 0.2
  then damps a 1280-channel stage, not the 640-channel one.

The factors a config leaves unset are the base model's own (`rerender.config.FAMILY_DEFAULTS`: Rerender's
1.1, 1.2, 1, 0.2 on SD 1.5, FreeU's published 1.3, 1.4, 0.9, 0.2 on SDXL), resolved before they reach this module.

`freeu_installed` installs either for the duration of a block and restores the UNet after it (forward
pre-hooks for the paper's variant, diffusers' own attributes for the other).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils.torch_utils import fourier_filter

from rerender.config import FREEU_FACTORS, FreeUConfig
from rerender.errors import ConfigError

__all__ = ["FreeUStage", "freeu_stages", "structure_aware_scale", "rerender_freeu", "freeu_installed"]

FOURIER_THRESHOLD = 1
"""Half-width of the centred low-frequency band the skip scale s multiplies (both implementations: 2×2)."""


@dataclass(frozen=True)
class FreeUStage:
    """One decoder resnet that Rerender's FreeU changes.

    Attributes:
        name: the resnet's module name, e.g. ``"up_blocks.2.resnets.0"``.
        order: its position among all decoder resnets; it takes the ``order``-th skip from the end.
        backbone_channels: channels of h, the backbone part of its input (the rest is the skip).
        stage: 1 (the widest h: b1, s1) or 2 (the next width: b2, s2).
    """

    name: str
    order: int
    backbone_channels: int
    stage: int


def freeu_stages(unet: Any) -> list[FreeUStage]:
    """The decoder resnets Rerender's FreeU changes, selected by the channel count of their backbone input h.

    h of a decoder resnet is the output of the module before it (the mid block for the first one). Stage 1
    is the widest h (1280 on SD 1.5), stage 2 the next width (640); narrower resnets are left alone.

    Args:
        unet: a diffusers `UNet2DConditionModel` (its config and `up_blocks`).

    Returns:
        The changed resnets, in decoder order.
    """
    widths = sorted(set(unet.config.block_out_channels), reverse=True)
    stage_of = {width: stage for stage, width in enumerate(widths[:2], start=1)}
    stages, previous_output, order = [], unet.config.block_out_channels[-1], 0
    for block_index, block in enumerate(unet.up_blocks):
        for resnet_index, resnet in enumerate(block.resnets):
            if previous_output in stage_of:
                name = f"up_blocks.{block_index}.resnets.{resnet_index}"
                stages.append(FreeUStage(name, order, previous_output, stage_of[previous_output]))
            previous_output, order = resnet.out_channels, order + 1
    return stages


def structure_aware_scale(hidden: torch.Tensor, backbone_factor: float) -> torch.Tensor:
    """FreeU's structure-aware backbone scale ``(b − 1)·m + 1``, m = min-max normalised channel mean of h.

    m is computed per sample over space, so the strongest-responding places get b and the weakest get 1. A
    constant channel mean (max = min) gives m = 0 (no scaling) instead of the official division by zero.

    Args:
        hidden: h, the backbone features.
        backbone_factor: b.

    Returns:
        The scale, in float32.

    Shape:
        - hidden: (B, C, H, W)
        - Output: (B, 1, H, W)

    Example:
        >>> hidden = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 1, 3).repeat(1, 2, 1, 1)
        >>> structure_aware_scale(hidden, 1.2).flatten().tolist()
        [1.0, 1.100000023841858, 1.2000000476837158]
    """
    mean = hidden.float().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    flat = mean.flatten(1)
    low, high = flat.min(dim=1).values[:, None, None, None], flat.max(dim=1).values[:, None, None, None]
    normalized = (mean - low) / (high - low).clamp_min(torch.finfo(torch.float32).tiny)
    return (backbone_factor - 1.0) * normalized + 1.0


def rerender_freeu(
    hidden: torch.Tensor, skip: torch.Tensor, residual: torch.Tensor | None, backbone_factor: float, skip_factor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rerender's FreeU on one decoder resnet's inputs (official ``src/freeu.py``).

    ``h[:, :C/2] ← h[:, :C/2]·((b − 1)·m + 1)`` (`structure_aware_scale`) and
    ``skip ← F⁻¹(F(skip)·S) + residual``, where S is s on the centred 2×2 low-frequency band and 1 elsewhere,
    and `residual` is the ControlNet residual, added after the filter.

    Args:
        hidden: h, the backbone features.
        skip: the encoder's skip features, *without* the ControlNet residual.
        residual: the ControlNet residual for this skip, or None.
        backbone_factor: b.
        skip_factor: s.

    Returns:
        ``(hidden, skip)``, in the input dtypes.

    Shape:
        - hidden: (B, C, H, W)
        - skip, residual: (B, C_skip, H, W)
        - Output: (B, C, H, W), (B, C_skip, H, W)
    """
    half = hidden.shape[1] // 2
    scaled = hidden.clone()
    scaled[:, :half] = (hidden[:, :half].float() * structure_aware_scale(hidden, backbone_factor)).to(hidden.dtype)
    filtered = fourier_filter(skip.float(), threshold=FOURIER_THRESHOLD, scale=skip_factor)
    if residual is not None:
        filtered = filtered + residual.float()
    return scaled, filtered.to(skip.dtype)


@contextlib.contextmanager
def freeu_installed(unet: Any, freeu: FreeUConfig | None) -> Iterator[None]:
    """Switch FreeU on in `unet` for the duration of the block, in the variant `freeu.variant` names.

    The UNet is restored afterwards, also when the block raises: the paper's variant removes its hooks,
    diffusers' variant puts back the up blocks' previous FreeU attributes.

    Args:
        unet: a diffusers `UNet2DConditionModel`.
        freeu: the factors and variant; None does nothing. Its factors must be resolved (numbers):
            `FreeUConfig.resolved` with the base's variant, as the pipeline and a run's preflight do.

    Raises:
        ConfigError: a factor left unset (None), i.e. a config that was not resolved for its base model.
    """
    if freeu is None:
        yield
        return
    unset = [name for name in FREEU_FACTORS if getattr(freeu, name) is None]
    if unset:  # a None must never reach the maths: which base's factors it means is the caller's to say
        raise ConfigError(
            f"FreeU factors {', '.join(unset)} are unset (None), i.e. the base model's own, but were not resolved "
            "for a base model: pass `freeu.resolved(pipeline.variant)` (rerender.config.FreeUConfig.resolved), or "
            "set them"
        )
    if freeu.variant == "diffusers":
        names = ("s1", "s2", "b1", "b2")
        saved = [{name: getattr(block, name, None) for name in names} for block in unet.up_blocks]
        unet.enable_freeu(s1=freeu.s1, s2=freeu.s2, b1=freeu.b1, b2=freeu.b2)
        try:
            yield
        finally:
            for block, values in zip(unet.up_blocks, saved):
                for name, value in values.items():
                    setattr(block, name, value)
        return

    factors = {1: (freeu.b1, freeu.s1), 2: (freeu.b2, freeu.s2)}
    residuals: list[Any] = [None]  # the ControlNet residuals of the UNet call in progress

    def remember_residuals(module: Any, args: tuple, kwargs: dict) -> None:
        residuals[0] = kwargs.get("down_block_additional_residuals")

    def hook(stage: FreeUStage):
        backbone_factor, skip_factor = factors[stage.stage]

        def apply(module: Any, args: tuple) -> tuple:
            joined = args[0]  # (B, C_h + C_skip, H, W): [h, skip + ControlNet residual]
            hidden, skip = joined[:, : stage.backbone_channels], joined[:, stage.backbone_channels :]
            call_residuals = residuals[0]
            residual = None if call_residuals is None else call_residuals[len(call_residuals) - 1 - stage.order]
            if residual is not None:
                skip = skip.float() - residual.float()  # the skip as the encoder made it
            hidden, skip = rerender_freeu(hidden, skip, residual, backbone_factor, skip_factor)
            return (torch.cat([hidden, skip.to(hidden.dtype)], dim=1), *args[1:])

        return apply

    handles = [unet.register_forward_pre_hook(remember_residuals, with_kwargs=True)]
    try:
        for stage in freeu_stages(unet):
            handles.append(unet.get_submodule(stage.name).register_forward_pre_hook(hook(stage)))
        yield
    finally:
        for handle in handles:
            handle.remove()
