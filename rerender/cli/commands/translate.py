"""`rerender translate` and `rerender keyframes`: restyle a video from a prompt."""

from __future__ import annotations

import argparse
import sys

from rerender.cli.base import EXIT_INTERRUPTED, EXIT_OK
from rerender.cli.options import (
    add_config_options, add_prompt_options, load_config, require_prompt, stop_at_safe_point, translate_overrides,
    verbose_parent,
)


def register(commands) -> None:
    """Add `translate` and `keyframes` to the `rerender` subparsers."""
    for name, help_text, stage_default in (
        ("translate", "restyle a video from a prompt (keyframes by SD + ControlNet, then propagation)", "all"),
        ("keyframes", "render only the keyframes (same as translate --stage keyframes)", "keyframes"),
    ):
        command = commands.add_parser(name, parents=[verbose_parent()], help=help_text)
        command.add_argument("video", help="video file or folder of numbered images")
        command.add_argument("-p", "--prompt", default=None, help="what the result should look like")
        add_prompt_options(command)
        command.add_argument("-o", "--output", default="out.mp4", help="output video (default out.mp4)")
        command.add_argument("-K", "--interval", type=int, default=None, help="keyframe interval (default 10)")
        command.add_argument("--keyframes-at", metavar="I,J,...", help="explicit keyframe indices instead of every K")
        command.add_argument("--model", help="SD1.5 weights: hub id, diffusers folder or .safetensors/.ckpt file")
        command.add_argument("--lora", action="append", metavar="PATH[:SCALE]", help="LoRA file (repeatable)")
        command.add_argument(
            "--renderer", choices=("auto", "diffusion", "classic"), default=None,
            help="keyframes by diffusion, by the built-in classic stylizer, or auto (default: diffusion when its "
            "weights can be loaded, else classic with a warning)",
        )
        command.add_argument("--workspace", help="folder for frames, flows, keyframes (default OUTPUT.work)")
        command.add_argument(
            "--force", action="store_true",
            help="redo every stage even if nothing changed (changed inputs are redone without it), or start over "
                 "a workspace made for another video",
        )
        command.add_argument(
            "--delete-workspace", action="store_true",
            help="delete the workspace after the video is written (only the files rerender wrote there)",
        )
        command.add_argument(
            "--source-size", action="store_true",
            help="write the output at the source's size (keyframes upscaled, propagation at full size; slower)",
        )
        command.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        if name == "translate":
            command.add_argument(
                "--stage", choices=("all", "first", "keyframes", "propagate"), default="all",
                help="first: only the anchor keyframe; keyframes: stop after keyframes; propagate: only propagation",
            )
            command.add_argument("--comparison", action="store_true", help="also write OUTPUT_comparison.mp4")
        add_config_options(command)
        command.set_defaults(handler=run, stage=stage_default, interrupted_message=interrupted_message)


def run(args: argparse.Namespace) -> int:
    from rerender.workflow.translation import translate
    from rerender.config import apply_overrides
    from rerender.errors import CancelledError

    config = load_config(args)
    extra = translate_overrides(args)
    if extra:
        config = apply_overrides(config, extra)
    require_prompt(args.prompt, config)
    try:
        with stop_at_safe_point() as cancel:
            result = translate(
                args.video, prompt=args.prompt, K=args.interval, output=args.output, config=config, stage=args.stage,
                workspace=args.workspace, force=args.force, comparison=getattr(args, "comparison", False),
                progress=not args.quiet, delete_workspace=args.delete_workspace, cancel=cancel,
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


def interrupted_message(args: argparse.Namespace) -> str:
    """The line printed on Ctrl-C: the workspace keeps the finished stages."""
    from rerender.workflow.stages import default_workspace

    workspace = args.workspace or default_workspace(args.output, args.video)
    return f"interrupted; finished work is kept in {workspace}: run the same command again to resume"
