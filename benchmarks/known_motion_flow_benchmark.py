#!/usr/bin/env python
"""Known-motion flow (issue 14) next to DIS on clips `rerender animate` makes from a still.

For each camera move, a clip is made from a still (the first frame of a real clip, or a file you pass) at
--size, and for frame pairs (0, d) the later frame is rebuilt by warping the earlier one with the backward flow
of `KnownMotionFlow` and of OpenCV DIS (medium). Reported: mean absolute RGB error (0–255) over the pixels whose
sample stays inside the frame (4 px border left out), the no-motion baseline, and seconds per pair (both
directions). Run: OMP_NUM_THREADS=1 python benchmarks/known_motion_flow_benchmark.py --size 512
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rerender.camera import KnownMotionFlow, motion_path, render_clip
from rerender.flow import DISFlowEstimator
from rerender.flow.ops import warp_with_validity
from rerender.video import compute_output_size, read_frames, read_image

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255


def error(frames, first, second, backward) -> float:
    warped, valid = warp_with_validity(to_tensor(frames[first]), backward)
    valid = valid[..., 4:-4, 4:-4]
    difference = (warped - to_tensor(frames[second])).abs()[..., 4:-4, 4:-4] * valid
    return float(difference.sum() / valid.sum() / 3 * 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--still", help="an image (default: the first frame of a clip in shared/data/videos)")
    parser.add_argument("--size", type=int, default=512, help="long side of the clip")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--gaps", type=int, nargs="+", default=[1, 6, 24])
    args = parser.parse_args()
    still = read_image(args.still) if args.still else next(iter(read_frames(sorted(CLIPS.glob("*.mp4"))[0])))
    size = compute_output_size(still.shape[1], still.shape[0], args.size)
    dis = DISFlowEstimator("medium")
    moves = {
        "zoom-in": {},
        "pan-right": {},
        "path": {"path": "t=0,scale=1.2;t=1,scale=1.5,rotation=6,x=0.05"},
        "orbit": {"disparity": np.tile(np.linspace(0, 1, still.shape[1], dtype=np.float32), (still.shape[0], 1))},
    }
    print(f"still {still.shape[1]}x{still.shape[0]} -> clip {size[0]}x{size[1]}, {args.frames} frames")
    print(f"{'move':10} {'gap':>4} {'no motion':>10} {'known':>8} {'DIS':>8} {'known s':>8} {'DIS s':>8}")
    for motion, options in moves.items():
        path = motion_path(motion, args.frames, size, **options)
        frames = list(render_clip(still, path))
        known = KnownMotionFlow(path, frames)
        for gap in args.gaps:
            pair = (to_tensor(frames[0]), to_tensor(frames[gap]))
            started = time.perf_counter()
            _, known_backward = known(*pair)
            known_seconds = time.perf_counter() - started
            started = time.perf_counter()
            _, dis_backward = dis(*pair)
            dis_seconds = time.perf_counter() - started
            baseline = error(frames, 0, gap, torch.zeros_like(known_backward))
            print(
                f"{motion:10} {gap:4d} {baseline:10.2f} {error(frames, 0, gap, known_backward):8.2f} "
                f"{error(frames, 0, gap, dis_backward):8.2f} {known_seconds:8.3f} {dis_seconds:8.3f}"
            )


if __name__ == "__main__":
    main()
