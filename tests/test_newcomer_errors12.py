"""What a new user runs into with this round's changes (twelfth round): keyframes reused, absolute result paths,
FreeU per family, propagation stopped early; each case a defect found by doing so, with the behaviour that should
have happened."""

from __future__ import annotations

import numpy as np
import pytest

from rerender.errors import FlowInputError, RerenderError


def test_a_flow_function_returning_one_array_is_refused_naming_flow():
    # was: "ValueError: too many values to unpack (expected 2)" from inside the runner
    from rerender.propagation.runner import propagate_video

    frames = [np.full((8, 8, 3), 10 * t, np.uint8) for t in range(3)]
    keys = {0: np.full((8, 8, 3), 200, np.uint8), 2: np.full((8, 8, 3), 50, np.uint8)}

    def one_field(source, target):
        return np.zeros(source.shape[:2] + (2,), np.float32)

    with pytest.raises(FlowInputError, match=r"flow.*\(forward, backward\).*ndarray"):
        propagate_video(frames, keys, flow=one_field, progress=False, workers=1)
    # was: "returned a forward flow of shape (1,)" for a pair of None
    with pytest.raises(FlowInputError, match=r"returned a forward flow of NoneType for frames \(0, 1\)"):
        propagate_video(frames, keys, flow=lambda source, target: (None, None), progress=False, workers=1)


def test_env_offers_no_download_command_that_refuses_the_sound_file(tiny_pipeline_dir, tmp_path, monkeypatch):
    # was: "translate refuses this config: ... is silent", then "fetch with: rerender download ... --audio-prompt
    # silent.wav" (a command that refuses the same file) and "hf download laion/clap-htsat-unfused" (a model the run
    # would never use for it)
    from rerender.config import ModelConfig, PromptConfig, RerenderConfig
    from rerender.environment import model_report
    from tests.test_sound import RATE, write_wav

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    silent = write_wav(tmp_path / "silent.wav", np.zeros(RATE, np.float32))
    config = RerenderConfig(
        model=ModelConfig(base_model=str(tiny_pipeline_dir)),
        prompt=PromptConfig(audio_prompt=str(silent), audio_model="nobody/no-such-clap"),
    )
    report = model_report(config)
    assert report["translate"].startswith("refused: ") and "silent" in report["translate"]
    assert report["fetch"] == []


def test_env_offers_no_download_command_for_a_local_model_that_is_not_there(tmp_path, monkeypatch):
    # was: "translate refuses this config: --model '.../nope' does not exist", then "fetch with: rerender download
    # --model .../nope", which refuses the same path
    from rerender.config import ModelConfig, RerenderConfig
    from rerender.environment import model_report

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = model_report(RerenderConfig(model=ModelConfig(base_model=str(tmp_path / "nope"))))
    assert report["translate"].startswith("refused: ") and "does not exist" in report["translate"]
    assert report["fetch"] == []


def test_a_failed_write_stops_the_propagation_threads_at_once(synthetic_clip, tmp_path, monkeypatch):
    # was: a propagated frame that could not be written (disk full) raised, but the stream of `propagate_video_iter`
    # was not closed: its pool threads kept running the passes in flight for as long as the error was held (the CLI
    # then waited for them at exit)
    import threading

    import rerender.workflow.stages as stages
    from rerender import translate

    real = stages.write_image

    def full_disk(image, path):
        if "propagated" in str(path):
            raise OSError(28, "No space left on device")
        return real(image, path)

    monkeypatch.setattr(stages, "write_image", full_disk)
    with pytest.raises(RerenderError, match="disk is full"):
        try:
            translate(
                synthetic_clip,
                "a cat",
                K=2,
                output=tmp_path / "o.mp4",
                renderer="classic",
                progress=False,
                resolution=64,
                size_multiple=16,
                end_frame=7,
                propagation_preset="fast",
                workers=2,
            )
        finally:  # the error is still held here
            assert not [thread.name for thread in threading.enumerate() if "rerender-propagation" in thread.name]


def test_a_failed_encode_stops_generates_propagation_threads_at_once(tiny_pipeline_dir, tmp_path, monkeypatch):
    # was: as in translate, generate's stream was left open when writing the video failed, its threads running on
    import threading

    import rerender.workflow.generation as generation
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)

    def failing_encoder(frames, path, **options):
        next(iter(frames))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rerender.video.write_video", failing_encoder)
    with pytest.raises(OSError, match="No space left"):
        try:
            generation.generate(
                "a cat",
                frames=3,
                K=2,
                output=tmp_path / "g.mp4",
                pipeline=pipeline,
                size=(64, 64),
                num_inference_steps=2,
                progress=False,
                device="cpu",
                dtype="float32",
                workers=2,
            )
        finally:
            assert not [thread.name for thread in threading.enumerate() if "rerender-propagation" in thread.name]


def test_an_empty_sound_prompt_is_refused_as_empty_not_as_the_folder_dot():
    # was: `--audio-prompt ""` said "--audio-prompt '.' is a folder, not a sound or video file"
    from rerender.sound import check_audio_prompt

    with pytest.raises(RerenderError, match=r"`prompt.audio_prompt` is empty \(''\)"):
        check_audio_prompt("", None)
    with pytest.raises(RerenderError, match=r"is empty \('  '\)"):
        check_audio_prompt("  ", None)


def test_propagate_stage_without_a_workspace_is_refused_and_leaves_no_folder(synthetic_clip, tmp_path):
    # was: refused ("has none for this config"), but only after making an empty workspace folder (and after the
    # sound prompt was heard, the prompt translated), left behind
    from rerender import translate
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=r"`stage` 'propagate' .* does not exist"):
        translate(synthetic_clip, "a cat", output=tmp_path / "o.mp4", renderer="classic", stage="propagate")
    assert list(tmp_path.iterdir()) == []
