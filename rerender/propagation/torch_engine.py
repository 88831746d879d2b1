"""The torch engine: one propagation pass (:func:`propagate_chain_torch`) and the reconstruction blend
(:func:`reconstruction_blend_torch`) on a torch device, CUDA or the CPU.

The same method as the numba engine (:func:`rerender.propagation.chain.propagate_chain`,
:func:`ebsynth_bridge.synthesize`, :func:`ebsynth_bridge.match_sharpness`), built for a GPU:

* the guides of every step are built on the host by the numpy functions of :mod:`ebsynth_bridge` (flow
  composition, occlusion fill, edge and positional guides: cheap, and the definitions stay in one place);
* when no guide depends on the previous output (``temporal_guide_weight = 0``, every preset but "rerender")
  the frames of a pass are synthesised together, as many per batch as ``chunk_pixels`` allows;
* the patch search is data-parallel (:mod:`rerender.propagation.torch_ops`): every pixel tries its four
  neighbours' matches, shifted, at distances 8, 4, 2, 1 in every iteration (jump flooding, `JUMPS`), then
  random candidates at halving radii, all pixels at once, each candidate field scored by one
  gather of the matched source patches in blocks of at most ``chunk_pixels`` pixels;
* random numbers come from a counter hash of (seed, frame step, level, iteration, pixel), so the output does
  not depend on the batch or chunk sizes and is the same on every run on a given device.

Frames go in and out as numpy: each batch's results are copied back to the host, so the device holds one
batch at a time whatever the interval's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import ebsynth_bridge
from ebsynth_bridge.synthesis import _level_shape, _mix_seed, _per_level, max_pyramid_levels
from rerender.propagation import torch_ops as ops
from rerender.propagation.chain import ChainResult
from rerender.propagation.options import PropagationOptions

#: Propagation distances of every data-parallel PatchMatch iteration, largest first (jump flooding): a good match
#: travels up to 15 pixels in one iteration, where the scan-order sweep of the numba engine carries it along a
#: whole row. With (4, 2, 1) in a round's first iteration and 1 after it, the torch engine fell 0.15–0.22 dB behind
#: numba on the suite's fast-moving clips (antoni, boxer, dog); with these it matches numba there (antoni
#: watercolour: 27.53 dB both). The numba sweep took the idea in turn (``ebsynth_bridge.patchmatch.PROPAGATION_JUMPS``).
JUMPS = (8, 4, 2, 1)


def propagate_chain_torch(
    frames: Sequence[np.ndarray],
    key_style: np.ndarray,
    step_flows: Sequence[tuple[np.ndarray, np.ndarray]],
    options: PropagationOptions,
    step_callback: Callable[[], None] | None = None,
    *,
    device: str | torch.device = "cpu",
) -> ChainResult:
    """:func:`rerender.propagation.chain.propagate_chain` on a torch ``device``: same arguments, same result.

    Shape: frames n × (H, W, 3) uint8, step_flows (n − 1) × ((H, W, 2), (H, W)) -> n − 1 images.
    """
    device = torch.device(device)
    height, width = key_style.shape[:2]
    key_frame = frames[0]
    pass_state = _PassState(key_frame, key_style, options, device)
    sequential = options.temporal_guide_weight > 0  # each step needs the previous output
    batch_size = 1 if sequential else max(1, options.chunk_pixels // (height * width))
    result = ChainResult()
    keep_correspondence = options.blend_mode == "reconstruction"
    if keep_correspondence:
        result.key_energies = (ebsynth_bridge.gradient_energy(key_style), ebsynth_bridge.gradient_energy(key_frame))
    steps = list(zip(frames[1:], step_flows))
    for batch in ops.batches(len(steps), batch_size):
        guides, coordinates = [], []
        for index in batch:
            frame, (flow, occlusion) = steps[index]
            previous = result.images[-1] if result.images else key_style
            guide, coordinate, visibility = pass_state.advance(frame, flow, occlusion, previous)
            guides.append(guide)
            coordinates.append(coordinate)
            result.visibilities.append(visibility)
        seeds = [options.seed + index + 1 for index in batch]
        with torch.no_grad():
            outputs = _render_batch(
                pass_state,
                [steps[index][0] for index in batch],
                np.stack(guides),
                np.stack(coordinates),
                seeds,
                keep_correspondence,
            )
        for name, values in outputs.items():
            getattr(result, name).extend(values)
        for _ in batch:
            if step_callback is not None:
                step_callback()
    return result


class _PassState:
    """What a pass carries from step to step on the host: the keyframe coordinates composed along the flow and
    their visibility, and the source side of the guides (ebsynth.md §3.3)."""

    def __init__(
        self, key_frame: np.ndarray, key_style: np.ndarray, options: PropagationOptions, device: torch.device
    ) -> None:
        height, width = key_style.shape[:2]
        self.options, self.device, self.shape = options, device, (height, width)
        self.coordinates = ebsynth_bridge.identity_coordinates(height, width)
        self.visibility = np.ones((height, width), np.float32)
        key_positions = ebsynth_bridge.positional_guide(self.coordinates, (height, width))
        source = self._features(
            key_frame,
            ebsynth_bridge.edge_guide(key_frame),
            key_positions,
            key_style.astype(np.float32) / np.float32(255.0),
        )
        self.source_guides = torch.from_numpy(source).to(device)
        self.style = torch.from_numpy(key_style.astype(np.float32)).to(device)
        self.key_frame = torch.from_numpy(key_frame.astype(np.float32)).to(device)

    def _features(
        self, colour: np.ndarray, edges: np.ndarray, positions: np.ndarray | None, temporal: np.ndarray | None
    ) -> np.ndarray:
        """The guides stacked on EbSynth's 0–255 scale, each channel times ``sqrt(weight / channels)``
        (:func:`ebsynth_bridge.synthesis._weighted_stack`); weight-0 guides left out."""
        options = self.options
        parts = [
            (colour.astype(np.float32), options.color_guide_weight),
            (edges * np.float32(255.0), options.edge_guide_weight),
        ]
        if options.position_guide_weight > 0:
            parts.append((positions * np.float32(255.0), options.position_guide_weight))
        if options.temporal_guide_weight > 0:
            parts.append((temporal * np.float32(255.0), options.temporal_guide_weight))
        return np.concatenate(
            [image * np.float32(math.sqrt(weight / image.shape[2])) for image, weight in parts if weight > 0], axis=2
        )

    def advance(
        self, frame: np.ndarray, flow: np.ndarray, occlusion: np.ndarray, previous_output: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step further: the target guides, the keyframe coordinates and the visibility of ``frame``."""
        self.coordinates = ebsynth_bridge.advect_coordinates(self.coordinates, flow)
        self.visibility = ebsynth_bridge.carry_visibility(self.visibility, flow, occlusion)
        positions = temporal = None
        if self.options.position_guide_weight > 0:
            filled = ebsynth_bridge.fill_occluded(self.coordinates, occlusion)
            positions = ebsynth_bridge.positional_guide(filled, self.shape)
        if self.options.temporal_guide_weight > 0:
            warped = ebsynth_bridge.warp(previous_output, flow, nearest=True).astype(np.float32) / np.float32(255.0)
            temporal = ebsynth_bridge.fill_occluded(warped, occlusion)
        guides = self._features(frame, ebsynth_bridge.edge_guide(frame), positions, temporal)
        return guides, self.coordinates, self.visibility


