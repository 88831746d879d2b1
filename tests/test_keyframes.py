"""Keyframe selection: uniform, explicit, adaptive; bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rerender.config import KeyframeConfig
from rerender.errors import ConfigError
from rerender.keyframes import adaptive_keyframes, motion_score, select_keyframes, uniform_keyframes


def test_uniform():
    assert uniform_keyframes(25, 10) == [0, 10, 20]
    assert uniform_keyframes(21, 10) == [0, 10, 20]
    assert uniform_keyframes(5, 1) == [0, 1, 2, 3, 4]
    assert uniform_keyframes(7, 7) == [0]
    assert select_keyframes(30, KeyframeConfig(keyframe_interval=10)) == [0, 10, 20, 29]


def test_explicit_list():
    config = KeyframeConfig(keyframe_mode="explicit", keyframe_indices=(3, 8, 19))
    assert select_keyframes(20, config) == [3, 8, 19]
    with pytest.raises(ConfigError, match=r"must lie in \[0, 9\].*\[19\]"):
        select_keyframes(10, config)
    with pytest.raises(ConfigError, match="sorted and unique"):
        KeyframeConfig(keyframe_mode="explicit", keyframe_indices=(5, 3))
    with pytest.raises(ConfigError, match="at least one"):
        KeyframeConfig(keyframe_mode="explicit")


def test_interval_larger_than_video_is_an_error_for_the_low_level_function():
    with pytest.raises(ConfigError, match=r"keyframe_interval` must be ≤ the number of frames \(12\), got 20"):
        uniform_keyframes(12, 20)


@pytest.mark.parametrize("mode", ["uniform", "adaptive"])
@pytest.mark.parametrize("frames, expected", [(9, [0, 8]), (2, [0, 1]), (1, [0])])
def test_clip_shorter_than_K_gets_its_first_and_last_frames(frames, expected, mode, caplog):
    with caplog.at_level(logging.WARNING, logger="rerender.keyframes"):
        keyframes = select_keyframes(
            frames, KeyframeConfig(keyframe_interval=10, keyframe_mode=mode), [0.0] * (frames - 1)
        )
    assert keyframes == expected
    assert f"{frames} frame{'s' if frames > 1 else ''}, fewer than K = 10" in caplog.text
    assert select_keyframes(10, KeyframeConfig(keyframe_interval=10)) == [0, 9]  # not shorter: every K, and the end
    assert select_keyframes(10, KeyframeConfig(keyframe_interval=10, last_frame_keyframe=False)) == [0]


def test_adaptive_matches_uniform_count_and_concentrates_on_motion():
    calm, busy = [0.1] * 30, [8.0] * 10
    scores = calm + busy + calm  # frames 30..40 move a lot
    keyframes = adaptive_keyframes(scores, interval=10, min_interval=2, max_interval=40)
    uniform = uniform_keyframes(len(scores) + 1, 10)
    assert keyframes[0] == 0
    assert len(keyframes) <= len(uniform)
    inside_busy = [k for k in keyframes if 30 <= k <= 40]
    assert len(inside_busy) >= 2  # uniform puts only 30 and 40 there; adaptive packs more in
    gaps = np.diff(keyframes)
    assert gaps.min() >= 2


def test_adaptive_constant_motion_is_nearly_uniform():
    keyframes = adaptive_keyframes([1.0] * 40, interval=10, min_interval=2, max_interval=20)
    assert len(keyframes) == len(uniform_keyframes(41, 10)) == 5
    segments = np.diff(keyframes + [40])  # the tail after the last keyframe counts as a segment
    assert segments.max() - segments.min() <= 1


def test_adaptive_respects_min_and_max_interval():
    scores = [0.0] * 50 + [100.0] * 2 + [0.0] * 50
    keyframes = adaptive_keyframes(scores, interval=10, min_interval=3, max_interval=15)
    gaps = np.diff(keyframes + [len(scores)])
    assert np.diff(keyframes).min() >= 3
    assert gaps.max() <= 15 + 1


def test_adaptive_needs_scores_and_validates_them():
    config = KeyframeConfig(keyframe_mode="adaptive", keyframe_interval=4)
    with pytest.raises(ConfigError, match="motion scores"):
        select_keyframes(10, config)
    with pytest.raises(ValueError, match="9 items"):
        select_keyframes(10, config, motion_scores=[1.0] * 5)
    with pytest.raises(ValueError, match="non-negative"):
        adaptive_keyframes([1.0, -1.0, 2.0], 2, 1, 4)


def test_motion_score_is_flow_percent_plus_occluded_percent():
    flow = np.zeros((30, 40, 2), np.float32)
    flow[..., 0] = 5.0  # 5 px on a 50 px diagonal = 10 %
    occlusion = np.zeros((30, 40), bool)
    occlusion[:, :4] = True  # 10 % of the frame
    assert motion_score(flow, occlusion) == pytest.approx(20.0)
    assert motion_score(np.zeros_like(flow)) == 0.0


def test_the_last_frame_is_a_keyframe_by_default_and_the_option_turns_it_off():
    # uniform and adaptive: every frame lies between two keyframes (one more keyframe); explicit lists are the user's
    assert select_keyframes(40, KeyframeConfig(keyframe_interval=10)) == [0, 10, 20, 30, 39]
    assert select_keyframes(40, KeyframeConfig(keyframe_interval=10, last_frame_keyframe=False)) == [0, 10, 20, 30]
    assert select_keyframes(41, KeyframeConfig(keyframe_interval=10)) == [0, 10, 20, 30, 40]  # no extra one
    adaptive = KeyframeConfig(keyframe_interval=10, keyframe_mode="adaptive", min_keyframe_interval=2)
    scores = [1.0] * 20 + [5.0] * 19
    assert select_keyframes(40, adaptive, scores)[-1] == 39
    off = KeyframeConfig(
        keyframe_interval=10, keyframe_mode="adaptive", min_keyframe_interval=2, last_frame_keyframe=False
    )
    assert select_keyframes(40, off, scores)[-1] != 39
    explicit = KeyframeConfig(keyframe_mode="explicit", keyframe_indices=(0, 12))
    assert select_keyframes(40, explicit) == [0, 12]


def test_a_40_frame_clip_ends_on_its_own_stylized_last_frame(tmp_path):
    # before: the last 9 frames were propagated one way from frame 30 (a red ball turned brown on a real clip)
    from rerender.synthetic import write_synthetic_video
    from rerender.video import read_frames, read_image
    from rerender.workflow.renderers import ClassicRenderer
    from rerender.workflow.translation import translate

    clip = tmp_path / "forty.mp4"
    write_synthetic_video(clip, num_frames=40, width=64, height=48, motion="mixed", fps=25, audio=False)
    fast = dict(
        resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast"
    )
    result = translate(
        clip, "x", K=10, output=tmp_path / "o.mp4", renderer=ClassicRenderer("x"), progress=False, **fast
    )
    assert result.keyframe_indices == [0, 10, 20, 30, 39]
    last = read_image(result.workspace / "keyframes" / "0039.png")
    np.testing.assert_array_equal(read_image(result.workspace / "propagated" / "0039.png"), last)
    assert len(list(read_frames(result.output))) == 40
    plain = translate(
        clip,
        "x",
        K=10,
        output=tmp_path / "p.mp4",
        renderer=ClassicRenderer("x"),
        progress=False,
        last_frame_keyframe=False,
        **fast,
    )
    assert plain.keyframe_indices == [0, 10, 20, 30]


def test_a_keyframe_closer_than_half_k_before_the_last_frame_is_dropped():
    """K = 10 on 12 frames gave [0, 10, 11]: keyframe 10 cost a whole diffusion render to shorten the propagation
    of one frame. A uniform keyframe closer than K/2 to the last frame now joins its interval to the last one (at
    most 1.5 K long); at K/2 or more it stays. The anchor is never dropped."""
    uniform = lambda frames, k: select_keyframes(frames, KeyframeConfig(keyframe_interval=k))  # noqa: E731
    assert uniform(12, 10) == [0, 11]
    assert uniform(20, 8) == [0, 8, 19]  # 19 − 16 = 3 < 4
    assert uniform(25, 10) == [0, 10, 24]  # 24 − 20 = 4 < 5: the last interval is 14 frames ≤ 1.5 K
    assert uniform(26, 10) == [0, 10, 20, 25]  # 25 − 20 = 5 = K/2: kept
    assert uniform(30, 10) == [0, 10, 20, 29]
    assert uniform(11, 10) == [0, 10]  # the last frame already on the grid
    for frames in range(10, 200):  # every interval at most 1.5 K, and none shorter than K/2 but the only one
        keyframes = uniform(frames, 10)
        gaps = np.diff(keyframes)
        assert keyframes[0] == 0 and keyframes[-1] == frames - 1 and gaps.max() < 15
        assert gaps.min() >= 5 or len(gaps) == 1, (frames, keyframes)
    # without the last frame as a keyframe, the paper's plain grid
    assert select_keyframes(12, KeyframeConfig(keyframe_interval=10, last_frame_keyframe=False)) == [0, 10]
    # adaptive: the same rule with its own smallest gap, never making a gap above the largest
    adaptive = KeyframeConfig(keyframe_interval=10, keyframe_mode="adaptive", min_keyframe_interval=4)
    keyframes = select_keyframes(42, adaptive, [1.0] * 41)
    assert keyframes[-1] == 41 and min(np.diff(keyframes)) >= 4 and max(np.diff(keyframes)) <= 20
    rng = np.random.default_rng(0)
    for frames in range(30, 90, 7):  # random motion: the adaptive bounds hold with the last frame added
        keyframes = select_keyframes(frames, adaptive, list(rng.exponential(1.0, frames - 1)))
        gaps = np.diff(keyframes)
        assert keyframes[-1] == frames - 1 and gaps.max() <= 20 and gaps[-1] >= 4, keyframes
