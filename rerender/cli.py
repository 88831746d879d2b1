"""The `rerender` command line. The only part of the package that prints.

Exit codes: 0 success, 1 runtime failure, 2 usage error (bad arguments, bad config, bad input files).
User errors print one line (`error: ...`); `--verbose` adds debug logging and tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from fractions import Fraction
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

logger = logging.getLogger("rerender.cli")


class _UsageError(Exception):
    """Raised by the parser instead of exiting, so `main` owns every exit code."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise _UsageError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------------------------------------
# shared option groups
# --------------------------------------------------------------------------------------------------------


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON config (missing keys take defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one option, by leaf name or dotted path (repeatable), e.g. --set denoising_strength=0.6",
    )


def _load_config(args: argparse.Namespace):
    from rerender.config import RerenderConfig, apply_overrides, load_config, parse_override

    config = load_config(args.config) if getattr(args, "config", None) else RerenderConfig()
    overrides = dict(parse_override(item) for item in getattr(args, "overrides", []) or [])
    return apply_overrides(config, overrides) if overrides else config


def _format_fps(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator} ({float(fps):.3f})" if fps.denominator != 1 else str(fps.numerator)


# --------------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------------


def _command_config_show(args: argparse.Namespace) -> int:
    from rerender.config import config_to_dict, dump_yaml

    config = _load_config(args)
    data = config_to_dict(config)
    print(json.dumps(data, indent=2) if args.json else dump_yaml(data), end="")
    return EXIT_OK


def _command_config_validate(args: argparse.Namespace) -> int:
    from rerender.config import load_config

    load_config(args.file)
    print(f"{args.file}: valid")
    return EXIT_OK


def _command_info(args: argparse.Namespace) -> int:
    from rerender.video import compute_output_size, probe_video

    info = probe_video(args.video, image_sequence_fps=args.fps)
    config = _load_config(args)
    crop = config.video.crop
    width, height = info.width - crop.left - crop.right, info.height - crop.top - crop.bottom
    if width < 1 or height < 1:
        raise ValueError(f"`crop` {crop} leaves nothing of the {info.width}×{info.height} frame")
    processing = compute_output_size(width, height, config.video.resolution, config.video.resize_side, config.video.size_multiple)
    record = {
        "path": str(info.path),
        "kind": "image sequence" if info.is_image_sequence else "video",
        "width": info.width,
        "height": info.height,
        "fps": str(info.fps),
        "frame_count": info.frame_count,
        "duration_s": round(info.duration, 3),
        "rotation": info.rotation,
        "video_codec": info.video_codec,
        "has_audio": info.has_audio,
        "audio_codec": info.audio_codec,
        "processing_size": list(processing),
    }
    if args.json:
        print(json.dumps(record, indent=2))
        return EXIT_OK
    print(f"{info.path}")
    print(f"  kind        {record['kind']}" + (f" ({info.video_codec})" if info.video_codec else ""))
    print(f"  size        {info.width}×{info.height}" + (f" (rotation {info.rotation}° applied)" if info.rotation else ""))
    print(f"  fps         {_format_fps(info.fps)}")
    print(f"  frames      {info.frame_count}  ({info.duration:.2f} s)")
    print(f"  audio       {info.audio_codec if info.has_audio else 'none'}")
    print(
        f"  processing  {processing[0]}×{processing[1]} "
        f"({config.video.resize_side} side → {config.video.resolution}, multiple of {config.video.size_multiple})"
    )
    return EXIT_OK


def _command_env(args: argparse.Namespace) -> int:
    from rerender.environment import collect_environment

    report = collect_environment()
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"python    {report['python']}  ({report['platform']})")
    print("packages")
    for name, version in report["packages"].items():
        print(f"  {name:32s}{version or 'not installed'}")
    print("optional")
    for name, item in report["optional"].items():
        state = "usable" if item["usable"] else ("installed, not importable" if item["version"] else "not installed")
        print(f"  {name:32s}{state:28s}{item['for']}")
    print("devices")
    for key, value in report["devices"].items():
        print(f"  {key:32s}{value}")
    print("weights are looked for in")
    for key, value in report["weights"].items():
        print(f"  {key:32s}{value}")
    return EXIT_OK


