"""`rerender generate`: a video from a prompt alone (Text2Video-Zero keyframes, then propagation)."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK
from rerender.cli.options import add_config_options, add_prompt_options, load_config, translate_overrides, verbose_parent


def register(commands) -> None:
    """Add `generate` to the `rerender` subparsers."""
    command = commands.add_parser("generate", parents=[verbose_parent()], help="make a video from a prompt alone (Text2Video-Zero keyframes, then propagation)")
    command.add_argument("-p", "--prompt", required=True, help="what to show")
    command.add_argument("-n", "--negative-prompt", default=None, help="what to avoid")
    command.add_argument("--frames", type=int, default=16, help="frames in the video (default 16)")
    command.add_argument("-K", "--interval", type=int, default=8, help="keyframe interval (default 8)")
    command.add_argument("--dx", type=float, default=2.0, help="scene motion right per frame, pixels (default 2)")
    command.add_argument("--dy", type=float, default=0.0, help="scene motion down per frame, pixels (default 0)")
    command.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    command.add_argument("--height", type=int, default=512, help="frame height (default 512)")
    command.add_argument("--fps", type=float, default=8.0, help="frame rate (default 8)")
    command.add_argument("--steps", type=int, default=20, help="denoising steps (default 20)")
    command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    command.add_argument("--smooth-background", type=float, nargs="?", const=0.6, default=None, metavar="ALPHA",
                         help="Text2Video-Zero background smoothing: weight of the anchor's moved background (default 0.6 when given)")
    command.add_argument("--model", help="SD1.5 weights: hub id, diffusers folder or .safetensors/.ckpt file")
    add_prompt_options(command)
    command.add_argument("-o", "--output", default="out.mp4", help="output video (default out.mp4)")
    command.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_config_options(command)
    command.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rerender.config import apply_overrides
    from rerender.workflow.generation import BackgroundSmoothing, generate

    config = load_config(args)
    extra = translate_overrides(args)
    if extra:
        config = apply_overrides(config, extra)
    smoothing = None if args.smooth_background is None else BackgroundSmoothing(strength=args.smooth_background)
    result = generate(
        args.prompt, frames=args.frames, K=args.interval, output=args.output, motion=(args.dx, args.dy),
        size=(args.width, args.height), fps=args.fps, negative_prompt=args.negative_prompt, seed=args.seed,
        num_inference_steps=args.steps, config=config, progress=not args.quiet, background_smoothing=smoothing,
    )
    if result.prompt is not None and result.prompt.translator is not None:
        print(f"prompt ({result.prompt.language} -> en, {result.prompt.translator}): {result.prompt.english}")
    print(f"keyframes (diffusion): {result.keyframe_indices}")
    print(f"wrote {result.output} ({result.frame_count} frames)")
    return EXIT_OK
