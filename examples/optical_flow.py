"""Estimate optical flow between two frames, find occlusions, and check the flow by warping.

    python examples/optical_flow.py input.mp4 --first 10 --second 14 --out flow_check.png
    python examples/optical_flow.py input.mp4 --estimator gmflow --checkpoint gmflow_sintel-0c07dcb3.pth

Writes one image: [first frame | second frame | first warped onto the second | flow colours | occlusion].
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import torch

from rerender.cli import run_example
from rerender.flow import flow_to_rgb, forward_backward_occlusion, load_flow_estimator, warp
from rerender.video import read_frames, write_image


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    return (tensor[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--second", type=int, default=4)
    parser.add_argument(
        "--estimator", default="auto", help="auto, dis, dis-fine, dis-medium, dis-fast, dis-ultrafast or gmflow"
    )
    parser.add_argument("--checkpoint", default=None, help="GMFlow weights (gmflow_sintel-0c07dcb3.pth)")
    parser.add_argument("--out", default="flow_check.png")
    args = parser.parse_args()

    frames = read_frames(args.video, start=args.first, end=args.second + 1, resolution=512)
    first, *_, second = itertools.islice(frames, args.second - args.first + 1)
    estimator = load_flow_estimator(args.estimator, checkpoint=args.checkpoint)
    forward, backward = estimator(to_tensor(first), to_tensor(second))  # (1, 2, H, W) pixels, x first
    _, occlusion = forward_backward_occlusion(forward, backward)  # on the second frame's grid
    warped = warp(to_tensor(first), backward)  # first frame in the second's geometry

    visible = occlusion[0, 0].numpy() < 0.5
    error = np.abs(to_image(warped).astype(float) - second)[visible].mean()
    print(
        f"{estimator.name}: mean |warped − second| on visible pixels = {error:.2f} "
        f"(no-motion baseline {np.abs(first.astype(float) - second).mean():.2f}), occluded {100 * (~visible).mean():.1f} %"
    )
    occlusion_image = np.repeat((occlusion[0, 0].numpy() * 255).astype(np.uint8)[..., None], 3, axis=2)
    panel = np.concatenate([first, second, to_image(warped), to_image(flow_to_rgb(backward)), occlusion_image], axis=1)
    write_image(panel, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
