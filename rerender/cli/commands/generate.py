"""`rerender generate`: a video from a prompt alone (Text2Video-Zero keyframes, then propagation)."""

from __future__ import annotations

import argparse
import sys

from rerender.cli.base import EXIT_INTERRUPTED, EXIT_OK
from rerender.cli.options import (
    config_help,
    config_parent,
    interval_parent,
    load_config,
    model_parent,
    overwrite_parent,
    prompt_parent,
    quiet_parent,
    stop_at_safe_point,
    verbose_parent,
)
from rerender.config import GENERATED_SIZE

API_NAMES = {
    "frames": "--frames",
    "size": "--width/--height",
    "fps": "--fps",
    "motion": "--dx/--dy",
    "seed": "--seed",
    "num_inference_steps": "--steps",
    "background_smoothing.strength": "--smooth-background",
}
"""`generate`'s Python arguments that library messages name, and this command's flags for them."""


def register(commands) -> None:
    """Add `generate` to the `rerender` subparsers."""
    command = commands.add_parser(
        "generate",
        parents=[
            verbose_parent(),
            interval_parent(8),
            model_parent(),
            prompt_parent(),
            overwrite_parent(),
            quiet_parent(),
            config_parent(),
        ],
        help="make a video from a prompt alone (Text2Video-Zero keyframes, then propagation)",
    )
    command.add_argument("-p", "--prompt", required=True, help="what to show")
    command.add_argument(
        "-n",
        "--negative-prompt",
        default=None,
        help=config_help("prompt.negative_prompt", "(default: the config's)", default=False),
    )
    command.add_argument("--frames", type=int, default=16, help="frames in the video (default: 16)")
    command.add_argument("--dx", type=float, default=2.0, help="scene motion right per frame, pixels (default: 2)")
    command.add_argument("--dy", type=float, default=0.0, help="scene motion down per frame, pixels (default: 0)")
    for flag, side in (("--width", 0), ("--height", 1)):  # not given: the library's size, as `generate` computes it
        command.add_argument(
            flag,
            type=int,
            default=None,
            help=f"frame {flag[2:]} in pixels (default: {GENERATED_SIZE[side]} on every model; --set resolution "
            "does not apply)",
        )
    command.add_argument("--fps", type=float, default=8.0, help="frame rate (default: 8)")
    command.add_argument(  # not given: the config's, so a preset's steps (or the model's own) hold
        "--steps", type=int, help=config_help("sampling.num_inference_steps", "(default: the config's)", False)
    )
    command.add_argument("--seed", type=int, help=config_help("sampling.seed", "(default: the config's, 0)", False))
    command.add_argument(
        "--smooth-background",
        type=float,
        nargs="?",
        const=0.6,
        default=None,
        metavar="ALPHA",
        help="Text2Video-Zero background smoothing: weight of the anchor's moved background "
        "(0.6 when given without a value)",
    )
    command.add_argument("-o", "--output", default="out.mp4", help="output video (default: out.mp4)")
    command.set_defaults(handler=run, api_names=API_NAMES)


def run(args: argparse.Namespace) -> int:
    """Generate the video from the prompt; prints the translated prompt, the keyframes and the output."""
    from rerender.errors import CancelledError
    from rerender.workflow.generation import BackgroundSmoothing, generate

    config = load_config(args)
    smoothing = None if args.smooth_background is None else BackgroundSmoothing(strength=args.smooth_background)
    try:
        with stop_at_safe_point() as cancel:  # the first Ctrl-C stops at the next denoising step or frame
            result = generate(
                args.prompt,
                frames=args.frames,
                K=args.interval,
                output=args.output,
                overwrite=args.overwrite,
                motion=(args.dx, args.dy),
                size=None
                if args.width is None and args.height is None
                else tuple(
                    default if side is None else side
                    for side, default in zip((args.width, args.height), GENERATED_SIZE)
                ),
                fps=args.fps,
                negative_prompt=args.negative_prompt,
                seed=config.sampling.seed if args.seed is None else args.seed,  # null: `generate` draws one
                num_inference_steps=config.sampling.num_inference_steps if args.steps is None else args.steps,
                config=config,
                progress=not args.quiet,
                background_smoothing=smoothing,
                cancel=cancel,
            )
    except CancelledError:
        print(f"interrupted; nothing was written to {args.output} (generate keeps no workspace)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.prompt is not None and result.prompt.translator is not None:
        print(f"prompt ({result.prompt.language} -> en, {result.prompt.translator}): {result.prompt.english}")
    if args.seed is None and config.sampling.seed is None:  # drawn: printed so the run can be repeated
        print(f"seed: {result.seed} (drawn; --seed {result.seed} repeats this video)")
    print(f"keyframes (diffusion): {result.keyframe_indices}")
    print(f"wrote {result.output} ({result.frame_count} frames)")
    return EXIT_OK
