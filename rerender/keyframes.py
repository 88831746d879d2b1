"""Keyframe selection: uniform every K frames (the paper), an explicit list, or adaptive to motion.

Indices count the *selected* frames of a run (after `start_frame`/`frame_stride`), from 0. The first frame
is always a keyframe (it is the anchor). In "uniform" and "adaptive" mode the last frame is one too
(`KeyframeConfig.last_frame_keyframe`, one more keyframe): frames after the last keyframe would be propagated
from it one way only, and drift (on a 40-frame clip with K = 10, the last nine frames of a red ball turned brown).
A keyframe closer than K/2 before the last frame is then dropped (its interval joins the last one).

Adaptive selection spends the same number of keyframes as uniform selection with the same K, but places
them where the motion is: the cumulative motion score (flow magnitude plus disoccluded area between
consecutive frames) is split into equal parts, then gaps are clamped to `[min_interval, max_interval]`.
None of the official tools offers it; the paper's limitations section asks for it (new content, such as a
hand entering, cannot be propagated from a keyframe that never saw it).

Example:
    >>> uniform_keyframes(25, 10)
    [0, 10, 20]
    >>> select_keyframes(26, KeyframeConfig(keyframe_interval=10))
    [0, 10, 20, 25]
    >>> select_keyframes(25, KeyframeConfig(keyframe_interval=10))  # 20 is closer than K/2 to 24: dropped
    [0, 10, 24]
    >>> adaptive_keyframes([0.0] * 10 + [5.0] * 4 + [0.0] * 10, interval=8, min_interval=2, max_interval=12)
    [0, 11, 13]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from rerender.config import KeyframeConfig
from rerender.errors import ConfigError

__all__ = ["uniform_keyframes", "adaptive_keyframes", "motion_score", "select_keyframes"]

logger = logging.getLogger(__name__)


def uniform_keyframes(num_frames: int, interval: int) -> list[int]:
    """Frames `0, K, 2K, …` below `num_frames`.

    Raises:
        ConfigError: `interval` < 1 or larger than the number of frames.
    """
    _check_interval(num_frames, interval)
    return list(range(0, num_frames, interval))


def adaptive_keyframes(
    motion_scores: Sequence[float], interval: int, min_interval: int, max_interval: int
) -> list[int]:
    """Keyframes denser where motion is large, as many as uniform selection with the same `interval`.

    Args:
        motion_scores: one non-negative score per transition t → t+1 (length T − 1 for T frames).
        interval: the average gap K; the number of keyframes is `ceil(T / K)`, as for uniform selection.
        min_interval: smallest allowed gap between keyframes.
        max_interval: largest allowed gap between keyframes.

    Returns:
        Sorted frame indices starting with 0.
    """
    scores = np.asarray(motion_scores, dtype=np.float64)
    num_frames = len(scores) + 1
    _check_interval(num_frames, interval)
    if scores.ndim != 1 or (scores < 0).any() or not np.isfinite(scores).all():
        raise ValueError("`motion_scores` must be a 1-D sequence of finite, non-negative numbers")
    if not 1 <= min_interval <= max_interval:
        raise ConfigError(f"need 1 ≤ `min_interval` ≤ `max_interval`, got {min_interval} and {max_interval}")
    count = math.ceil(num_frames / interval)  # as many keyframes as uniform selection makes
    if interval == 1:
        return list(range(num_frames))
    if count <= 1:
        return [0]
    # A small floor keeps static stretches from collapsing to zero length in the cumulative measure.
    weights = scores + max(scores.mean(), 1e-6) * 0.05
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])  # cumulative[i]: motion from frame 0 to frame i
    # Keyframe k sits where the cumulative motion reaches k/count of the total: equal motion per segment
    # (the last segment, after the last keyframe, is propagated one way).
    targets = cumulative[-1] * np.arange(1, count) / count
    placed = [int(np.argmin(np.abs(cumulative - target))) for target in targets]
    keyframes = [0]
    for index in placed:
        if index - keyframes[-1] >= min_interval:
            keyframes.append(index)
    # Enforce the largest gap by splitting long stretches evenly (including the tail).
    result = [keyframes[0]]
    for index in keyframes[1:] + [num_frames - 1]:
        gap = index - result[-1]
        if gap > max_interval:
            pieces = math.ceil(gap / max_interval)
            result += [result[-1] + round(gap * k / pieces) for k in range(1, pieces)]
        if index != num_frames - 1 or index in keyframes:
            result.append(index)
    return sorted(set(result))


def motion_score(flow: np.ndarray, occlusion: np.ndarray | None = None) -> float:
    """How hard a transition is to propagate: mean flow magnitude in % of the diagonal plus disoccluded area in %.

    Shape:
        - flow: `(H, W, 2)` pixels.
        - occlusion: `(H, W)`, 1 (or True) where the flow is not trusted.
    """
    height, width = flow.shape[:2]
    magnitude = float(np.linalg.norm(flow, axis=-1).mean()) / math.hypot(height, width) * 100.0
    occluded = float(np.asarray(occlusion, dtype=np.float64).mean()) * 100.0 if occlusion is not None else 0.0
    return magnitude + occluded


def select_keyframes(
    num_frames: int, config: KeyframeConfig, motion_scores: Sequence[float] | None = None
) -> list[int]:
    """Keyframe indices for `num_frames` selected frames, following `config.keyframe_mode`.

    In "uniform" and "adaptive" mode the last frame is a keyframe too, unless `config.last_frame_keyframe` is
    False. A clip shorter than K gets keyframes at its first and last frames (with `last_frame_keyframe` False:
    the anchor alone, the paper's plain 0, K, 2K, …), with a log message.

    Raises:
        ConfigError: explicit indices out of range, or adaptive without scores.
    """
    if num_frames < 1:
        raise ConfigError(f"the video must have at least 1 frame, got {num_frames}")
    if config.keyframe_mode != "explicit" and num_frames < config.keyframe_interval:
        keyframes = sorted({0, num_frames - 1}) if config.last_frame_keyframe else [0]
        if num_frames == 1:
            logger.warning(
                "the clip has 1 frame, fewer than K = %d: it is the only keyframe", config.keyframe_interval
            )
        elif not config.last_frame_keyframe:
            logger.warning(
                "the clip has %d frames, fewer than K = %d: the first frame is the only keyframe "
                "(`last_frame_keyframe` is off; its end is propagated one way from it)",
                num_frames,
                config.keyframe_interval,
            )
        else:
            logger.warning(
                "the clip has %d frames, fewer than K = %d: keyframes at its first and last frames %s",
                num_frames,
                config.keyframe_interval,
                keyframes,
            )
        return keyframes
    if config.keyframe_mode == "uniform":
        return _with_last_frame(uniform_keyframes(num_frames, config.keyframe_interval), num_frames, config)
    if config.keyframe_mode == "explicit":
        indices = list(config.keyframe_indices or ())
        if indices != sorted(set(indices)):
            raise ConfigError(f"`keyframes.keyframe_indices` must be sorted and unique, got {indices}")
        outside = [index for index in indices if not 0 <= index < num_frames]
        if outside:
            raise ConfigError(
                f"`keyframes.keyframe_indices` must lie in [0, {num_frames - 1}] for a {num_frames}-frame run, got {outside}"
            )
        return indices
    if motion_scores is None:
        raise ConfigError("adaptive keyframe selection needs motion scores (from optical flow)")
    if len(motion_scores) != num_frames - 1:
        raise ValueError(
            f"`motion_scores` must have {num_frames - 1} items (one per transition), got {len(motion_scores)}"
        )
    keyframes = adaptive_keyframes(
        motion_scores, config.keyframe_interval, config.min_keyframe_interval, config.max_keyframe_interval
    )
    return _with_last_frame(keyframes, num_frames, config)


def _with_last_frame(keyframes: list[int], num_frames: int, config: KeyframeConfig) -> list[int]:
    """`keyframes` with the last frame added when `config.last_frame_keyframe` asks for it.

    A keyframe closer to the last frame than K/2 ("uniform") or than `min_keyframe_interval` ("adaptive") is then
    dropped, its interval joined to the last one: rendering it would cost a whole keyframe to shorten the
    propagation of a frame or two (K = 10 on 12 frames gave [0, 10, 11], now [0, 11]). The joined interval is
    shorter than 1.5 K (uniform) and never longer than `max_keyframe_interval` (adaptive); the anchor stays.
    """
    last = num_frames - 1
    if not config.last_frame_keyframe or keyframes[-1] == last:
        return keyframes
    if config.keyframe_mode == "uniform":
        too_close, longest = last - keyframes[-1] < config.keyframe_interval / 2, last
    else:
        too_close = last - keyframes[-1] < config.min_keyframe_interval
        longest = config.max_keyframe_interval
    if len(keyframes) > 1 and too_close and last - keyframes[-2] <= longest:
        keyframes = keyframes[:-1]
    return [*keyframes, last]


def _check_interval(num_frames: int, interval: int) -> None:
    if interval < 1:
        raise ConfigError(f"`keyframes.keyframe_interval` must be ≥ 1, got {interval}")
    if interval > max(num_frames, 1):
        raise ConfigError(
            f"`keyframes.keyframe_interval` must be ≤ the number of frames ({num_frames}), got {interval}"
        )
