"""Keyframe propagation: carry the look of stylised keyframes to every other frame of a video.

The video glue around :mod:`ebsynth_bridge` (Rerender-A-Video §3.3 / ebsynth.md §3):

1. optical flow between consecutive frames, both directions, and its occlusion mask;
2. for every interval between consecutive keyframes, a *forward* pass from the left key and a
   *backward* pass from the right key. Each step synthesises the next frame with guides — colour (the
   source frames), edges, position (keyframe coordinates carried along the flow, occluded pixels
   filled) and temporal coherence (the previous output warped) — starting PatchMatch from the keyframe
   coordinates carried along the flow, so most pixels start at their answer;
3. temporal-aware blending of the two passes: error-guided selection with temporally coherent masks,
   then an agreement-aware cross-fade (default), Rerender's histogram-preserving blend, or that plus a
   gradient-domain (Poisson) blend.

Frames before the first key (after the last key) get only a backward (forward) pass. Passes are
independent, so they run in a thread pool in the calling process (no process start-up, no
``if __name__ == "__main__"`` guard needed), a few key intervals at a time: with one worker the pass runs
in the calling thread on numba's parallel kernels over all cores; with several, each thread runs the
serial ``nogil`` kernels (:func:`ebsynth_bridge.patchmatch.serial_kernels`), which give identical results.
:func:`propagate_video_iter` streams the frames out in order, holding a few intervals at a time.

Frames are RGB uint8 ``(H, W, 3)`` at this API. Flows follow :mod:`ebsynth_bridge.guides`: ``(H, W, 2)``
float32 pixel displacements, x first.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import difflib
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import cv2
import numpy as np
from tqdm.auto import tqdm

import ebsynth_bridge
from ebsynth_bridge import Guide
from ebsynth_bridge.patchmatch import serial_kernels
from ebsynth_bridge.synthesis import VOTE_MODES

logger = logging.getLogger(__name__)

#: ``flow(source_rgb, target_rgb) -> (forward, backward)``: forward maps source pixels into the target
#: (``source(p) ≈ target(p + forward(p))``), backward the other way; both (H, W, 2) float32.
FlowFunction = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]

#: Changes whenever the same options would propagate different frames (an algorithm or a default changed);
#: a workspace's propagated frames from another engine version are redone, not reused.
ENGINE_VERSION = "2"

BLEND_MODES = ("reconstruction", "agreement", "histogram", "poisson", "select", "linear")
QUALITY_PRESETS = ("fast", "balanced", "best", "rerender")


@dataclass(frozen=True)
class PropagationOptions:
    """How keyframes are propagated. The defaults are the "balanced" preset.

    Guide weights are relative to each other (only their ratios and the uniformity weight against them
    matter) and, as in EbSynth, split evenly over each guide's channels. Rerender-A-Video uses colour 6,
    edge 0.5, temporal 0.5, position 2 and style 1 (``PropagationOptions.preset("rerender")``); our
    defaults keep colour and edge and turn the others down, because our search starts from the optical
    flow's answer: the positional pull then only holds on to flow errors, and the style and temporal terms
    pull each frame towards the previous one's drift. On the propagation benchmark (cottonbro 512 px,
    step 2, forward pass only) that moves PSNR from 24.1 to 25.4 dB and SSIM from 0.865 to 0.885 at the
    same sharpness, 2.4× faster (flicker rises from 1.5 to 1.8, below the ground truth's 1.9).

    The two passes of an interval then merge by the ``"reconstruction"`` blend (``blend_mode``): chosen on
    ``../shared/bench/propagation_suite.py`` (6 clips × 3 styles, worst case against flow warping), where
    it is the only setting we measured that meets every target at once (see the README's Propagation).
    """

    colour_weight: float = 6.0
    """Weight of the colour guide: the keyframe's source frame against the current frame (RGB)."""
    edge_weight: float = 0.5
    """Weight of the edge guide: the 3×3 Laplacian of the luminance of both frames."""
    position_weight: float = 0.05
    """Weight of the positional guide: keyframe coordinates carried along the flow, occlusions filled
    (Rerender: 2)."""
    temporal_weight: float = 0.0
    """Weight of the temporal guide: the stylised keyframe against the previous output warped to this
    frame (Rerender: 0.5; 0 skips building it)."""
    style_weight: float = 0.0
    """Weight of the style term, the current estimate against the stylised keyframe (EbSynth: 1). With 0
    the search matches on the guides only and each level needs a single search-vote round."""
    patch_size: int = 5
    """Patch side in pixels (odd, ≥ 3)."""
    vote_size: int = 5
    """Footprint in pixels of the final vote that renders each frame (odd, ≤ ``patch_size``): every pixel
    averages the matches of the patches centred within it. Smaller is sharper and noisier. With the
    reconstruction blend, which restores the detail a vote averages away, 5 (= ``patch_size``, the
    search's own vote) measures best: against 3, +0.0004 SSIM in the suite's worst case."""
    pyramid_levels: int | None = 3
    """Pyramid levels per frame (each halves the size); ``None`` = as many as fit (EbSynth). Every frame
    starts from the flow-carried field, so a shallow pyramid is enough; coarse levels catch what the flow
    misses (a hand entering)."""
    search_vote_iterations: int | tuple[int, ...] = 1
    """PatchMatch-then-vote rounds per level: one number, or one per level, coarsest first."""
    patchmatch_iterations: int = 4
    """PatchMatch sweeps per search-vote round (alternating scan direction)."""
    uniformity: float = 50.0
    """Weight of EbSynth's uniformity (occupancy) term, in EbSynth's units against the weights above
    (EbSynth: 3500 with a style weight of 1); 0 = off."""
    stop_threshold: float | None = 5.0
    """A pixel whose style changed less than this (0–255 scale) in a vote skips the next PatchMatch
    (EbSynth's, used only with a style term); ``None`` = never skip."""
    random_search_radius: int | None = 8
    """Largest random-search step in pixels at each level (``None`` = the whole image, as EbSynth)."""
    vote_mode: str = "plain"
    """``"plain"`` or ``"weighted"`` voting inside the search (see :func:`ebsynth_bridge.synthesize`)."""
    flow_render: str | None = "cubic"
    """Where the search kept the flow's answer (its match within a pixel of the keyframe coordinates carried
    along the flow), draw the keyframe at those sub-pixel coordinates (``"linear"`` or ``"cubic"``
    interpolation) instead of the pixel-snapped patch vote; the vote stays where the search moved away
    (:func:`ebsynth_bridge.flow_render`). ``None`` = the vote everywhere (EbSynth)."""
    blend_mode: str = "reconstruction"
    """How the forward and backward passes of a key interval merge (:mod:`ebsynth_bridge.blending`):
    ``"reconstruction"`` (ours, the default: per pixel, each pass and each keyframe warped along the flow
    weigh by how well the same correspondence reconstructs the current *source* frame, then the average
    gets back the detail averaging lost, up to ``blend_sharpness`` of the keyframes' — the best PSNR and
    SSIM on the suite at the keyframes' sharpness), ``"agreement"`` (cross-fade where they agree in
    structure, the error-selected side where their edges differ), ``"histogram"`` (Rerender: the
    histogram-preserving cross-fade restyled to the error-selected image), ``"poisson"`` (that, then
    gradient-domain fusion with the selected side's gradients — Rerender's ``-ps``), ``"select"`` (the
    error-selected image) or ``"linear"`` (plain cross-fade)."""
    blend_warp_weight: float = 1.0
    """``"reconstruction"`` blend: weight of the two keyframes warped along the flow (bilinear), as
    candidates beside the two passes, against the passes' 1; 0 = the passes only. Where the flow is right
    they are the least noisy estimate; where it is wrong their reconstruction says so."""
    blend_sharpness: float | None = 0.95
    """``"reconstruction"`` blend: restore each blended frame's detail until its gradient energy is this
    share of the keyframes' (interpolated in time; :func:`ebsynth_bridge.match_sharpness`); ``None`` =
    leave the average as it is (softer, and by a hair the best PSNR)."""
    blend_tolerance: float = 110.0
    """``"agreement"`` blend: difference of the two passes' gradient magnitudes (3×3 Sobel of the
    luminance, 0–255 scale) from which the selected side wins outright; lower is sharper, higher
    averages more (see :func:`ebsynth_bridge.agreement_blend`)."""
    blend_measure: str = "magnitude"
    """``"agreement"`` blend: where the passes disagree, ``"magnitude"`` (their gradient magnitudes differ)
    or ``"difference"`` (the gradient of their difference: also unaligned textures of equal contrast)."""
    blend_smoothing: float = 2.0
    """``"agreement"`` blend: Gaussian sigma in pixels applied to that difference."""
    blend_visibility: bool = True
    """Weigh each pass by how much of each pixel it can trace back to its keyframe along the flow (regions
    revealed since a key come from the other pass; :func:`ebsynth_bridge.confidence_weight`), in the
    selection and in the cross-fade; False = time alone."""
    blend_error_power: float = 0.0
    """How strongly each pass's per-pixel patch error steers the cross-fade weight (0 = not at all; see
    :func:`ebsynth_bridge.confidence_weight`)."""
    poisson_gradient_weights: tuple[float, float, float] = (2.5, 0.5, 0.5)
    """``"poisson"`` blend: gradient weights for (L, a, b), Rerender's values."""
    workers: int | None = None
    """Passes run at once, in threads of the calling process; ``None`` = one per CPU core (at most one
    per pass), 1 = one pass at a time in the calling thread, on numba's parallel kernels over all cores.
    The output does not depend on it."""
    seed: int = 0
    """Seed of the random search; equal inputs and seed give equal outputs, whatever the worker count."""

    def __post_init__(self) -> None:
        for name in ("colour_weight", "edge_weight", "temporal_weight", "position_weight", "style_weight",
                     "uniformity"):
            value = getattr(self, name)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (is_number and np.isfinite(value) and value >= 0):
                raise ValueError(f"`{name}` must be a finite number ≥ 0, got {value!r}")
        if self.colour_weight + self.edge_weight + self.temporal_weight + self.position_weight + self.style_weight == 0:
            raise ValueError("all guide and style weights are 0; at least one must be > 0")
        if not isinstance(self.patch_size, int) or self.patch_size < 3 or self.patch_size % 2 == 0:
            raise ValueError(f"`patch_size` must be an odd integer ≥ 3, got {self.patch_size!r}")
        if (not isinstance(self.vote_size, int) or self.vote_size < 1 or self.vote_size % 2 == 0
                or self.vote_size > self.patch_size):
            raise ValueError(f"`vote_size` must be an odd integer in [1, patch_size={self.patch_size}], "
                             f"got {self.vote_size!r}")
        if self.pyramid_levels is not None and (not isinstance(self.pyramid_levels, int) or self.pyramid_levels < 1):
            raise ValueError(f"`pyramid_levels` must be an integer ≥ 1 or None (as many as fit), "
                             f"got {self.pyramid_levels!r}")
        iterations = self.search_vote_iterations
        if isinstance(iterations, int):
            if iterations < 0:
                raise ValueError(f"`search_vote_iterations` must be ≥ 0, got {iterations!r}")
        elif (not isinstance(iterations, (tuple, list)) or len(iterations) == 0
              or any(not isinstance(item, int) or item < 0 for item in iterations)):
            raise ValueError(f"`search_vote_iterations` must be an integer ≥ 0 or one per level (coarsest "
                             f"first), got {iterations!r}")
        else:
            object.__setattr__(self, "search_vote_iterations", tuple(iterations))
        if not isinstance(self.patchmatch_iterations, int) or self.patchmatch_iterations < 0:
            raise ValueError(f"`patchmatch_iterations` must be an integer ≥ 0, got {self.patchmatch_iterations!r}")
        if self.stop_threshold is not None and not self.stop_threshold >= 0:
            raise ValueError(f"`stop_threshold` must be ≥ 0 or None, got {self.stop_threshold!r}")
        if self.random_search_radius is not None and (not isinstance(self.random_search_radius, int)
                                                      or self.random_search_radius < 1):
            raise ValueError(f"`random_search_radius` must be an integer ≥ 1 or None, "
                             f"got {self.random_search_radius!r}")
        if self.vote_mode not in VOTE_MODES:
            raise ValueError(f"`vote_mode` must be one of {VOTE_MODES}, got {self.vote_mode!r}")
        if self.flow_render not in (None, "linear", "cubic"):
            raise ValueError(f"`flow_render` must be None, 'linear' or 'cubic', got {self.flow_render!r}")
        if self.blend_measure not in ("magnitude", "difference"):
            raise ValueError(f"`blend_measure` must be 'magnitude' or 'difference', got {self.blend_measure!r}")
        if self.blend_mode not in BLEND_MODES:
            raise ValueError(f"`blend_mode` must be one of {BLEND_MODES}, got {self.blend_mode!r}")
        if not (isinstance(self.blend_warp_weight, (int, float)) and np.isfinite(self.blend_warp_weight)
                and self.blend_warp_weight >= 0):
            raise ValueError(f"`blend_warp_weight` must be a finite number ≥ 0, got {self.blend_warp_weight!r}")
        if self.blend_sharpness is not None and not (isinstance(self.blend_sharpness, (int, float))
                                                     and 0 < self.blend_sharpness <= 2):
            raise ValueError(f"`blend_sharpness` must be None or a share of the keyframes' sharpness in (0, 2], "
                             f"got {self.blend_sharpness!r}")
        if not self.blend_tolerance > 0:
            raise ValueError(f"`blend_tolerance` must be > 0 (0–255 scale), got {self.blend_tolerance!r}")
        if not (isinstance(self.blend_error_power, (int, float)) and self.blend_error_power >= 0):
            raise ValueError(f"`blend_error_power` must be a number ≥ 0, got {self.blend_error_power!r}")
        if not self.blend_smoothing >= 0:
            raise ValueError(f"`blend_smoothing` must be ≥ 0 pixels, got {self.blend_smoothing!r}")
        if len(self.poisson_gradient_weights) != 3 or any(not w >= 0 for w in self.poisson_gradient_weights):
            raise ValueError(f"`poisson_gradient_weights` must be three numbers ≥ 0 for (L, a, b), "
                             f"got {self.poisson_gradient_weights!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"`workers` must be an integer ≥ 1 or None (one per core), got {self.workers!r}")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> "PropagationOptions":
        """Options of a named preset, with optional field overrides.

        Args:
            name: ``"fast"`` (previews: 0.57× the time, mean PSNR 0.3 dB lower on the propagation suite),
                ``"balanced"`` (the defaults), ``"best"`` (deeper search: 1.6× the time, mean PSNR 0.1 dB
                higher) or ``"rerender"`` (Rerender-A-Video's EbSynth settings and histogram blend, for
                comparison; about 10× slower).
            **overrides: any field of :class:`PropagationOptions`.

        Raises:
            ValueError: unknown preset name or field (the message lists the valid ones).

        Example:
            >>> PropagationOptions.preset("fast", workers=1).patchmatch_iterations
            2
        """
        if name not in _PRESET_FIELDS:
            raise ValueError(f"unknown quality preset {name!r}; valid presets: {QUALITY_PRESETS}")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            suggestions = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
            raise ValueError(f"unknown PropagationOptions field(s) {unknown} (did you mean "
                             f"{[match[0] for match in suggestions.values() if match]}?); valid: {sorted(known)}")
        return cls(**{**_PRESET_FIELDS[name], **overrides})


_PRESET_FIELDS: dict[str, dict[str, object]] = {
    "fast": dict(pyramid_levels=2, patchmatch_iterations=2, random_search_radius=4),
    "balanced": {},
    "best": dict(pyramid_levels=4, patchmatch_iterations=6, random_search_radius=16),
    "rerender": dict(colour_weight=6.0, edge_weight=0.5, temporal_weight=0.5, position_weight=2.0, style_weight=1.0,
                     uniformity=3500.0, vote_size=5, pyramid_levels=None, search_vote_iterations=12,
                     patchmatch_iterations=6, random_search_radius=None, blend_mode="histogram",
                     blend_visibility=False, flow_render=None),
}


# --------------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------------


def propagate_video(
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    flow: FlowFunction | None = None,
    options: PropagationOptions | None = None,
    progress: bool = True,
    workers: int | None = None,
    callback: ProgressCallback | None = None,
) -> list[np.ndarray]:
    """Stylise every frame of a video from a few stylised keyframes.

    Holds every output frame; for long videos use :func:`propagate_video_iter`, which streams them.

    Args:
        frames: the source video, a sequence (list, ``(T, H, W, 3)`` array or any object with ``len`` and
            integer indexing) of RGB uint8 ``(H, W, 3)`` frames.
        keyframes: ``{frame index: stylised RGB uint8 (H, W, 3)}``, one or more, at any indices.
        flow: optical flow ``flow(source, target) -> (forward, backward)`` (see :data:`FlowFunction`), e.g.
            ``functools.partial(rerender.flow.estimate_flow_numpy, estimator)``; ``None`` = DIS (the
            ``"fine"`` preset) through :mod:`rerender.flow`. It is called in the calling thread, one frame
            pair at a time.
        options: :class:`PropagationOptions`; ``None`` = defaults.
        progress: show a tqdm progress bar (on stderr), one step per propagated frame.
        workers: passes run at once (threads); overrides ``options.workers`` when given.
        callback: ``callback("propagation", done, total)``, called in the calling thread as propagated
            frames finish (``total`` = frames that are not keyframes), whatever ``progress`` is.

    Returns:
        ``len(frames)`` RGB uint8 frames; keyframes are returned as given.

    Raises:
        ValueError: no keyframes, a key index outside the video, or frames/keyframes of the wrong shape or
            dtype (all checked before any flow or synthesis work).

    Shape:
        frames (T, H, W, 3) uint8, keyframes {t: (H, W, 3) uint8} -> T × (H, W, 3) uint8.

    Example:
        >>> import numpy as np
        >>> frames = [np.full((32, 32, 3), 10 * t, np.uint8) for t in range(3)]
        >>> out = propagate_video(frames, {0: np.full((32, 32, 3), 200, np.uint8)}, progress=False, workers=1)
        >>> len(out), out[2].dtype
        (3, dtype('uint8'))
    """
    output: list[np.ndarray | None] = [None] * len(frames)
    for index, image in propagate_video_iter(frames, keyframes, flow, options, progress, workers, callback):
        output[index] = image
    return output  # type: ignore[return-value]


def propagate_video_iter(
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    flow: FlowFunction | None = None,
    options: PropagationOptions | None = None,
    progress: bool = True,
    workers: int | None = None,
    callback: ProgressCallback | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """The streaming form of :func:`propagate_video`: yield ``(index, frame)`` for every frame, in order.

    Memory stays bounded whatever the video's length: frames are read from ``frames`` (and keyframes from
    ``keyframes``) when their key interval is due and dropped once yielded, and only
    ``max(1, workers // 2)`` key intervals (both passes of each) are in flight; with ``workers ≤ 3`` that is
    one interval. ``frames`` and ``keyframes`` may therefore be lazy (read from disk on access). Closing
    the iterator early (``break``, an exception) stops the passes after their current frame.

    Args:
        frames, keyframes, flow, options, progress, workers, callback: as :func:`propagate_video`.

    Yields:
        ``(index, frame)``: each frame index once, ascending, with its RGB uint8 ``(H, W, 3)`` frame;
        keyframes as given. All frames of a key interval are yielded once the interval is finished.

    Raises:
        ValueError: as :func:`propagate_video`, when iteration starts.

    Example:
        >>> import numpy as np
        >>> frames = [np.full((32, 32, 3), 10 * t, np.uint8) for t in range(4)]
        >>> keys = {0: np.full((32, 32, 3), 200, np.uint8), 3: np.full((32, 32, 3), 50, np.uint8)}
        >>> [index for index, frame in propagate_video_iter(frames, keys, progress=False, workers=1)]
        [0, 1, 2, 3]
    """
    options = options or PropagationOptions()
    if workers is not None:
        options = dataclasses.replace(options, workers=workers)
    key_indices = _check_video(frames, keyframes)
    segments = _plan_segments(key_indices, len(frames))
    chain_count = sum(chain is not None for segment in segments for chain in segment)
    logger.info("propagating %d keyframe(s) over %d frames: %d segment(s), %d pass(es)", len(key_indices),
                len(frames), len(segments), chain_count)
    pending_keys = collections.deque(key_indices)
    with _Progress(len(frames) - len(key_indices), progress, callback) as report:
        for segment, results, step_flows in _run_segments(frames, keyframes, segments, flow, options, report):
            # one segment at a time: its flows and syntheses are dropped once its frames are yielded
            for index, image in _merge_segment(segment, results, step_flows, options):
                while pending_keys and pending_keys[0] < index:
                    key = pending_keys.popleft()
                    yield key, np.array(keyframes[key], copy=True)
                yield index, image
            # the segment's closing key too, so that a consumer sees each interval complete at once
            last = max(chain.indices[0] if chain.direction < 0 else chain.indices[-1]
                       for chain in segment if chain is not None)
            while pending_keys and pending_keys[0] <= last:
                key = pending_keys.popleft()
                yield key, np.array(keyframes[key], copy=True)
        while pending_keys:
            key = pending_keys.popleft()
            yield key, np.array(keyframes[key], copy=True)


#: ``callback(stage, done, total)``, the progress callback of :func:`rerender.translate`.
ProgressCallback = Callable[[str, int, int], None]


class _Progress:
    """Per-frame progress of the calling thread: a tqdm bar (when enabled) and the callback.

    Counted in half frames: a synthesis of a one-sided pass finishes a frame, one of an interval's two
    passes half a frame.
    """

    def __init__(self, total: int, progress: bool, callback: ProgressCallback | None) -> None:
        self.total, self.callback, self.halves, self.done = total, callback, 0, 0
        self.bar = tqdm(total=total, desc="propagating", unit="frame", disable=not progress)

    def __call__(self, halves: int) -> None:
        self.halves += halves
        done = min(self.total, self.halves // 2)
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done
            if self.callback is not None:
                self.callback("propagation", done, self.total)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.bar.close()
        if exc_type is None and self.total == 0 and self.callback is not None:
            self.callback("propagation", 0, 0)  # nothing to propagate (every frame a keyframe): done


# --------------------------------------------------------------------------------------------------
# chains
# --------------------------------------------------------------------------------------------------


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
            Guide(key_frame, frame, options.colour_weight),
            Guide(key_edges, ebsynth_bridge.edge_guide(frame), options.edge_weight),
        ]
        if options.position_weight > 0:
            filled = ebsynth_bridge.fill_occluded(coordinates, occlusion)
            guides.append(Guide(key_positions, ebsynth_bridge.positional_guide(filled, (height, width)),
                                options.position_weight))
        if options.temporal_weight > 0:
            warped = ebsynth_bridge.warp(previous_output, flow, nearest=True).astype(np.float32) / np.float32(255.0)
            guides.append(Guide(key_style_float, ebsynth_bridge.fill_occluded(warped, occlusion),
                                options.temporal_weight))
        synthesis = ebsynth_bridge.synthesize(
            key_style, guides, style_weight=options.style_weight, patch_size=options.patch_size,
            pyramid_levels=options.pyramid_levels, search_vote_iterations=options.search_vote_iterations,
            patchmatch_iterations=options.patchmatch_iterations, uniformity=options.uniformity,
            stop_threshold=options.stop_threshold, random_search_radius=options.random_search_radius,
            vote_mode=options.vote_mode,
            initial_nnf=ebsynth_bridge.coordinates_to_nnf(coordinates, (height, width)),
            seed=options.seed + step,
        )
        image = synthesis.image
        if options.vote_size != options.patch_size:
            image = ebsynth_bridge.vote(key_style, synthesis.nnf, patch_size=options.vote_size)
        if options.flow_render:
            image = ebsynth_bridge.flow_render(key_style, image, synthesis.nnf, coordinates,
                                               interpolation=options.flow_render)
        if keep_correspondence:
            # the key's source frame drawn exactly as the style was: how well this pass explains the frame
            vote_error = synthesis.error if options.vote_mode == "weighted" else None
            reconstruction = ebsynth_bridge.vote(key_frame, synthesis.nnf, patch_size=options.vote_size,
                                                 error=vote_error)
            if options.flow_render:
                reconstruction = ebsynth_bridge.flow_render(key_frame, reconstruction, synthesis.nnf, coordinates,
                                                            interpolation=options.flow_render)
            result.reconstruction_errors.append(_absolute_error(reconstruction, frame))
            result.frame_energies.append(ebsynth_bridge.gradient_energy(frame))
            map_x, map_y = coordinates[..., 0].astype(np.float32), coordinates[..., 1].astype(np.float32)
            result.warps.append(cv2.remap(key_style, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            result.warp_errors.append(_absolute_error(
                cv2.remap(key_frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), frame))
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
            segments.append((_Chain(left, +1, tuple(range(left, right))),
                             _Chain(right, -1, tuple(range(right, left, -1)))))
    if last < frame_count - 1:
        segments.append((_Chain(last, +1, tuple(range(last, frame_count))), None))
    return segments


def _run_segments(
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    segments: list[_Segment],
    flow: FlowFunction | None,
    options: PropagationOptions,
    report: Callable[[int], None],
) -> Iterator[tuple[_Segment, list[ChainResult | None], dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]]]:
    """Yield every segment with its pass results, in order, running the passes in a thread pool.

    Frames are read and flow is estimated here, in the calling thread (the flow function may hold a model
    on a GPU and need not be thread-safe), and at most ``max(1, workers // 2)`` segments are in flight, so
    memory stays bounded. ``report(halves)`` (progress, in half frames) is only ever called in this thread.
    With one worker the passes run here, on numba's parallel kernels; with several, each pool thread runs
    the serial ``nogil`` kernels, since numba's default threading layer aborts when several threads launch
    parallel kernels at once. Both give identical results.
    """
    cpu_count = os.cpu_count() or 1
    chain_count = sum(chain is not None for segment in segments for chain in segment)
    worker_count = max(1, min(options.workers or cpu_count, chain_count))

    def prepare(segment: _Segment) -> tuple[dict[int, np.ndarray], dict]:
        # read each frame once (a frame provider may decode on access)
        segment_frames = {index: _checked_frame(frames, index, keyframes)
                          for chain in segment if chain is not None for index in chain.indices}
        return segment_frames, _segment_flows(segment_frames, segment, flow)

    def chain_inputs(chain: _Chain, segment_frames: dict, step_flows: dict) -> tuple:
        return ([segment_frames[index] for index in chain.indices], keyframes[chain.key],
                [step_flows[(a, b)] for a, b in zip(chain.indices, chain.indices[1:])], options)

    if worker_count == 1:
        for segment in segments:
            segment_frames, step_flows = prepare(segment)
            halves = 2 if None in segment else 1
            results = [None if chain is None else propagate_chain(
                *chain_inputs(chain, segment_frames, step_flows), step_callback=lambda: report(halves))
                for chain in segment]
            del segment_frames
            yield segment, results, step_flows
        return

    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    in_flight: collections.deque = collections.deque()
    max_in_flight = max(1, worker_count // 2)
    pool = concurrent.futures.ThreadPoolExecutor(worker_count, thread_name_prefix="rerender-propagation")
    try:
        for segment in segments:
            if len(in_flight) >= max_in_flight:
                yield _collect(in_flight.popleft(), events, report)
            segment_frames, step_flows = prepare(segment)
            halves = 2 if None in segment else 1
            futures = [None if chain is None else pool.submit(
                _run_chain_job, chain_inputs(chain, segment_frames, step_flows), events, halves, stop)
                for chain in segment]
            del segment_frames
            in_flight.append((segment, futures, step_flows))
        while in_flight:
            yield _collect(in_flight.popleft(), events, report)
    finally:
        # on early exit (the consumer stopped, an error, Ctrl-C) running passes stop after their frame
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class _Stopped(Exception):
    """Raised inside a pass whose results are no longer wanted."""


def _run_chain_job(inputs: tuple, events: queue.SimpleQueue, halves: int, stop: threading.Event) -> ChainResult:
    """A pool thread's job: one pass on the serial kernels, reporting each synthesis through ``events``."""

    def step() -> None:
        if stop.is_set():
            raise _Stopped
        events.put(halves)

    with serial_kernels():
        return propagate_chain(*inputs, step_callback=step)


def _collect(entry: tuple, events: queue.SimpleQueue, report: Callable[[int], None]) -> tuple:
    """Wait for a segment's passes, reporting everyone's progress meanwhile (in the calling thread)."""
    segment, futures, step_flows = entry
    waiting = [future for future in futures if future is not None]
    while waiting:
        try:
            report(events.get(timeout=0.1))
        except queue.Empty:
            pass
        waiting = [future for future in waiting if not future.done()]
    while True:
        try:
            report(events.get_nowait())
        except queue.Empty:
            break
    return segment, [None if future is None else future.result() for future in futures], step_flows


# --------------------------------------------------------------------------------------------------
# blending
# --------------------------------------------------------------------------------------------------


#: ``"reconstruction"`` blend: exponent of the temporal weights (``(1 − w)^γ``, ``w^γ``). Below 1 the
#: farther keyframe keeps a say, so that its reconstruction can win where it explains the frame better.
_TIME_EXPONENT = 0.5


def _merge_segment(segment: _Segment, results: list[ChainResult | None],
                   step_flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
                   options: PropagationOptions) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of one segment: a one-sided pass as is, or the two passes of an interval blended."""
    forward_chain, backward_chain = segment
    forward, backward = results
    if forward_chain is None or backward_chain is None:
        chain, result = (forward_chain, forward) if forward_chain is not None else (backward_chain, backward)
        yield from zip(chain.indices[1:], result.images)
        return
    left, right = forward_chain.key, backward_chain.key
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
            warped_previous = ebsynth_bridge.warp(previous_mask.astype(np.uint8), flow_to_previous,
                                                  nearest=True).astype(bool)
        forward_error, backward_error = forward.errors[offset], backward.errors[backward_offset]
        visibilities = (forward.visibilities[offset], backward.visibilities[backward_offset]) \
            if options.blend_visibility else (None, None)
        weight = ebsynth_bridge.confidence_weight(backward_weight, *visibilities, forward_error, backward_error,
                                                  error_power=options.blend_error_power)
        if options.blend_visibility:
            # a pass's error counts for more where it is guessing (revealed since its key)
            forward_error = forward_error / (cv2.GaussianBlur(visibilities[0], (0, 0), 2.0) + np.float32(0.05))
            backward_error = backward_error / (cv2.GaussianBlur(visibilities[1], (0, 0), 2.0) + np.float32(0.05))
        mask = ebsynth_bridge.selection_mask(forward_error, backward_error, backward_weight, warped_previous)
        previous_mask = mask
        yield index, _blend_pair(forward.images[offset], backward.images[backward_offset], mask, weight, options)


def _reconstruction_blend(left: int, right: int, forward: ChainResult, backward: ChainResult,
                          options: PropagationOptions) -> Iterator[tuple[int, np.ndarray]]:
    """The in-between frames of the interval ``left < right`` by the ``"reconstruction"`` blend.

    Candidates per frame: the forward and backward passes and, with ``blend_warp_weight > 0``, the two
    keyframes warped along the flow; weights from how well each reconstructs the source frame
    (:func:`ebsynth_bridge.reconstruction_weights`), then, with ``blend_sharpness``, the detail restored
    until the frame's gradient energy is that share of the keyframes' style-to-source energy ratio times
    its source frame's energy (:func:`ebsynth_bridge.match_sharpness`).
    """
    for offset, index in enumerate(range(left + 1, right)):
        backward_offset = right - index - 1  # the backward pass runs right -> left
        backward_weight = (index - left) / (right - left)
        times = [(1 - backward_weight) ** _TIME_EXPONENT, backward_weight ** _TIME_EXPONENT]
        candidates = [forward.images[offset], backward.images[backward_offset]]
        errors = [forward.reconstruction_errors[offset], backward.reconstruction_errors[backward_offset]]
        if options.blend_warp_weight > 0:
            candidates += [forward.warps[offset], backward.warps[backward_offset]]
            errors += [forward.warp_errors[offset], backward.warp_errors[backward_offset]]
            times += [options.blend_warp_weight * time for time in times]
        weights = ebsynth_bridge.reconstruction_weights(errors, times)
        blended = ebsynth_bridge.weighted_blend(candidates, weights)
        if options.blend_sharpness is not None:
            # A style turns the source's structure into its strokes, so a frame with more detail than its
            # keys' sources should get more: the target is the keyframes' style-to-source energy ratio
            # times this frame's source energy. Each key counts as much as the candidates drawn from it
            # (they alternate forward, backward), so a key that explains little of this frame sets none.
            right_share = float(np.mean(sum(weights[1::2])))
            ratios = [result.key_energies[0] / max(result.key_energies[1], 1e-3) for result in (forward, backward)]
            target = (options.blend_sharpness * ((1 - right_share) * ratios[0] + right_share * ratios[1])
                      * forward.frame_energies[offset])
            blended, _ = ebsynth_bridge.match_sharpness(blended, candidates, weights, target)
        yield index, np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _blend_pair(forward: np.ndarray, backward: np.ndarray, mask: np.ndarray, weight: float | np.ndarray,
                options: PropagationOptions) -> np.ndarray:
    """Merge the two passes; ``weight`` is the backward share, a number or per pixel (confidence)."""
    mode = options.blend_mode
    if mode == "linear":
        if np.ndim(weight) == 0:
            return ebsynth_bridge.linear_blend(forward, backward, float(weight))
        return ebsynth_bridge.agreement_blend(forward, backward, weight, np.zeros(weight.shape, bool), 1e9, 0.0)
    if mode == "agreement":
        return ebsynth_bridge.agreement_blend(forward, backward, weight, mask, options.blend_tolerance,
                                              options.blend_smoothing, options.blend_measure)
    backward_weight = float(np.mean(weight))
    selected = ebsynth_bridge.select(forward, backward, mask)
    if mode == "select":
        return selected
    blended = ebsynth_bridge.histogram_preserving_blend(forward, backward, backward_weight, selected)
    if mode == "histogram":
        return blended
    return ebsynth_bridge.poisson_blend(forward, backward, mask, blended, options.poisson_gradient_weights)


# --------------------------------------------------------------------------------------------------
# flow
# --------------------------------------------------------------------------------------------------


def _segment_flows(frames: Mapping[int, np.ndarray], segment: _Segment,
                   flow: FlowFunction | None) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """``{(previous, current): (flow, occlusion)}`` for every step of the segment's passes.

    ``frame[current](p) ≈ frame[previous](p + flow(p))``; both directions of a frame pair come from one
    call of the flow function and serve both passes (and the occlusion check).
    """
    pairs = sorted({(min(a, b), max(a, b)) for chain in segment if chain is not None
                    for a, b in zip(chain.indices, chain.indices[1:])})

    def estimate(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        forward, backward = (flow or _default_flow)(frames[pair[0]], frames[pair[1]])
        return np.ascontiguousarray(forward, np.float32), np.ascontiguousarray(backward, np.float32)

    if flow is None:  # the default is thread-safe (one DIS object per call) and releases the GIL: overlap
        with concurrent.futures.ThreadPoolExecutor(max(1, min(len(pairs), os.cpu_count() or 1))) as pool:
            pair_flows = list(pool.map(estimate, pairs))
    else:  # a caller's estimator may not be thread-safe
        pair_flows = [estimate(pair) for pair in pairs]
    steps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for (earlier, later), (forward, backward) in zip(pairs, pair_flows):
        _check_flow_pair(forward, backward, frames[earlier].shape[:2], (earlier, later))
        steps[(earlier, later)] = (backward, ebsynth_bridge.occlusion_mask(backward, forward))
        steps[(later, earlier)] = (forward, ebsynth_bridge.occlusion_mask(forward, backward))
    return steps


def _check_flow_pair(forward: np.ndarray, backward: np.ndarray, shape: tuple[int, int],
                     pair: tuple[int, int]) -> None:
    for name, field_ in (("forward", forward), ("backward", backward)):
        if field_.shape != tuple(shape) + (2,):
            raise ValueError(f"the flow function returned a {name} flow of shape {field_.shape} for frames {pair}; "
                             f"expected {tuple(shape) + (2,)} (H, W, 2) pixel displacements, x first")


def _default_flow(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DIS (the "fine" preset, `rerender.flow.DIS_PRESETS`) both ways, through :mod:`rerender.flow`.

    Imported here, not at module level, so that ``import rerender.propagation`` does not import torch.
    """
    from rerender.flow import DISFlowEstimator, estimate_flow_numpy

    return estimate_flow_numpy(DISFlowEstimator("fine"), source, target)


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------


def _checked_frame(frames: Sequence[np.ndarray], index: int, keyframes: Mapping[int, np.ndarray]) -> np.ndarray:
    """``frames[index]`` as a contiguous array, checked against the keyframes' shape."""
    frame = np.ascontiguousarray(frames[index])
    expected = next(iter(keyframes.values())).shape
    if frame.dtype != np.uint8 or frame.shape != expected:
        raise ValueError(f"`frames[{index}]` must be RGB uint8 of shape {expected} like the others, got "
                         f"{frame.dtype} {frame.shape}")
    return frame


def _check_video(frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray]) -> list[int]:
    frame_count = len(frames)
    if frame_count == 0:
        raise ValueError("`frames` is empty; give at least one RGB uint8 (H, W, 3) frame")
    if not keyframes:
        raise ValueError("`keyframes` is empty; give at least one {frame index: stylised RGB uint8 frame}")
    first = np.asarray(frames[0])
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"`frames` must hold RGB uint8 (H, W, 3) frames, got {first.dtype} {first.shape}")
    key_indices = sorted(keyframes)
    for index in key_indices:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < frame_count:
            raise ValueError(f"keyframe index {index!r} is outside the video; valid indices: 0 … {frame_count - 1}")
        key = keyframes[index]
        if not isinstance(key, np.ndarray) or key.dtype != np.uint8 or key.shape != first.shape:
            raise ValueError(f"`keyframes[{index}]` must be RGB uint8 of the frames' shape {first.shape}, got "
                             f"{getattr(key, 'dtype', type(key).__name__)} {getattr(key, 'shape', '')}")
    return [int(index) for index in key_indices]
