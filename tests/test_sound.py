"""Prompts from sound: the vocabulary, the scoring, bad input, and the tiny CLAP end to end through translate."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from rerender.errors import ConfigError, InputNotFoundError, VideoReadError
from rerender.sound import SAMPLE_RATE, decode_audio, hear, load_vocabulary

RATE = SAMPLE_RATE


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """16-bit mono PCM WAV (Python's wave module: no encoder of ours involved)."""
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def tone(seconds: float, frequency: float = 440.0, rate: int = RATE) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


class FrequencyScorer:
    """A stand-in with CLAP's shape (windows and texts in, per-window probabilities over the texts out): a tone
    near 440 Hz is "an electronic beep tone", broadband noise is "rain falling"."""

    def __init__(self):
        self.calls = []

    def __call__(self, windows, texts):
        self.calls.append((len(windows), list(texts)))
        rows = []
        for window in windows:
            spectrum = np.abs(np.fft.rfft(window))
            tonal = spectrum.max() / (spectrum.mean() + 1e-9) > 50
            target = "beep tone" if tonal and 400 < dominant_frequency(window) < 500 else "rain falling"
            row = np.full(len(texts), 0.2 / (len(texts) - 1))
            row[[index for index, text in enumerate(texts) if target in text][0]] = 0.8
            rows.append(row)
        return np.stack(rows)


def test_the_dominant_events_of_a_long_sound_add_their_phrases():
    rng = np.random.default_rng(0)
    samples = np.concatenate([tone(10), 0.3 * rng.standard_normal(15 * RATE).astype(np.float32)])  # beep, then rain
    scorer = FrequencyScorer()
    heard = hear(samples, "a watercolor painting", scorer=scorer, threshold=0.2)
    assert scorer.calls[0][0] == 3 and "the sound of rain falling" in scorer.calls[0][1]  # windows 0, 10, 20 s
    assert [event.name for event in heard.events] == ["rain", "beep"]  # rain holds two of three windows
    other = 0.2 / (len(load_vocabulary()) - 1)  # what the stand-in gives every other event
    np.testing.assert_allclose([event.score for event in heard.events], [(0.8 * 2 + other) / 3, (0.8 + 2 * other) / 3])
    assert heard.prompt == "a watercolor painting, rain, wet streets, overcast, electronic display, glowing screen"
    assert [(start, name) for start, name, _ in heard.timeline] == [(0.0, "beep"), (10.0, "rain"), (20.0, "rain")]
    assert [event.name for event in hear(samples, "", scorer=scorer, threshold=0.5).events] == ["rain"]
    assert hear(samples, "", scorer=scorer, threshold=0.5).prompt == "rain, wet streets, overcast"  # forms the prompt
    assert hear(samples, "a cat", scorer=scorer, threshold=0.9).prompt == "a cat"  # nothing heard: unchanged


def test_the_vocabulary_is_shipped_extendable_and_checked(tmp_path):
    shipped = {event.name: event for event in load_vocabulary()}
    assert shipped["rain"].phrase == "rain, wet streets, overcast" and len(shipped) >= 30
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "rain:\n  sound: heavy rain on a roof\n  phrase: storm, puddles\n"
        "sheep:\n  sound: sheep bleating\n  phrase: sheep on a green hill\n",
        encoding="utf-8",
    )
    mine = {event.name: event for event in load_vocabulary(extra)}
    assert mine["rain"].phrase == "storm, puddles" and mine["sheep"].sound == "sheep bleating"
    assert len(mine) == len(shipped) + 1
    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("rain:\n  sound: rain\n", r"event 'rain' needs a non-empty text `phrase`"),
        ("- rain\n", "must be a mapping of event names"),
        ("rain: {sound: rain, phrase: wet, colour: grey}", "with `sound` and `phrase` only"),
        ("rain: [unclosed\n", "is not valid YAML"),
    ):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as caught:
            load_vocabulary(bad)
        assert "bad.yaml" in str(caught.value)
    with pytest.raises(InputNotFoundError, match="audio_vocabulary"):
        load_vocabulary(tmp_path / "absent.yaml")


def test_bad_sound_inputs_are_named(tmp_path, silent_clip):
    with pytest.raises(VideoReadError, match=r"`prompt.audio_prompt` .*silent.mp4' has no audio track"):
        decode_audio(silent_clip)
    with pytest.raises(ConfigError, match=r"is silent \(-inf dBFS|is silent"):
        decode_audio(write_wav(tmp_path / "quiet.wav", np.zeros(RATE, np.float32)))
    (tmp_path / "text.wav").write_text("not a sound", encoding="utf-8")
    with pytest.raises(VideoReadError, match="not a readable sound or video file"):
        decode_audio(tmp_path / "text.wav")
    with pytest.raises(InputNotFoundError, match="absent.wav"):
        decode_audio(tmp_path / "absent.wav")


