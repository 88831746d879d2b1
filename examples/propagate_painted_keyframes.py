"""The classic EbSynth workflow, no diffusion model at all: paint a few frames, propagate them to the video.

    rerender preprocess input.mp4 -o frames/ --set resolution=512     # 1. export frames at the size you paint
    # 2. paint over some of them (keep the names: frames/0000.png, frames/0030.png, ...) into keys/
    python examples/propagate_painted_keyframes.py input.mp4 keys/ painted.mp4   # 3. propagate

Keyframes are named by frame index and may sit anywhere (first/last frame or not); frames before the first
and after the last keyframe are propagated one way. This script also makes demo keyframes when --demo-keys is
given, by stylizing a few frames with the built-in classic stylizer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rerender.cli import run_example
from rerender.config import BlendMode, choices
from rerender.stylizer import ClassicStylizer
from rerender.video import probe_video, read_frames, write_image
from rerender.workflow.keyframe_folder import propagate_keyframes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("keys", help="folder of painted keyframes named by frame index")
    parser.add_argument("output")
    parser.add_argument(
        "--demo-keys", type=int, nargs="*", metavar="INDEX", help="write demo keyframes at these indices first"
    )
    parser.add_argument(
        "--blend", default=None, choices=choices(BlendMode), help="default: the preset's (reconstruction)"
    )
    args = parser.parse_args()

    keys = Path(args.keys)
    if args.demo_keys:
        keys.mkdir(exist_ok=True)
        stylizer = ClassicStylizer("watercolor")
        for index, frame in enumerate(read_frames(args.video)):
            if index in args.demo_keys:
                write_image(stylizer(frame), keys / f"{index:04d}.png")

    options = {"blend_mode": args.blend} if args.blend else {}
    result = propagate_keyframes(args.video, keys, args.output, **options)
    info = probe_video(result.output)
    print(
        f"{result.output}: keyframes {result.keyframe_indices} → {info.frame_count} frames at {float(info.fps):g} fps"
    )


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
