"""Temporal-consistency and prompt-fidelity metrics for a translated video (`rerender eval`).

* **Warp error** (the paper's Pixel-MSE): optical flow is estimated on the *source* frames t → t+1; the
  output frame t is warped along it and compared with output frame t+1 by mean squared error on the
  [0, 1] scale, over pixels the flow trusts (forward–backward occlusion excluded). The same figure for the
  source itself is reported beside it, and `warp_error_excess` is their difference: 0 for a video judged
  against itself, large when the output flickers or moves differently from the source.
* **Flicker**: mean absolute change between consecutive aligned output frames on the 0–255 scale.
* **CLIP scores** (when a CLIP model is available locally): mean text–frame cosine similarity to the prompt
  and mean cosine similarity of consecutive frame embeddings (frame consistency). Skipped with a note
  otherwise; nothing is downloaded unless the caller allows it.

Example:
    >>> report = evaluate_video("out.mp4", source="in.mp4", prompt="a cartoon")   # doctest: +SKIP
    >>> report["warp_error"], report["clip"]["text_similarity"]                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rerender.video import probe_video, read_frames, resize_frame

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "METRIC_UNITS",
    "aligned_frame_errors",
    "evaluate_frames",
    "evaluate_video",
    "clip_scores",
]

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"

_WARP_ERROR = "mean squared RGB error on the [0, 1] scale after warping along the source's flow (trusted pixels)"
_FLICKER = "mean absolute RGB change on the 0-255 scale between flow-aligned consecutive frames (trusted pixels)"
METRIC_UNITS: dict[str, str] = {
    "warp_error": f"the output's {_WARP_ERROR}",
    "source_warp_error": f"the source's {_WARP_ERROR}",
    "warp_error_excess": "warp_error - source_warp_error (0: as steady as the source)",
    "flicker": f"the output's {_FLICKER}",
    "source_flicker": f"the source's {_FLICKER}",
}
"""What each temporal figure of `evaluate_frames` measures and on which scale; the report carries it as `units`."""


def aligned_frame_errors(
    frame: np.ndarray, next_frame: np.ndarray, backward_flow: np.ndarray, occlusion: np.ndarray
) -> tuple[float, float]:
    """Masked MSE ([0, 1] scale) and mean absolute difference (0–255) after aligning `frame` to `next_frame`.

    Shape:
        - frame, next_frame: `(H, W, 3)` uint8.
        - backward_flow: `(H, W, 2)` flow next → current, in pixels.
        - occlusion: `(H, W)` 1 where the flow is not trusted.
    """
    from rerender.flow import warp

    current = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    flow = torch.from_numpy(backward_flow).permute(2, 0, 1)[None].float()
    aligned = warp(current, flow)[0].permute(1, 2, 0).numpy()  # (H, W, 3) in [0, 1]
    target = next_frame.astype(np.float32) / 255.0
    valid = occlusion < 0.5
    if not valid.any():
        return 0.0, 0.0
    difference = (aligned - target)[valid]
    return float(np.mean(difference**2)), float(np.mean(np.abs(difference)) * 255.0)


def evaluate_frames(outputs: Iterable[np.ndarray], sources: Iterable[np.ndarray], estimator=None) -> dict[str, Any]:
    """Warp error and flicker of `outputs`, with flow from `sources` (same count, any size: sources are resized).

    Returns:
        `{"frames", "warp_error", "source_warp_error", "warp_error_excess", "flicker", "source_flicker", "units"}`,
        `units` being `METRIC_UNITS` (what each figure measures, and its scale).
    """
    from rerender.flow import DISFlowEstimator, estimate_flow_numpy, forward_backward_occlusion

    estimator = estimator or DISFlowEstimator("medium")
    output_errors, source_errors, output_flicker, source_flicker = [], [], [], []
    previous_output = previous_source = None
    count = 0
    for output, source in zip(outputs, sources):
        count += 1
        if source.shape != output.shape:
            source = resize_frame(source, (output.shape[1], output.shape[0]))
        if previous_output is not None:
            forward, backward = estimate_flow_numpy(estimator, previous_source, source)
            _, occlusion = forward_backward_occlusion(
                torch.from_numpy(forward).permute(2, 0, 1)[None], torch.from_numpy(backward).permute(2, 0, 1)[None]
            )
            occlusion = occlusion[0, 0].numpy()
            mse, flicker = aligned_frame_errors(previous_output, output, backward, occlusion)
            source_mse, source_change = aligned_frame_errors(previous_source, source, backward, occlusion)
            output_errors.append(mse)
            output_flicker.append(flicker)
            source_errors.append(source_mse)
            source_flicker.append(source_change)
        previous_output, previous_source = output, source
    if count < 2:
        raise ValueError(f"evaluation needs at least 2 frames, got {count}")
    warp_error = float(np.mean(output_errors))
    source_warp_error = float(np.mean(source_errors))
    return {
        "frames": count,
        "warp_error": warp_error,
        "source_warp_error": source_warp_error,
        "warp_error_excess": warp_error - source_warp_error,
        "flicker": float(np.mean(output_flicker)),
        "source_flicker": float(np.mean(source_flicker)),
        "units": dict(METRIC_UNITS),
    }


def _projected(features: Any) -> torch.Tensor:
    # transformers < 5 returns the projected embedding; 5.x returns an output whose pooler_output holds it.
    return features if isinstance(features, torch.Tensor) else features.pooler_output


def clip_scores(
    frames: Iterable[np.ndarray],
    prompt: str | None,
    model: str = DEFAULT_CLIP_MODEL,
    device: str = "cpu",
    allow_download: bool = False,
) -> dict[str, Any]:
    """CLIP text–frame similarity and frame consistency, or `{"skipped": reason}` when no model is available.

    Args:
        frames: RGB uint8 frames.
        prompt: the text to score against; `None` skips the text score.
        model: a local folder or hub id of a transformers CLIP model.
        device: torch device.
        allow_download: fetch `model` from the hub if it is not cached (off by default).
    """
    try:
        from transformers import CLIPModel, CLIPProcessor

        clip = CLIPModel.from_pretrained(model, local_files_only=not allow_download).to(device).eval()
        processor = CLIPProcessor.from_pretrained(model, local_files_only=not allow_download)
    except Exception as error:  # noqa: BLE001 - any loading failure means "not available here"
        logger.info("CLIP scores skipped: %s", error)
        return {"skipped": f"no CLIP model available locally ({model}); pass a local folder to score prompts"}
    embeddings = []
    with torch.inference_mode():
        for frame in frames:
            inputs = processor(images=frame, return_tensors="pt").to(device)
            embedding = _projected(clip.get_image_features(**inputs))
            embeddings.append(torch.nn.functional.normalize(embedding, dim=-1)[0])
        image_embeddings = torch.stack(embeddings)  # (T, D)
        result: dict[str, Any] = {"model": model}
        if len(embeddings) > 1:
            result["frame_consistency"] = float((image_embeddings[1:] * image_embeddings[:-1]).sum(-1).mean())
        if prompt:
            text_inputs = processor(text=[prompt], return_tensors="pt", padding=True).to(device)
            text_embedding = torch.nn.functional.normalize(_projected(clip.get_text_features(**text_inputs)), dim=-1)[
                0
            ]
            result["text_similarity"] = float((image_embeddings @ text_embedding).mean())
    return result


def evaluate_video(
    output: str | os.PathLike,
    source: str | os.PathLike,
    prompt: str | None = None,
    clip_model: str | None = DEFAULT_CLIP_MODEL,
    start_frame: int = 0,
    frame_stride: int = 1,
    max_frames: int | None = None,
    progress: bool = True,
    callback: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a translated video against its source (frames paired in order from `start_frame` by `frame_stride`).

    Args:
        output, source: the translated video and its source.
        prompt: score CLIP text similarity against this prompt.
        clip_model: a local CLIP model folder or cached hub id; `None` skips the CLIP scores.
        start_frame, frame_stride, max_frames: which source frames pair with the output's (in order).
        progress: show tqdm progress bars on stderr, one step per frame ("evaluating", then "clip").
        callback: `callback(stage, done, total)` per frame, stage "evaluation" then "clip", whatever `progress` is.

    Raises:
        InputNotFoundError, VideoReadError: as `rerender.video.probe_video`.
        ConfigError: `start_frame` < 0, `frame_stride` < 1 or `max_frames` < 1 (each a `ValueError`).
        ConfigError: fewer than 2 frames to compare (a `ValueError`), saying which side is short.
    """
    from rerender.errors import ConfigError

    for name, value, low in (
        ("start_frame", start_frame, 0),
        ("frame_stride", frame_stride, 1),
        ("max_frames", max_frames, 1),
    ):
        if value is None and name == "max_frames":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"`{name}` must be an integer ≥ {low}, got {value!r}")
    output_info, source_info = probe_video(output), probe_video(source)
    count = min(output_info.frame_count, len(range(start_frame, source_info.frame_count, frame_stride)))
    if max_frames is not None:
        count = min(count, max_frames)
    if count < 2:
        paired = len(range(start_frame, source_info.frame_count, frame_stride))
        raise ConfigError(
            f"evaluation needs at least 2 paired frames, got {count}: the output has {output_info.frame_count}, and "
            f"the source {paired} from `start_frame` {start_frame} by `frame_stride` {frame_stride} (of its "
            f"{source_info.frame_count} frames)"
        )

    def outputs(stage: str) -> Iterator[np.ndarray]:
        with tqdm(
            total=count, desc="evaluating" if stage == "evaluation" else stage, unit="frame", disable=not progress
        ) as bar:
            for done, frame in enumerate(read_frames(output, start=0, end=count, info=output_info), start=1):
                yield frame
                bar.update(1)
                if callback is not None:
                    callback(stage, done, count)

    sources = read_frames(
        source,
        start=start_frame,
        end=start_frame + (count - 1) * frame_stride + 1,
        stride=frame_stride,
        info=source_info,
    )
    report: dict[str, Any] = {"output": str(Path(output)), "source": str(Path(source))}
    if output_info.frame_count != len(range(start_frame, source_info.frame_count, frame_stride)):
        report["note"] = (
            f"frame counts differ (output {output_info.frame_count}, source {source_info.frame_count}); "
            f"compared the first {count}"
        )
        stride = round(source_info.frame_count / max(output_info.frame_count, 1))
        # an output made from one frame in N plays at the source's rate / N (translate keeps the real time), so
        # the rates name N even when the output also starts later (`start_frame`) and the counts do not divide
        rates = float(source_info.fps / output_info.fps) if output_info.fps and source_info.fps else 0.0
        by_rate = round(rates) > 1 and abs(rates - round(rates)) < 0.01
        stride = round(rates) if by_rate else stride
        if (
            frame_stride == 1
            and stride > 1
            and (by_rate or len(range(0, source_info.frame_count, stride)) == output_info.frame_count)
        ):
            # paired in order, output frame i is not source frame i: say how to pair them
            report["note"] += (
                f"; if the output was made from one source frame in {stride}, pass frame_stride {stride} (--frame-stride "
                f"{stride}) to pair each output frame with its source frame"
            )
        if start_frame == 0 and count < len(range(0, source_info.frame_count, max(frame_stride, stride))):
            report["note"] += (
                "; if the output was made from a later part of the source, pass its first source frame as "
                "start_frame (--start-frame)"
            )
    out_aspect, source_aspect = output_info.width / output_info.height, source_info.width / source_info.height
    if abs(out_aspect / source_aspect - 1) > 0.02:  # a cropped output: the resized source is not what it shows
        shape = (
            f"the output's shape ({output_info.width}×{output_info.height}) is not the source's "
            f"({source_info.width}×{source_info.height}): each source frame is stretched to the output's size, so "
            "a cropped output is compared with more than it shows and the warp errors read too high"
        )
        report["note"] = f"{report['note']}; {shape}" if "note" in report else shape
    report.update(evaluate_frames(outputs("evaluation"), sources))
    if clip_model:
        report["clip"] = clip_scores(outputs("clip"), prompt, clip_model)
    return report
