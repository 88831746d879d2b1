"""`rerender propagate`: carry your own stylized keyframes to every frame."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK
from rerender.cli.options import (
    add_config_option,
    config_parent,
    input_parent,
    integer_at_least,
    load_config,
    overwrite_parent,
    positive_number,
    quiet_parent,
    source_size_parent,
    verbose_parent,
)


def register(commands) -> None:
    """Add `propagate` to the `rerender` subparsers."""
    propagate = commands.add_parser(
        "propagate",
        parents=[
            verbose_parent(),
            source_size_parent(),
            overwrite_parent(),
            quiet_parent(),
            input_parent(),
            config_parent(),
        ],
        help="propagate your own stylized keyframes to every frame",
    )
    propagate.add_argument("video", help="video file or folder of numbered images")
    propagate.add_argument(
        "--keyframes", required=True, metavar="DIR", help="stylized frames named by frame index (0000.png, 0012.png)"
    )
    propagate.add_argument("-o", "--output", required=True, help="output video")
    add_config_option(propagate, "--blend", path="propagation.blend_mode")
    add_config_option(propagate, "--preset", path="propagation.propagation_preset")
    add_config_option(propagate, "--workers", path="propagation.workers", type=integer_at_least(1), metavar="N")
    add_config_option(propagate, "--fps", path="output.fps", type=positive_number, metavar="FPS")
    propagate.add_argument(
        "--first-number",
        type=int,
        default=0,
        metavar="N",
        help="for a video: the number in key names of its first frame (default 0 as `preprocess`; 1 for ffmpeg "
        "%%04d.png)",
    )
    propagate.add_argument(
        "--keep-intermediates",
        metavar="DIR",
        help="keep frames, flows and propagated frames here (a new or empty folder, or one rerender made); a rerun "
        "propagates again only the intervals whose keyframes changed",
    )
    propagate.add_argument(
        "--force", action="store_true", help="redo everything in DIR, or start it over for another video"
    )
    propagate.set_defaults(
        handler=run,
        interrupted_message=interrupted_message,
        api_names={"keyframes": "--keyframes", "first_number": "--first-number", "workspace": "--keep-intermediates"},
    )


def run(args: argparse.Namespace) -> int:
    """Propagate the keyframes folder over the video; prints the keyframes used and the output."""
    from rerender.video import check_output_path
    from rerender.workflow.keyframe_folder import propagate_keyframes

    config = load_config(args)
    check_output_path(args.output, [args.video, args.keyframes], name="-o/--output")  # named as typed, first
    if args.keep_intermediates is not None:
        check_output_path(
            args.keep_intermediates, [args.video, args.keyframes], kind="folder", name="--keep-intermediates"
        )
    result = propagate_keyframes(
        args.video,
        args.keyframes,
        args.output,
        config=config,
        workspace=args.keep_intermediates,
        force=args.force,
        overwrite=args.overwrite,
        progress=not args.quiet,
        first_number=args.first_number,
    )
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    print(
        f"propagated keyframes {result.keyframe_indices} to {result.frame_count} frames: {result.output} ({timings})"
    )
    if args.keep_intermediates:
        print(f"workspace: {result.workspace} ({result.workspace_bytes / 1e6:.1f} MB)")
    return EXIT_OK


def interrupted_message(args: argparse.Namespace) -> str:
    """The line printed on Ctrl-C: resumable only with --keep-intermediates."""
    if args.keep_intermediates:
        return f"interrupted; finished work is kept in {args.keep_intermediates}: run the same command again to resume"
    return "interrupted; nothing was kept (pass --keep-intermediates DIR to make propagation resumable)"
