"""`rerender propagate`: carry your own stylized keyframes to every frame."""

from __future__ import annotations

import argparse

from rerender.cli.base import EXIT_OK
from rerender.cli.options import add_config_options, integer_at_least, load_config, positive_number, verbose_parent


def register(commands) -> None:
    """Add `propagate` to the `rerender` subparsers."""
    propagate = commands.add_parser("propagate", parents=[verbose_parent()], help="propagate your own stylized keyframes to every frame")
    propagate.add_argument("video", help="video file or folder of numbered images")
    propagate.add_argument("--keyframes", required=True, metavar="DIR", help="stylized frames named by frame index (0000.png, 0012.png)")
    propagate.add_argument("-o", "--output", required=True, help="output video")
    propagate.add_argument(
        "--blend", choices=("agreement", "histogram", "poisson", "select", "linear"),
        help="how the forward and backward passes merge (default: the preset's, agreement)",
    )
    propagate.add_argument(
        "--preset", choices=("fast", "balanced", "best", "rerender"),
        help="speed/quality preset; rerender = the official EbSynth settings",
    )
    propagate.add_argument("--workers", type=integer_at_least(1), help="propagation passes run at once, in threads (default: CPU cores)")
    propagate.add_argument("--fps", type=positive_number, help="output fps (default: the source's)")
    propagate.add_argument(
        "--source-size", action="store_true",
        help="write the output at the source's size (keyframes upscaled, propagation at full size; slower)",
    )
    propagate.add_argument(
        "--first-number", type=int, default=0, metavar="N",
        help="for a video: the number in key names of its first frame (default 0 as `preprocess`; 1 for ffmpeg %%04d.png)",
    )
    propagate.add_argument(
        "--keep-intermediates", metavar="DIR",
        help="keep frames, flows and propagated frames here (a new or empty folder, or one rerender made); a rerun "
             "propagates again only the intervals whose keyframes changed",
    )
    propagate.add_argument("--force", action="store_true", help="redo everything in DIR, or start it over for another video")
    propagate.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_config_options(propagate)
    propagate.set_defaults(handler=run, interrupted_message=interrupted_message)


def run(args: argparse.Namespace) -> int:
    from rerender.workflow.keyframe_folder import propagate_keyframes
    from rerender.config import apply_overrides

    config = load_config(args)
    extra = {}
    if args.blend:
        extra["propagation.blend_mode"] = args.blend
    if args.preset:
        extra["propagation.propagation_preset"] = args.preset
    if args.workers:
        extra["propagation.workers"] = args.workers
    if args.fps:
        extra["output.fps"] = args.fps
    if args.source_size:
        extra["propagation.output_size"] = "source"
    if extra:
        config = apply_overrides(config, extra)
    result = propagate_keyframes(
        args.video, args.keyframes, args.output, config=config, workspace=args.keep_intermediates,
        force=args.force, progress=not args.quiet, first_number=args.first_number,
    )
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    print(f"propagated keyframes {result.keyframe_indices} to {result.frame_count} frames: {result.output} ({timings})")
    if args.keep_intermediates:
        print(f"workspace: {result.workspace} ({result.workspace_bytes / 1e6:.1f} MB)")
    return EXIT_OK


def interrupted_message(args: argparse.Namespace) -> str:
    """The line printed on Ctrl-C: resumable only with --keep-intermediates."""
    if args.keep_intermediates:
        return f"interrupted; finished work is kept in {args.keep_intermediates}: run the same command again to resume"
    return "interrupted; nothing was kept (pass --keep-intermediates DIR to make propagation resumable)"