def _command_preprocess(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rerender.video import check_output_path, probe_video, read_frames, write_png_sequence, write_video

    config = _load_config(args)
    video = config.video
    info = probe_video(args.video)
    output = Path(args.output)
    as_images = output.suffix == ""
    if not as_images:
        check_output_path(output, [args.video])
    crop = (video.crop.left, video.crop.top, video.crop.right, video.crop.bottom)
    frames = read_frames(
        args.video, video.start_frame, video.end_frame, video.frame_stride, crop,
        video.resolution, video.resize_side, video.size_multiple, info=info,
    )
    end = video.end_frame if video.end_frame is not None else info.frame_count
    total = len(range(video.start_frame, end, video.frame_stride))
    frames = tqdm(frames, total=total, desc="preprocess", unit="frame", disable=args.quiet)
    if as_images:
        written = write_png_sequence(frames, output)
        print(f"wrote {len(written)} frames to {output}/")
        return EXIT_OK
    fps = config.output.fps or info.fps / video.frame_stride
    write_video(
        frames, output, fps=fps, crf=config.output.crf,
        audio_from=args.video if config.output.keep_audio else None,
        audio_start=float(video.start_frame / info.fps),
    )
    print(f"wrote {output} ({total} frames at {float(fps):.3f} fps)")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------------
# parser and entry point
# --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The full `rerender` argument parser."""
    from rerender import __version__

    parser = _Parser(
        prog="rerender",
        description="Zero-shot text-guided video-to-video translation (Rerender A Video).",
        epilog="Run `rerender COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"rerender {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    config_parser = commands.add_parser("config", help="show or validate configs")
    config_commands = config_parser.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    show = config_commands.add_parser("show", help="print the effective config (defaults, file, overrides)")
    show.add_argument("file", nargs="?", help="config file to start from (default: built-in defaults)")
    show.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[], help="override an option")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(handler=_command_config_show)
    validate = config_commands.add_parser("validate", help="check a config file; exit 0 if valid, 2 if not")
    validate.add_argument("file", help="YAML or JSON config")
    validate.set_defaults(handler=_command_config_validate)
    config_parser.set_defaults(handler=lambda args: _missing_action(config_parser))

    info = commands.add_parser("info", help="describe a video or image folder as the reader sees it")
    info.add_argument("video", help="video file or folder of numbered images")
    info.add_argument("--fps", type=float, default=None, help="frame rate to assume for an image folder (default 25)")
    info.add_argument("--json", action="store_true", help="print JSON")
    _add_config_options(info)
    info.set_defaults(handler=_command_info)

    env = commands.add_parser("env", help="versions, devices, optional components, where weights are looked for")
    env.add_argument("--json", action="store_true", help="print JSON")
    env.set_defaults(handler=_command_env)

    preprocess = commands.add_parser(
        "preprocess", help="select, crop and resize frames as the method will see them (mp4 with audio, or PNGs)"
    )
    preprocess.add_argument("video", help="video file or folder of numbered images")
    preprocess.add_argument("-o", "--output", required=True, help="output .mp4/.mov/.mkv, or a folder for PNG frames")
    preprocess.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_config_options(preprocess)
    preprocess.set_defaults(handler=_command_preprocess)
    return parser


def _missing_action(parser: argparse.ArgumentParser) -> int:
    raise _UsageError(f"{parser.prog}: choose an action (see `{parser.prog} --help`)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "file", None) and getattr(args, "handler", None) is _command_config_show:
            args.config = args.file
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_USAGE
        return args.handler(args)
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)
    except _UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if verbose:
            logger.exception("usage error")
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the CLI reports every failure in one line
        if verbose:
            logger.exception("failed")
        print(f"error: {type(error).__name__}: {error} (run with --verbose for details)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
