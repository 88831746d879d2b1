"""`rerender info`: describe a video, an image folder or a still image as the reader sees it."""

from __future__ import annotations

import argparse
import json

from rerender.cli.base import EXIT_OK
from rerender.cli.options import (
    config_parent,
    format_fps,
    load_config,
    model_defaults,
    positive_number,
    verbose_parent,
)


def register(commands) -> None:
    """Add `info` to the `rerender` subparsers."""
    info = commands.add_parser(
        "info",
        parents=[verbose_parent(), config_parent()],
        help="describe a video, image folder or still image as the reader sees it",
    )
    info.add_argument("video", help="video file, folder of numbered images, or a still image")
    info.add_argument(
        "--fps", type=positive_number, default=None, help="frame rate to assume for an image folder (default: 25)"
    )
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print what the reader sees (JSON with --json) and the size the method will process."""
    import dataclasses
    from pathlib import Path

    from rerender.video import IMAGE_EXTENSIONS, compute_output_size, probe_video, reading_notes

    if Path(args.video).is_file() and Path(args.video).suffix.lower() in IMAGE_EXTENSIONS:
        return describe_still(args, Path(args.video))
    info = probe_video(args.video, image_sequence_fps=args.fps)
    config = model_defaults(load_config(args))  # the size multiple of the model's family
    crop = config.video.crop
    width, height = info.width - crop.left - crop.right, info.height - crop.top - crop.bottom
    if width < 1 or height < 1:
        raise ValueError(f"`crop` {crop} leaves nothing of the {info.width}×{info.height} frame")
    processing = compute_output_size(
        width, height, config.video.resolution, config.video.resize_side, config.video.size_multiple
    )
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
        "audio_tracks": [dataclasses.asdict(track) for track in info.audio_tracks],
        "audio_track": info.audio_track,
        "interlaced": info.interlaced,
        "skipped_packets": info.skipped_packets,
        "processing_size": list(processing),
    }
    if args.json:
        print(json.dumps(record, indent=2))
        return EXIT_OK
    print(f"{info.path}")
    print(f"  kind        {record['kind']}" + (f" ({info.video_codec})" if info.video_codec else ""))
    notes = [
        f"rotation {info.rotation}°" if info.rotation else "",
        "mirrored" if info.mirrored else "",
        f"stored {info.stored_width}×{info.stored_height}, pixel aspect {info.sample_aspect_ratio}"
        if info.sample_aspect_ratio != 1
        else "",
    ]
    notes = [note for note in notes if note]
    print(f"  size        {info.width}×{info.height}" + (f" ({', '.join(notes)} applied)" if notes else ""))
    variable = " nominal, variable frame rate (each frame's time is kept)" if info.variable_frame_rate else ""
    print(f"  fps         {format_fps(info.fps)}{variable}")
    print(f"  frames      {info.frame_count}  ({info.duration:.2f} s)")
    for label, text in reading_notes(info, config.video.deinterlace):  # HDR, alpha, interlacing, audio tracks
        print(f"  {label:<11} {text}")
    print(
        f"  processing  {processing[0]}×{processing[1]} "
        f"({config.video.resize_side} side → {config.video.resolution}, multiple of {config.video.size_multiple})"
    )
    return EXIT_OK


def describe_still(args: argparse.Namespace, path) -> int:
    """A still image: its size as shown (EXIF orientation applied), mode, format and alpha, the size `animate`
    processes it at, and what a run does with it (JSON with --json)."""
    from PIL import Image, UnidentifiedImageError

    from rerender.video import compute_output_size, read_image_with_alpha

    config = model_defaults(load_config(args))  # the size multiple of the model's family
    image, alpha = read_image_with_alpha(path)  # as every reader of the product sees it (VideoReadError if not)
    try:
        with Image.open(path) as opened:
            mode, file_format, stored = opened.mode, opened.format, opened.size
    except (UnidentifiedImageError, OSError):  # a file OpenCV read above, Pillow cannot (a float TIFF)
        mode, file_format, stored = "read by OpenCV", path.suffix.lstrip(".").upper(), None
    height, width = image.shape[:2]
    video = config.video
    processing = compute_output_size(width, height, video.resolution, video.resize_side, video.size_multiple)
    run = (
        f"a still image: `rerender animate {path} -p PROMPT -o OUT.mp4` makes a clip of it with a camera move "
        "(zoom-in by default, 4 s at 25 fps; --motion, --seconds, --fps) and restyles it; `translate` takes a video "
        "or a folder of numbered frames"
    )
    if min(width, height) < 2:  # `animate` (`read_still`) refuses it
        run = f"too small to animate: `rerender animate` needs at least 2×2 pixels, this is {width}×{height}"
    record = {
        "path": str(path),
        "kind": "image",
        "format": file_format,
        "mode": mode,
        "width": width,
        "height": height,
        "stored_size": list(stored) if stored else [width, height],
        "has_alpha": alpha is not None,
        "frame_count": 1,
        "processing_size": list(processing),
        "run": run,
    }
    if args.json:
        print(json.dumps(record, indent=2))
        return EXIT_OK
    rotated = stored is not None and tuple(stored) != (width, height)
    print(f"{path}")
    print(f"  kind        still image ({file_format}, mode {mode})")
    print(f"  size        {width}×{height}" + (" (EXIF orientation applied)" if rotated else ""))
    if alpha is not None:
        print(f"  alpha       yes: transparent pixels are composited over {video.background} (video.background)")
    print(
        f"  processing  {processing[0]}×{processing[1]} "
        f"({video.resize_side} side → {video.resolution}, multiple of {video.size_multiple})"
    )
    print(f"  run         {run}")
    return EXIT_OK
