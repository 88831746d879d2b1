"""What the page shows: the input's summary, whether weights are here, the figures, error messages."""

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rerender.config import RerenderConfig
from rerender.errors import RerenderError
from rerender.ui.fields import STAGE_LABELS


def video_summary(path: str | os.PathLike, name: str | None = None) -> str:
    """Markdown: what the reader sees of a video (size, fps, frames, duration, audio, rotation)."""
    from rerender.video import probe_video

    info = probe_video(path)
    rotation = f"{info.rotation}° (applied)" if info.rotation else "none"
    rows = [
        ("Size", f"{info.width} × {info.height}"),
        ("Frame rate", f"{float(info.fps):.3g} fps" + (" (variable)" if info.variable_frame_rate else "")),
        ("Frames", f"{info.frame_count} ({info.duration:.2f} s)"),
        ("Audio", info.audio_codec or "yes" if info.has_audio else "none"),
        ("Rotation", rotation),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    return f"| Input | {name or Path(path).name} |\n|---|---|\n{table}"


def environment_status(config: RerenderConfig | None = None) -> str:
    """Markdown: whether diffusion weights are present for `config.model`, else the classic fallback."""
    from rerender.environment import weight_search_paths
    from rerender.workflow.renderers import missing_default_weights

    config = config or RerenderConfig()
    from rerender.weights import describe_missing

    missing = missing_default_weights(config)
    where = weight_search_paths()
    if missing:
        return (
            "**No diffusion weights here.** The *auto* renderer uses the built-in **classic** stylizer instead "
            "(no weights needed; choose *classic* to say so). For diffusion keyframes, set *Base model* to a local "
            "diffusers folder or `.safetensors` file.\n\n<details><summary>What is missing and how to fetch it"
            f"</summary>\n\n{describe_missing(config, missing)}.\n\n</details>"
        )
    return f"**Diffusion weights:** `{config.model.base_model}` (looked for in `{where['huggingface_hub_cache']}`)."


def evaluation_markdown(report: dict[str, Any]) -> str:
    """Markdown table of a `rerender.evaluation.evaluate_video` report, saying why CLIP is missing if it is."""
    names = {
        "warp_error": "Warp error (output)",
        "source_warp_error": "Warp error (source)",
        "warp_error_excess": "Warp error excess",
        "flicker": "Flicker (0–255)",
        "frames": "Frames compared",
    }
    rows = [
        (names.get(key, key.replace("_", " ").capitalize()), value)
        for key, value in report.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    lines = ["| Figure | Value |", "|---|---|"] + [f"| {name} | {value:.5g} |" for name, value in rows]
    clip = report.get("clip")
    if isinstance(clip, dict) and "skipped" in clip:
        lines.append(f"\n**CLIP scores not computed:** {clip['skipped']}")
    elif isinstance(clip, dict):
        lines += [
            f"| CLIP {key.replace('_', ' ')} | {value:.4g} |"
            for key, value in clip.items()
            if isinstance(value, (int, float))
        ]
    if report.get("note"):
        lines.append(f"\n_{report['note']}_")
    return "\n".join(lines)


def evaluate_result(
    output: Path,
    source: Path,
    config: RerenderConfig,
    clip_model: str | None,
    callback: Callable[[str, int, int], None] | None = None,
) -> str:
    """Markdown: the `rerender eval` figures of a result; `callback(stage, done, total)` reports progress."""
    from rerender.evaluation import evaluate_video

    report = evaluate_video(
        output,
        source,
        prompt=config.prompt.prompt or None,
        clip_model=clip_model,
        start_frame=config.video.start_frame,
        frame_stride=config.video.frame_stride,
        progress=False,
        callback=callback,
    )
    if not clip_model:
        report["clip"] = {"skipped": "CLIP scoring is off (rerender ui --no-clip)"}
    elif not config.prompt.prompt and "clip" not in report:
        report["clip"] = {"skipped": "no prompt to score"}
    return evaluation_markdown(report)


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def friendly_error(error: BaseException, names: Mapping[str, str] | None = None) -> str:
    """The one-line message the page shows for an error (never a traceback, a raw errno or a server path).

    Args:
        error: what was raised.
        names: server paths → the names the user knows those files by (an upload's own name); each is replaced.
    """
    names = dict(names or {})
    if isinstance(error, OSError) and not isinstance(error, RerenderError) and error.strerror:
        filename = str(error.filename) if error.filename else None
        shown = names.get(filename, Path(filename).name) if filename else None
        text = f"{shown!r}: {error.strerror}" if shown else error.strerror
    elif isinstance(error, (RerenderError, ValueError, ImportError)):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error} (details are in the server log)"
    # the library's `stage` 'keyframes' is the page's “Keyframes” button
    text = re.sub(r"`stage` '(\w+)'", lambda match: f"“{STAGE_LABELS.get(match[1], match[1])}”", text)
    for path, name in sorted(names.items(), key=lambda item: -len(item[0])):  # longest first: no partial matches
        text = re.sub(r":\s*'file:" + re.escape(path) + "'", "", text)  # FFmpeg's repetition of the path
        text = text.replace(path, name)
    return _ERRNO.sub("", text)
