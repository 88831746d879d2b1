"""The `rerender` command line. The only part of the package that prints.

Exit codes: 0 success, 1 runtime failure, 2 usage error (bad arguments, bad config, bad input files), 130
interrupted (Ctrl-C). User errors print one line (`error: ...`) that names CLI options, not the Python API's
arguments; `--verbose` adds debug logging and tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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


def _integer_at_least(low: int):
    """An argparse type: an integer ≥ `low`, with a message that says so (argparse names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}")
        return value

    return parse


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


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
        "variable_frame_rate": info.variable_frame_rate,
        "display_aspect": f"{info.width}:{info.height}",
        "stored_size": [info.stored_width, info.stored_height],
        "sample_aspect_ratio": str(info.sample_aspect_ratio),
        "mirrored": info.mirrored,
        "hdr_transfer": info.hdr_transfer,
        "has_alpha": info.has_alpha,
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
    notes = [f"rotation {info.rotation}°" if info.rotation else "", "mirrored" if info.mirrored else "",
             f"stored {info.stored_width}×{info.stored_height}, pixel aspect {info.sample_aspect_ratio}"
             if info.sample_aspect_ratio != 1 else ""]
    notes = [note for note in notes if note]
    print(f"  size        {info.width}×{info.height}" + (f" ({', '.join(notes)} applied)" if notes else ""))
    print(f"  fps         {_format_fps(info.fps)}" + (" nominal, variable frame rate (each frame's time is kept)" if info.variable_frame_rate else ""))
    if info.hdr_transfer:
        print(f"  colour      HDR ({info.hdr_transfer}, BT.2020), tone-mapped to SDR (BT.709) when read")
    if info.has_alpha:
        print("  alpha       dropped (frames are read as RGB)")
    print(f"  frames      {info.frame_count}  ({info.duration:.2f} s)")
    print(f"  audio       {info.audio_codec if info.has_audio else 'none'}")
    print(
        f"  processing  {processing[0]}×{processing[1]} "
        f"({config.video.resize_side} side → {config.video.resolution}, multiple of {config.video.size_multiple})"
    )
    return EXIT_OK


def _command_env(args: argparse.Namespace) -> int:
    from rerender.environment import collect_environment

    config = _load_config(args)
    if args.model:
        from rerender.config import apply_overrides

        config = apply_overrides(config, {"model.base_model": args.model})
    report = collect_environment(config)
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
    models = report["models"]
    print("weights of the default config")
    for item in models["sources"]:
        state = "present" if item["present"] else ("missing" if not item["downloadable"] else "not cached (downloaded when used)")
        if item["role"] == "GMFlow" and not item["present"]:
            state = "missing (flow uses OpenCV DIS)"
        print(f"  {item['role']:32s}{state:36s}{item['location']}")
    print(f"translate will render keyframes with: {models['translate']}")
    for command in models["fetch"]:
        print(f"  fetch with: {command}")
    return EXIT_OK


def _command_download(args: argparse.Namespace) -> int:
    from rerender.diffusion.loading import resolve_device, resolve_dtype
    from rerender.weights import download_weights

    config = _load_config(args)
    extra = _translate_overrides(args)
    if args.prompt:
        extra["prompt.prompt"] = args.prompt
    if args.vae:
        extra["model.vae"] = None if args.vae in ("model", "none", "null") else args.vae
    if extra:
        from rerender.config import apply_overrides

        config = apply_overrides(config, extra)
    if args.precision == "auto":
        import torch

        half = resolve_dtype(config.model.dtype, resolve_device(config.model.device)) == torch.float16
    else:
        half = args.precision == "fp16"
    records = download_weights(config, half_precision=half, include_flow=not args.no_flow, progress=not args.quiet,
                               dry_run=args.dry_run)
    for record in records:
        where = record["path"] or "(dry run)"
        if record["location"] is None:
            print(f"not resolved: {record['note']}")
            continue
        if not record["resolved"]:
            print(f"{record['role']}: {record['location']}{' (already cached)' if record['cached'] else ''}: "
                  f"{record['note']}")
        elif record["fetched"] or record["skipped"]:
            print(f"{record['role']}: {record['location']}: {len(record['fetched'])} files"
                  f"{', skipped ' + str(len(record['skipped'])) + ' unused' if record['skipped'] else ''} -> {where}")
        elif record["cached"]:
            print(f"{record['role']}: {record['location']}: local, nothing to fetch")
        else:  # a local path that is not there: a typo, not something to fetch
            print(f"{record['role']}: {record['location']}: local path not found (nothing to fetch; check the path)")
        if args.dry_run:
            if record["resolved"] and record["note"]:  # e.g. which weights a translator loads
                print(f"  {record['note']}")
            for name in record["fetched"]:
                print(f"  fetch {name}")
            for name in record["skipped"]:
                print(f"  skip  {name}")
    return EXIT_OK


