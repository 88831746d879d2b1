"""How the forward and backward passes of a key interval merge into its in-between frames."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

import ebsynth_bridge
from rerender.propagation.chain import ChainResult, _Segment
from rerender.propagation.engine import EngineChoice
from rerender.propagation.options import PropagationOptions

#: ``"reconstruction"`` blend: exponent of the temporal weights (``(1 − w)^γ``, ``w^γ``). Below 1 the
#: farther keyframe keeps a say, so that its reconstruction can win where it explains the frame better.
_TIME_EXPONENT = 0.5


def _merge_segment(
    segment: _Segment,
    results: list[ChainResult | None],
    step_flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
    options: PropagationOptions,
    engine: EngineChoice = EngineChoice("numba", None),
) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of one segment: a one-sided pass as is, or the two passes of an interval blended."""
    forward_chain, backward_chain = segment
    forward, backward = results
    if forward_chain is None or backward_chain is None:
        chain, result = (forward_chain, forward) if forward_chain is not None else (backward_chain, backward)
        yield from zip(chain.indices[1:], result.images)
        return
    left, right = forward_chain.key, backward_chain.key
    if options.blend_mode == "reconstruction" and engine.name == "torch":
        from rerender.propagation.torch_engine import reconstruction_blend_torch

        yield from reconstruction_blend_torch(left, right, forward, backward, options, engine.device)
        return
    if options.blend_mode == "reconstruction":
        yield from _reconstruction_blend(left, right, forward, backward, options)
        return
    previous_mask = None
    for offset, index in enumerate(range(left + 1, right)):
        # the backward pass runs right -> left, so frame `index` is its (right - index)-th synthesis
        backward_offset = right - index - 1
        backward_weight = (index - left) / (right - left)
        warped_previous = None
        if previous_mask is not None:
            flow_to_previous, _ = step_flows[(index - 1, index)]
            warped_previous = ebsynth_bridge.warp(
                previous_mask.astype(np.uint8), flow_to_previous, nearest=True
            ).astype(bool)
        forward_error, backward_error = forward.errors[offset], backward.errors[backward_offset]
        visibilities = (
            (forward.visibilities[offset], backward.visibilities[backward_offset])
            if options.blend_visibility
            else (None, None)
        )
        weight = ebsynth_bridge.confidence_weight(
            backward_weight, *visibilities, forward_error, backward_error, error_power=options.blend_error_power
        )
        if options.blend_visibility:
            # a pass's error counts for more where it is guessing (revealed since its key)
            forward_error = forward_error / (cv2.GaussianBlur(visibilities[0], (0, 0), 2.0) + np.float32(0.05))
            backward_error = backward_error / (cv2.GaussianBlur(visibilities[1], (0, 0), 2.0) + np.float32(0.05))
        mask = ebsynth_bridge.selection_mask(forward_error, backward_error, backward_weight, warped_previous)
        previous_mask = mask
        yield index, _blend_pair(forward.images[offset], backward.images[backward_offset], mask, weight, options)


