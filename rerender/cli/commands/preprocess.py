"""`rerender preprocess`: select, crop and resize frames as the method will see them."""

from __future__ import annotations

import argparse
from pathlib import Path

from rerender.cli.base import EXIT_OK
from rerender.cli.options import (
    config_parent,
    input_parent,
    load_config,
    model_defaults,
    overwrite_parent,
    quiet_parent,
    verbose_parent,
)


def register(commands) -> None:
    """Add `preprocess` to the `rerender` subparsers."""
    preprocess = commands.add_parser(
        "preprocess",
        parents=[
            verbose_parent(),
            quiet_parent("no progress bar"),
            overwrite_parent(),
            input_parent(),
            config_parent(),
        ],
        help="select, crop and resize frames as the method will see them (mp4 with audio, or PNGs)",
    )
    preprocess.add_argument("video", help="video file or folder of numbered images")
    preprocess.add_argument("-o", "--output", required=True, help="output .mp4/.mov/.mkv, or a folder for PNG frames")
    preprocess.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the selected, cropped, resized frames as a video (with audio) or as PNGs."""
    from tqdm import tqdm

    from rerender.video import (
        check_output_path,
        probe_video,
        read_frames,
        write_png_sequence,
        write_video,
    )
    from rerender.workflow.stages import selected_frames

    config = model_defaults(load_config(args))  # the size multiple of the model's family
    video = config.video
    info = probe_video(args.video)
    selected_frames(info, config)  # start, end and crop against this video, named as config options
    output = Path(args.output)
    as_images = output.suffix == ""  # a path without a suffix is a folder of PNG frames
    check_output_path(  # the rule of every run (`preflight.check_run`): only a video rerender wrote is replaced
        output,
        [args.video],
        kind="folder" if as_images else "video",
        name="-o/--output",
        overwrite=args.overwrite,
        remedy="move it away, choose another -o/--output, or add --overwrite to replace it",
    )
    if as_images:
        clear_own_frames(output)  # a rerun replaces its own frames; anything else in the folder is refused
    frames = read_frames(
        args.video,
        start=video.start_frame,
        end=video.end_frame,
        stride=video.frame_stride,
        crop=video.crop,
        resolution=video.resolution,
        resize_side=video.resize_side,
        size_multiple=video.size_multiple,
        info=info,
        background=video.background,
        deinterlace=video.deinterlace,
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
        record_frames(output, written)
        print(f"wrote {len(written)} frames to {output}/")
        return EXIT_OK
    fps = config.output.fps or info.fps / video.frame_stride
    write_video(
        frames,
        output,
        fps=fps,
        crf=config.output.crf,
        audio_from=args.video if config.output.keep_audio else None,
        audio_start=info.start_time(video.start_frame),
        timestamps=None
        if config.output.fps
        else info.output_times(video.start_frame, video.end_frame, video.frame_stride),
        audio_track=config.output.audio_track,
    )
    print(f"wrote {output} ({total} frames at {float(fps):.3f} fps)")
    return EXIT_OK


FRAMES_RECORD = ".rerender-frames.json"
"""The file beside the PNG frames `preprocess` wrote: each frame's name, size and modification time."""


def _stamp(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def record_frames(folder: Path, written: list[Path]) -> None:
    """Record the frames just written to `folder` (written under a temporary name, then renamed)."""
    import json

    from rerender.video import atomic_output

    with atomic_output(folder / FRAMES_RECORD) as temporary:
        temporary.write_text(json.dumps({"frames": {path.name: _stamp(path) for path in written}}))


def clear_own_frames(folder: Path) -> None:
    """Before frames are written to `folder`: delete the frames an earlier `preprocess` wrote there and that are
    unchanged since (its record says which), so that a rerun, even one writing fewer frames, leaves only its own.

    Raises:
        OutputPathError: the folder holds anything else (a file of the user's, a frame painted over since): frames
            are named 0000.png, 0001.png, …, so they could replace it; nothing is deleted then.
    """
    import json

    from rerender.errors import OutputPathError

    if not folder.is_dir():
        return
    try:
        record = json.loads((folder / FRAMES_RECORD).read_text())["frames"]
    except (OSError, ValueError, KeyError, TypeError):
        record = {}
    present = [
        path
        for path in folder.iterdir()
        # the record, and a record's temporary left by a killed run (`atomic_output`'s ".<stem>.<id>.partial" name)
        if path.name != FRAMES_RECORD and not path.name.startswith(f".{Path(FRAMES_RECORD).stem}.")
    ]
    foreign = sorted(
        path.name for path in present if not isinstance(record, dict) or record.get(path.name) != _stamp(path)
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise OutputPathError(
            f"-o/--output {str(folder)!r} already holds files that rerender did not write there, or that changed "
            f"since ({shown}); give a new or empty folder for the PNG frames (nothing in it is deleted or replaced, "
            "--overwrite or not)"
        )
    for path in present:
        path.unlink()