def _command_preprocess(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rerender.errors import OutputPathError
    from rerender.workflow.stages import selected_frames
    from rerender.video import check_output_path, probe_video, read_frames, write_png_sequence, write_video

    config = _load_config(args)
    video = config.video
    info = probe_video(args.video)
    selected_frames(info, config)  # start, end and crop against this video, named as config options
    output = Path(args.output)
    as_images = output.suffix == ""  # a path without a suffix is a folder of PNG frames
    check_output_path(output, [args.video], kind="folder" if as_images else "video", name="-o/--output")
    if as_images and output.is_dir() and any(output.iterdir()):
        # Frames are named 0000.png, 0001.png, …: in a folder that holds files, they could replace the user's.
        raise OutputPathError(
            f"-o/--output {str(output)!r} already holds files; give a new or empty folder for the PNG frames"
        )
    crop = (video.crop.left, video.crop.top, video.crop.right, video.crop.bottom)
    frames = read_frames(
        args.video, start=video.start_frame, end=video.end_frame, stride=video.frame_stride, crop=crop,
        resolution=video.resolution, resize_side=video.resize_side, size_multiple=video.size_multiple, info=info,
    )
    end = video.end_frame if video.end_frame is not None else info.frame_count
    total = len(range(video.start_frame, end, video.frame_stride))
    frames = tqdm(frames, total=total, desc="preprocess", unit="frame", disable=args.quiet)
    if as_images:
        if info.is_image_sequence:
            # Named after their source files, so keyframes painted on them land on those frames in `propagate`.
            from rerender.video import list_image_files

            sources = list_image_files(info.path)[video.start_frame : end : video.frame_stride]
            written = write_png_sequence(frames, output, names=[source.stem for source in sources])
        else:
            written = write_png_sequence(frames, output)
        print(f"wrote {len(written)} frames to {output}/")
        return EXIT_OK
    fps = config.output.fps or info.fps / video.frame_stride
    write_video(
        frames, output, fps=fps, crf=config.output.crf,
        audio_from=args.video if config.output.keep_audio else None,
        audio_start=info.start_time(video.start_frame),
        timestamps=None if config.output.fps else info.output_times(video.start_frame, video.end_frame, video.frame_stride),
    )
    print(f"wrote {output} ({total} frames at {float(fps):.3f} fps)")
    return EXIT_OK


def _parse_lora(item: str) -> dict:
    """`style.safetensors:0.8` → path and scale; a bare path has scale 1."""
    path, separator, scale = item.rpartition(":")
    try:
        return {"path": path, "scale": float(scale)} if separator and path else {"path": item, "scale": 1.0}
    except ValueError:
        return {"path": item, "scale": 1.0}


def _translate_overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    if getattr(args, "model", None):
        overrides["model.base_model"] = args.model
    if getattr(args, "lora", None):
        overrides["model.loras"] = [_parse_lora(item) for item in args.lora]
    if getattr(args, "source_size", False):
        overrides["propagation.output_size"] = "source"
    if getattr(args, "renderer", None):
        overrides["model.renderer"] = args.renderer
    elif hasattr(args, "renderer") and not _config_names_renderer(args):
        overrides["model.renderer"] = "auto"  # the CLI demo falls back to the classic stylizer, with its warning
    if getattr(args, "prompt_language", None):
        overrides["prompt.prompt_language"] = args.prompt_language
    if getattr(args, "translation_model", None):
        overrides["prompt.translation_model"] = args.translation_model
    if getattr(args, "audio_prompt", None):
        overrides["prompt.audio_prompt"] = args.audio_prompt
    if getattr(args, "style_image", None):
        overrides["prompt.style_image"] = args.style_image
    if getattr(args, "style_image_scale", None) is not None:
        overrides["prompt.style_image_scale"] = args.style_image_scale
    if getattr(args, "keyframes_at", None):
        overrides["keyframes.keyframe_mode"] = "explicit"
        overrides["keyframes.keyframe_indices"] = _parse_keyframes_at(args.keyframes_at)
    return overrides


def _parse_keyframes_at(text: str) -> list[int]:
    """`0,10,25` → [0, 10, 25]; anything else is a usage error naming --keyframes-at."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if not (item.isascii() and item.isdigit())]
    if bad or not items:
        raise _UsageError(
            f"--keyframes-at must be frame indices (integers ≥ 0) separated by commas, such as 0,10,25; "
            f"got {text!r}" + (f" ({bad[0]!r} is not an integer ≥ 0)" if bad else "")
        )
    return [int(item) for item in items]


def _config_names_renderer(args: argparse.Namespace) -> bool:
    """Whether the user chose a renderer in the config file or with --set (the CLI's own default is "auto")."""
    import yaml

    from rerender.config import parse_override

    if any(key.split(".")[-1] == "renderer" for key, _ in map(parse_override, getattr(args, "overrides", []) or [])):
        return True
    if getattr(args, "config", None):
        data = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        return isinstance(data.get("model"), dict) and "renderer" in data["model"]
    return False


@contextlib.contextmanager
def _stop_at_safe_point():
    """A `cancel` event for the library that the first Ctrl-C sets (the run stops at its next safe point, resumable);
    a second Ctrl-C interrupts at once."""
    cancel = threading.Event()

    def on_interrupt(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield None
        return
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _command_translate(args: argparse.Namespace) -> int:
    from rerender.workflow.translation import translate
    from rerender.config import apply_overrides
    from rerender.errors import CancelledError

    config = _load_config(args)
    extra = _translate_overrides(args)
    if extra:
        config = apply_overrides(config, extra)
    _require_prompt(args.prompt, config)
    try:
        with _stop_at_safe_point() as cancel:
            result = translate(
                args.video, prompt=args.prompt, K=args.interval, output=args.output, config=config, stage=args.stage,
                workspace=args.workspace, force=args.force, comparison=getattr(args, "comparison", False),
                progress=not args.quiet, delete_workspace=args.delete_workspace, cancel=cancel,
            )
    except CancelledError:
        print(_interrupted_message(args), file=sys.stderr)
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


def _require_prompt(prompt: str | None, config, where: str = "") -> None:
    """An empty prompt gives unstyled keyframes after a long run: refuse unless it was asked for (-p "")."""
    if prompt is None and not config.prompt.prompt:
        raise _UsageError(
            f"no prompt{where}: give one with -p/--prompt (e.g. -p \"a watercolor painting\"), or prompt.prompt in "
            "--config or --set; pass -p \"\" to run without a prompt on purpose"
        )


def _command_batch(args: argparse.Namespace) -> int:
    from rerender.workflow.batching import batch, format_summary, load_jobs

    config = _load_config(args)
    renderer = args.renderer or (None if _config_names_renderer(args) else "auto")
    unprompted = [job.video.name for job in load_jobs(args.jobs_source, args.prompt, args.output, config)
                  if job.prompt is None]
    if unprompted:
        _require_prompt(None, config, f" for {', '.join(unprompted[:3])}{' …' if len(unprompted) > 3 else ''} "
                                      "(nor a `prompt` column in the job list)")

    def report(result) -> None:
        if not args.quiet:
            print(f"{result.status}: {result.job.video} -> {result.job.output} ({result.seconds:.1f} s)", flush=True)

    result = batch(args.jobs_source, args.prompt, args.output, config, renderer=renderer, parallel=args.jobs,
                   ray=args.ray, callback=report)
    print(format_summary(result))
    return EXIT_FAILURE if result.failed else EXIT_OK


def _command_propagate(args: argparse.Namespace) -> int:
    from rerender.workflow.keyframe_folder import propagate_keyframes
    from rerender.config import apply_overrides

    config = _load_config(args)
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


def _command_eval(args: argparse.Namespace) -> int:
    from rerender.evaluation import evaluate_video
    from rerender.video import atomic_output, check_output_path

    if args.json:  # checked before the (long) evaluation; never one of the compared videos
        check_output_path(args.json, [args.output_video, args.source], kind="file", name="--json")
    report = evaluate_video(
        args.output_video, args.source, prompt=args.prompt, clip_model=None if args.no_clip else args.clip_model,
        start_frame=args.start_frame, frame_stride=args.frame_stride, max_frames=args.max_frames,
        progress=not args.quiet,
    )
    text = json.dumps(report, indent=2)
    if args.json:
        with atomic_output(args.json) as temporary:
            temporary.write_text(text + "\n", encoding="utf-8")
    print(text)
    return EXIT_OK


def _command_ui(args: argparse.Namespace) -> int:
    import importlib.util
    import shutil

    if importlib.util.find_spec("gradio") is None:
        raise _UsageError('the web UI needs the `ui` extra (Gradio): pip install "rerender[ui]" (or -e ".[ui]" in a checkout)')
    from rerender.ui import launch

    defaults = _load_config(args) if (args.config or args.overrides) else None
    app, address = launch(args.host, args.port, args.share, max_upload_mb=args.max_upload_mb,
                          clip_model=None if not args.no_clip else "", defaults=defaults, quiet=True)
    print(f"rerender ui: open {address} (Ctrl-C stops it)", flush=True)
    share_url = getattr(app, "share_url", None)
    if share_url:
        print(f"public share link: {share_url}", flush=True)
    try:
        app.block_thread()
    finally:
        app.close()
        shutil.rmtree(app.rerender_sessions.root, ignore_errors=True)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------------
# parser and entry point
# --------------------------------------------------------------------------------------------------------


def _command_animate(args: argparse.Namespace) -> int:
    from rerender.workflow.animation import animate
    from rerender.config import apply_overrides

    config = _load_config(args)
    extra = _translate_overrides(args)
    if extra:
        config = apply_overrides(config, extra)
    _require_prompt(args.prompt, config)
    result = animate(
        args.image, prompt=args.prompt, motion="path" if args.path and args.motion is None else (args.motion or "zoom-in"),
        seconds=args.seconds, fps=args.fps, output=args.output, config=config, K=args.interval, amount=args.amount,
        path=args.path, depth=args.depth, clip_output=None if args.no_clip else "auto", workspace=args.workspace,
        force=args.force, progress=not args.quiet,
    )
    translation = result.translation
    print(f"clip: {result.clip or result.clip_frames} ({translation.frame_count} frames, {args.fps:g} fps)")
    print(f"keyframes ({translation.renderer}): {translation.keyframe_indices}")
    print(f"wrote {translation.output}")
    return EXIT_OK


def _add_animate_command(commands, verbose_option: argparse.ArgumentParser) -> None:
    from rerender.camera import MOTIONS

    command = commands.add_parser("animate", parents=[verbose_option], help="make a clip from a still image with a camera move, then restyle it")
    command.add_argument("image", help="the still image")
    command.add_argument("-p", "--prompt", default=None, help="what the result should look like")
    command.add_argument("-o", "--output", default="out.mp4", help="output video (default out.mp4); the clip goes to OUTPUT_clip.mp4")
    command.add_argument("--motion", choices=MOTIONS, default=None, help="the camera move (default zoom-in; 'path' with --path)")
    command.add_argument("--amount", type=float, default=None, help="how far the move goes (zoom gained, or the orbit's swing as a fraction of the width)")
    command.add_argument("--path", metavar="FILE|SPEC", help="keyframed path: JSON/YAML file or 't=0,scale=1;t=1,scale=1.5,rotation=10,x=0.1'")
    command.add_argument("--depth", metavar="FILE", help="depth map for --motion orbit (image or .npy, brighter = nearer)")
    command.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    command.add_argument("--fps", type=float, default=25.0, help="frame rate (default 25)")
    command.add_argument("-K", "--interval", type=int, default=None, help="keyframe interval (default 10)")
    command.add_argument("--model", help="SD1.5 weights: hub id, diffusers folder or .safetensors/.ckpt file")
    command.add_argument("--lora", action="append", metavar="PATH[:SCALE]", help="LoRA file (repeatable)")
    command.add_argument("--renderer", choices=("auto", "diffusion", "classic"), default=None,
                         help="keyframes by diffusion, the classic stylizer, or auto (default)")
    _add_prompt_options(command)
    command.add_argument("--no-clip", action="store_true", help="do not write the untranslated clip OUTPUT_clip.mp4")
    command.add_argument("--workspace", help="folder for frames, flows, keyframes (default OUTPUT.work)")
    command.add_argument("--force", action="store_true", help="redo every stage even if nothing changed")
    command.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_config_options(command)
    command.set_defaults(handler=_command_animate)


def _add_prompt_options(command: argparse.ArgumentParser) -> None:
    """The prompt's language and the reference image (translate, keyframes, generate, download)."""
    command.add_argument(
        "--prompt-language", metavar="CODE",
        help="language of the prompt: auto, en (default), vi, ko, ja, zh, ru, fr, de, es; others are translated to English",
    )
    command.add_argument("--translation-model", metavar="ID_OR_DIR",
                         help="translation model (default Helsinki-NLP/opus-mt-CODE-en)")
    command.add_argument("--style-image", metavar="FILE", help="a reference image as a prompt (IP-Adapter)")
    command.add_argument("--audio-prompt", metavar="FILE|source",
                         help="a sound whose events (rain, birds …) add words to the prompt; 'source' = the "
                              "video's own")
    command.add_argument("--style-image-scale", type=float, metavar="S",
                         help="weight of the reference image (default 0.6)")


def _command_generate(args: argparse.Namespace) -> int:
    from rerender.config import apply_overrides
    from rerender.workflow.generation import BackgroundSmoothing, generate

    config = _load_config(args)
    extra = _translate_overrides(args)
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


def _add_generate_command(commands, verbose_option: argparse.ArgumentParser) -> None:
    command = commands.add_parser("generate", parents=[verbose_option], help="make a video from a prompt alone (Text2Video-Zero keyframes, then propagation)")
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
    _add_prompt_options(command)
    command.add_argument("-o", "--output", default="out.mp4", help="output video (default out.mp4)")
    command.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_config_options(command)
    command.set_defaults(handler=_command_generate)


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
    # `--verbose` is accepted before or after the command (`rerender -v translate …`, `rerender translate … -v`).
    verbose_option = argparse.ArgumentParser(add_help=False)
    verbose_option.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    config_parser = commands.add_parser("config", parents=[verbose_option], help="show or validate configs")
    config_commands = config_parser.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    show = config_commands.add_parser("show", parents=[verbose_option], help="print the effective config (defaults, file, overrides)")
    show.add_argument("file", nargs="?", help="config file to start from (default: built-in defaults)")
    show.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[], help="override an option")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(handler=_command_config_show)
    validate = config_commands.add_parser("validate", parents=[verbose_option], help="check a config file; exit 0 if valid, 2 if not")
    validate.add_argument("file", help="YAML or JSON config")
    validate.set_defaults(handler=_command_config_validate)
    config_parser.set_defaults(handler=lambda args: _missing_action(config_parser))

    info = commands.add_parser("info", parents=[verbose_option], help="describe a video or image folder as the reader sees it")
    info.add_argument("video", help="video file or folder of numbered images")
    info.add_argument("--fps", type=_positive_number, default=None, help="frame rate to assume for an image folder (default 25)")
    info.add_argument("--json", action="store_true", help="print JSON")
    _add_config_options(info)
    info.set_defaults(handler=_command_info)

    env = commands.add_parser("env", parents=[verbose_option], help="versions, devices, optional components, where weights are looked for")
    env.add_argument("--json", action="store_true", help="print JSON")
    env.add_argument("--model", help="report on this SD1.5 hub id, folder or file instead of the configured one")
    _add_config_options(env)
    env.set_defaults(handler=_command_env)

    download = commands.add_parser(
        "download", parents=[verbose_option],
        help="fetch the configured base model, ControlNets, VAE and GMFlow into the Hugging Face cache",
    )
    download.add_argument("--model", help="SD1.5 hub id to fetch instead of the configured one")
    download.add_argument("--vae", help="a separate VAE hub id to fetch (e.g. stabilityai/sd-vae-ft-mse); 'model' = the model's own")
    download.add_argument(
        "--precision", choices=("auto", "fp16", "fp32"), default="auto",
        help="fp16: only half-precision weights where a repository has them; auto: fp16 when a CUDA GPU is here",
    )
    download.add_argument("--no-flow", action="store_true", help="do not fetch the GMFlow checkpoint")
    download.add_argument("--dry-run", action="store_true",
                          help="list the files that would be fetched and skipped (offline: by repository and pattern)")
    download.add_argument("-p", "--prompt", help="the prompt, to detect its language with --prompt-language auto")
    _add_prompt_options(download)
    download.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_config_options(download)
    download.set_defaults(handler=_command_download)

    preprocess = commands.add_parser(
        "preprocess", parents=[verbose_option],
        help="select, crop and resize frames as the method will see them (mp4 with audio, or PNGs)",
    )
    preprocess.add_argument("video", help="video file or folder of numbered images")
    preprocess.add_argument("-o", "--output", required=True, help="output .mp4/.mov/.mkv, or a folder for PNG frames")
    preprocess.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_config_options(preprocess)
    preprocess.set_defaults(handler=_command_preprocess)

    for name, help_text, stage_default in (
        ("translate", "restyle a video from a prompt (keyframes by SD + ControlNet, then propagation)", "all"),
        ("keyframes", "render only the keyframes (same as translate --stage keyframes)", "keyframes"),
    ):
        command = commands.add_parser(name, parents=[verbose_option], help=help_text)
        command.add_argument("video", help="video file or folder of numbered images")
        command.add_argument("-p", "--prompt", default=None, help="what the result should look like")
        _add_prompt_options(command)
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
        _add_config_options(command)
        command.set_defaults(handler=_command_translate, stage=stage_default)

    batch_parser = commands.add_parser(
        "batch", parents=[verbose_option],
        help="translate a folder of videos or a YAML/CSV job list, here or on a Ray cluster",
    )
    batch_parser.add_argument(
        "jobs_source", metavar="JOBS",
        help="a folder of videos, or a .yaml/.csv job list (columns: video, prompt, output, config options)",
    )
    batch_parser.add_argument("-p", "--prompt", default=None, help="prompt of every job that does not name its own")
    batch_parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs (made if missing)")
    batch_parser.add_argument(
        "--renderer", choices=("auto", "diffusion", "classic"), default=None,
        help="keyframe renderer of every job (default: auto, as translate)",
    )
    batch_parser.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="jobs at once on this machine, in threads; each loads its own model, so up to N copies in memory (default 1)",
    )
    batch_parser.add_argument(
        "--ray", metavar="local|auto|ADDRESS",
        help="run the jobs on Ray: local starts an instance here, auto joins the running cluster, host:port names one "
             "(needs pip install \"rerender[distributed]\")",
    )
    batch_parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    _add_config_options(batch_parser)
    batch_parser.set_defaults(handler=_command_batch)

    propagate = commands.add_parser("propagate", parents=[verbose_option], help="propagate your own stylized keyframes to every frame")
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
    propagate.add_argument("--workers", type=_integer_at_least(1), help="propagation passes run at once, in threads (default: CPU cores)")
    propagate.add_argument("--fps", type=_positive_number, help="output fps (default: the source's)")
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
    _add_config_options(propagate)
    propagate.set_defaults(handler=_command_propagate)

    evaluate = commands.add_parser("eval", parents=[verbose_option], help="temporal consistency (warp error, flicker) and CLIP scores of a result")
    evaluate.add_argument("output_video", metavar="OUT", help="the translated video")
    evaluate.add_argument("--source", required=True, help="the input video it was made from")
    evaluate.add_argument("--prompt", help="score CLIP text similarity against this prompt")
    evaluate.add_argument("--clip-model", default="openai/clip-vit-large-patch14", help="local folder or cached hub id")
    evaluate.add_argument("--no-clip", action="store_true", help="skip CLIP scores")
    evaluate.add_argument("--start-frame", type=_integer_at_least(0), default=0, help="source frame paired with the output's first")
    evaluate.add_argument("--frame-stride", type=_integer_at_least(1), default=1, help="source frames per output frame")
    evaluate.add_argument("--max-frames", type=_integer_at_least(2), default=None, help="compare at most this many frames")
    evaluate.add_argument("--json", metavar="FILE", help="also write the report to FILE")
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(handler=_command_eval)
    _add_animate_command(commands, verbose_option)
    _add_generate_command(commands, verbose_option)

    ui = commands.add_parser("ui", parents=[verbose_option], help="the web page: first keyframe, keyframes, propagation (extra `ui`)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    ui.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    ui.add_argument("--max-upload-mb", type=int, default=500, help="largest accepted upload in MiB (default 500)")
    ui.add_argument("--no-clip", action="store_true", help="no CLIP scores in the figures")
    _add_config_options(ui)
    ui.set_defaults(handler=_command_ui)
    return parser


def _missing_action(parser: argparse.ArgumentParser) -> int:
    raise _UsageError(f"{parser.prog}: choose an action (see `{parser.prog} --help`)")


_API_ARGUMENTS = {
    "force": "--force", "workspace": "--workspace", "output": "-o/--output", "stage": "--stage", "K": "-K/--interval",
    "prompt": "-p/--prompt", "comparison": "--comparison", "start_frame": "--start-frame",
    "frame_stride": "--frame-stride", "max_frames": "--max-frames", "checkpoint": "`flow.flow_checkpoint`",
    "parallel": "--jobs", "output_dir": "-o/--output",
}
"""Python API arguments that library messages may name, and the CLI options that set them."""


def _cli_message(message: str) -> str:
    """A library message in CLI terms: `force=True` → --force, `workspace` → --workspace (config keys stay)."""
    # "--force (force=True)": the API spelling in parentheses after the flag goes.
    message = re.sub(r"\s*\((\w+)=(?:True|False|None)\)", "", message)

    def flag(match: re.Match) -> str:
        return _API_ARGUMENTS.get(match.group(1), match.group(0))

    message = re.sub(r"`(\w+)(?:=(?:True|False))?`", flag, message)
    return re.sub(r"\b(\w+)=True\b", lambda match: _API_ARGUMENTS.get(match.group(1), match.group(0)), message)


def _interrupted_message(args: argparse.Namespace | None) -> str:
    """The one line printed on Ctrl-C: what was kept, and how to resume."""
    if args is None:
        return "interrupted"
    from rerender.workflow.stages import default_workspace

    handler = getattr(args, "handler", None)
    if handler is _command_translate:
        workspace = args.workspace or default_workspace(args.output, args.video)
        return f"interrupted; finished work is kept in {workspace}: run the same command again to resume"
    if handler is _command_propagate:
        if args.keep_intermediates:
            return f"interrupted; finished work is kept in {args.keep_intermediates}: run the same command again to resume"
        return "interrupted; nothing was kept (pass --keep-intermediates DIR to make propagation resumable)"
    return "interrupted"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it).

    Ctrl-C at any moment prints one line (what was kept and how to resume) and returns 130, also when the
    interrupt surfaces as another error (a worker that died of it). Run as the program (`argv` None), a
    second Ctrl-C after that is ignored, so that nothing (worker shutdown included) prints a traceback.
    """
    parsed: list[argparse.Namespace] = []
    interrupts: list[int] = []
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main_thread:

        def on_interrupt(signum, frame) -> None:
            interrupts.append(signum)  # remembered: a worker may turn the interrupt into another error
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        try:
            return _run(argv, parsed, interrupts)
        except KeyboardInterrupt:
            if in_main_thread:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while reporting
            print(_interrupted_message(parsed[0] if parsed else None), file=sys.stderr)
            sys.stderr.flush()
            if argv is None and in_main_thread:
                previous = signal.SIG_IGN  # the program is ending: let nothing interrupt its shutdown
            return EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _caused_by_interrupt(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _run(argv: Sequence[str] | None, parsed: list[argparse.Namespace], interrupts: list[int]) -> int:
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        parsed.append(args)
        if getattr(args, "file", None) and getattr(args, "handler", None) is _command_config_show:
            args.config = args.file
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_USAGE
        loads_models = getattr(args, "renderer", None) != "classic" and args.handler in (
            _command_translate, _command_animate, _command_generate, _command_batch)
        if not (getattr(args, "quiet", False) and loads_models):
            return args.handler(args)
        from rerender.diffusion.loading import loading_bars  # -q: also the bars third-party code draws while models load

        with loading_bars(False):
            return args.handler(args)
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)
    except _UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if interrupts or _caused_by_interrupt(error):
            raise KeyboardInterrupt from None
        return _report(error, verbose)


def _report(error: Exception, verbose: bool) -> int:
    """Print one line for `error` (the traceback too with --verbose); returns the exit code."""
    usage = isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError, PermissionError))
    if verbose:
        logger.error("usage error" if usage else "failed", exc_info=error)
    if usage:
        print(f"error: {_cli_message(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    # Anything else is a runtime failure; the CLI still reports it in one line. Our own errors say what
    # happened in words; an unexpected one is named by its type.
    from rerender.errors import RerenderError

    named = "" if isinstance(error, RerenderError) else f"{type(error).__name__}: "
    print(f"error: {named}{_cli_message(str(error))} (run with --verbose for details)", file=sys.stderr)
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
