"""Compiled PatchMatch kernels: patch distance, propagation + random search, occupancy, voting.

Everything here works on *feature images*: float32 arrays ``(H + 2r, W + 2r, C)`` padded by the patch
radius ``r`` with edge replication, whose channels already carry ``sqrt(weight)`` so that the weighted
patch SSD of EbSynth (ebsynth.md §1.2) is a plain sum of squared differences. Values are on EbSynth's
0–255 scale, so the patch error and the uniformity weight have EbSynth's units.

The nearest-neighbour field (NNF) is int32 ``(H_target, W_target, 2)``: for each target pixel the
``(x, y)`` of the source patch centre it copies from. Source centres may be anywhere in the source
image (the padding replicates the border), so the identity mapping is exact, borders included.

Parallel and deterministic: the sweep splits the target into horizontal bands of a fixed height
(independent of the thread count). Each band is swept sequentially in scanline order (Gauss–Seidel
inside the band, like EbSynth's CPU tiles); reads across a band border and occupancy counts come from
a snapshot taken before the sweep, so the result does not depend on how many threads run it.
Random numbers come from a per-pixel counter hash of (seed, iteration, x, y).

Threads: each parallel kernel is compiled twice from the same source, ``parallel=True`` (numba's threads
over the rows) and serial ``nogil=True``. Numba's default ``workqueue`` threading layer aborts the process
when several Python threads launch parallel kernels at once, so only one thread at a time gets the parallel
build (a lock, never waited on): any other thread, and any thread inside :func:`serial_kernels` (a thread
pool running several syntheses at once), gets the serial one. Both compile the same loop body, so their
results are identical, and calling these kernels from any number of threads is safe.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import types
from collections.abc import Callable, Iterator

import numba
import numpy as np

#: Rows per band in a parallel PatchMatch sweep. Fixed, so results never depend on the thread count.
SWEEP_BAND_HEIGHT = 8

#: Propagation distances of a sweep (pixels, largest first): each pixel tries the matches of the two already
#: visited neighbours at each of these distances, shifted by it. With 1 alone (classic PatchMatch) a good match
#: stops at the first pixel holding another one and spreads at most one band (8 rows) down per sweep; the jumps
#: carry a region's coherent offset over such strips (man-surfing pencil, 384 px: 24.44 -> 24.55 dB). The torch
#: engine's jump flooding uses the same distances (``rerender.propagation.torch_engine.JUMPS``; 24.61 dB there).
PROPAGATION_JUMPS = (8, 4, 2, 1)

_MASK32 = 0xFFFFFFFF

_thread_state = threading.local()
_parallel_launch = threading.Lock()


@contextlib.contextmanager
def serial_kernels() -> Iterator[None]:
    """In this thread, run the kernels serially and without the GIL (for use inside a thread pool)."""
    previous = getattr(_thread_state, "serial", False)
    _thread_state.serial = True
    try:
        yield
    finally:
        _thread_state.serial = previous


class _Kernel:
    """A kernel compiled ``parallel=True`` and, from a copy of the same function, serial ``nogil=True``.

    The copy gets its own qualified name, so numba's on-disk cache keeps the two compilations apart.
    """

    def __init__(self, function: Callable) -> None:
        self.parallel = numba.njit(cache=True, parallel=True, fastmath=True)(function)
        twin = types.FunctionType(
            function.__code__,
            function.__globals__,
            function.__name__ + "_serial",
            function.__defaults__,
            function.__closure__,
        )
        twin.__qualname__ = function.__qualname__ + "_serial"
        self.serial = numba.njit(cache=True, nogil=True, fastmath=True)(twin)
        functools.update_wrapper(self, function)

    def __call__(self, *args):
        if getattr(_thread_state, "serial", False) or not _parallel_launch.acquire(blocking=False):
            return self.serial(*args)
        try:
            return self.parallel(*args)
        finally:
            _parallel_launch.release()


def _kernel(function: Callable) -> _Kernel:
    return _Kernel(function)


@numba.njit(cache=True, inline="always")
def _mix32(value: int) -> int:
    """A 32-bit integer hash (lowbias32); input and output in [0, 2**32)."""
    value = value & _MASK32
    value ^= value >> 16
    value = (value * 0x7FEB352D) & _MASK32
    value ^= value >> 15
    value = (value * 0x846CA68B) & _MASK32
    value ^= value >> 16
    return value


@numba.njit(cache=True, fastmath=True, inline="always")
def _patch_distance(
    target_rows: np.ndarray,
    source_rows: np.ndarray,
    target_x: int,
    target_y: int,
    source_x: int,
    source_y: int,
    patch_size: int,
    channels: int,
    limit: float,
) -> float:
    """Weighted patch SSD between a target and a source patch, stopping early past ``limit``.

    ``*_rows`` are the padded feature images viewed as ``(H + 2r, (W + 2r) * C)``; a patch row is then
    one contiguous run of ``patch_size * channels`` floats. Returns a value > ``limit`` when it stops.
    """
    # unsigned indices: no negative-index wraparound, so each row is read with contiguous vector loads (signed
    # ones compiled to gathers) and no array view is made per row. A row's sum is the float64 sum of the same
    # float32 squares; how LLVM vectorises (associates) it follows the code and the CPU, as it always did
    run = np.uint64(patch_size * channels)
    target_start = np.uint64(target_x * channels)
    source_start = np.uint64(source_x * channels)
    total = 0.0
    for row in range(patch_size):
        target_row = np.uint64(target_y + row)
        source_row = np.uint64(source_y + row)
        row_sum = 0.0
        for k in range(run):
            difference = target_rows[target_row, target_start + k] - source_rows[source_row, source_start + k]
            row_sum += difference * difference
        total += row_sum
        if total > limit:
            return total
    return total


@_kernel
def nnf_error(
    target_features: np.ndarray, source_features: np.ndarray, nnf: np.ndarray, patch_size: int
) -> np.ndarray:
    """Weighted patch SSD of every target pixel against its matched source patch.

    Shape:
        target_features (Ht + 2r, Wt + 2r, C), source_features (Hs + 2r, Ws + 2r, C), nnf (Ht, Wt, 2)
        -> (Ht, Wt) float32.
    """
    height, width = nnf.shape[0], nnf.shape[1]
    channels = target_features.shape[2]
    target_rows = target_features.reshape(target_features.shape[0], -1)
    source_rows = source_features.reshape(source_features.shape[0], -1)
    error = np.empty((height, width), np.float32)
    for y in numba.prange(height):
        for x in range(width):
            error[y, x] = _patch_distance(
                target_rows, source_rows, x, y, nnf[y, x, 0], nnf[y, x, 1], patch_size, channels, np.inf
            )
    return error


@numba.njit(cache=True)
def source_usage_counts(nnf: np.ndarray, source_height: int, source_width: int) -> np.ndarray:
    """How many target pixels match each source patch centre.

    Shape: nnf (Ht, Wt, 2) -> (Hs, Ws) float32.
    """
    counts = np.zeros((source_height, source_width), np.float32)
    for y in range(nnf.shape[0]):
        for x in range(nnf.shape[1]):
            counts[nnf[y, x, 1], nnf[y, x, 0]] += 1.0
    return counts


@numba.njit(cache=True, fastmath=True, inline="always")
def _consider_candidate(
    target_rows: np.ndarray,
    source_rows: np.ndarray,
    occupancy: np.ndarray,
    uniformity: float,
    patch_size: int,
    channels: int,
    x: int,
    y: int,
    candidate_x: int,
    candidate_y: int,
    best_x: int,
    best_y: int,
    best_error: float,
    best_cost: float,
) -> tuple[int, int, float, float]:
    """The match kept for target pixel (x, y) after trying source (candidate_x, candidate_y).

    Cost = patch distance + uniformity · occupancy of the source position (EbSynth's energy); the candidate
    wins when its cost is lower. The distance stops early once it cannot win.

    Returns:
        ``(best_x, best_y, best_error, best_cost)`` after the comparison.
    """
    occupancy_cost = uniformity * occupancy[candidate_y, candidate_x]
    limit = best_cost - occupancy_cost
    if limit <= 0.0:
        return best_x, best_y, best_error, best_cost
    candidate_error = _patch_distance(
        target_rows, source_rows, x, y, candidate_x, candidate_y, patch_size, channels, limit
    )
    if candidate_error < limit:
        return candidate_x, candidate_y, candidate_error, candidate_error + occupancy_cost
    return best_x, best_y, best_error, best_cost


@_kernel
def patchmatch_sweep(
    target_features: np.ndarray,
    source_features: np.ndarray,
    nnf: np.ndarray,
    error: np.ndarray,
    occupancy: np.ndarray,
    uniformity: float,
    active: np.ndarray,
    patch_size: int,
    max_search_radius: int,
    reverse: bool,
    seed: int,
    jumps: np.ndarray,
) -> None:
    """One PatchMatch iteration in place: propagation from the preceding neighbours, then random search.

    A candidate ``s'`` replaces the current ``s`` of a target pixel ``t`` when
    ``E(t, s') + uniformity * occupancy(s') < E(t, s) + uniformity * occupancy(s)`` (ebsynth.md §1.2).
    ``occupancy`` is the snapshot taken before this sweep. The random search tries one candidate per
    radius ``max_search_radius, max_search_radius / 2, ..., 1`` around the match held at its start.

    Args:
        nnf, error: updated in place; ``error`` holds ``E`` (without the uniformity term) of ``nnf``.
        occupancy: normalised source occupancy (1 = uniform use), one value per source centre.
        uniformity: weight of the occupancy term (EbSynth units, e.g. 3500).
        active: uint8 mask; pixels at 0 are left as they are (stop threshold).
        reverse: sweep bottom-right to top-left instead of top-left to bottom-right.
        seed: 32-bit seed of this iteration's random search.
        jumps: int64 propagation distances, tried in this order: at each distance ``d`` the candidates
            ``nnf(x - d, y) + (d, 0)`` and ``nnf(x, y - d) + (0, d)`` (mirrored when ``reverse``), read as
            already updated within the band and from the snapshot across it. ``[1]`` is classic PatchMatch.

    Shape:
        target_features (Ht + 2r, Wt + 2r, C), source_features (Hs + 2r, Ws + 2r, C),
        nnf (Ht, Wt, 2) int32, error (Ht, Wt) float32, occupancy (Hs, Ws) float32, active (Ht, Wt) uint8.
    """
    height, width = nnf.shape[0], nnf.shape[1]
    source_height, source_width = occupancy.shape[0], occupancy.shape[1]
    channels = target_features.shape[2]
    target_rows = target_features.reshape(target_features.shape[0], -1)
    source_rows = source_features.reshape(source_features.shape[0], -1)
    snapshot = nnf.copy()
    step = -1 if reverse else 1
    band_count = (height + SWEEP_BAND_HEIGHT - 1) // SWEEP_BAND_HEIGHT
    for band in numba.prange(band_count):
        band_top = band * SWEEP_BAND_HEIGHT
        band_bottom = min(band_top + SWEEP_BAND_HEIGHT, height)
        for row_index in range(band_bottom - band_top):
            y = band_bottom - 1 - row_index if reverse else band_top + row_index
            for column_index in range(width):
                x = width - 1 - column_index if reverse else column_index
                if active[y, x] == 0:
                    continue
                best_x = nnf[y, x, 0]
                best_y = nnf[y, x, 1]
                best_error = error[y, x]
                best_cost = best_error + uniformity * occupancy[best_y, best_x]
                # --- propagation: the horizontal and the vertical neighbour already visited, at every jump
                for candidate_index in range(2 * jumps.shape[0]):
                    jump = jumps[candidate_index // 2]
                    neighbour = candidate_index % 2
                    neighbour_x = x - step * jump if neighbour == 0 else x
                    neighbour_y = y if neighbour == 0 else y - step * jump
                    if neighbour_x < 0 or neighbour_x >= width or neighbour_y < 0 or neighbour_y >= height:
                        continue
                    if band_top <= neighbour_y < band_bottom:
                        candidate_x = nnf[neighbour_y, neighbour_x, 0] + (x - neighbour_x)
                        candidate_y = nnf[neighbour_y, neighbour_x, 1] + (y - neighbour_y)
                    else:
                        candidate_x = snapshot[neighbour_y, neighbour_x, 0] + (x - neighbour_x)
                        candidate_y = snapshot[neighbour_y, neighbour_x, 1] + (y - neighbour_y)
                    if not (0 <= candidate_x < source_width and 0 <= candidate_y < source_height):
                        continue
                    if candidate_x == best_x and candidate_y == best_y:
                        continue
                    best_x, best_y, best_error, best_cost = _consider_candidate(
                        target_rows,
                        source_rows,
                        occupancy,
                        uniformity,
                        patch_size,
                        channels,
                        x,
                        y,
                        candidate_x,
                        candidate_y,
                        best_x,
                        best_y,
                        best_error,
                        best_cost,
                    )
                # --- random search around the match held at its start
                centre_x, centre_y = best_x, best_y
                state = _mix32(seed ^ _mix32(y * 65536 + x))
                radius = max_search_radius
                while radius >= 1:
                    state = _mix32(state + 0x9E3779B9)
                    low_x = max(centre_x - radius, 0)
                    high_x = min(centre_x + radius, source_width - 1)
                    low_y = max(centre_y - radius, 0)
                    high_y = min(centre_y + radius, source_height - 1)
                    # both operands ≥ 0: an unsigned 32-bit remainder, the same value as Python's %, cheaper
                    candidate_x = low_x + np.int64(np.uint32(state & 0xFFFF) % np.uint32(high_x - low_x + 1))
                    candidate_y = low_y + np.int64(np.uint32(state >> 16) % np.uint32(high_y - low_y + 1))
                    radius //= 2
                    if candidate_x == best_x and candidate_y == best_y:
                        continue
                    best_x, best_y, best_error, best_cost = _consider_candidate(
                        target_rows,
                        source_rows,
                        occupancy,
                        uniformity,
                        patch_size,
                        channels,
                        x,
                        y,
                        candidate_x,
                        candidate_y,
                        best_x,
                        best_y,
                        best_error,
                        best_cost,
                    )
                nnf[y, x, 0] = best_x
                nnf[y, x, 1] = best_y
                error[y, x] = best_error


@_kernel
def adopt_better_candidates(
    target_features: np.ndarray,
    source_features: np.ndarray,
    nnf: np.ndarray,
    error: np.ndarray,
    candidate_nnf: np.ndarray,
    occupancy: np.ndarray,
    uniformity: float,
    patch_size: int,
) -> None:
    """Per pixel, switch to ``candidate_nnf`` where it has the lower cost (same rule as the sweep).

    Shape: nnf, candidate_nnf (Ht, Wt, 2) int32; error (Ht, Wt) float32; occupancy (Hs, Ws) float32.
    """
    height, width = nnf.shape[0], nnf.shape[1]
    channels = target_features.shape[2]
    target_rows = target_features.reshape(target_features.shape[0], -1)
    source_rows = source_features.reshape(source_features.shape[0], -1)
    for y in numba.prange(height):
        for x in range(width):
            candidate_x = candidate_nnf[y, x, 0]
            candidate_y = candidate_nnf[y, x, 1]
            if candidate_x == nnf[y, x, 0] and candidate_y == nnf[y, x, 1]:
                continue
            current_x, current_y = nnf[y, x, 0], nnf[y, x, 1]
            current_cost = error[y, x] + uniformity * occupancy[current_y, current_x]
            best_x, best_y, best_error, _ = _consider_candidate(
                target_rows,
                source_rows,
                occupancy,
                uniformity,
                patch_size,
                channels,
                x,
                y,
                candidate_x,
                candidate_y,
                current_x,
                current_y,
                error[y, x],
                current_cost,
            )
            nnf[y, x, 0] = best_x
            nnf[y, x, 1] = best_y
            error[y, x] = best_error


@numba.njit(cache=True, fastmath=True, inline="always")
def _vote_pixel_rgb(
    style: np.ndarray,
    nnf: np.ndarray,
    error: np.ndarray,
    radius: int,
    error_scale: float,
    x: int,
    y: int,
    result: np.ndarray,
) -> None:
    """:func:`vote` of one pixel of a 3-channel style: the same sums in the same order, kept in registers
    (the general loop's accumulator array made each addition a store and a load)."""
    height, width = nnf.shape[0], nnf.shape[1]
    source_height, source_width = style.shape[0], style.shape[1]
    red, green, blue = 0.0, 0.0, 0.0
    weight_sum = 0.0
    for offset_y in range(-radius, radius + 1):
        centre_y = y - offset_y
        if centre_y < 0 or centre_y >= height:
            continue
        for offset_x in range(-radius, radius + 1):
            centre_x = x - offset_x
            if centre_x < 0 or centre_x >= width:
                continue
            match_y, match_x = np.uint64(centre_y), np.uint64(centre_x)
            source_x = np.uint64(min(max(nnf[match_y, match_x, 0] + offset_x, 0), source_width - 1))
            source_y = np.uint64(min(max(nnf[match_y, match_x, 1] + offset_y, 0), source_height - 1))
            weight = 1.0
            if error_scale > 0.0:
                weight = 1.0 / (1.0 + error[match_y, match_x] / error_scale)
            weight_sum += weight
            red += weight * style[source_y, source_x, np.uint64(0)]
            green += weight * style[source_y, source_x, np.uint64(1)]
            blue += weight * style[source_y, source_x, np.uint64(2)]
    result[y, x, 0] = red / weight_sum
    result[y, x, 1] = green / weight_sum
    result[y, x, 2] = blue / weight_sum


@_kernel
def vote(style: np.ndarray, nnf: np.ndarray, error: np.ndarray, patch_size: int, error_scale: float) -> np.ndarray:
    """Target style as the average of the overlapping source patches (ebsynth.md §1.6).

    Every target pixel ``p`` averages ``style(NNF(q) + (p - q))`` over the patch centres ``q`` whose
    patch covers ``p``. With ``error_scale > 0`` each patch weighs ``1 / (1 + E(q) / error_scale)``
    (EbSynth's weighted vote); with 0 all weigh 1 (EbSynth's plain vote).

    Shape: style (Hs, Ws, Cs) float32, nnf (Ht, Wt, 2) int32, error (Ht, Wt) -> (Ht, Wt, Cs) float32.
    """
    height, width = nnf.shape[0], nnf.shape[1]
    source_height, source_width, style_channels = style.shape
    radius = patch_size // 2
    result = np.empty((height, width, style_channels), np.float32)
    for y in numba.prange(height):
        accumulator = np.zeros(style_channels, np.float64)
        for x in range(width):
            if style_channels == 3:
                _vote_pixel_rgb(style, nnf, error, radius, error_scale, x, y, result)
                continue
            accumulator[:] = 0.0
            weight_sum = 0.0
            for offset_y in range(-radius, radius + 1):
                centre_y = y - offset_y
                if centre_y < 0 or centre_y >= height:
                    continue
                for offset_x in range(-radius, radius + 1):
                    centre_x = x - offset_x
                    if centre_x < 0 or centre_x >= width:
                        continue
                    # unsigned indices (all ≥ 0 here): no negative-index wraparound in the loads
                    match_y, match_x = np.uint64(centre_y), np.uint64(centre_x)
                    source_x = np.uint64(min(max(nnf[match_y, match_x, 0] + offset_x, 0), source_width - 1))
                    source_y = np.uint64(min(max(nnf[match_y, match_x, 1] + offset_y, 0), source_height - 1))
                    weight = 1.0
                    if error_scale > 0.0:
                        weight = 1.0 / (1.0 + error[match_y, match_x] / error_scale)
                    weight_sum += weight
                    for channel in range(style_channels):
                        accumulator[channel] += weight * style[source_y, source_x, np.uint64(channel)]
            for channel in range(style_channels):
                result[y, x, channel] = accumulator[channel] / weight_sum
    return result
