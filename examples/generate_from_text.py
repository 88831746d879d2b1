"""Make a short video from a prompt alone: Text2Video-Zero keyframes every K frames, propagation in between.

    python examples/generate_from_text.py "a horse galloping on a beach" out.mp4 --frames 48 -K 8 --dx 3
    python examples/generate_from_text.py "..." out.mp4 --model ./my-sd15-folder --size 512 384
    python examples/generate_from_text.py "..." out.mp4 --smooth-background 0.6 --style-image ref.png

The scene moves by (dx, dy) pixels per frame; the same seed gives the same video. Needs SD 1.5 weights
(`rerender download`, or a local folder with --model).
"""

from __future__ import annotations

import argparse
import sys

import rerender
from rerender.cli import run_example
from rerender.config import RerenderConfig, apply_overrides
from rerender.diffusion.text2video import BackgroundSmoothing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("-K", type=int, default=8, help="keyframe interval")
    parser.add_argument("--dx", type=float, default=2.0, help="motion right, pixels per frame")
    parser.add_argument("--dy", type=float, default=0.0, help="motion down, pixels per frame")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--steps", type=int, default=20, help="denoising steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="SD 1.5 hub id, diffusers folder or .safetensors file")
    parser.add_argument(
        "--smooth-background",
        type=float,
        default=None,
        metavar="ALPHA",
        help="Text2Video-Zero background smoothing strength (0-1); default off",
    )
    parser.add_argument("--style-image", default=None, help="a reference image as a prompt (IP-Adapter)")
    parser.add_argument("--prompt-language", default="en", help="language of the prompt: en, auto, vi, ko, ...")
    args = parser.parse_args()

    config = apply_overrides(RerenderConfig(), {"base_model": args.model}) if args.model else None
    smoothing = None if args.smooth_background is None else BackgroundSmoothing(strength=args.smooth_background)
    result = rerender.generate(
        args.prompt,
        frames=args.frames,
        K=args.K,
        output=args.output,
        config=config,
        motion=(args.dx, args.dy),
        size=tuple(args.size),
        num_inference_steps=args.steps,
        seed=args.seed,
        background_smoothing=smoothing,
        style_image=args.style_image,
        prompt_language=args.prompt_language,
    )
    print(f"{result.output}: {result.frame_count} frames, keyframes {result.keyframe_indices}")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