def test_bad_sound_input_fails_translate_before_any_work(synthetic_clip, silent_clip, tmp_path):
    from rerender.workflow.translation import translate

    (tmp_path / "text.wav").write_text("not a sound", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("rain: 3\n", encoding="utf-8")
    cases = [
        ({"audio_prompt": str(tmp_path / "text.wav")}, synthetic_clip, VideoReadError, "not a readable"),
        ({"audio_prompt": "source"}, silent_clip, VideoReadError, "soundtrack.*has no audio track"),
        (
            {"audio_prompt": "source", "audio_vocabulary": str(tmp_path / "bad.yaml")},
            synthetic_clip,
            ConfigError,
            "event 'rain' must be a mapping",
        ),
    ]
    for options, video, error, message in cases:
        with pytest.raises(error, match=message):
            translate(video, "a painting", output=tmp_path / "o.mp4", renderer="classic", progress=False, **options)
        assert not (tmp_path / "o.mp4.work").exists()
    with pytest.raises(ConfigError, match="`prompt.audio_threshold` must be in"):
        translate(synthetic_clip, "a painting", output=tmp_path / "o.mp4", renderer="classic", audio_threshold=2)


def test_audio_prompt_source_hears_the_videos_beep(synthetic_clip, tmp_path, monkeypatch):
    from rerender import sound
    from rerender.workflow.translation import translate

    samples = decode_audio(synthetic_clip)  # the clip's soundtrack: a 440 Hz tone, 0.8 s
    assert abs(len(samples) / RATE - 0.8) < 0.05 and abs(dominant_frequency(samples) - 440) < 5
    monkeypatch.setattr(sound, "ClapScorer", lambda *args, **kwargs: FrequencyScorer())
    monkeypatch.setattr(sound, "check_audio_model", lambda *args: None)  # the stand-in needs no CLAP weights
    result = translate(
        synthetic_clip,
        "a painting",
        output=None,
        stage="first",
        renderer="classic",
        K=10,
        audio_prompt="source",
        resolution=64,
        size_multiple=16,
        progress=False,
        workspace=tmp_path / "ws",
    )
    assert [event.name for event in result.prompt.sound.events] == ["beep"]
    assert result.prompt.english == "a painting, electronic display, glowing screen"
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["prompt"]["sound"]["events"][0]["name"] == "beep"
    assert manifest["prompt"]["sound"]["source"] == str(synthetic_clip)


def test_a_still_or_text_has_no_soundtrack(tmp_path):
    import rerender

    still = tmp_path / "still.png"
    import cv2

    cv2.imwrite(str(still), np.full((48, 64, 3), 128, np.uint8))
    with pytest.raises(ConfigError, match="'source' uses the video's soundtrack"):
        rerender.animate(
            still, "a cat", seconds=0.2, fps=10, output=tmp_path / "a.mp4", renderer="classic", audio_prompt="source"
        )
    with pytest.raises(ConfigError, match="'source' uses the video's soundtrack"):
        rerender.generate("a cat", frames=2, output=tmp_path / "g.mp4", audio_prompt="source")
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "g.mp4").exists()


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    from tests.tiny_clap import save_tiny_clap

    return save_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


