"""`rerender translate` and `rerender keyframes`: restyle a video from a prompt."""

from __future__ import annotations

import argparse
import sys

from rerender.cli.base import EXIT_INTERRUPTED, EXIT_OK
from rerender.cli.options import (
    add_config_option,
    config_help,
    config_parent,
    input_parent,
    interval_parent,
    load_config,
    model_parent,
    overwrite_parent,
    parse_keyframes_at,
    prompt_parent,
    quiet_parent,
    renderer_parent,
    require_prompt,
    source_size_parent,
    stop_at_safe_point,
    verbose_parent,
    workspace_parent,
)
from rerender.config import Stage, choices

FORCE_HELP = (
    "redo every stage even if nothing changed (changed inputs are redone without it), or start over a "
    "workspace made for another video"
)


def register(commands) -> None:
    """Add `translate` and `keyframes` to the `rerender` subparsers."""
    for name, help_text, stage_default in (
        ("translate", "restyle a video from a prompt (keyframes by SD + ControlNet, then propagation)", "all"),
        ("keyframes", "render only the keyframes (same as translate --stage keyframes)", "keyframes"),
    ):
        parents = [
            verbose_parent(),
            interval_parent(),
            prompt_parent(),
            model_parent(lora=True),
            renderer_parent(),
            workspace_parent(FORCE_HELP),
            *([overwrite_parent()] if name == "translate" else []),
            source_size_parent(),
            quiet_parent(),
            input_parent(),
            config_parent(),
        ]
        command = commands.add_parser(name, parents=parents, help=help_text)
        command.add_argument("video", help="video file or folder of numbered images")
        command.add_argument("-p", "--prompt", default=None, help=config_help("prompt.prompt"))
        command.add_argument("-o", "--output", default="out.mp4", help="output video (default: out.mp4)")
        add_config_option(
            command,
            "--keyframes-at",
            path="keyframes.keyframe_indices",
            metavar="I,J,...",
            type=parse_keyframes_at,
            help="explicit keyframe indices instead of every K",
        )
        command.add_argument(
            "--delete-workspace",
            action="store_true",
            help="delete the workspace after the video is written (only the files rerender wrote there)",
        )
        if name == "translate":
            command.add_argument(
                "--stage",
                choices=choices(Stage),
                default="all",
                help="first: only the anchor keyframe; keyframes: stop after keyframes; propagate: only propagation; "
                "all: everything (default: all)",
            )
            command.add_argument("--comparison", action="store_true", help="also write OUTPUT_comparison.mp4")
        command.set_defaults(handler=run, stage=stage_default, interrupted_message=interrupted_message)


def run(args: argparse.Namespace) -> int:
    """Translate the video (or render its keyframes); prints what was reused, made and written."""
    from rerender.errors import CancelledError
    from rerender.workflow.translation import translate

    config = load_config(args)
    require_prompt(args.prompt, config)
    check_paths(args)
    try:
        with stop_at_safe_point() as cancel:
            result = translate(
                args.video,
                prompt=args.prompt,
                K=args.interval,
                output=args.output,
                config=config,
                stage=args.stage,
                workspace=args.workspace,
                force=args.force,
                overwrite=getattr(args, "overwrite", False),
                comparison=getattr(args, "comparison", False),
                progress=not args.quiet,
                delete_workspace=args.delete_workspace,
                cancel=cancel,
            )
    except CancelledError:
        print(interrupted_message(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    for name in result.reused:
        print(f"reused the {name} stage from {result.workspace}")
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    print(f"keyframes ({result.renderer}): {result.keyframe_indices}")
    if result.output is not None:
        print(f"wrote {result.output} ({result.frame_count} frames){'; ' + timings if timings else ''}")
    for name, path in result.previews.items():
        print(f"{name}: {path}")
    size = f"{result.workspace_bytes / 1e6:.1f} MB"
    print(f"workspace: {result.workspace} ({'deleted, ' + size + ' freed' if result.workspace_deleted else size})")
    return EXIT_OK


def check_paths(args: argparse.Namespace) -> None:
    """-o/--output and --workspace, named as typed, before any work (the library checks them again, by its names)."""
    from rerender.video import check_output_path

    if args.stage in ("all", "propagate"):
        check_output_path(args.output, [args.video], name="-o/--output")
    if args.workspace is not None:
        check_output_path(args.workspace, [args.video], kind="folder", name="--workspace")


def interrupted_message(args: argparse.Namespace) -> str:
    """The line printed on Ctrl-C: the workspace keeps the finished stages."""
    from rerender.workflow.stages import default_workspace

    workspace = args.workspace or default_workspace(args.output, args.video)
    return f"interrupted; finished work is kept in {workspace}: run the same command again to resume"
