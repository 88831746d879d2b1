"""`rerender animate`: a clip from a still image with a camera move, then restyled."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK, UsageError
from rerender.cli.options import (
    config_help,
    config_parent,
    input_parent,
    interval_parent,
    load_config,
    model_parent,
    overwrite_parent,
    prompt_parent,
    quiet_parent,
    renderer_parent,
    require_prompt,
    verbose_parent,
    workspace_parent,
)

API_NAMES = {
    "amount": "--amount",
    "seconds": "--seconds",
    "fps": "--fps",
    "depth": "--depth",
    "image": "IMAGE",
    "clip_output": "--no-clip",  # `clip_output=None`: the command's only say over the clip
}
"""`animate`'s Python arguments that library messages name, and this command's flags for them."""


def register(commands) -> None:
    """Add `animate` to the `rerender` subparsers."""
    from rerender.camera import MOTIONS

    parents = [
        verbose_parent(),
        interval_parent(),
        model_parent(lora=True),
        renderer_parent(),
        prompt_parent(),
        workspace_parent("redo every stage even if nothing changed"),
        overwrite_parent(),
        quiet_parent(),
        input_parent(),
        config_parent(),
    ]
    command = commands.add_parser(
        "animate", parents=parents, help="make a clip from a still image with a camera move, then restyle it"
    )
    command.add_argument("image", help="the still image")
    command.add_argument("-p", "--prompt", default=None, help=config_help("prompt.prompt"))
    command.add_argument(
        "-o", "--output", default="out.mp4", help="output video (default: out.mp4); the clip goes to OUTPUT_clip.mp4"
    )
    command.add_argument(
        "--motion", choices=MOTIONS, default=None, help="the camera move (default: zoom-in; 'path' with --path)"
    )
    command.add_argument(
        "--amount",
        type=float,
        default=None,
        help="how far the move goes (zoom gained, or the orbit's swing as a fraction of the width)",
    )
    command.add_argument(
        "--path",
        metavar="FILE|SPEC",
        help="keyframed path: JSON/YAML file or 't=0,scale=1;t=1,scale=1.5,rotation=10,x=0.1'",
    )
    command.add_argument(
        "--depth", metavar="FILE", help="depth map for --motion orbit (image or .npy, brighter = nearer)"
    )
    command.add_argument("--seconds", type=float, default=4.0, help="clip length (default: 4)")
    command.add_argument("--fps", type=float, default=25.0, help="frame rate (default: 25)")
    command.add_argument("--no-clip", action="store_true", help="do not write the untranslated clip OUTPUT_clip.mp4")
    command.set_defaults(handler=run, api_names=API_NAMES)


def run(args: argparse.Namespace) -> int:
    """Make the clip from the still image, translate it; prints the clip, the keyframes and the output."""
    from rerender.workflow.animation import animate

    motion = "path" if args.path and args.motion is None else (args.motion or "zoom-in")
    if motion == "orbit" and args.depth is None and not _annotators_importable():
        raise UsageError(  # a missing argument, not a failed run: exit 2, before the still is read
            "--motion orbit needs a depth map: pass --depth FILE (an image or .npy, brighter = nearer), install the "
            '`annotators` extra to estimate one (pip install "rerender[annotators]", needs torchvision), or choose '
            "a 2-D move (--motion zoom-in, zoom-out, pan-left/right/up/down)"
        )
    config = load_config(args)
    require_prompt(args.prompt, config)
    result = animate(
        args.image,
        prompt=args.prompt,
        motion=motion,
        seconds=args.seconds,
        fps=args.fps,
        output=args.output,
        config=config,
        K=args.interval,
        amount=args.amount,
        path=args.path,
        depth=args.depth,
        clip_output=None if args.no_clip else "auto",
        workspace=args.workspace,
        force=args.force,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    translation = result.translation
    print(f"clip: {result.clip or result.clip_frames} ({translation.frame_count} frames, {args.fps:g} fps)")
    print(f"keyframes ({translation.renderer}): {translation.keyframe_indices}")
    print(f"wrote {translation.output}")
    return EXIT_OK


def _annotators_importable() -> bool:
    """Whether controlnet-aux (the `annotators` extra, MiDaS depth for "orbit") imports here."""
    try:
        import controlnet_aux  # noqa: F401
    except ImportError:
        return False
    return True
