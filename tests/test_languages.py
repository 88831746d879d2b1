"""Prompts in other languages: script-based detection, the transformers translator, and translate()'s records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError, WeightsNotFoundError
from rerender.languages import LANGUAGE_CHOICES, Seq2SeqTranslator, detect_language, translate_prompt

DATA = Path(__file__).parent / "data" / "prompt_languages.tsv"


def labelled_prompts() -> list[tuple[str, str]]:
    rows = [line.split("\t", 1) for line in DATA.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [(language, prompt) for language, prompt in rows]


def test_detection_by_script():
    assert detect_language("고양이") == "ko"
    assert detect_language("猫が寝ている") == "ja"  # kanji with kana is Japanese
    assert detect_language("一只猫在睡觉") == "zh"
    assert detect_language("кошка спит") == "ru"
    assert detect_language("đêm") == "vi"  # đ is only Vietnamese
    assert detect_language("café au lait") == "en"  # è/é are not Vietnamese-only: Latin defaults to English
    assert detect_language("") == "en"


def test_detection_accuracy_on_the_labelled_prompts():
    rows = labelled_prompts()
    per_language: dict[str, list[bool]] = {}
    for language, prompt in rows:
        per_language.setdefault(language, []).append(detect_language(prompt) == language)
    assert {language: len(hits) for language, hits in per_language.items()} == {"en": 20, "vi": 20, "ko": 20}
    accuracy = {language: sum(hits) / len(hits) for language, hits in per_language.items()}
    assert min(accuracy.values()) >= 0.95, accuracy


def test_unknown_language_code_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"prompt_language.*auto.*vi \(Vietnamese\).*ko \(Korean\).*got 'xx'"):
        apply_overrides(RerenderConfig(), {"prompt_language": "xx"})
    with pytest.raises(ValueError, match="got 'klingon'"):
        translate_prompt("qapla", "klingon", translator=lambda text, language: text)
    assert set(LANGUAGE_CHOICES) >= {"auto", "en", "vi", "ko"}


def test_a_translator_that_returns_nothing_is_an_error():
    from rerender.errors import ConfigError

    for empty in ("", "  \n"):  # a failed translation must not render the video with no prompt at all
        with pytest.raises(ConfigError, match="returned an empty prompt for 'một con mèo' \\(vi\\)"):
            translate_prompt("một con mèo", "vi", translator=lambda text, language: empty)


def test_english_needs_no_translator():
    record = translate_prompt("a cat", "auto")  # no model named, none loaded, none needed
    assert (record.english, record.language, record.detected, record.translator) == ("a cat", "en", True, None)


def test_function_translator_gets_the_detected_language():
    calls = []

    def to_english(text, language):
        calls.append((text, language))
        return "a sleeping cat"

    record = translate_prompt("고양이가 자고 있다", "auto", translator=to_english)
    assert calls == [("고양이가 자고 있다", "ko")]
    assert (record.original, record.english, record.language, record.translator) == ("고양이가 자고 있다", "a sleeping cat", "ko", "to_english")


def test_missing_translation_model_names_it(monkeypatch):
    monkeypatch.setattr(Seq2SeqTranslator, "_load", lambda self: pytest.fail("a model was loaded"))
    with pytest.raises(WeightsNotFoundError, match=r"Helsinki-NLP/opus-mt-vi-en.*offline"):
        translate_prompt("con mèo đang ngủ", "auto")
    with pytest.raises(FileNotFoundError, match="no-such-translator"):
        translate_prompt("con mèo", "vi", model="/no-such-translator")


@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_translator

    return save_tiny_translator(tmp_path_factory.mktemp("tiny-marian"))


def test_tiny_marian_model_goes_through_loading_and_generate(tiny_translator):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    record = translate_prompt("một con mèo", "auto", model=str(tiny_translator))
    # The same greedy generate, done here by hand from the saved folder.
    tokenizer = AutoTokenizer.from_pretrained(tiny_translator)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_translator).eval()
    with torch.no_grad():
        tokens = model.generate(**tokenizer("một con mèo", return_tensors="pt"), do_sample=False, num_beams=1, max_new_tokens=128)
    expected = tokenizer.decode(tokens[0], skip_special_tokens=True).strip()
    assert record.language == "vi" and record.translator == str(tiny_translator)
    assert record.english == expected and record.english != record.original
    assert record.english == translate_prompt("một con mèo", "vi", model=str(tiny_translator)).english  # greedy: repeatable


def test_translate_records_both_prompts_and_renders_the_english_one(synthetic_clip, tmp_path):
    from rerender.workflow.translation import translate

    result = translate(synthetic_clip, "bức tranh màu nước", K=10, output=None, stage="first", renderer="classic",
                       prompt_language="auto", prompt_translator=lambda text, language: "a watercolor painting",
                       resolution=64, size_multiple=16, progress=False, workspace=tmp_path / "ws")
    assert result.prompt.to_dict() == {"original": "bức tranh màu nước", "english": "a watercolor painting",
                                       "language": "vi", "detected": True, "translator": "<lambda>"}
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["prompt"] == result.prompt.to_dict()


def test_missing_translator_fails_before_any_work(synthetic_clip, tmp_path):
    from rerender.workflow.translation import translate

    with pytest.raises(WeightsNotFoundError, match="opus-mt-ko-en"):
        translate(synthetic_clip, "수채화", output=tmp_path / "o.mp4", renderer="classic", prompt_language="ko",
                  progress=False)
    assert not (tmp_path / "o.mp4.work").exists()


def test_the_text_encoder_reads_the_translated_prompt(synthetic_clip, tmp_path, tiny_pipeline_dir, tiny_translator):
    from rerender.workflow.translation import translate
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    encoded = []
    original_encode = pipeline.encode_prompt
    pipeline.encode_prompt = lambda prompt, *args, **kwargs: encoded.append(prompt) or original_encode(prompt, *args, **kwargs)
    result = translate(synthetic_clip, "con mèo đen", output=None, stage="first", pipeline=pipeline,
                       translation_model=str(tiny_translator), prompt_language="vi", resolution=64, size_multiple=16,
                       num_inference_steps=2, added_prompt="", negative_prompt="", device="cpu", dtype="float32",
                       flow_estimator="dis", progress=False, workspace=tmp_path / "ws")
    assert result.renderer == "diffusion" and result.prompt.english != "con mèo đen"
    assert encoded == [result.prompt.english]


def test_cli_prompt_language_flags(synthetic_clip, tmp_path, capsys):
    from rerender.cli import main

    code = main(["translate", str(synthetic_clip), "-p", "그림", "--prompt-language", "xx", "-o", str(tmp_path / "o.mp4"),
                 "--renderer", "classic"])
    assert code == 2 and "prompt_language" in capsys.readouterr().err
    code = main(["translate", str(synthetic_clip), "-p", "그림", "--prompt-language", "auto", "-o", str(tmp_path / "o.mp4"),
                 "--renderer", "classic", "--translation-model", str(tmp_path / "absent")])
    assert code == 2 and "absent" in capsys.readouterr().err


@pytest.mark.slow
def test_prompt_language_example(synthetic_clip, tmp_path, tiny_translator):
    import os
    import subprocess
    import sys

    from rerender.video import probe_video

    example = Path(__file__).resolve().parents[1] / "examples" / "prompt_language.py"
    result = subprocess.run(
        [sys.executable, str(example), str(synthetic_clip), "một con mèo", str(tmp_path / "o.mp4"), "--renderer", "classic",
         "--translation-model", str(tiny_translator), "--set", "resolution=64", "--set", "size_multiple=16",
         "--set", "flow_estimator=dis", "--set", "propagation_preset=fast", "--set", "end_frame=6", "-K", "5"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    english = translate_prompt("một con mèo", "vi", model=str(tiny_translator)).english
    assert f"prompt (vi): 'một con mèo' -> {english!r}" in result.stdout
    assert probe_video(tmp_path / "o.mp4").frame_count == 6
