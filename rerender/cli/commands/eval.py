"""`rerender eval`: temporal consistency and CLIP scores of a result."""

from __future__ import annotations

import argparse
import json

from rerender.cli.base import EXIT_OK
from rerender.cli.options import integer_at_least, quiet_parent, verbose_parent


def register(commands) -> None:
    """Add `eval` to the `rerender` subparsers."""
    evaluate = commands.add_parser(
        "eval",
        parents=[verbose_parent(), quiet_parent()],
        help="temporal consistency (warp error, flicker) and CLIP scores of a result",
        epilog="eval reads no config option, so it takes no --config/--set: its flags below are all it uses.",
    )
    evaluate.add_argument("output_video", metavar="OUT", help="the translated video")
    evaluate.add_argument("--source", required=True, help="the input video it was made from")
    evaluate.add_argument("--prompt", help="score CLIP text similarity against this prompt")
    evaluate.add_argument(
        "--clip-model",
        default="openai/clip-vit-large-patch14",
        help="local folder or cached hub id (default: openai/clip-vit-large-patch14)",
    )
    evaluate.add_argument("--no-clip", action="store_true", help="skip CLIP scores")
    evaluate.add_argument(
        "--start-frame",
        type=integer_at_least(0),
        default=0,
        help="source frame paired with the output's first (default: 0)",
    )
    evaluate.add_argument(
        "--frame-stride", type=integer_at_least(1), default=1, help="source frames per output frame (default: 1)"
    )
    evaluate.add_argument(
        "--max-frames", type=integer_at_least(2), default=None, help="compare at most this many frames (default: all)"
    )
    evaluate.add_argument("--json", metavar="FILE", help="also write the report to FILE")
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the output against its source; prints the report (JSON), also to --json FILE."""
    from rerender.evaluation import evaluate_video
    from rerender.video import atomic_output, check_output_path

    if args.json:  # checked before the (long) evaluation; never one of the compared videos
        check_output_path(args.json, [args.output_video, args.source], kind="file", name="--json")
    report = evaluate_video(
        args.output_video,
        args.source,
        prompt=args.prompt,
        clip_model=None if args.no_clip else args.clip_model,
        start_frame=args.start_frame,
        frame_stride=args.frame_stride,
        max_frames=args.max_frames,
        progress=not args.quiet,
    )
    text = json.dumps(report, indent=2)
    if args.json:
        with atomic_output(args.json) as temporary:
            temporary.write_text(text + "\n", encoding="utf-8")
    print(text)
    return EXIT_OK
