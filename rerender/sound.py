"""Prompts from sound: the events a soundtrack holds (rain, birds, traffic …) become words of the prompt.

A CLAP model (Wu et al., "Large-scale Contrastive Language-Audio Pretraining", ICASSP 2023; transformers'
`ClapModel`, default ``laion/clap-htsat-unfused``) compares the sound with a vocabulary of sound events, each
with the visual phrase it implies (rain → "rain, wet streets, overcast"; shipped as
``rerender/assets/sound_events.yaml``, extended by `prompt.audio_vocabulary`). The sound is decoded by PyAV to
48 kHz mono, cut into 10-second windows (CLAP's input); each window's probabilities over the events (the softmax of
CLAP's audio-text similarities) are averaged over the windows that are not silent, so the dominant events win; the
events whose average reaches `prompt.audio_threshold` (at most `prompt.audio_max_events`) add their phrases to the
prompt, or form it when there is no text prompt.

Example:
    >>> heard = hear(audio="rain.wav", prompt="a watercolor painting")  # doctest: +SKIP
    >>> heard.prompt, [(event.name, round(event.score, 2)) for event in heard.events]  # doctest: +SKIP
    ('a watercolor painting, rain, wet streets, overcast', [('rain', 0.61)])
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rerender.errors import (
    CheckpointError,
    ConfigError,
    InputNotFoundError,
    VideoReadError,
    WeightsNotFoundError,
)

__all__ = [
    "SAMPLE_RATE",
    "SILENCE_DBFS",
    "WINDOW_SECONDS",
    "ClapScorer",
    "HeardEvent",
    "SoundEvent",
    "SoundPrompt",
    "audio_windows",
    "check_audio_model",
    "check_audio_prompt",
    "decode_audio",
    "hear",
    "hear_prompt",
    "load_vocabulary",
    "score_events",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
"""CLAP's sampling rate (Hz): every sound is resampled to it."""
WINDOW_SECONDS = 10.0
"""CLAP's input length: longer sounds are scored in windows of this many seconds."""
SILENCE_DBFS = -60.0
"""A sound (or window) whose RMS level is below this many dB full scale is silence."""

Scorer = Callable[[Sequence[np.ndarray], Sequence[str]], np.ndarray]
"""``scorer(windows, texts) -> (len(windows), len(texts))`` probabilities, each row summing to 1."""


@dataclass(frozen=True)
class SoundEvent:
    """One entry of the vocabulary."""

    name: str
    """Its name (``rain``)."""
    sound: str
    """What CLAP compares the sound with, as "the sound of <sound>"."""
    phrase: str
    """What it implies on screen, added to the prompt when heard."""


@dataclass(frozen=True)
class HeardEvent:
    """An event heard in the sound."""

    name: str
    """The event's name."""
    score: float
    """Its probability averaged over the sound's windows (0–1)."""
    phrase: str
    """The phrase added to the prompt."""


