"""Pose-guided translation with precomputed pose maps (any ControlNet works the same way).

    python examples/pose_guided.py dance.mp4 poses.mp4 "an astronaut dancing on the moon" out.mp4

`poses.mp4` (or a folder of PNGs) holds one OpenPose map per frame of the input, e.g. made once with the
`annotators` extra on a GPU machine. A second ControlNet (canny on the frames themselves) keeps the outline;
each ControlNet has its own strength. The keyframes need the diffusion weights: without them (offline, not
cached) translate raises and says how to fetch them, rather than rendering without the poses.
"""

from __future__ import annotations

import argparse

import rerender
from rerender.config import ControlConfig, RerenderConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("pose_maps", help="video or folder with one pose map per frame")
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument("--pose-controlnet", default="lllyasviel/sd-controlnet-openpose")
    args = parser.parse_args()

    config = RerenderConfig(
        control=(
            ControlConfig(type="precomputed", maps=args.pose_maps, model=args.pose_controlnet, strength=1.0),
            ControlConfig(type="canny", strength=0.5),
        )
    )
    result = rerender.translate(args.video, args.prompt, K=8, output=args.output, config=config, renderer="diffusion")
    print(f"wrote {result.output}; keyframes {result.keyframe_indices}")


if __name__ == "__main__":
    main()
