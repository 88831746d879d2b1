"""Translate a video with a prompt: keyframes by SD 1.5 + ControlNet, then propagation to every frame.

    python examples/translate_video.py input.mp4 "a handsome man in oil painting style" out.mp4
    python examples/translate_video.py input.mp4 "..." out.mp4 --model stable-diffusion-v1-5/stable-diffusion-v1-5 -K 10

The weights are downloaded on first use (or fetched beforehand with `rerender download`). With `--renderer auto`
(the default here) a machine that has no weights and no network renders the keyframes with the built-in classic
stylizer instead, with a warning; `--renderer diffusion` raises instead, `--renderer classic` never loads weights.
The output keeps the input's fps and audio.
"""

from __future__ import annotations

import argparse
import logging
import sys

import rerender
from rerender.cli import run_example
from rerender.config import RendererName, choices, field_default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument("-K", type=int, default=field_default("keyframes.keyframe_interval"), help="keyframe interval")
    parser.add_argument("--model", default=None, help="SD 1.5 hub id, diffusers folder or .safetensors file")
    parser.add_argument("--renderer", choices=choices(RendererName), default="auto")
    parser.add_argument(
        "--strength",
        type=float,
        default=field_default("sampling.denoising_strength"),
        help="denoising strength (1 = from noise)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    overrides = {"denoising_strength": args.strength}
    if args.model:
        overrides["base_model"] = args.model
    result = rerender.translate(
        args.video, args.prompt, K=args.K, output=args.output, renderer=args.renderer, **overrides
    )
    print(f"{result.output}: {result.frame_count} frames, keyframes {result.keyframe_indices} ({result.renderer})")
    print("seconds per stage:", {stage: round(seconds, 1) for stage, seconds in result.timings.items()})


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