@dataclass(frozen=True)
class SoundPrompt:
    """What was heard and the prompt it made."""

    source: str
    """The sound file (or the video, for "source")."""
    events: tuple[HeardEvent, ...]
    """The events heard, most probable first (empty when none reached the threshold)."""
    best: tuple[HeardEvent, ...]
    """The most probable events whatever the threshold (up to five), to see what nearly counted."""
    prompt: str
    """The prompt with the heard events' phrases (what the text encoder reads, before any added prompt)."""
    windows: int
    """10-second windows scored (silent ones are skipped)."""
    timeline: tuple[tuple[float, str, float], ...] = field(default_factory=tuple)
    """Per scored window: its start (seconds), its most probable event and that probability."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "prompt": self.prompt,
            "windows": self.windows,
            "events": [{"name": e.name, "score": round(e.score, 4), "phrase": e.phrase} for e in self.events],
            "best": [{"name": e.name, "score": round(e.score, 4)} for e in self.best],
            "timeline": [[round(start, 3), name, round(score, 4)] for start, name, score in self.timeline],
        }


def _vocabulary_entries(data: Any, where: str) -> dict[str, SoundEvent]:
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"the sound vocabulary {where} must be a mapping of event names to "
            "{sound: ..., phrase: ...}, e.g. 'rain: {sound: rain falling, phrase: rain, wet streets}'"
        )
    events = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"the sound vocabulary {where} has an event without a name: {name!r}")
        if not isinstance(entry, dict) or set(entry) - {"sound", "phrase"}:
            raise ConfigError(
                f"the sound vocabulary {where}: event {name!r} must be a mapping with `sound` and "
                f"`phrase` only, got {entry!r}"
            )
        for key in ("sound", "phrase"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(
                    f"the sound vocabulary {where}: event {name!r} needs a non-empty text `{key}`, "
                    f"got {entry.get(key)!r}"
                )
        events[name] = SoundEvent(name, entry["sound"].strip(), entry["phrase"].strip())
    return events


def load_vocabulary(path: str | os.PathLike | None = None) -> list[SoundEvent]:
    """The shipped sound events, with those of the YAML file `path` added (replacing events of the same name).

    Raises:
        InputNotFoundError: `path` does not exist.
        ConfigError: `path` is not valid YAML or not ``name: {sound: text, phrase: text}`` entries (names which).
    """
    import yaml

    shipped = resources.files("rerender") / "assets" / "sound_events.yaml"
    events = _vocabulary_entries(yaml.safe_load(shipped.read_text(encoding="utf-8")), "shipped with rerender")
    if path is not None:
        file = Path(path).expanduser()
        where = f"`prompt.audio_vocabulary` {str(file)!r}"
        if not file.is_file():
            raise InputNotFoundError(f"{where} not found")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigError(f"{where} is not valid YAML: {str(error).splitlines()[0]}") from error
        events.update(_vocabulary_entries(data, where))
    return list(events.values())


def decode_audio(path: str | os.PathLike, argument: str = "prompt.audio_prompt", track: int = 0) -> np.ndarray:
    """Audio track number `track` of `path` (0 = the first; any file PyAV reads: wav, mp3, flac, mp4 …) as
    48 kHz mono float32.

    Raises:
        InputNotFoundError: no such file.
        VideoReadError: not a readable media file, or one without an audio track (names `argument`).
        ConfigError: the sound is silent (RMS under `SILENCE_DBFS`); the file has no audio track `track`.

    Shape:
        - Output: (samples,) float32 in [-1, 1]
    """
    import av

    file = Path(path).expanduser()
    if not file.is_file():
        raise InputNotFoundError(f"`{argument}` not found: {str(file)!r}")
    try:
        container = av.open(str(file))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"`{argument}` {str(file)!r} is not a readable sound or video file: {error}") from error
    with container:
        if not container.streams.audio:
            raise VideoReadError(f"`{argument}` {str(file)!r} has no audio track; give a file with sound")
        if not 0 <= track < len(container.streams.audio):
            raise ConfigError(
                f"`{argument}` {str(file)!r} has {len(container.streams.audio)} audio track(s) (0 to "
                f"{len(container.streams.audio) - 1}), not track {track}"
            )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        try:
            for frame in container.decode(container.streams.audio[track]):
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except (av.error.FFmpegError, ValueError) as error:
            raise VideoReadError(f"`{argument}` {str(file)!r}: its audio cannot be decoded: {error}") from error
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    level = _dbfs(samples)
    if level < SILENCE_DBFS:
        what = "no samples" if not samples.size else f"{level:.0f} dBFS"
        raise ConfigError(
            f"`{argument}` {str(file)!r} is silent ({what}, under {SILENCE_DBFS:.0f} dBFS): there is "
            "nothing to hear; give a file with sound or drop it"
        )
    return samples


def _dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def audio_windows(samples: np.ndarray, seconds: float = WINDOW_SECONDS) -> list[tuple[float, np.ndarray]]:
    """``(start seconds, samples)`` of consecutive `seconds`-long windows, silent ones left out; a last window
    shorter than one second joins the one before.

    Shape:
        - samples: (N,) at `SAMPLE_RATE`
    """
    length = int(seconds * SAMPLE_RATE)
    starts = list(range(0, max(len(samples), 1), length))
    if len(starts) > 1 and len(samples) - starts[-1] < SAMPLE_RATE:
        starts.pop()
    windows = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(samples)
        window = samples[start:end]
        if _dbfs(window) >= SILENCE_DBFS:
            windows.append((start / SAMPLE_RATE, window))
    return windows


_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


class ClapScorer:
    """CLAP's zero-shot audio classification as a `Scorer`: the softmax over the texts of
    ``logit_scale · cos(audio embedding, text embedding)`` (`ClapModel.logits_per_audio`), per window.

    The model and its processor are loaded once per process (safetensors where the folder has them).

    Args:
        model: hub id or folder of a CLAP model (`ClapModel` + `ClapProcessor`).
        device: where it runs.
    """

    def __init__(self, model: str = "laion/clap-htsat-unfused", device: str = "cpu") -> None:
        self.model_name = model
        self.device = device

    def _load(self) -> tuple[Any, Any]:
        key = (self.model_name, self.device)
        with _MODELS_LOCK:
            if key not in _MODELS:
                check_audio_model(self.model_name)  # missing (offline, or not a model folder): our error
                try:
                    from transformers import ClapModel, ClapProcessor

                    processor = ClapProcessor.from_pretrained(self.model_name)
                    model = ClapModel.from_pretrained(self.model_name, weights_only=True).to(self.device).eval()
                except Exception as error:
                    if isinstance(error, (KeyboardInterrupt, SystemExit)):
                        raise
                    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    raise CheckpointError(
                        f"could not load the sound model `prompt.audio_model` {self.model_name!r} "
                        f"({type(error).__name__}: {text}); fetch it with `rerender download` (with --audio-prompt) "
                        "or set `prompt.audio_model` to a CLAP model folder"
                    ) from error
                _MODELS[key] = (processor, model)
            return _MODELS[key]

    def __call__(self, windows: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        import torch

        processor, model = self._load()
        rows = []
        for window in windows:  # one at a time: memory stays that of one 10-second window
            inputs = processor(
                text=list(texts), audio=[window], sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True
            ).to(self.device)
            with torch.no_grad():
                logits = model(**inputs).logits_per_audio  # (1, texts)
            rows.append(logits.float().softmax(dim=-1)[0].cpu().numpy())
        return np.stack(rows) if rows else np.zeros((0, len(texts)), np.float32)


def score_events(
    windows: Sequence[tuple[float, np.ndarray]], vocabulary: Sequence[SoundEvent], scorer: Scorer
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window probabilities of each event and their mean over the windows (the dominant events score highest).

    Returns:
        ``(per_window, mean)``: ``(windows, events)`` and ``(events,)``.

    Raises:
        ConfigError: the scorer returned the wrong shape, or rows that are not probabilities.
    """
    texts = [f"the sound of {event.sound}" for event in vocabulary]
    scores = np.asarray(scorer([window for _, window in windows], texts), dtype=np.float64)
    if scores.shape != (len(windows), len(vocabulary)):
        raise ConfigError(
            f"the sound scorer must return ({len(windows)}, {len(vocabulary)}) probabilities, got shape {scores.shape}"
        )
    if len(windows) and (np.any(scores < -1e-6) or not np.allclose(scores.sum(axis=1), 1, atol=1e-3)):
        raise ConfigError("the sound scorer must return probabilities (each row ≥ 0, summing to 1)")
    return scores, scores.mean(axis=0) if len(windows) else np.zeros(len(vocabulary))


