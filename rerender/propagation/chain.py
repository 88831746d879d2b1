"""One propagation pass: a stylised keyframe carried along a chain of frames (ebsynth.md §3.3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

import ebsynth_bridge
from ebsynth_bridge import Guide
from rerender.propagation.options import PropagationOptions


@dataclass(frozen=True)
class _Chain:
    """Frames ``indices`` (the key first) propagated in one direction from ``key``."""

    key: int
    direction: int  # +1 forward in time, -1 backward
    indices: tuple[int, ...]


@dataclass
class ChainResult:
    """One pass's syntheses, in pass order (the key excluded).

    Attributes:
        images: stylised RGB uint8 frames.
        errors: per-pixel patch error of each synthesis, float32 (H, W) (see
            :attr:`ebsynth_bridge.SynthesisResult.error`).
        visibilities: per pixel, how much of it can be traced back to the keyframe along the flow without
            crossing an occlusion (1 = all the way, 0 = revealed since the key), float32 (H, W)
            (:func:`ebsynth_bridge.carry_visibility`).
        reconstruction_errors: per pixel, ``Σ_channels |reconstruction − frame|`` (0–255 scale, float32
            (H, W)), where the reconstruction is the keyframe's *source* frame drawn through the same
            correspondence as the image: how well this pass explains the frame. Empty unless the blend
            needs them (``"reconstruction"``), like the two lists below.
        warps: the stylised keyframe warped along the flow alone (bilinear, at the carried coordinates),
            RGB uint8 (H, W, 3).
        warp_errors: the same error for the warps.
        frame_energies: each frame's :func:`ebsynth_bridge.gradient_energy` (its source frame, not the image).
        key_energies: ``(stylised keyframe, its source frame)`` gradient energies.
    """

    images: list[np.ndarray] = field(default_factory=list)
    errors: list[np.ndarray] = field(default_factory=list)
    visibilities: list[np.ndarray] = field(default_factory=list)
    reconstruction_errors: list[np.ndarray] = field(default_factory=list)
    warps: list[np.ndarray] = field(default_factory=list)
    warp_errors: list[np.ndarray] = field(default_factory=list)
    frame_energies: list[float] = field(default_factory=list)
    key_energies: tuple[float, float] = (0.0, 0.0)


def propagate_chain(
    frames: Sequence[np.ndarray],
    key_style: np.ndarray,
    step_flows: Sequence[tuple[np.ndarray, np.ndarray]],
    options: PropagationOptions,
    step_callback: Callable[[], None] | None = None,
) -> ChainResult:
    """Propagate a stylised keyframe along a chain of frames, one guided synthesis per frame.

    Each step (ebsynth.md §3.3): carry the keyframe coordinates one frame further along the flow; build
    the guides (colour, edges, position — occluded pixels filled —, temporal — the previous output
    warped); start PatchMatch from the coordinates rounded to pixels (the flow's answer, exact where
    the flow is right) and let the guides correct it; render the frame by voting with ``vote_size``.

    Args:
        frames: RGB uint8 frames in propagation order; ``frames[0]`` is the keyframe's source frame.
        key_style: the stylised keyframe, RGB uint8.
        step_flows: for each step ``i ≥ 1``, ``(flow, occlusion)`` with
            ``frames[i](p) ≈ frames[i-1](p + flow(p))`` and the bool mask where that flow is not trusted.
        options: synthesis options.
        step_callback: called after each synthesis (progress; it may raise to stop the pass).

    Returns:
        The syntheses of ``frames[1:]`` with their error maps.

    Shape: frames n × (H, W, 3), step_flows (n − 1) × ((H, W, 2), (H, W)) -> n − 1 images.
    """
    height, width = key_style.shape[:2]
    key_frame = frames[0]
    key_coordinates = ebsynth_bridge.identity_coordinates(height, width)
    key_edges = ebsynth_bridge.edge_guide(key_frame)
    key_positions = ebsynth_bridge.positional_guide(key_coordinates, (height, width))
    key_style_float = key_style.astype(np.float32) / np.float32(255.0)
    # Where each pixel of the current frame was in the keyframe, composed from the raw flows: as a
    # *starting point* the flow's own extrapolation into occlusions beats a filled-in guess (measured:
    # +1.2 dB one frame from the key); the positional *guide* gets the filled version.
    coordinates = key_coordinates
    visibility = np.ones((height, width), np.float32)
    previous_output = key_style
    keep_correspondence = options.blend_mode == "reconstruction"
    result = ChainResult()
    if keep_correspondence:
        result.key_energies = (ebsynth_bridge.gradient_energy(key_style), ebsynth_bridge.gradient_energy(key_frame))
    for step, (frame, (flow, occlusion)) in enumerate(zip(frames[1:], step_flows), start=1):
        coordinates = ebsynth_bridge.advect_coordinates(coordinates, flow)
        visibility = ebsynth_bridge.carry_visibility(visibility, flow, occlusion)
        guides = [
            Guide(key_frame, frame, options.color_guide_weight),
            Guide(key_edges, ebsynth_bridge.edge_guide(frame), options.edge_guide_weight),
        ]
        if options.position_guide_weight > 0:
            filled = ebsynth_bridge.fill_occluded(coordinates, occlusion)
            guides.append(
                Guide(
                    key_positions,
                    ebsynth_bridge.positional_guide(filled, (height, width)),
                    options.position_guide_weight,
                )
            )
        if options.temporal_guide_weight > 0:
            warped = ebsynth_bridge.warp(previous_output, flow, nearest=True).astype(np.float32) / np.float32(255.0)
            guides.append(
                Guide(key_style_float, ebsynth_bridge.fill_occluded(warped, occlusion), options.temporal_guide_weight)
            )
        synthesis = ebsynth_bridge.synthesize(
            key_style,
            guides,
            style_weight=options.style_weight,
            patch_size=options.patch_size,
            pyramid_levels=options.pyramid_levels,
            search_vote_iterations=options.search_vote_iterations,
            patchmatch_iterations=options.patchmatch_iterations,
            uniformity=options.uniformity,
            stop_threshold=options.stop_threshold,
            random_search_radius=options.random_search_radius,
            vote_mode=options.vote_mode,
            initial_nnf=ebsynth_bridge.coordinates_to_nnf(coordinates, (height, width)),
            seed=options.seed + step,
        )
        image = synthesis.image
        if options.vote_size != options.patch_size:
            image = ebsynth_bridge.vote(key_style, synthesis.nnf, patch_size=options.vote_size)
        if options.flow_render:
            image = ebsynth_bridge.flow_render(
                key_style, image, synthesis.nnf, coordinates, interpolation=options.flow_render
            )
        if keep_correspondence:
            # the key's source frame drawn exactly as the style was: how well this pass explains the frame
            vote_error = synthesis.error if options.vote_mode == "weighted" else None
            reconstruction = ebsynth_bridge.vote(
                key_frame, synthesis.nnf, patch_size=options.vote_size, error=vote_error
            )
            if options.flow_render:
                reconstruction = ebsynth_bridge.flow_render(
                    key_frame, reconstruction, synthesis.nnf, coordinates, interpolation=options.flow_render
                )
            result.reconstruction_errors.append(_absolute_error(reconstruction, frame))
            result.frame_energies.append(ebsynth_bridge.gradient_energy(frame))
            map_x, map_y = coordinates[..., 0].astype(np.float32), coordinates[..., 1].astype(np.float32)
            result.warps.append(cv2.remap(key_style, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            result.warp_errors.append(
                _absolute_error(
                    cv2.remap(key_frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), frame
                )
            )
        previous_output = image
        result.images.append(image)
        result.errors.append(synthesis.error)
        result.visibilities.append(visibility)
        if step_callback is not None:
            step_callback()
    return result


def _absolute_error(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``Σ_channels |image − reference|`` on the 0–255 scale. Shape: (H, W, C) × 2 -> (H, W) float32."""
    return np.abs(image.astype(np.float32) - reference.astype(np.float32)).sum(axis=2)


#: A key interval's (forward pass, backward pass); one of them is None before the first / after the last key.
_Segment = tuple["_Chain | None", "_Chain | None"]


def _plan_segments(key_indices: list[int], frame_count: int) -> list[_Segment]:
    segments: list[_Segment] = []
    first, last = key_indices[0], key_indices[-1]
    if first > 0:
        segments.append((None, _Chain(first, -1, tuple(range(first, -1, -1)))))
    for left, right in zip(key_indices, key_indices[1:]):
        if right - left >= 2:
            segments.append(
                (_Chain(left, +1, tuple(range(left, right))), _Chain(right, -1, tuple(range(right, left, -1))))
            )
    if last < frame_count - 1:
        segments.append((_Chain(last, +1, tuple(range(last, frame_count))), None))
    return segments