def test_tiny_clap_end_to_end_through_the_cli(tiny_clap, synthetic_clip, tmp_path):
    import torch
    from transformers import ClapModel, ClapProcessor

    from rerender.cli import main

    sound_file = write_wav(tmp_path / "beep.wav", tone(3.0))
    output = tmp_path / "o.mp4"
    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "a painting",
            "-o",
            str(output),
            "--renderer",
            "classic",
            "--stage",
            "first",
            "-K",
            "10",
            "--audio-prompt",
            str(sound_file),
            "--set",
            f"audio_model={tiny_clap}",
            "--set",
            "audio_threshold=0",
            "--set",
            "audio_max_events=2",
            "--set",
            "resolution=64",
            "--set",
            "size_multiple=16",
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "o.mp4.work" / "manifest.json").read_text(encoding="utf-8"))["prompt"]
    # the known answer: CLAP's softmax over the vocabulary's texts for the one window, computed here by hand
    vocabulary = load_vocabulary()
    processor, model = ClapProcessor.from_pretrained(tiny_clap), ClapModel.from_pretrained(tiny_clap).eval()
    inputs = processor(
        text=[f"the sound of {event.sound}" for event in vocabulary],
        audio=[decode_audio(sound_file)],
        sampling_rate=RATE,
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        probabilities = model(**inputs).logits_per_audio.softmax(dim=-1)[0].numpy()
    order = np.argsort(-probabilities, kind="stable")[:2]
    assert [event["name"] for event in record["sound"]["events"]] == [vocabulary[i].name for i in order]
    scores = [event["score"] for event in record["sound"]["events"]]
    np.testing.assert_allclose(scores, probabilities[order], atol=1e-4)
    phrases = ", ".join(vocabulary[i].phrase for i in order)
    assert record["english"] == f"a painting, {phrases}" == record["sound"]["prompt"]


def test_download_lists_the_clap_model(capsys, monkeypatch, tmp_path):
    from rerender.cli import main
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.weights import extra_sources, fetch_commands

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    code = main(["download", "--dry-run", "--no-flow", "--audio-prompt", "rain.wav"])
    out = capsys.readouterr().out
    assert code == 0 and "sound model (CLAP): laion/clap-htsat-unfused" in out
    config = apply_overrides(RerenderConfig(), {"audio_prompt": "rain.wav", "audio_model": "me/my-clap"})
    sources, _ = extra_sources(config)
    assert [(source.role, source.location) for source in sources] == [("sound model (CLAP)", "me/my-clap")]
    commands = fetch_commands(config, sources)
    assert commands[0] == "rerender download --audio-prompt rain.wav --set audio_model=me/my-clap"
    assert commands[1].startswith("hf download me/my-clap")


def test_a_missing_clap_model_offline_is_our_error_naming_the_model_and_the_download(
    synthetic_clip, tmp_path, capsys, monkeypatch
):
    """`--audio-prompt` when the CLAP model is neither cached nor downloadable (offline): one line naming the
    model id and the command that fetches it, before any work (it printed transformers' raw "Can't load feature
    extractor … make sure you don't have a local directory …" after decoding the video)."""
    from rerender.cli import main
    from rerender.errors import WeightsNotFoundError
    from rerender.sound import ClapScorer, check_audio_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sound_file = write_wav(tmp_path / "rain.wav", tone(1.0))
    output = tmp_path / "o.mp4"
    code = main(
        ["translate", str(synthetic_clip), "-p", "a painting", "-o", str(output), "--renderer", "classic", "-q"]
        + ["--audio-prompt", str(sound_file), "--set", "audio_model=nobody/no-such-clap"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "'nobody/no-such-clap'" in err and "rerender download --audio-prompt" in err and "offline" in err
    assert "Can't load" not in err and "huggingface.co" not in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4.work").exists() and not output.exists()  # refused before any work
    # the same from Python, and from the scorer itself when it is asked to load (no preflight)
    with pytest.raises(WeightsNotFoundError, match=r"'nobody/no-such-clap'.*rerender download --audio-prompt"):
        check_audio_model("nobody/no-such-clap", "rain.wav")
    with pytest.raises(WeightsNotFoundError, match=r"'nobody/no-such-clap'.*rerender download --audio-prompt"):
        ClapScorer("nobody/no-such-clap")([np.zeros(480, np.float32)], ["rain"])
    with pytest.raises(WeightsNotFoundError, match=r"not a folder holding a CLAP model"):
        check_audio_model(str(tmp_path), "rain.wav")  # a local folder without the model's files


def _clip_silent_then_beeping(path: Path, seconds: float = 2.0, fps: int = 25, beep_from: float = 1.0) -> Path:
    """A clip whose sound is silence until `beep_from` seconds, then a 440 Hz tone (H.264 + AAC, written with
    PyAV)."""
    import av

    rate = 44100
    samples = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate).astype(np.float32)
    samples[: int(beep_from * rate)] = 0.0
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        for index in range(int(seconds * fps)):
            frame = np.full((48, 64, 3), (index * 5) % 255, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        size = audio.codec_context.frame_size or 1024
        for start in range(0, len(samples), size):
            chunk = av.AudioFrame.from_ndarray(samples[None, start : start + size], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = rate, start
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    return path


def test_audio_prompt_source_hears_only_the_sound_under_the_translated_frames(tmp_path, monkeypatch):
    from rerender import sound
    from rerender.config import PromptConfig
    from rerender.languages import PromptTranslation
    from rerender.workflow.translation import translate

    clip = _clip_silent_then_beeping(tmp_path / "beep later.mp4")
    monkeypatch.setattr(sound, "ClapScorer", lambda *args, **kwargs: FrequencyScorer())
    monkeypatch.setattr(sound, "check_audio_model", lambda *args: None)  # the stand-in needs no CLAP weights
    prompt = PromptConfig(prompt="a painting", audio_prompt="source")
    record = PromptTranslation("a painting", "a painting", "en", False, None)
    heard = sound.hear_prompt(record, prompt, clip, span=(1.0, 2.0))  # the beeping second
    assert [event.name for event in heard.sound.events] == ["beep"]
    with pytest.raises(ConfigError, match=r"from 0\.00 s to 1\.00 s \(the frames being translated\) is silent"):
        sound.hear_prompt(record, prompt, clip, span=(0.0, 1.0))
    assert sound.hear_prompt(record, prompt, clip).sound.events[0].name == "beep"  # the whole track: it beeps
    # translate hears the frames it translates: frames 0-24 at 25 fps are the silent first second
    with pytest.raises(ConfigError, match=r"from 0\.00 s to 1\.00 s"):
        translate(clip, "a painting", output=None, stage="first", renderer="classic", audio_prompt="source",
                  end_frame=25, progress=False, workspace=tmp_path / "ws")  # fmt: skip
