"""Pose-guided generation: the character the prompt describes follows the poses of a reference video.

    python examples/pose_guided.py dance.mp4 poses/ "an astronaut dancing on the moon" out.mp4

`poses/` (a folder of images or a video) holds one OpenPose map per frame of `dance.mp4`, made by any pose tool
(or by controlnet-aux: preset `configs/pose_guided.yaml` with type openpose, the `annotators` extra). The preset
uses one OpenPose ControlNet at strength 1.0 and denoises from pure noise: appearance from the prompt, motion from
the poses. Diffusion weights are required; without them translate raises and says how to fetch them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rerender
from rerender.cli import run_example
from rerender.config import apply_overrides, load_config, parse_override

PRESET = Path(__file__).resolve().parents[1] / "configs" / "pose_guided.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("pose_maps", help="video or folder with one pose map per frame")
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument("--pose-controlnet", default="lllyasviel/sd-controlnet-openpose")
    parser.add_argument("--model", help="SD 1.5 weights (hub id or folder); default: the preset's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config option")
    args = parser.parse_args()

    overrides = {
        "control.0.type": "precomputed",
        "control.0.maps": args.pose_maps,
        "control.0.model": args.pose_controlnet,
        **({"base_model": args.model} if args.model else {}),
        **dict(map(parse_override, args.set)),
    }
    config = apply_overrides(load_config(PRESET), overrides)
    result = rerender.translate(args.video, args.prompt, K=8, output=args.output, config=config, renderer="diffusion")
    print(f"wrote {result.output}; keyframes {result.keyframe_indices}")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
