"""Memory a run will need, estimated from the sizes before any frame is decoded (`estimate_run_memory`).

The figures are per pixel, measured with `tracemalloc` on propagation runs of 256×256 frames (DIS flow, the
default preset; `benchmarks/video_memory_benchmark.py`): a pass holds about `PASS_BYTES_PER_PIXEL` bytes of
working arrays (guides, nearest-neighbour fields, pyramids, flow) and the run `HELD_BYTES_PER_PIXEL` more for
every frame of the keyframe interval being blended. Decoding holds a few copies of one source frame. An 8K source
propagated at its own size (`--source-size`) needs tens of gigabytes; at the processing size, a few hundred MB.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rerender.errors import ConfigError

if TYPE_CHECKING:
    from rerender.config import RerenderConfig
    from rerender.video.probe import VideoInfo

logger = logging.getLogger(__name__)

__all__ = ["MemoryEstimate", "estimate_run_memory", "check_run_memory", "PASS_BYTES_PER_PIXEL", "HELD_BYTES_PER_PIXEL"]

PASS_BYTES_PER_PIXEL = 250
"""Working memory of one propagation pass per pixel of the propagated frames (measured at 256×256: 215 B/px for
one pass, about 450 B/px more for a second one running at once)."""
HELD_BYTES_PER_PIXEL = 64
"""Memory per pixel for each frame of a keyframe interval held until its segment is blended (measured: 62 B/px)."""
DECODE_BYTES_PER_PIXEL = 12
"""Decoding one frame: the decoded picture, its RGB conversion and the square-pixel / upright copies."""
REFUSE_FACTOR = 1.5
"""A run whose estimate is above this many times the machine's physical memory is refused (it cannot finish
without swapping for hours); above the memory available now, it is warned about."""


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run will hold in memory at its peak, from the sizes alone."""

    total_bytes: int
    """The estimate, in bytes."""
    propagation_size: tuple[int, int]
    """`(width, height)` that propagation runs at (the processing size, or the cropped source's own size)."""
    source_size: tuple[int, int]
    """`(width, height)` of the decoded source frames (on screen, before crop)."""
    passes: int
    """Propagation passes that run at once (`propagation.workers`, at most the CPU count)."""
    frames_held: int
    """Frames a pass holds: one keyframe interval."""

    def describe(self) -> str:
        width, height = self.propagation_size
        return (
            f"about {_gigabytes(self.total_bytes)} of memory (propagation at {width}×{height}, {self.passes} "
            f"pass{'es' if self.passes != 1 else ''} at once, {self.frames_held} frames each)"
        )


def _gigabytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


def estimate_run_memory(info: VideoInfo, config: RerenderConfig, frame_count: int | None = None) -> MemoryEstimate:
    """Estimate a run's peak memory from `info`'s sizes and the options, before decoding anything.

    Args:
        info: the source's `probe_video` result.
        config: the run's options (`video.crop`, `video.resolution`, `propagation.output_size`,
            `propagation.workers`, `keyframes.keyframe_interval`).
        frame_count: frames the run selects (caps the frames a pass holds); `None` = `info.frame_count`.

    Returns:
        A `MemoryEstimate`: per pixel at the propagation size, `PASS_BYTES_PER_PIXEL` per pass running at once
        plus `HELD_BYTES_PER_PIXEL` per frame of a keyframe interval; plus one decoded source frame.
    """
    from rerender.video.geometry import compute_output_size

    crop = config.video.crop
    cropped = max(1, info.width - crop.left - crop.right), max(1, info.height - crop.top - crop.bottom)
    if config.propagation.output_size == "source":
        size = cropped
    else:
        video = config.video
        multiple = video.size_multiple or 8  # unset: SD's 8 (a run sets the model's own before it estimates)
        size = compute_output_size(*cropped, video.resolution, video.resize_side, multiple)
    count = frame_count if frame_count is not None else info.frame_count
    held = max(1, min(count, config.keyframes.keyframe_interval + 1))
    chains = 2 * max(1, -(-count // config.keyframes.keyframe_interval))  # a forward and a backward pass a segment
    passes = max(1, min(config.propagation.workers or os.cpu_count() or 1, os.cpu_count() or 1, chains))
    pixels = size[0] * size[1]
    source_pixels = max(info.width * info.height, info.stored_width * info.stored_height)
    total = (
        pixels * (PASS_BYTES_PER_PIXEL * passes + HELD_BYTES_PER_PIXEL * held) + source_pixels * DECODE_BYTES_PER_PIXEL
    )
    return MemoryEstimate(total, size, (info.width, info.height), passes, held)


def _machine_memory() -> tuple[int | None, int | None]:
    """`(physical, available)` bytes, where the platform says (Linux: /proc/meminfo)."""
    physical = available = None
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    return physical, available


def _what_lowers_it(config: RerenderConfig, estimate: MemoryEstimate) -> str:
    ways = []
    if config.propagation.output_size == "source":
        ways.append(
            "propagate at the processing size (leave out --source-size; `propagation.output_size: processing`)"
        )
    else:
        ways.append(f"a lower `video.resolution` (now {config.video.resolution}: --set video.resolution=...)")
    if estimate.passes > 1:
        ways.append(
            f"fewer passes at once (`propagation.workers`, now {estimate.passes}: --set propagation.workers=1)"
        )
    ways.append("a crop (`video.crop`: --set video.crop.left=...)")
    return "; or ".join(ways)


def check_run_memory(
    info: VideoInfo,
    config: RerenderConfig,
    frame_count: int | None = None,
    memory: tuple[int | None, int | None] | None = None,
) -> MemoryEstimate:
    """Refuse a run that cannot fit in this machine's memory, warn about one that may not; before any decoding.

    Args:
        info, config, frame_count: as `estimate_run_memory`.
        memory: `(physical, available)` bytes; `None` = this machine's.

    Returns:
        The estimate (logged at info level when it fits).

    Raises:
        ConfigError: the estimate is above `REFUSE_FACTOR` times the physical memory; the message gives the
            figure and the options that lower it.
    """
    estimate = estimate_run_memory(info, config, frame_count)
    physical, available = memory if memory is not None else _machine_memory()
    need = estimate.describe()
    if physical and estimate.total_bytes > REFUSE_FACTOR * physical:
        raise ConfigError(
            f"this run needs {need}, but the machine has {_gigabytes(physical)}: {_what_lowers_it(config, estimate)}"
        )
    if available and estimate.total_bytes > available:
        logger.warning(
            "this run needs %s and %s is available now; it may swap or be stopped: %s",
            need,
            _gigabytes(available),
            _what_lowers_it(config, estimate),
        )
    else:
        logger.info("this run needs %s", need)
    return estimate