def _render_batch(
    state: _PassState,
    frames: list[np.ndarray],
    guides: np.ndarray,
    coordinates: np.ndarray,
    seeds: list[int],
    keep_correspondence: bool,
) -> dict[str, list]:
    """Synthesise a batch of steps and everything the blends need of them, back on the host.

    Shape: frames B × (H, W, 3), guides (B, H, W, Cg), coordinates (B, H, W, 2) -> lists of B numpy arrays.
    """
    options, device = state.options, state.device
    height, width = state.shape
    coordinates_t = torch.from_numpy(coordinates).to(device)
    initial = torch.stack(
        [coordinates_t[..., 0].round().clamp(0, width - 1), coordinates_t[..., 1].round().clamp(0, height - 1)], dim=-1
    ).long()
    image, error, nnf = synthesize(
        state.style, state.source_guides, torch.from_numpy(guides).to(device), initial, options, seeds
    )
    image = ops.to_uint8(image).float()
    if options.vote_size != options.patch_size:
        image = ops.to_uint8(ops.vote(state.style, nnf, options.vote_size, chunk_pixels=options.chunk_pixels)).float()
    if options.flow_render:
        image = ops.flow_render(state.style, image, nnf, coordinates_t, options.flow_render)
    outputs: dict[str, list] = {"images": _to_host(ops.to_uint8(image)), "errors": _to_host(error)}
    if keep_correspondence:
        frames_t = torch.from_numpy(np.stack(frames)).to(device).float()
        weighted = options.vote_mode == "weighted"
        reconstruction = ops.to_uint8(
            ops.vote(
                state.key_frame,
                nnf,
                options.vote_size,
                error if weighted else None,
                options.vote_size**2 * 3.0 if weighted else 0.0,
                options.chunk_pixels,
            )
        ).float()
        if options.flow_render:
            reconstruction = ops.flow_render(state.key_frame, reconstruction, nnf, coordinates_t, options.flow_render)
        batch = len(frames)
        outputs["reconstruction_errors"] = _to_host(ops.absolute_error(reconstruction, frames_t))
        outputs["frame_energies"] = [float(value) for value in ops.gradient_energy(frames_t).cpu()]
        warps = ops.to_uint8(ops.remap(state.style[None].expand(batch, -1, -1, -1), coordinates_t, "bilinear"))
        key_warps = ops.to_uint8(ops.remap(state.key_frame[None].expand(batch, -1, -1, -1), coordinates_t, "bilinear"))
        outputs["warps"] = _to_host(warps)
        outputs["warp_errors"] = _to_host(ops.absolute_error(key_warps, frames_t))
    return outputs


