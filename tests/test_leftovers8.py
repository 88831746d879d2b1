"""Leftovers of the newcomer tester's round 8: each test failed before its fix."""

from __future__ import annotations

import inspect
import logging

import pytest

from rerender.config import KeyframeConfig, RerenderConfig, Stage, apply_overrides, config_from_dict
from rerender.config.sections import ControlConfig, Crop, ModelConfig, VideoConfig
from rerender.errors import ConfigError
from rerender.keyframes import select_keyframes

# ---- 2. crop=None / crop: null is no crop ------------------------------------------------------------------


def test_crop_null_is_no_crop():
    assert apply_overrides(RerenderConfig(), {"crop": None}).video.crop == Crop()
    assert config_from_dict({"video": {"crop": None}}).video.crop == Crop()
    assert VideoConfig(crop=None).crop == Crop()
    assert config_from_dict({"video": {"crop": None}}) == config_from_dict({"video": {"crop": {}}})


# ---- 3. empty strings for weights options are refused -------------------------------------------------------


@pytest.mark.parametrize(
    "make, option",
    [
        (lambda value: apply_overrides(RerenderConfig(), {"vae": value}), "model.vae"),
        (lambda value: apply_overrides(RerenderConfig(), {"ip_adapter": value}), "model.ip_adapter"),
        (lambda value: config_from_dict({"control": [{"type": "canny", "model": value}]}), "control[0].model"),
        (lambda value: ModelConfig(vae=value), "model.vae"),
        (lambda value: ControlConfig(model=value), "control.model"),
    ],
)
@pytest.mark.parametrize("value", ["", "   "])
def test_blank_weights_options_are_refused(make, option, value):
    with pytest.raises(ConfigError) as raised:
        make(value)
    message = str(raised.value)
    assert f"`{option}`" in message and repr(value) in message
    assert "null" in message or "leaving it out" in message


def test_null_and_real_weights_options_still_work():
    assert ModelConfig(vae=None).vae is None and ControlConfig(model=None).model is None
    assert ModelConfig(vae="stabilityai/sd-vae-ft-mse").vae == "stabilityai/sd-vae-ft-mse"


# ---- 4. the log line when there is no second pass -----------------------------------------------------------


def test_second_pass_phrase_never_says_none():
    from rerender.diffusion.pipeline import second_pass_phrase

    assert second_pass_phrase(7) == "second pass from step 7"
    assert "None" not in second_pass_phrase(None) and "no second pass" in second_pass_phrase(None)


# ---- 5. translate's stage is the Stage Literal -------------------------------------------------------------


def test_translate_stage_is_the_stage_literal():
    from rerender.workflow import translation

    parameter = inspect.signature(translation.translate).parameters["stage"]
    assert parameter.annotation in ("Stage", Stage)
    assert translation.Stage is Stage


# ---- 7. last_frame_keyframe=False on a clip shorter than K -------------------------------------------------


@pytest.mark.parametrize("mode", ["uniform", "adaptive"])
def test_short_clip_without_last_frame_keyframe_keys_the_anchor_only(mode, caplog):
    config = KeyframeConfig(keyframe_interval=10, keyframe_mode=mode, last_frame_keyframe=False)
    with caplog.at_level(logging.WARNING, logger="rerender.keyframes"):
        assert select_keyframes(6, config, [1.0] * 5) == [0]
    assert "only keyframe" in caplog.text and "last_frame_keyframe" in caplog.text
    assert select_keyframes(6, KeyframeConfig(keyframe_interval=10, keyframe_mode=mode), [1.0] * 5) == [0, 5]
