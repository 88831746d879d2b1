"""Turn a still image into a short clip with a camera move, then restyle it with a prompt.

    python examples/animate_still.py photo.jpg "a watercolor painting" out.mp4 --motion zoom-in --seconds 4
    python examples/animate_still.py photo.jpg "..." out.mp4 --path "t=0,scale=1;t=1,scale=1.6,rotation=8,x=0.1"
    python examples/animate_still.py photo.jpg "..." out.mp4 --motion orbit --depth photo_depth.png

The move is known, so fusion and propagation use its exact flow. `--renderer classic` needs no weights.
"""

from __future__ import annotations

import argparse
import sys

import rerender
from rerender.camera import MOTIONS
from rerender.cli import run_example
from rerender.config import RendererName, choices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("image", "prompt", "output"):
        parser.add_argument(name)
    parser.add_argument("--motion", choices=MOTIONS, default="zoom-in")
    parser.add_argument("--path", help="keyframed path (JSON/YAML file or inline spec) for --motion path")
    parser.add_argument("--depth", help="depth map for --motion orbit (brighter = nearer)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--resolution", type=int, default=512, help="long side of the clip")
    parser.add_argument("--renderer", choices=choices(RendererName), default="auto")
    args = parser.parse_args()

    motion = "path" if args.path else args.motion
    result = rerender.animate(
        args.image,
        args.prompt,
        motion=motion,
        seconds=args.seconds,
        fps=args.fps,
        output=args.output,
        path=args.path,
        depth=args.depth,
        renderer=args.renderer,
        resolution=args.resolution,
    )
    print(
        f"{result.output}: {result.translation.frame_count} frames from the clip {result.clip} "
        f"({result.translation.renderer} keyframes {result.translation.keyframe_indices})"
    )


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