def _combine(prompt: str, phrases: Sequence[str]) -> str:
    parts = [part for part in (prompt.strip(), *phrases) if part]
    return ", ".join(parts)


def hear(
    audio: str | os.PathLike | np.ndarray,
    prompt: str = "",
    *,
    vocabulary: Sequence[SoundEvent] | None = None,
    scorer: Scorer | None = None,
    model: str = "laion/clap-htsat-unfused",
    threshold: float = 0.2,
    max_events: int = 3,
    source: str | None = None,
    argument: str = "prompt.audio_prompt",
) -> SoundPrompt:
    """The events heard in `audio` and `prompt` with their phrases added.

    Args:
        audio: a sound or video file, or 48 kHz mono samples.
        prompt: the text prompt (English); empty = the phrases alone form the prompt.
        vocabulary: the events (`load_vocabulary()` by default).
        scorer: `Scorer`; None = `ClapScorer(model)`.
        model: the CLAP model for the default scorer.
        threshold: the least mean probability an event needs.
        max_events: at most this many events add their phrases.
        source: the name to record for `audio` (default: the path).
        argument: the option named in errors.

    Raises:
        InputNotFoundError, VideoReadError, ConfigError: see `decode_audio`; also a sound whose every window is
            silent.
        CheckpointError: the CLAP model cannot be loaded.
    """
    samples = decode_audio(audio, argument) if not isinstance(audio, np.ndarray) else np.asarray(audio, np.float32)
    vocabulary = list(vocabulary) if vocabulary is not None else load_vocabulary()
    windows = audio_windows(samples)
    if not windows:
        raise ConfigError(f"`{argument}` is silent (every window under {SILENCE_DBFS:.0f} dBFS): nothing to hear")
    per_window, mean = score_events(windows, vocabulary, scorer or ClapScorer(model))
    order = np.argsort(-mean, kind="stable")
    best = tuple(HeardEvent(vocabulary[i].name, float(mean[i]), vocabulary[i].phrase) for i in order[:5])
    events = tuple(event for event in best[:max_events] if event.score >= threshold)
    timeline = tuple(
        (start, vocabulary[int(row.argmax())].name, float(row.max()))
        for (start, _), row in zip(windows, per_window, strict=True)
    )
    name = source or (str(audio) if not isinstance(audio, np.ndarray) else "<samples>")
    result = SoundPrompt(
        name, events, best, _combine(prompt, [event.phrase for event in events]), len(windows), timeline
    )
    if events:
        logger.info(
            "heard in %s: %s -> prompt %r",
            name,
            ", ".join(f"{event.name} {event.score:.2f}" for event in events),
            result.prompt,
        )
    else:
        logger.warning(
            "no sound event in %s reached `prompt.audio_threshold` %.2f (most probable: %s); the prompt is unchanged",
            name,
            threshold,
            ", ".join(f"{event.name} {event.score:.2f}" for event in best[:3]),
        )
    return result


