"""Video input and output: probing, streaming decode, crop/resize, H.264 and PNG writing with audio passthrough.

Frames at this boundary are RGB `uint8` arrays of shape `(H, W, 3)` (see the README's conventions table).
Everything streams: a 1,000-frame 1080p video is never held decoded in memory at once.

Inputs may be video files (mp4, mov, mkv, webm, avi, gif, … anything FFmpeg decodes) or folders of numbered
images (png, jpg, webp, bmp, tif), sorted naturally so `2.png` comes before `10.png`. Frames come out as a
viewer sees them (docs/concepts/video-io.md lists the cases): upright and unmirrored (display matrix, as
FFmpeg's autorotate; EXIF orientation for images), square pixels (anamorphic clips stretched), only the
frames an edit list shows and none a player cannot decode (a stream cut before a keyframe), the
moving-picture stream (never a cover image), HDR tone-mapped to SDR, interlaced frames deinterlaced,
transparency composited over a background, a mid-stream resolution change fitted (never stretched); and
with each frame's time on the file's clock (`VideoInfo.timestamps`), so outputs keep variable frame rates
and audio sync.

The package's modules: `probe` (VideoInfo, probe_video, audio tracks), `reader` (read_frames), `geometry`
(processing size, fit/unfit, crop, resize, letterbox), `hdr` (tone mapping), `writer` (VideoWriter,
write_video, write_png_sequence), `audio` (trim, mux, track choice), `files` (images, output paths, atomic
writes, full disks), `memory` (a run's memory estimate). Import from `rerender.video`.

Outputs are written under a temporary name in the destination folder and renamed when complete: an
interrupted run never leaves a truncated file under the final name, and an existing input is never
overwritten.

Example:
    >>> from rerender.video import probe_video, read_frames, write_video
    >>> info = probe_video("clip.mp4")                                  # doctest: +SKIP
    >>> frames = read_frames("clip.mp4", end=50, resolution=512)        # doctest: +SKIP
    >>> write_video(frames, "out.mp4", fps=info.fps, audio_from="clip.mp4")  # doctest: +SKIP
"""

from rerender.video.audio import MP4_COPYABLE_AUDIO, copies_audio, source_audio_track
from rerender.video.files import (
    DEFAULT_BACKGROUND,
    IMAGE_EXTENSIONS,
    VIDEO_SUFFIXES,
    WRITABLE_SUFFIXES,
    WRITER_TAG,
    atomic_output,
    check_input_path,
    check_output_path,
    composite,
    disk_full_error,
    list_image_files,
    read_image,
    read_image_with_alpha,
    refuse_foreign_output,
    write_image,
    written_by_rerender,
)
from rerender.video.geometry import (
    ASPECT_TOLERANCE,
    compute_output_size,
    crop_frame,
    fit_frame,
    fit_size,
    letterbox_frame,
    preprocess_frame,
    resize_frame,
    unfit_frame,
)
from rerender.video.hdr import HDR_KNEE, SDR_WHITE_NITS, tone_map_to_sdr
from rerender.video.memory import (
    HELD_BYTES_PER_PIXEL,
    PASS_BYTES_PER_PIXEL,
    MemoryEstimate,
    check_run_memory,
    estimate_run_memory,
)
from rerender.video.probe import (
    DEFAULT_IMAGE_SEQUENCE_FPS,
    AudioTrack,
    VideoInfo,
    choose_audio_track,
    count_frames,
    describe_audio_track,
    probe_video,
    reading_notes,
)
from rerender.video.reader import read_frames
from rerender.video.writer import ENCODER_THREADS, VideoWriter, write_png_sequence, write_video

__all__ = [
    "IMAGE_EXTENSIONS",
    "VideoInfo",
    "probe_video",
    "list_image_files",
    "read_frames",
    "count_frames",
    "compute_output_size",
    "fit_size",
    "fit_frame",
    "unfit_frame",
    "crop_frame",
    "resize_frame",
    "preprocess_frame",
    "VIDEO_SUFFIXES",
    "check_input_path",
    "check_output_path",
    "atomic_output",
    "WRITER_TAG",
    "written_by_rerender",
    "refuse_foreign_output",
    "VideoWriter",
    "write_video",
    "write_png_sequence",
    "read_image",
    "write_image",
    "tone_map_to_sdr",
    "AudioTrack",
    "choose_audio_track",
    "describe_audio_track",
    "reading_notes",
    "source_audio_track",
    "WRITABLE_SUFFIXES",
    "DEFAULT_BACKGROUND",
    "read_image_with_alpha",
    "composite",
    "letterbox_frame",
    "disk_full_error",
    "MemoryEstimate",
    "estimate_run_memory",
    "check_run_memory",
    # constants, importable from here as before the split
    "ASPECT_TOLERANCE",
    "DEFAULT_IMAGE_SEQUENCE_FPS",
    "ENCODER_THREADS",
    "HDR_KNEE",
    "HELD_BYTES_PER_PIXEL",
    "PASS_BYTES_PER_PIXEL",
    "MP4_COPYABLE_AUDIO",
    "copies_audio",
    "SDR_WHITE_NITS",
]
