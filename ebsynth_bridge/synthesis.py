"""Guided example-based synthesis: the multi-scale search-vote loop of EbSynth (ebsynth.md §1).

Given a style image (the stylised keyframe) and guide pairs (what the keyframe looked like, what the
target looks like), find for every target patch the source patch whose guides and current style match
best (PatchMatch with the uniformity term), then vote the target style from those patches; repeat, from
the coarsest pyramid level to the finest.

Images at this API are numpy channels-last arrays, either uint8 in [0, 255] or float32 in [0, 1]
(both mean the same thing: internally everything is float32 on EbSynth's 0–255 scale, so the patch
error and ``uniformity`` have EbSynth's units and defaults). A 2-D array counts as one channel.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ebsynth_bridge import patchmatch

logger = logging.getLogger(__name__)

VOTE_MODES = ("plain", "weighted")
_SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


@dataclass(frozen=True)
class Guide:
    """One guide pair: what the source (style) image looked like and what the target looks like.

    Attributes:
        source: guide aligned with the style image, ``(Hs, Ws)`` or ``(Hs, Ws, C)``, uint8 in [0, 255] or
            float32 in [0, 1].
        target: the same guide computed on the target, ``(Ht, Wt)`` or ``(Ht, Wt, C)``, same dtype and
            channel count as ``source``.
        weight: importance of this guide relative to the style term (``style_weight``, 1 by default), split
            evenly over its channels as EbSynth does; Rerender uses colour 6, edge 0.5, temporal 0.5,
            position 2. 0 drops the guide.
    """

    source: np.ndarray
    target: np.ndarray
    weight: float = 1.0


@dataclass(frozen=True)
class SynthesisResult:
    """What :func:`synthesize` returns.

    Attributes:
        image: the synthesised target style, ``(Ht, Wt, Cs)`` with the style's dtype (and 2-D if the
            style was 2-D).
        error: per target pixel, the weighted patch SSD of its final match (guides, plus the style term
            measured against ``image`` when ``style_weight > 0``; without the uniformity term), on
            EbSynth's 0–255 scale; ``(Ht, Wt)`` float32. 0 where the match is exact.
        nnf: the nearest-neighbour field, ``(Ht, Wt, 2)`` int32, the ``(x, y)`` source patch centre each
            target pixel copies from.
    """

    image: np.ndarray
    error: np.ndarray
    nnf: np.ndarray


def max_pyramid_levels(source_shape: tuple[int, int], target_shape: tuple[int, int], patch_size: int) -> int:
    """The number of pyramid levels EbSynth would use: halve while the smallest side stays ≥ 2·patch + 1.

    Args:
        source_shape, target_shape: ``(height, width)`` in pixels.
        patch_size: patch side in pixels.

    Example:
        >>> max_pyramid_levels((270, 512), (270, 512), 5)
        5
    """
    smallest_side = min(source_shape[0], source_shape[1], target_shape[0], target_shape[1])
    levels = 1
    while smallest_side / 2**levels >= 2 * patch_size + 1:
        levels += 1
    return levels


def synthesize(
    style: np.ndarray,
    guides: Sequence[Guide],
    *,
    style_weight: float = 1.0,
    patch_size: int = 5,
    pyramid_levels: int | None = None,
    search_vote_iterations: int | Sequence[int] = 6,
    patchmatch_iterations: int | Sequence[int] = 4,
    uniformity: float = 3500.0,
    stop_threshold: float | None = 5.0,
    random_search_radius: int | None = None,
    vote_mode: str = "plain",
    initial_nnf: np.ndarray | None = None,
    seed: int = 0,
    propagation_jumps: Sequence[int] = patchmatch.PROPAGATION_JUMPS,
) -> SynthesisResult:
    """Synthesise the target style from a style image and guide pairs (EbSynth, ebsynth.md §1).

    Args:
        style: the source style image (e.g. a stylised keyframe), ``(Hs, Ws, Cs)`` or ``(Hs, Ws)``,
            uint8 in [0, 255] or float32 in [0, 1].
        guides: one or more :class:`Guide` pairs; all sources must be ``(Hs, Ws)``, all targets share one
            ``(Ht, Wt)``.
        style_weight: weight of the style term (the current target estimate against the source style),
            split over the style channels; 1 as in EbSynth.
        patch_size: patch side in pixels, odd and ≥ 3.
        pyramid_levels: number of pyramid levels (each halves the size); ``None`` = as many as fit
            (:func:`max_pyramid_levels`), larger values are clamped to that. With ``initial_nnf`` a small
            number (2–3) is enough: the coarsest level starts from the downscaled ``initial_nnf``.
        search_vote_iterations: PatchMatch-then-vote rounds per level; one number for every level or one
            per level, coarsest first.
        patchmatch_iterations: PatchMatch sweeps per search-vote round; one number or one per level.
        uniformity: weight of the occupancy (uniformity) term in EbSynth units (500–15000 reasonable,
            0 disables it); higher spreads the use of source patches more evenly.
        stop_threshold: after a vote, pixels whose style changed by less than this (0–255 scale, max over
            channels, dilated by the patch radius) skip the next PatchMatch; a level ends early once none
            changed. ``None`` disables it.
        random_search_radius: largest random-search radius in pixels of the current level; ``None`` = the
            whole source image, as EbSynth. Smaller is faster and enough with a good ``initial_nnf``.
        vote_mode: ``"plain"`` (every overlapping patch weighs 1, EbSynth's CLI) or ``"weighted"``
            (weight ``1 / (1 + E / (patch_size² · Cs))``, EbSynth's API option).
        initial_nnf: optional starting field at the finest level, ``(Ht, Wt, 2)`` integer ``(x, y)``
            source coordinates (e.g. the previous frame's field advected by optical flow). It seeds the
            coarsest level and is offered as a candidate at every finer level.
        seed: seed of the random initialisation and random search; equal inputs and seed give equal
            results whatever the thread count.
        propagation_jumps: the distances in pixels at which each sweep offers a pixel its already visited
            neighbours' matches, shifted (``patchmatch.PROPAGATION_JUMPS``, largest first); ``(1,)`` is
            classic PatchMatch, whose matches cross at most 8 rows a sweep.

    Returns:
        A :class:`SynthesisResult` with the image, the per-pixel patch error and the NNF.

    Raises:
        TypeError: an image has an unsupported dtype (only uint8 and float32 are accepted).
        ValueError: mismatched sizes, dtypes or channel counts, no guides, or a parameter out of range.

    Shape:
        style (Hs, Ws, Cs); guide sources (Hs, Ws, Ck); guide targets (Ht, Wt, Ck)
        -> image (Ht, Wt, Cs), error (Ht, Wt), nnf (Ht, Wt, 2).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> style = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        >>> result = synthesize(style, [Guide(style, style, 1.0)], initial_nnf=identity_nnf(24, 32))
        >>> bool(np.array_equal(result.image, style))
        True
    """
    # 1. check inputs (cheap, before any work)
    _check_parameters(
        patch_size, pyramid_levels, uniformity, stop_threshold, random_search_radius, vote_mode, style_weight
    )
    jumps = _check_jumps(propagation_jumps)
    style_squeezed = style.ndim == 2
    style_float = _as_float_image("style", style)
    guide_sources, guide_targets, guide_weights = _check_guides(guides, style_float.shape[:2])
    source_shape = style_float.shape[:2]
    target_shape = guide_targets[0].shape[:2]
    if initial_nnf is not None:
        initial_nnf = _check_initial_nnf(initial_nnf, target_shape, source_shape)

    # 2. the pyramid schedule
    level_count = max_pyramid_levels(source_shape, target_shape, patch_size)
    if pyramid_levels is not None:
        level_count = min(level_count, pyramid_levels)
    search_vote_schedule = _per_level("search_vote_iterations", search_vote_iterations, level_count)
    patchmatch_schedule = _per_level("patchmatch_iterations", patchmatch_iterations, level_count)

    # 3. feature channels carry sqrt(weight) so the weighted SSD is a plain SSD; weight-0 terms are dropped
    style_channels = style_float.shape[2]
    style_in_energy = style_weight > 0
    style_scale = math.sqrt(style_weight / style_channels)
    weighted_guides = [
        (source, target, weight)
        for source, target, weight in zip(guide_sources, guide_targets, guide_weights)
        if weight > 0
    ]
    if not weighted_guides and not style_in_energy:
        raise ValueError("every weight is 0 (`style_weight` and all `guides[i].weight`); nothing to match on")
    guide_source_features = _weighted_stack(
        [source for source, _, _ in weighted_guides], [weight for _, _, weight in weighted_guides], source_shape
    )
    guide_target_features = _weighted_stack(
        [target for _, target, _ in weighted_guides], [weight for _, _, weight in weighted_guides], target_shape
    )
    error_scale = float(patch_size * patch_size * style_channels) if vote_mode == "weighted" else 0.0

    nnf: np.ndarray | None = None
    previous_source_shape = source_shape
    for level in range(level_count):
        # 4. this level's images: area-downscaled straight from the full-size ones
        downscale = 2.0 ** (level_count - 1 - level)
        level_source_shape = _level_shape(source_shape, downscale)
        level_target_shape = _level_shape(target_shape, downscale)
        level_style = _resize(style_float, level_source_shape)
        source_parts = [_resize(guide_source_features, level_source_shape)]
        target_parts = [_resize(guide_target_features, level_target_shape)]
        if style_in_energy:
            source_parts.insert(0, level_style * np.float32(style_scale))
            target_parts.insert(0, np.zeros(level_target_shape + (style_channels,), np.float32))
        source_features = _pad(np.concatenate(source_parts, axis=2), patch_size)
        target_features = _pad(np.concatenate(target_parts, axis=2), patch_size)

        # 5. the starting field: the initial field where given (exact to the pixel; the upscaled coarse
        #    field is exact only to two pixels), with the other offered as a per-pixel candidate
        level_initial = None
        if initial_nnf is not None:
            level_initial = _rescale_nnf(initial_nnf, source_shape, level_target_shape, level_source_shape)
        candidate = None
        if nnf is None:
            nnf = (
                level_initial
                if level_initial is not None
                else _random_nnf(level_target_shape, level_source_shape, seed)
            )
        else:
            upscaled = _upscale_nnf(nnf, previous_source_shape, level_target_shape, level_source_shape)
            nnf, candidate = (upscaled, None) if level_initial is None else (level_initial, upscaled)
        previous_source_shape = level_source_shape

        # 6. search and vote
        nnf, error, target_style = _synthesize_level(
            level_style,
            source_features,
            target_features,
            nnf,
            candidate,
            patch_size=patch_size,
            style_scale=style_scale if style_in_energy else None,
            search_vote_iterations=search_vote_schedule[level],
            patchmatch_iterations=patchmatch_schedule[level],
            uniformity=uniformity,
            stop_threshold=stop_threshold,
            random_search_radius=random_search_radius,
            error_scale=error_scale,
            seed=_mix_seed(seed, level),
            propagation_jumps=jumps,
            vote_result=level == level_count - 1,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "level %d/%d %s done, mean error %.1f", level + 1, level_count, level_target_shape, float(error.mean())
            )

    image = _from_float_image(target_style, style.dtype)
    if style_squeezed:
        image = image[..., 0]
    return SynthesisResult(image=image, error=error, nnf=nnf)


def vote(style: np.ndarray, nnf: np.ndarray, *, patch_size: int = 5, error: np.ndarray | None = None) -> np.ndarray:
    """Patch voting: each target pixel averages what the overlapping matched source patches say it is.

    ``out(p) = mean over the patch centres q within patch_size//2 of p of style(nnf(q) + (p - q))``
    (ebsynth.md §1.6). With ``error`` each patch weighs ``1 / (1 + E(q) / (patch_size² · Cs))`` (EbSynth's
    weighted vote). A smaller ``patch_size`` than the search used gives a sharper, slightly noisier image.

    Args:
        style: source style, uint8 [0, 255] or float32 [0, 1], ``(Hs, Ws, Cs)`` or ``(Hs, Ws)``.
        nnf: ``(Ht, Wt, 2)`` integer ``(x, y)`` source centres (e.g. :attr:`SynthesisResult.nnf`).
        patch_size: odd voting footprint in pixels (1 = copy each pixel's own match).
        error: optional ``(Ht, Wt)`` patch errors for the weighted vote.

    Returns:
        ``(Ht, Wt, Cs)`` (or ``(Ht, Wt)``) image with the style's dtype.

    Raises:
        ValueError: a bad ``patch_size`` or ``nnf`` / ``error`` shape.

    Shape: style (Hs, Ws, Cs), nnf (Ht, Wt, 2) -> (Ht, Wt, Cs).
    """
    if not isinstance(patch_size, (int, np.integer)) or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"`patch_size` must be an odd integer ≥ 1, got {patch_size!r}")
    style_float = _as_float_image("style", style)
    if not isinstance(nnf, np.ndarray) or nnf.ndim != 3 or nnf.shape[2] != 2:
        raise ValueError(f"`nnf` must be an (H, W, 2) integer array, got shape {getattr(nnf, 'shape', None)}")
    nnf = _check_initial_nnf(nnf, nnf.shape[:2], style_float.shape[:2], name="nnf")
    if error is not None and error.shape != nnf.shape[:2]:
        raise ValueError(f"`error` must have shape {nnf.shape[:2]}, got {error.shape}")
    error_scale = float(patch_size * patch_size * style_float.shape[2]) if error is not None else 0.0
    errors = np.zeros(nnf.shape[:2], np.float32) if error is None else np.ascontiguousarray(error, np.float32)
    image = _from_float_image(patchmatch.vote(style_float, nnf, errors, patch_size, error_scale), style.dtype)
    return image[..., 0] if style.ndim == 2 else image


def identity_nnf(height: int, width: int) -> np.ndarray:
    """The NNF that maps every pixel to itself.

    Shape: -> (height, width, 2) int32, ``[..., 0]`` = x, ``[..., 1]`` = y.
    """
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    return np.ascontiguousarray(np.stack([grid_x, grid_y], axis=2).astype(np.int32))


def _synthesize_level(
    level_style: np.ndarray,
    source_features: np.ndarray,
    target_features: np.ndarray,
    nnf: np.ndarray,
    candidate_nnf: np.ndarray | None,
    *,
    patch_size: int,
    style_scale: float | None,
    search_vote_iterations: int,
    patchmatch_iterations: int,
    uniformity: float,
    stop_threshold: float | None,
    random_search_radius: int | None,
    error_scale: float,
    seed: int,
    propagation_jumps: np.ndarray,
    vote_result: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The search-vote loop of one pyramid level (ebsynth.md §1.4). Returns (nnf, error, target style).

    ``style_scale`` is None when the style term is off: the energy then does not depend on the vote, so
    the rounds reduce to PatchMatch sweeps and one final vote, made only when ``vote_result`` (the finest
    level; a coarser level hands on its field alone), else the target style returned is None.
    """
    radius = patch_size // 2
    style_channels = level_style.shape[2]
    target_height, target_width = nnf.shape[:2]
    source_height, source_width = level_style.shape[:2]
    max_radius = max(source_height, source_width) if random_search_radius is None else random_search_radius
    # |T| / |S|: how often each source patch would be used if the use were uniform
    coverage_ratio = (target_height * target_width) / (source_height * source_width)
    active = np.ones((target_height, target_width), np.uint8)
    no_occupancy = np.zeros((source_height, source_width), np.float32)

    def set_target_style(target_style: np.ndarray) -> None:
        if style_scale is not None:
            target_features[radius:-radius, radius:-radius, :style_channels] = target_style * np.float32(style_scale)
            _refresh_padding(target_features, radius)

    target_style = None
    if style_scale is not None:  # without a style term the energy does not depend on the vote
        no_error = np.zeros((target_height, target_width), np.float32)
        target_style = patchmatch.vote(level_style, nnf, no_error, patch_size, 0.0)
        set_target_style(target_style)
    error = patchmatch.nnf_error(target_features, source_features, nnf, patch_size)
    if candidate_nnf is not None:
        occupancy = _occupancy(nnf, (source_height, source_width), patch_size, coverage_ratio)
        patchmatch.adopt_better_candidates(
            target_features, source_features, nnf, error, candidate_nnf, occupancy, float(uniformity), patch_size
        )
        if style_scale is not None:
            target_style = patchmatch.vote(level_style, nnf, error, patch_size, error_scale)
            set_target_style(target_style)
            error = patchmatch.nnf_error(target_features, source_features, nnf, patch_size)

    for search_vote in range(search_vote_iterations):
        for sweep in range(patchmatch_iterations):
            occupancy = (
                _occupancy(nnf, (source_height, source_width), patch_size, coverage_ratio)
                if uniformity > 0
                else no_occupancy
            )
            patchmatch.patchmatch_sweep(
                target_features,
                source_features,
                nnf,
                error,
                occupancy,
                float(uniformity),
                active,
                patch_size,
                int(max_radius),
                bool(sweep % 2),
                _mix_seed(seed, search_vote * 1000 + sweep),
                propagation_jumps,
            )
        if style_scale is None:
            continue
        new_style = patchmatch.vote(level_style, nnf, error, patch_size, error_scale)
        converged = False
        if stop_threshold is not None:
            changed = (np.abs(new_style - target_style).max(axis=2) >= stop_threshold).astype(np.uint8)
            converged = not changed.any()
            active = cv2.dilate(changed, np.ones((patch_size, patch_size), np.uint8))
        target_style = new_style
        set_target_style(target_style)
        error = patchmatch.nnf_error(target_features, source_features, nnf, patch_size)
        if converged:
            break
    if style_scale is None and vote_result:
        target_style = patchmatch.vote(level_style, nnf, error, patch_size, error_scale)
    return nnf, error, target_style


def _occupancy(nnf: np.ndarray, source_shape: tuple[int, int], patch_size: int, coverage_ratio: float) -> np.ndarray:
    """Normalised occupancy of every source centre (1 = uniform use), ebsynth.md §1.2.

    occ(s) = mean over the patch at s of Omega, with Omega(s) the number of target patches covering s,
    divided by the same figure for a perfectly uniform use (every centre used |T| / |S| times). EbSynth
    divides by the constant omegaBest; dividing by the uniform figure per pixel instead keeps the
    identity mapping at occupancy 1 near the border too, so that borders do not look under-used.
    """
    counts = patchmatch.source_usage_counts(nnf, source_shape[0], source_shape[1])
    return np.ascontiguousarray(
        _patch_coverage(counts, patch_size)
        / (_uniform_coverage(source_shape, patch_size) * np.float32(coverage_ratio))
    )


def _patch_coverage(counts: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch mean of the patch mean of per-centre use counts (zero outside the image)."""
    kernel = (patch_size, patch_size)
    return cv2.blur(cv2.blur(counts, kernel, borderType=cv2.BORDER_CONSTANT), kernel, borderType=cv2.BORDER_CONSTANT)


@functools.lru_cache(maxsize=16)
def _uniform_coverage(source_shape: tuple[int, int], patch_size: int) -> np.ndarray:
    coverage = _patch_coverage(np.ones(source_shape, np.float32), patch_size)
    coverage.flags.writeable = False  # shared by the cache
    return coverage


def _weighted_stack(images: list[np.ndarray], weights: list[float], shape: tuple[int, int]) -> np.ndarray:
    """Concatenate guide images, each channel scaled by sqrt(weight / channels) (EbSynth's split)."""
    if not images:
        return np.zeros(shape + (0,), np.float32)
    return np.ascontiguousarray(
        np.concatenate(
            [image * np.float32(math.sqrt(weight / image.shape[2])) for image, weight in zip(images, weights)], axis=2
        )
    )


def _refresh_padding(features: np.ndarray, radius: int) -> None:
    """Re-replicate the border of a padded feature image after its interior changed."""
    features[:radius] = features[radius]
    features[-radius:] = features[-radius - 1]
    features[:, :radius] = features[:, radius : radius + 1]
    features[:, -radius:] = features[:, -radius - 1 : -radius]


def _pad(features: np.ndarray, patch_size: int) -> np.ndarray:
    radius = patch_size // 2
    return np.ascontiguousarray(
        np.pad(features, ((radius, radius), (radius, radius), (0, 0)), mode="edge"), dtype=np.float32
    )


def _level_shape(shape: tuple[int, int], downscale: float) -> tuple[int, int]:
    return max(1, int(shape[0] / downscale)), max(1, int(shape[1] / downscale))


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-averaged resize (an anti-aliased pyramid, unlike EbSynth's point sampling); keeps 3-D shape."""
    channels = image.shape[2]
    if image.shape[:2] == shape:
        return image
    if channels == 0:
        return np.zeros(shape + (0,), np.float32)
    # cv2 handles at most 512 channels; split in chunks of 4 to stay on its fast paths
    parts = [
        cv2.resize(image[..., start : start + 4], (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        for start in range(0, channels, 4)
    ]
    parts = [part[..., None] if part.ndim == 2 else part for part in parts]
    return np.ascontiguousarray(np.concatenate(parts, axis=2), dtype=np.float32)


def _random_nnf(target_shape: tuple[int, int], source_shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    nnf = np.empty(target_shape + (2,), np.int32)
    nnf[..., 0] = rng.integers(0, source_shape[1], target_shape)
    nnf[..., 1] = rng.integers(0, source_shape[0], target_shape)
    return nnf


def _upscale_nnf(
    nnf: np.ndarray, coarse_source_shape: tuple[int, int], target_shape: tuple[int, int], source_shape: tuple[int, int]
) -> np.ndarray:
    """Fine NNF from a coarse one: each fine pixel keeps its offset inside the coarse pixel (2·NNF + parity)."""
    coarse_height, coarse_width = nnf.shape[:2]
    grid_y, grid_x = np.mgrid[0 : target_shape[0], 0 : target_shape[1]].astype(np.float32)
    scale_y, scale_x = coarse_height / target_shape[0], coarse_width / target_shape[1]
    coarse_y = (grid_y + 0.5) * scale_y - 0.5
    coarse_x = (grid_x + 0.5) * scale_x - 0.5
    index_y = np.clip(np.floor(coarse_y + 0.5).astype(np.int32), 0, coarse_height - 1)
    index_x = np.clip(np.floor(coarse_x + 0.5).astype(np.int32), 0, coarse_width - 1)
    coarse_source_height, coarse_source_width = coarse_source_shape
    source_x = nnf[index_y, index_x, 0] + (coarse_x - index_x)
    source_y = nnf[index_y, index_x, 1] + (coarse_y - index_y)
    fine_x = np.rint((source_x + 0.5) * (source_shape[1] / coarse_source_width) - 0.5)
    fine_y = np.rint((source_y + 0.5) * (source_shape[0] / coarse_source_height) - 0.5)
    result = np.empty(target_shape + (2,), np.int32)
    result[..., 0] = np.clip(fine_x, 0, source_shape[1] - 1)
    result[..., 1] = np.clip(fine_y, 0, source_shape[0] - 1)
    return result


def _rescale_nnf(
    nnf: np.ndarray, full_source_shape: tuple[int, int], target_shape: tuple[int, int], source_shape: tuple[int, int]
) -> np.ndarray:
    """The full-resolution ``nnf`` sampled at the centres of a smaller level's pixels, values rescaled."""
    full_height, full_width = nnf.shape[:2]
    if (full_height, full_width) == target_shape and full_source_shape == source_shape:
        return np.ascontiguousarray(nnf, dtype=np.int32)
    rows = np.clip(
        ((np.arange(target_shape[0]) + 0.5) * full_height / target_shape[0]).astype(np.int32), 0, full_height - 1
    )
    columns = np.clip(
        ((np.arange(target_shape[1]) + 0.5) * full_width / target_shape[1]).astype(np.int32), 0, full_width - 1
    )
    sampled = nnf[rows[:, None], columns[None, :]].astype(np.float32)
    result = np.empty(target_shape + (2,), np.int32)
    result[..., 0] = np.clip(
        np.rint((sampled[..., 0] + 0.5) * source_shape[1] / full_source_shape[1] - 0.5), 0, source_shape[1] - 1
    )
    result[..., 1] = np.clip(
        np.rint((sampled[..., 1] + 0.5) * source_shape[0] / full_source_shape[0] - 0.5), 0, source_shape[0] - 1
    )
    return result


def _mix_seed(seed: int, salt: int) -> int:
    value = (seed * 0x9E3779B1 + salt * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    value ^= value >> 15
    value = (value * 0x2C1B3C6D) & 0xFFFFFFFF
    value ^= value >> 12
    return int(value)


def _per_level(name: str, value: int | Sequence[int], level_count: int) -> list[int]:
    if isinstance(value, (int, np.integer)):
        values = [int(value)] * level_count
    else:
        values = [int(item) for item in value]
        if len(values) < level_count:
            raise ValueError(
                f"`{name}` needs one value per pyramid level ({level_count}, coarsest first), "
                f"got {len(values)}: {list(values)}"
            )
        values = values[len(values) - level_count :]
    if any(item < 0 for item in values):
        raise ValueError(f"`{name}` must be ≥ 0, got {values}")
    return values


def _as_float_image(name: str, image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float32 [0, 1] -> float32 (H, W, C) on the 0–255 scale."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy array, got {type(image).__name__}")
    if image.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"`{name}` must be uint8 (0–255) or float32 (0–1), got dtype {image.dtype}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"`{name}` must be (H, W) or (H, W, C) with H, W ≥ 1, got shape {image.shape}")
    result = image.astype(np.float32)
    if image.dtype == np.float32:
        result = result * np.float32(255.0)
    return result[..., None] if result.ndim == 2 else result


def _from_float_image(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return (image / np.float32(255.0)).astype(np.float32)


def _check_guides(
    guides: Sequence[Guide], source_shape: tuple[int, int]
) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    if isinstance(guides, Guide):
        guides = [guides]
    if len(guides) == 0:
        raise ValueError("`guides` must hold at least one Guide(source, target, weight), got none")
    sources, targets, weights = [], [], []
    target_shape = None
    for index, guide in enumerate(guides):
        if not isinstance(guide, Guide):
            raise TypeError(f"`guides[{index}]` must be a Guide(source, target, weight), got {type(guide).__name__}")
        source = _as_float_image(f"guides[{index}].source", guide.source)
        target = _as_float_image(f"guides[{index}].target", guide.target)
        if guide.source.dtype != guide.target.dtype:
            raise ValueError(
                f"`guides[{index}]` source and target dtypes differ: {guide.source.dtype} vs "
                f"{guide.target.dtype}; give both as uint8 (0–255) or both as float32 (0–1)"
            )
        if source.shape[:2] != source_shape:
            raise ValueError(
                f"`guides[{index}].source` must have the style's size {source_shape} (H, W), got {source.shape[:2]}"
            )
        if target_shape is None:
            target_shape = target.shape[:2]
        elif target.shape[:2] != target_shape:
            raise ValueError(
                f"`guides[{index}].target` must have the size of the first guide's target "
                f"{target_shape} (H, W), got {target.shape[:2]}"
            )
        if source.shape[2] != target.shape[2]:
            raise ValueError(
                f"`guides[{index}]` source and target channel counts differ: {source.shape[2]} vs {target.shape[2]}"
            )
        if not (math.isfinite(guide.weight) and guide.weight >= 0):
            raise ValueError(f"`guides[{index}].weight` must be a finite number ≥ 0, got {guide.weight}")
        sources.append(source)
        targets.append(target)
        weights.append(float(guide.weight))
    return sources, targets, weights


def _check_initial_nnf(
    nnf: np.ndarray, target_shape: tuple[int, int], source_shape: tuple[int, int], name: str = "initial_nnf"
) -> np.ndarray:
    """Validate an NNF and clamp it into the source: int32 (H, W, 2)."""
    if not isinstance(nnf, np.ndarray) or not np.issubdtype(nnf.dtype, np.integer):
        raise TypeError(
            f"`{name}` must be an integer numpy array (x, y), got {getattr(nnf, 'dtype', type(nnf).__name__)}"
        )
    if nnf.shape != tuple(target_shape) + (2,):
        raise ValueError(f"`{name}` must have shape {tuple(target_shape) + (2,)} (target H, W, 2), got {nnf.shape}")
    result = np.empty(nnf.shape, np.int32)
    result[..., 0] = np.clip(nnf[..., 0], 0, source_shape[1] - 1)
    result[..., 1] = np.clip(nnf[..., 1], 0, source_shape[0] - 1)
    return result


def _check_jumps(jumps: Sequence[int]) -> np.ndarray:
    """``propagation_jumps`` as the sweep's int64 array: a non-empty sequence of integers ≥ 1."""
    values = list(jumps) if isinstance(jumps, (list, tuple, np.ndarray)) else None
    if not values or not all(isinstance(value, (int, np.integer)) and value >= 1 for value in values):
        raise ValueError(f"`propagation_jumps` must be a non-empty sequence of integers ≥ 1 (pixels), got {jumps!r}")
    return np.asarray(values, np.int64)


def _check_parameters(
    patch_size: int,
    pyramid_levels: int | None,
    uniformity: float,
    stop_threshold: float | None,
    random_search_radius: int | None,
    vote_mode: str,
    style_weight: float,
) -> None:
    if not isinstance(patch_size, (int, np.integer)) or patch_size < 3 or patch_size % 2 == 0:
        raise ValueError(f"`patch_size` must be an odd integer ≥ 3, got {patch_size!r}")
    if pyramid_levels is not None and pyramid_levels < 1:
        raise ValueError(f"`pyramid_levels` must be ≥ 1 or None (as many as fit), got {pyramid_levels}")
    if not (math.isfinite(uniformity) and uniformity >= 0):
        raise ValueError(f"`uniformity` must be a finite number ≥ 0, got {uniformity}")
    if stop_threshold is not None and not stop_threshold >= 0:
        raise ValueError(f"`stop_threshold` must be ≥ 0 or None (off), got {stop_threshold}")
    if random_search_radius is not None and random_search_radius < 1:
        raise ValueError(f"`random_search_radius` must be ≥ 1 or None (whole image), got {random_search_radius}")
    if vote_mode not in VOTE_MODES:
        raise ValueError(f"`vote_mode` must be one of {VOTE_MODES}, got {vote_mode!r}")
    if not (math.isfinite(style_weight) and style_weight >= 0):
        raise ValueError(f"`style_weight` must be a finite number ≥ 0, got {style_weight}")
