"""`rerender info`: describe a video or image folder as the reader sees it."""

from __future__ import annotations

import argparse
import json

from rerender.cli.base import EXIT_OK
from rerender.cli.options import config_parent, format_fps, load_config, positive_number, verbose_parent


def register(commands) -> None:
    """Add `info` to the `rerender` subparsers."""
    info = commands.add_parser(
        "info",
        parents=[verbose_parent(), config_parent()],
        help="describe a video or image folder as the reader sees it",
    )
    info.add_argument("video", help="video file or folder of numbered images")
    info.add_argument(
        "--fps", type=positive_number, default=None, help="frame rate to assume for an image folder (default: 25)"
    )
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print what the reader sees (JSON with --json) and the size the method will process."""
    import dataclasses

    from rerender.video import compute_output_size, probe_video, reading_notes

    info = probe_video(args.video, image_sequence_fps=args.fps)
    config = load_config(args)
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