CLAP_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
"""`ClapProcessor`'s settings, as the hub's CLAP repositories and older transformers (first) or transformers 5
(second) save them; a CLAP folder holds `config.json` and one of these."""


def check_audio_model(model: str, audio_prompt: str | None = None) -> None:
    """Raise `WeightsNotFoundError` naming the CLAP model `prompt.audio_model` when it can be neither read here
    nor downloaded now, with the command that fetches it. Cheap (a path check or a look at the hub cache), so a
    run calls it before any work; loading errors of a model that is there stay `CheckpointError`s.

    Args:
        model: a hub id or a local folder.
        audio_prompt: the run's `prompt.audio_prompt`, for the `rerender download` command in the message.
    """
    from rerender.config import PromptConfig
    from rerender.weights import _cached, hub_reachable, is_hub_id

    if not is_hub_id(model):
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file() or not any((folder / n).is_file() for n in CLAP_PROCESSOR_FILES):
            raise WeightsNotFoundError(
                f"the sound model `prompt.audio_model` {model!r} is not a folder holding a CLAP model (config.json "
                "and the processor's settings); give a folder saved by transformers' ClapModel and ClapProcessor, or "
                f"a hub id such as {PromptConfig().audio_model!r}"
            )
        return
    if _cached(model, "config.json") or hub_reachable():
        return
    command = f"rerender download --audio-prompt {shlex.quote(audio_prompt or 'SOUND')}"
    if model != PromptConfig().audio_model:
        command += f" --set audio_model={shlex.quote(model)}"
    raise WeightsNotFoundError(
        f"hearing the sound prompt (--audio-prompt) needs the CLAP model {model!r}, which is not in the Hugging Face "
        f"cache and cannot be downloaded now (offline); on a connected machine run: {command} (or hf download "
        f"{model}), or set `prompt.audio_model` (--set audio_model=FOLDER) to a local CLAP folder"
    )