def _reconstruction_blend(
    left: int, right: int, forward: ChainResult, backward: ChainResult, options: PropagationOptions
) -> Iterator[tuple[int, np.ndarray]]:
    """The in-between frames of the interval ``left < right`` by the ``"reconstruction"`` blend.

    Candidates per frame: the forward and backward passes and, with ``blend_warp_weight > 0``, the two
    keyframes warped along the flow; weights from how well each reconstructs the source frame
    (:func:`ebsynth_bridge.reconstruction_weights`), then, with ``blend_sharpness``, the detail restored
    until the frame's gradient energy is that share of the keyframes' style-to-source energy ratio times
    its source frame's energy (:func:`ebsynth_bridge.match_sharpness`).
    """
    for offset, index, candidates, errors, times in reconstruction_candidates(left, right, forward, backward, options):
        weights = ebsynth_bridge.reconstruction_weights(errors, times)
        blended = ebsynth_bridge.weighted_blend(candidates, weights)
        if options.blend_sharpness is not None:
            # Each key counts as much as the candidates drawn from it (they alternate forward, backward)
            target = sharpness_target(options, forward, backward, offset, float(np.mean(sum(weights[1::2]))))
            blended, _ = ebsynth_bridge.match_sharpness(blended, candidates, weights, target)
        yield index, np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _blend_pair(
    forward: np.ndarray,
    backward: np.ndarray,
    mask: np.ndarray,
    weight: float | np.ndarray,
    options: PropagationOptions,
) -> np.ndarray:
    """Merge the two passes; ``weight`` is the backward share, a number or per pixel (confidence)."""
    mode = options.blend_mode
    if mode == "linear":
        if np.ndim(weight) == 0:
            return ebsynth_bridge.linear_blend(forward, backward, float(weight))
        return ebsynth_bridge.agreement_blend(forward, backward, weight, np.zeros(weight.shape, bool), 1e9, 0.0)
    if mode == "agreement":
        return ebsynth_bridge.agreement_blend(
            forward, backward, weight, mask, options.blend_tolerance, options.blend_smoothing, options.blend_measure
        )
    backward_weight = float(np.mean(weight))
    selected = ebsynth_bridge.select(forward, backward, mask)
    if mode == "select":
        return selected
    blended = ebsynth_bridge.histogram_preserving_blend(forward, backward, backward_weight, selected)
    if mode == "histogram":
        return blended
    return ebsynth_bridge.poisson_blend(forward, backward, mask, blended, options.poisson_gradient_weights)


def reconstruction_candidates(
    left: int, right: int, forward: ChainResult, backward: ChainResult, options: PropagationOptions
) -> Iterator[tuple[int, int, list[np.ndarray], list[np.ndarray], list[float]]]:
    """Per in-between frame of the interval ``left < right``: ``(offset, index, candidates, errors, times)`` of
    the ``"reconstruction"`` blend, for either engine.

    Candidates alternate forward, backward: the two passes and, with ``blend_warp_weight > 0``, the two keyframes
    warped along the flow; `errors` are their reconstruction errors of the source frame, `times` their temporal
    weights ``(1 − w)^γ``, ``w^γ`` (γ = ``_TIME_EXPONENT``; the warps' scaled by ``blend_warp_weight``).

    Shape:
        - candidates: each (H, W, 3) float or uint8
        - errors: each (H, W)
    """
    for offset, index in enumerate(range(left + 1, right)):
        backward_offset = right - index - 1  # the backward pass runs right -> left
        backward_weight = (index - left) / (right - left)
        times = [(1 - backward_weight) ** _TIME_EXPONENT, backward_weight**_TIME_EXPONENT]
        candidates = [forward.images[offset], backward.images[backward_offset]]
        errors = [forward.reconstruction_errors[offset], backward.reconstruction_errors[backward_offset]]
        if options.blend_warp_weight > 0:
            candidates += [forward.warps[offset], backward.warps[backward_offset]]
            errors += [forward.warp_errors[offset], backward.warp_errors[backward_offset]]
            times += [options.blend_warp_weight * time for time in times]
        yield offset, index, candidates, errors, times


def sharpness_target(
    options: PropagationOptions, forward: ChainResult, backward: ChainResult, offset: int, right_share: float
) -> float:
    """The gradient energy the detail restore aims at for the `offset`-th in-between frame.

    A style turns the source's structure into its strokes, so a frame with more detail than its keys' sources
    should get more: ``blend_sharpness`` × the keyframes' style-to-source energy ratio (mixed by `right_share`,
    the right key's share of the blend weights, so a key that explains little of this frame sets none) × this
    frame's source energy.
    """
    ratios = [result.key_energies[0] / max(result.key_energies[1], 1e-3) for result in (forward, backward)]
    mixed = (1 - right_share) * ratios[0] + right_share * ratios[1]
    return options.blend_sharpness * mixed * forward.frame_energies[offset]
