"""Peak memory of propagation per pixel, the figures behind `rerender.video.memory` (PASS/HELD_BYTES_PER_PIXEL).

Runs `propagate_video_iter` on synthetic frames (two keyframes, the default preset, DIS flow) under
`tracemalloc` and prints the peak and the bytes per pixel; the slope between frame counts is the memory per
held frame, the rest the working set of the passes.

    PYTHONPATH=$PWD python benchmarks/video_memory_benchmark.py [--size 256] [--frames 11 21] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from rerender.propagation import propagate_video_iter


def peak_bytes(size: int, count: int, workers: int) -> tuple[int, float]:
    rng = np.random.default_rng(0)
    base = (rng.random((size + 2 * count, size, 3)) * 255).astype(np.uint8)
    frames = [np.ascontiguousarray(base[2 * index : 2 * index + size]) for index in range(count)]  # a slow pan
    keys = {0: frames[0][::-1].copy(), count - 1: frames[-1][::-1].copy()}
    for _ in propagate_video_iter(frames[:3], {0: keys[0], 2: frames[2][::-1].copy()}, progress=False, workers=1):
        pass  # compile the numba kernels first: their memory is not the run's
    tracemalloc.start()
    start = time.perf_counter()
    for _ in propagate_video_iter(frames, keys, progress=False, workers=workers):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, nargs="+", default=[11, 21])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    pixels = args.size * args.size
    for workers in args.workers:
        for count in args.frames:
            peak, seconds = peak_bytes(args.size, count, workers)
            print(
                f"{args.size}x{args.size}, {count} frames, {workers} worker(s): peak {peak / 1e6:.1f} MB = "
                f"{peak / pixels:.0f} B/px ({seconds:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