def check_audio_prompt(
    audio_prompt: str | None,
    video: str | os.PathLike | None = None,
    vocabulary: str | os.PathLike | None = None,
    *,
    span: tuple[float, float] | None = None,
    audio_track: int | None = None,
) -> str | None:
    """Resolve and check `prompt.audio_prompt` before any model is fetched or loaded or any frame is rendered: the
    file (or, for "source", `video`) exists and has an audio track, the vocabulary file is valid, and the sound to
    hear is not silent: a sound file is decoded whole (its first audio track); "source" is decoded only when `span`
    is given (the part under the frames being translated, from the track the output carries: `audio_track`, as
    `output.audio_track` chooses it), since before the video is probed the span is not known. The decoded sound
    is kept for `hear_prompt`, which then does not decode it again.

    Returns:
        The file to hear, or None when `audio_prompt` is None.

    Raises:
        ConfigError: "source" without a video (a still or text has no soundtrack), a bad vocabulary, or a silent
            sound (naming the span's times for "source").
        InputNotFoundError, VideoReadError: a missing or unreadable file, or one without an audio track.
    """
    if audio_prompt is None:
        return None
    if isinstance(audio_prompt, str) and not audio_prompt.strip():  # else Path('') is '.', "a folder"
        raise ConfigError(
            f"`prompt.audio_prompt` is empty ({audio_prompt!r}): give a sound or video file, 'source' (the video's "
            "own sound), or leave it out (None) for no sound prompt"
        )
    if audio_prompt == "source":
        if video is None or Path(video).is_dir():
            raise ConfigError(
                "`prompt.audio_prompt` 'source' uses the video's soundtrack, and this input has none "
                "(a still, an image folder or text alone): give a sound file instead"
            )
        path = Path(video)
    else:
        path = Path(audio_prompt).expanduser()
    argument = "prompt.audio_prompt"
    import av

    if path.is_dir():
        raise InputNotFoundError(f"`{argument}` {str(path)!r} is a folder, not a sound or video file")
    if not path.is_file():
        raise InputNotFoundError(f"`{argument}` not found: {str(path)!r}")
    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"`{argument}` {str(path)!r} is not a readable sound or video file: {error}") from error
    if not has_audio and audio_prompt == "source":
        raise VideoReadError(
            f"`{argument}` 'source' takes the video's soundtrack, and {str(path)!r} has no audio track; "
            "give a sound file instead"
        )
    if not has_audio:
        raise VideoReadError(f"`{argument}` {str(path)!r} has no audio track; give a file with sound")
    load_vocabulary(vocabulary)
    if audio_prompt != "source" or span is not None:
        _sound_to_hear(str(path), audio_prompt == "source", span, audio_track)  # refuses silence, keeps the samples
    return str(path)


_DECODED: dict[tuple[Any, ...], np.ndarray] = {}
"""The last sound `check_audio_prompt` decoded, for `hear_prompt` to take (one entry: a long soundtrack is large)."""
_DECODED_LOCK = threading.Lock()