def _to_host(batch: torch.Tensor) -> list[np.ndarray]:
    return list(batch.cpu().numpy())


def synthesize(
    style: torch.Tensor,
    source_guides: torch.Tensor,
    target_guides: torch.Tensor,
    initial_nnf: torch.Tensor,
    options: PropagationOptions,
    seeds: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`ebsynth_bridge.synthesize` for a batch of targets sharing one style and source: the pyramid, each
    level started from the initial field (downscaled) with the upscaled coarser field as a per-pixel candidate,
    then the search-vote rounds of :func:`_synthesize_level`.

    Args:
        style: (Hs, Ws, 3) float32, 0–255. source_guides: (Hs, Ws, Cg) weighted guide features.
        target_guides: (B, Ht, Wt, Cg). initial_nnf: (B, Ht, Wt, 2) int64 (x, y) at full size.
        options: the propagation options (patch size, pyramid, iterations, uniformity, …).
        seeds: per frame, the seed (``options.seed + step``, as the numba engine).

    Returns:
        ``(image, error, nnf)``: (B, Ht, Wt, 3) float32 0–255 (not rounded), (B, Ht, Wt), (B, Ht, Wt, 2).
    """
    patch_size = options.patch_size
    source_shape, target_shape = tuple(style.shape[:2]), tuple(target_guides.shape[1:3])
    level_count = max_pyramid_levels(source_shape, target_shape, patch_size)
    if options.pyramid_levels is not None:
        level_count = min(level_count, options.pyramid_levels)
    search_votes = _per_level("search_vote_iterations", options.search_vote_iterations, level_count)
    sweeps = _per_level("patchmatch_iterations", options.patchmatch_iterations, level_count)
    nnf = candidate = None
    previous_source_shape = source_shape
    for level in range(level_count):
        downscale = 2.0 ** (level_count - 1 - level)
        level_source_shape = _level_shape(source_shape, downscale)
        level_target_shape = _level_shape(target_shape, downscale)
        level_initial = _rescale_nnf(initial_nnf, source_shape, level_target_shape, level_source_shape)
        if nnf is None:
            nnf, candidate = level_initial, None
        else:
            candidate = _upscale_nnf(nnf, previous_source_shape, level_target_shape, level_source_shape)
            nnf = level_initial
        previous_source_shape = level_source_shape
        level_seeds = [_mix_seed(seed, level) for seed in seeds]
        nnf, error, image = _synthesize_level(
            _area(style, level_source_shape),
            _area(source_guides, level_source_shape),
            _area(target_guides, level_target_shape),
            nnf,
            candidate,
            options,
            search_votes[level],
            sweeps[level],
            level_seeds,
        )
    return image, error, nnf


def _synthesize_level(
    style: torch.Tensor,
    source_guides: torch.Tensor,
    target_guides: torch.Tensor,
    nnf: torch.Tensor,
    candidate: torch.Tensor | None,
    options: PropagationOptions,
    search_votes: int,
    sweeps: int,
    seeds: list[int],
) -> tuple:
    """One pyramid level: :func:`ebsynth_bridge.synthesis._synthesize_level` for a batch (ebsynth.md §1.4).

    With ``style_weight = 0`` the energy does not depend on the vote: the rounds are PatchMatch iterations and
    one final vote. Otherwise the current style estimate is a feature too, re-voted after every round, and
    pixels whose style changed less than ``stop_threshold`` (dilated by the patch) stop searching.
    """
    patch_size, radius = options.patch_size, options.patch_size // 2
    source_height, source_width = style.shape[:2]
    batch, target_height, target_width = target_guides.shape[:3]
    style_scale = math.sqrt(options.style_weight / 3) if options.style_weight > 0 else None
    error_scale = float(patch_size * patch_size * 3) if options.vote_mode == "weighted" else 0.0
    max_radius = (
        max(source_height, source_width) if options.random_search_radius is None else options.random_search_radius
    )
    coverage_ratio = (target_height * target_width) / (source_height * source_width)

    def features(target_style: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if style_scale is None:
            return source_guides, target_guides
        return (
            torch.cat([style * style_scale, source_guides], dim=-1),
            torch.cat([target_style * style_scale, target_guides], dim=-1),
        )

    target_style = ops.vote(style, nnf, patch_size, chunk_pixels=options.chunk_pixels)
    source, target = features(target_style)
    space = ops.PatchSpace(source, target, patch_size, options.chunk_pixels)
    search = ops.Search(space, nnf, options.uniformity, coverage_ratio)
    if candidate is not None:
        search.snapshot_occupancy()
        search.consider(candidate)
        if style_scale is not None:
            target_style = ops.vote(style, search.nnf, patch_size, search.error, error_scale, options.chunk_pixels)
            space.set_target(features(target_style)[1])
            search.error = space.distance(search.nnf)
    # every sweep's per-frame seeds in one copy to the device (one copy per sweep would wait for the GPU each time)
    all_seeds = torch.tensor(
        [
            [[_mix_seed(seed, round_index * 1000 + sweep) for seed in seeds] for sweep in range(sweeps)]
            for round_index in range(search_votes)
        ],
        dtype=torch.int64,
    ).to(nnf.device)
    for round_index in range(search_votes):
        for sweep in range(sweeps):
            search.sweep(max_radius, JUMPS, all_seeds[round_index, sweep])
        if style_scale is None:
            continue
        new_style = ops.vote(style, search.nnf, patch_size, search.error, error_scale, options.chunk_pixels)
        converged = False
        if options.stop_threshold is not None:
            changed = ((new_style - target_style).abs().amax(-1) >= options.stop_threshold).float()
            converged = not bool(changed.any())
            search.active = F.max_pool2d(changed[:, None], patch_size, stride=1, padding=radius)[:, 0] > 0
        target_style = new_style
        space.set_target(features(target_style)[1])
        search.error = space.distance(search.nnf)
        if converged:
            break
    if style_scale is None:
        target_style = ops.vote(style, search.nnf, patch_size, search.error, error_scale, options.chunk_pixels)
    return search.nnf, search.error, target_style


def _area(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Area-averaged resize of channels-last ``(…, H, W, C)`` (the anti-aliased pyramid of the numba engine)."""
    if tuple(image.shape[-3:-1]) == tuple(shape):
        return image
    batched = image if image.ndim == 4 else image[None]
    resized = F.interpolate(batched.permute(0, 3, 1, 2), size=shape, mode="area").permute(0, 2, 3, 1)
    return resized if image.ndim == 4 else resized[0]


def _rescale_nnf(
    nnf: torch.Tensor, full_source_shape: tuple[int, int], target_shape: tuple[int, int], source_shape: tuple[int, int]
) -> torch.Tensor:
    """:func:`ebsynth_bridge.synthesis._rescale_nnf`: the full-size field at a level's pixel centres, rescaled."""
    full_height, full_width = nnf.shape[1:3]
    if (full_height, full_width) == tuple(target_shape) and tuple(full_source_shape) == tuple(source_shape):
        return nnf
    device = nnf.device

    def centres(count: int, full: int) -> torch.Tensor:
        positions = (torch.arange(count, device=device, dtype=torch.float64) + 0.5) * full / count
        return positions.long().clamp(0, full - 1)

    sampled = nnf[:, centres(target_shape[0], full_height)][:, :, centres(target_shape[1], full_width)].double()
    x = torch.round((sampled[..., 0] + 0.5) * source_shape[1] / full_source_shape[1] - 0.5)
    y = torch.round((sampled[..., 1] + 0.5) * source_shape[0] / full_source_shape[0] - 0.5)
    return torch.stack([x.clamp(0, source_shape[1] - 1), y.clamp(0, source_shape[0] - 1)], dim=-1).long()


def _upscale_nnf(
    nnf: torch.Tensor,
    coarse_source_shape: tuple[int, int],
    target_shape: tuple[int, int],
    source_shape: tuple[int, int],
) -> torch.Tensor:
    """:func:`ebsynth_bridge.synthesis._upscale_nnf`: each fine pixel keeps its offset inside the coarse pixel."""
    coarse_height, coarse_width = nnf.shape[1:3]
    device = nnf.device
    coarse_y = (torch.arange(target_shape[0], device=device, dtype=torch.float64) + 0.5) * (
        coarse_height / target_shape[0]
    ) - 0.5
    coarse_x = (torch.arange(target_shape[1], device=device, dtype=torch.float64) + 0.5) * (
        coarse_width / target_shape[1]
    ) - 0.5
    index_y = torch.floor(coarse_y + 0.5).long().clamp(0, coarse_height - 1)
    index_x = torch.floor(coarse_x + 0.5).long().clamp(0, coarse_width - 1)
    picked = nnf[:, index_y][:, :, index_x].double()
    source_x = picked[..., 0] + (coarse_x - index_x)[None, None, :]
    source_y = picked[..., 1] + (coarse_y - index_y)[None, :, None]
    fine_x = torch.round((source_x + 0.5) * (source_shape[1] / coarse_source_shape[1]) - 0.5)
    fine_y = torch.round((source_y + 0.5) * (source_shape[0] / coarse_source_shape[0]) - 0.5)
    return torch.stack([fine_x.clamp(0, source_shape[1] - 1), fine_y.clamp(0, source_shape[0] - 1)], dim=-1).long()


def reconstruction_blend_torch(
    left: int,
    right: int,
    forward: ChainResult,
    backward: ChainResult,
    options: PropagationOptions,
    device: str | torch.device,
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`rerender.propagation.blend._reconstruction_blend` on a torch ``device``, one frame at a time.

    The candidates, errors and temporal weights are the numba blend's (`blend.reconstruction_candidates`),
    weighted by :func:`torch_ops.reconstruction_weights`; then the detail restore of
    :func:`torch_ops.match_sharpness` towards `blend.sharpness_target`.
    """
    from rerender.propagation.blend import reconstruction_candidates, sharpness_target

    device = torch.device(device)
    for offset, index, candidates, errors, times in reconstruction_candidates(left, right, forward, backward, options):
        with torch.no_grad():
            candidates_t = torch.from_numpy(np.stack(candidates)).to(device).float()
            weights = ops.reconstruction_weights(torch.from_numpy(np.stack(errors)).to(device), times)
            blended = (weights[..., None] * candidates_t).sum(0)
            if options.blend_sharpness is not None:
                target = sharpness_target(options, forward, backward, offset, float(weights[1::2].sum(0).mean()))
                blended = ops.match_sharpness(blended, candidates_t, weights, target)
            yield index, ops.to_uint8(blended).cpu().numpy()
