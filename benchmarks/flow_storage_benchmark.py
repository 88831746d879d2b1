#!/usr/bin/env python
"""Flow storage benchmark (issue 10): bytes per cached flow pair and the effect of float16 flows on propagation.

The workspace's flow cache (`rerender.flow.FlowCache`) stores each pair's forward and backward flow as float16 in a
compressed ``.npz``. This script propagates the same clips twice, side by side in one run: once with the
estimator's float32 flows, once with the flows as the cache stores them (float16), and reports

* bytes per pair: float32 ``np.savez`` (the old format) next to float16 ``np.savez_compressed`` (the new one);
* PSNR (dB) between the two propagated videos (identical frames give inf), and the share of pixels that differ;
* the largest flow rounding error in pixels.

Clips: the `rerender.synthetic` mixed-motion clip and the first frames of real clips from
../shared/data/videos beside the repository (or --videos). Keyframes are the classic stylizer's every K frames.

Run (one thread on a shared machine):

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/flow_storage_benchmark.py --frames 21 --size 256
"""

from __future__ import annotations

import argparse
import glob
import io
import math
from pathlib import Path

import numpy as np

from rerender.flow import DISFlowEstimator, estimate_flow_numpy
from rerender.propagation import PropagationOptions, propagate_video
from rerender.stylizer import ClassicStylizer
from rerender.synthetic import make_synthetic_video
from rerender.video import read_frames

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"  # ../shared beside the repository


def psnr(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    error = np.mean([np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) for a, b in zip(first, second)])
    return math.inf if error == 0 else 10 * math.log10(255.0**2 / error)


def entry_bytes(forward: np.ndarray, backward: np.ndarray, compact: bool) -> int:
    buffer = io.BytesIO()
    if compact:
        np.savez_compressed(buffer, forward=forward.astype(np.float16), backward=backward.astype(np.float16))
    else:
        np.savez(buffer, forward=forward.astype(np.float32), backward=backward.astype(np.float32))
    return buffer.tell()


def run_clip(name: str, frames: list[np.ndarray], interval: int, preset: str) -> dict:
    estimator = DISFlowEstimator("medium")
    flows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def exact(source, target):  # each pair estimated once, so both runs see the same float32 flows
        key = (hash(source.tobytes()), hash(target.tobytes()))
        if key not in flows:
            flows[key] = estimate_flow_numpy(estimator, source, target)
        return flows[key]

    def as_stored(source, target):
        forward, backward = exact(source, target)
        return forward.astype(np.float16).astype(np.float32), backward.astype(np.float16).astype(np.float32)

    style = ClassicStylizer("watercolor")
    keys = {k: style(frames[k]) for k in range(0, len(frames), interval)}
    options = PropagationOptions.preset(preset, workers=1)
    full = propagate_video(frames, keys, flow=exact, options=options, progress=False)
    compact = propagate_video(frames, keys, flow=as_stored, options=options, progress=False)
    pairs = list(flows.values())
    rounding = max(float(np.max(np.abs(f.astype(np.float16).astype(np.float32) - f))) for pair in pairs for f in pair)
    return {
        "clip": name,
        "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "frames": len(frames),
        "float32 B/pair": np.mean([entry_bytes(*pair, compact=False) for pair in pairs]),
        "float16z B/pair": np.mean([entry_bytes(*pair, compact=True) for pair in pairs]),
        "PSNR dB": psnr(full, compact),
        "pixels differing %": 100 * np.mean([np.any(a != b, axis=-1).mean() for a, b in zip(full, compact)]),
        "max rounding px": rounding,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=21)
    parser.add_argument("--size", type=int, default=256, help="long side of the frames")
    parser.add_argument("-K", "--interval", type=int, default=10)
    parser.add_argument("--preset", default="fast", choices=("fast", "balanced", "best", "rerender"))
    parser.add_argument("--videos", nargs="*", default=sorted(glob.glob(str(SHARED_VIDEOS / "*.mp4")))[:3])
    args = parser.parse_args()
    clips = [
        (
            "synthetic mixed",
            list(make_synthetic_video(args.frames, args.size, args.size * 3 // 4, motion="mixed").frames),
        )
    ]
    for path in args.videos:
        frames = list(
            read_frames(path, start=0, end=args.frames, resolution=args.size, resize_side="long", size_multiple=8)
        )
        clips.append((path.rsplit("/", 1)[-1][:32], frames))
    for position, (name, frames) in enumerate(clips):
        row = run_clip(name, frames, args.interval, args.preset)
        if position == 0:
            print(" | ".join(row), flush=True)
        print(
            " | ".join(f"{value:.3g}" if isinstance(value, float) else str(value) for value in row.values()),
            flush=True,
        )


if __name__ == "__main__":
    main()