def _sound_to_hear(
    path: str, source: bool, span: tuple[float, float] | None, audio_track: int | None, take: bool = False
) -> np.ndarray:
    """The samples `hear_prompt` hears: a sound file's first audio track whole, or for "source" the track the output
    carries cut to `span` (seconds on the source's clock). Decoded once: `check_audio_prompt` keeps them and
    `hear_prompt` takes them (`take`).

    Raises:
        ConfigError: the sound is silent (every window under `SILENCE_DBFS`).
    """
    argument = "prompt.audio_prompt"
    track = 0
    if source:  # the track the output carries (`output.audio_track`, else the default-flagged one, else the first)
        from rerender.video.audio import source_audio_track

        track = source_audio_track(path, audio_track) or 0
    stat = os.stat(path)
    key = (path, track, span if source else None, stat.st_mtime_ns, stat.st_size)
    with _DECODED_LOCK:
        kept = _DECODED.pop(key, None) if take else _DECODED.get(key)
    if kept is not None:
        return kept
    samples = decode_audio(path, argument, track)
    if source and span is not None:
        start, end = span
        samples = samples[max(0, round(start * SAMPLE_RATE)) : max(0, round(end * SAMPLE_RATE))]
        if not audio_windows(samples):
            raise ConfigError(
                f"`{argument}` 'source': the video's sound from {start:.2f} s to {end:.2f} s (the frames being "
                f"translated) is silent (every window under {SILENCE_DBFS:.0f} dBFS): nothing to hear; give a "
                "sound file instead"
            )
    elif not audio_windows(samples):
        raise ConfigError(f"`{argument}` is silent (every window under {SILENCE_DBFS:.0f} dBFS): nothing to hear")
    if not take:
        with _DECODED_LOCK:
            _DECODED.clear()
            _DECODED[key] = samples
    return samples


def hear_prompt(
    record: Any,
    prompt: Any,
    video: str | os.PathLike | None = None,
    scorer: Scorer | None = None,
    span: tuple[float, float] | None = None,
    audio_track: int | None = None,
    device: str | None = None,
) -> Any:
    """`record` (a `rerender.languages.PromptTranslation`) with the events heard in `prompt.audio_prompt` added to
    its English prompt and recorded in its `sound`; unchanged when `prompt.audio_prompt` is None.

    Args:
        record: the prompt as translated.
        prompt: the `PromptConfig` (audio_prompt, audio_model, audio_vocabulary, audio_threshold, audio_max_events).
        video: the input video, for ``audio_prompt: source``.
        scorer: `Scorer`; None = `ClapScorer(prompt.audio_model)` (on the GPU when there is one).
        span: ``(start, end)`` in seconds on the source's clock: the part of the video being translated. With
            ``audio_prompt: source`` only that part is heard (the sound that plays under the output); a separate
            sound file is always heard whole.
        audio_track: the run's `output.audio_track`: with ``audio_prompt: source`` the track the output carries is
            heard (that one, else the default-flagged track, else the first); a separate sound file's first track
            is heard.
        device: where the CLAP model runs when `scorer` is None (the run's model device,
            `rerender.workflow.preflight.helper_device`); None = the GPU when there is one.

    Raises:
        ConfigError: the sound heard (the span's, for "source") is silent; see also `check_audio_prompt`, `hear`.
    """
    import dataclasses

    if prompt.audio_prompt is None:
        return record
    path = check_audio_prompt(prompt.audio_prompt, video, prompt.audio_vocabulary)  # its header (it may have changed)
    argument = "prompt.audio_prompt"
    source = prompt.audio_prompt == "source"
    audio = _sound_to_hear(str(path), source, span, audio_track, take=True)  # decoded by the check before, once
    if span is not None and source:
        logger.info("hearing %s from %.2f s to %.2f s (the frames being translated)", path, span[0], span[1])
    if scorer is None:
        import torch

        scorer = ClapScorer(prompt.audio_model, device or ("cuda" if torch.cuda.is_available() else "cpu"))
    heard = hear(
        audio,
        record.english,
        vocabulary=load_vocabulary(prompt.audio_vocabulary),
        scorer=scorer,
        threshold=prompt.audio_threshold,
        max_events=prompt.audio_max_events,
        source=str(path),
        argument=argument,
    )
    return dataclasses.replace(record, english=heard.prompt, sound=heard)
