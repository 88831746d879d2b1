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


# ---- 1. never overwrite a file rerender did not write -------------------------------------------------------

FAST = dict(resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis")


def _their_video(path):
    """A real H.264 video written by another tool (PyAV, no rerender tag): a file of the user's."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for value in (0, 255):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), value, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _tiny_video(path, audio_from=None):
    import numpy as np

    from rerender.video import write_video

    frames = [np.full((16, 16, 3), value, np.uint8) for value in (0, 255)]
    return write_video(frames, path, fps=10, audio_from=audio_from)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_every_video_we_write_carries_our_tag(tmp_path, suffix, synthetic_clip):
    import av

    from rerender import __version__
    from rerender.video import written_by_rerender

    for audio_from in (None, synthetic_clip):  # the plain writer and the audio mux
        path = _tiny_video(tmp_path / f"ours{suffix}", audio_from)
        with av.open(str(path)) as container:
            tags = {key.lower(): value for key, value in container.metadata.items()}
        assert tags["comment"] == f"rerender {__version__}" and written_by_rerender(path)
    (tmp_path / "text.mp4").write_bytes(b"my own video")
    assert not written_by_rerender(tmp_path / "text.mp4") and not written_by_rerender(_their_video(tmp_path / "v.mp4"))
    assert not written_by_rerender(tmp_path / "missing.mp4") and not written_by_rerender(tmp_path)


def test_a_users_file_is_refused_before_any_work_and_left_untouched(tmp_path, silent_clip):
    from rerender import translate
    from rerender.errors import OutputPathError

    mine = _their_video(tmp_path / "mine.mp4")  # a real video, not ours
    before = mine.read_bytes()
    with pytest.raises(OutputPathError) as raised:
        translate(silent_clip, "x", output=mine, renderer="classic", progress=False, **FAST)
    message = str(raised.value)
    assert "`output`" in message and str(mine) in message and "overwrite=True" in message
    assert mine.read_bytes() == before and not (tmp_path / "mine.mp4.work").exists()


def test_the_cli_names_its_flags(tmp_path, silent_clip, capsys):
    from rerender.cli import main

    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"my own video")
    assert main(["translate", str(silent_clip), "-p", "x", "-o", str(mine), "--renderer", "classic"]) != 0
    error = capsys.readouterr().err
    assert "-o/--output" in error and str(mine) in error and "--overwrite" in error and "overwrite=True" not in error
    assert mine.read_bytes() == b"my own video"


def test_our_earlier_output_and_overwrite_are_let_through(tmp_path, silent_clip):
    from rerender.errors import OutputPathError
    from rerender.workflow.preflight import check_run

    ours, mine = _tiny_video(tmp_path / "ours.mp4"), tmp_path / "mine.mp4"
    mine.write_bytes(b"my own video")
    kwargs = dict(output=None, inputs=[silent_clip], renderer="classic", check_model=False)
    assert check_run(None, **{**kwargs, "output": ours}).output == ours  # a rerun replaces its own output
    with pytest.raises(OutputPathError, match="not written by rerender"):
        check_run(None, **{**kwargs, "output": mine})
    assert check_run(None, **{**kwargs, "output": mine}, overwrite=True).output == mine
    with pytest.raises(ConfigError, match="`overwrite` must be True or False"):
        check_run(None, **{**kwargs, "output": mine}, overwrite="yes")


def test_overwrite_true_replaces_a_users_file(tmp_path, silent_clip):
    from rerender import translate
    from rerender.video import written_by_rerender

    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"my own video")
    result = translate(
        silent_clip, "x", output=mine, renderer="classic", progress=False, overwrite=True, end_frame=2, **FAST
    )
    assert result.output == mine and written_by_rerender(mine) and result.frame_count == 2


# ---- 8. the page: typed keyframe indices select the mode that uses them ------------------------------------


@pytest.mark.parametrize(
    "indices, mode, shown",
    [
        ("0, 8, 20", "uniform", "explicit"),
        ("0 8", "adaptive", "explicit"),
        ("0, 8,", "uniform", "explicit"),  # half typed
        ("", "explicit", "uniform"),  # cleared: back to the default
        ("", "adaptive", "adaptive"),
        ("none", "uniform", "uniform"),
    ],
)
def test_typed_keyframe_indices_select_explicit_mode(indices, mode, shown):
    from rerender.ui.runs import PageHandlers

    assert PageHandlers.on_keyframe_indices(None, indices, mode) == shown


def test_the_page_wires_the_indices_to_the_mode():
    pytest.importorskip("gradio")
    from rerender.ui.app import build_app

    app = build_app()
    settings = app.rerender_page.settings
    indices, mode = settings["keyframes.keyframe_indices"]._id, settings["keyframes.keyframe_mode"]._id
    wired = [
        dependency
        for dependency in app.config["dependencies"]
        if [target[0] for target in dependency["targets"]] == [indices] and dependency["outputs"] == [mode]
    ]
    assert len(wired) == 1 and wired[0]["targets"][0][1] == "input"


# ---- 6. presets are looks: no clip framing in configs/ -----------------------------------------------------


def _clip_framing_options() -> set[str]:
    """The video section's options that frame one clip: its frame range (`*_frame`) and its crop (`Crop`)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(VideoConfig)
    return {
        item.name
        for item in dataclasses.fields(VideoConfig)
        if item.name.endswith("_frame") or Crop in (hints[item.name], *typing.get_args(hints[item.name]))
    }


def test_no_preset_frames_a_clip():
    from pathlib import Path

    import yaml

    assert _clip_framing_options() == {"start_frame", "end_frame", "crop"}
    presets = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(presets) >= 10
    for preset in presets:
        video = (yaml.safe_load(preset.read_text(encoding="utf-8")) or {}).get("video") or {}
        assert not _clip_framing_options() & set(video), (
            f"{preset.name} sets {sorted(_clip_framing_options() & set(video))}"
        )


def test_preprocess_keeps_the_rule_too(tmp_path, silent_clip, capsys):
    from rerender.cli import main

    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"my own video")
    assert main(["preprocess", str(silent_clip), "-o", str(mine), "--set", "video.end_frame=2"]) != 0
    assert "--overwrite" in capsys.readouterr().err and mine.read_bytes() == b"my own video"
    assert main(["preprocess", str(silent_clip), "-o", str(mine), "--set", "video.end_frame=2", "--overwrite"]) == 0
    assert mine.read_bytes() != b"my own video"
