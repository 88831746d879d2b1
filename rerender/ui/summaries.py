"""What the page shows: the input's summary, whether weights are here, the figures, error messages."""

import os
from pathlib import Path
from typing import Any

from rerender.config import RerenderConfig
from rerender.errors import RerenderError



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
    return f"| Input | {name or Path(path).name} |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


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
        "warp_error": "Warp error (output)", "source_warp_error": "Warp error (source)",
        "warp_error_excess": "Warp error excess", "flicker": "Flicker (0–255)", "frames": "Frames compared",
    }
    rows = [(names.get(key, key.replace("_", " ").capitalize()), value) for key, value in report.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)]
    lines = ["| Figure | Value |", "|---|---|"] + [f"| {name} | {value:.5g} |" for name, value in rows]
    clip = report.get("clip")
    if isinstance(clip, dict) and "skipped" in clip:
        lines.append(f"\n**CLIP scores not computed:** {clip['skipped']}")
    elif isinstance(clip, dict):
        lines += [f"| CLIP {key.replace('_', ' ')} | {value:.4g} |" for key, value in clip.items() if isinstance(value, (int, float))]
    if report.get("note"):
        lines.append(f"\n_{report['note']}_")
    return "\n".join(lines)


def evaluate_result(output: Path, source: Path, config: RerenderConfig, clip_model: str | None) -> str:
    from rerender.evaluation import evaluate_video

    report = evaluate_video(
        output, source, prompt=config.prompt.prompt or None, clip_model=clip_model,
        start_frame=config.video.start_frame, frame_stride=config.video.frame_stride,
    )
    if not clip_model:
        report["clip"] = {"skipped": "CLIP scoring is off (rerender ui --no-clip)"}
    elif not config.prompt.prompt and "clip" not in report:
        report["clip"] = {"skipped": "no prompt to score"}
    return evaluation_markdown(report)


def friendly_error(error: BaseException) -> str:
    """The one-line message the page shows for an error (never a traceback)."""
    if isinstance(error, (RerenderError, ValueError, FileNotFoundError, PermissionError, ImportError)):
        return str(error)
    return f"{type(error).__name__}: {error} (details are in the server log)"
