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
    rows = [
        line.split("\t", 1)
        for line in DATA.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
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
            translate_prompt("một con mèo", "vi", translator=lambda text, language: empty)  # noqa: B023


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
    assert (record.original, record.english, record.language, record.translator) == (
        "고양이가 자고 있다",
        "a sleeping cat",
        "ko",
        "to_english",
    )


def test_missing_translation_model_names_it(monkeypatch):
    monkeypatch.setattr("rerender.languages.load_translator", lambda *args: pytest.fail("a model was loaded"))
    with pytest.raises(WeightsNotFoundError, match=r"Helsinki-NLP/opus-mt-vi-en.*offline"):
        translate_prompt("con mèo đang ngủ", "auto")
    with pytest.raises(FileNotFoundError, match="no-such-translator"):
        translate_prompt("con mèo", "vi", model="/no-such-translator")


def test_missing_translation_model_message_names_the_cli_options_too(capsys, synthetic_clip, tmp_path, monkeypatch):
    """A Vietnamese prompt offline with no translator: the CLI's one line names its own options (--translation-model,
    --prompt-language en), not only Python arguments (`prompt_translator=`, prompt_language='en'), and the fetch
    command is the `hf` CLI every other message names."""
    from rerender.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "một con mèo, tranh màu nước",
            "-o",
            str(tmp_path / "o.mp4"),
            "-q",
            "--prompt-language",
            "vi",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--translation-model" in err and "--prompt-language en" in err and "prompt_language='en'" not in err, err
    assert "hf download Helsinki-NLP/opus-mt-vi-en" in err and "huggingface-cli" not in err, err
    assert not (tmp_path / "o.mp4").exists()


@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_translator

    return save_tiny_translator(tmp_path_factory.mktemp("tiny-marian"))


def test_tiny_marian_model_goes_through_loading_and_generate(tiny_translator):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, MarianTokenizer

    # Laid out as Helsinki-NLP/opus-mt-*-en: SentencePiece files, no tokenizer.json.
    names = {path.name for path in tiny_translator.iterdir()}
    assert {"source.spm", "target.spm", "vocab.json", "generation_config.json"} <= names
    assert "tokenizer.json" not in names
    record = translate_prompt("một con mèo", "auto", model=str(tiny_translator))
    # The model's own generate settings (beam search, from generation_config.json), done here by hand.
    tokenizer = AutoTokenizer.from_pretrained(tiny_translator)
    assert isinstance(tokenizer, MarianTokenizer)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_translator).eval()
    assert model.generation_config.num_beams == 4
    with torch.no_grad():
        tokens = model.generate(**tokenizer("một con mèo", return_tensors="pt"))
    expected = tokenizer.decode(tokens[0], skip_special_tokens=True).strip()
    assert record.language == "vi" and record.translator == str(tiny_translator)
    assert record.english == expected and record.english != record.original
    assert record.english == translate_prompt("một con mèo", "vi", model=str(tiny_translator)).english  # repeatable


def test_generation_settings_can_be_overridden(tiny_translator):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_translator)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_translator).eval()
    with torch.no_grad():
        greedy = model.generate(**tokenizer("con chó", return_tensors="pt"), num_beams=1, max_new_tokens=5)
    expected = tokenizer.decode(greedy[0], skip_special_tokens=True).strip()
    translator = Seq2SeqTranslator(str(tiny_translator), generation={"num_beams": 1, "max_new_tokens": 5})
    assert translator("con chó", "vi") == expected


def test_the_translator_is_loaded_once_per_process(tiny_translator, monkeypatch):
    import transformers

    from rerender import languages

    languages._CACHE.clear()
    loads = []
    original = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(
        transformers.AutoTokenizer,
        "from_pretrained",
        lambda *args, **kwargs: loads.append(args) or original(*args, **kwargs),
    )
    first = translate_prompt("một con mèo", "vi", model=str(tiny_translator))
    second = translate_prompt("một con mèo", "vi", model=str(tiny_translator))
    assert len(loads) == 1 and first.english == second.english


def test_marian_without_sentencepiece_is_one_line_naming_the_fix(tiny_translator):
    import subprocess
    import sys

    # transformers without sentencepiece cannot build MarianTokenizer ("Unrecognized configuration class").
    code = (
        "import sys; sys.modules['sentencepiece'] = None\n"
        "from rerender.errors import MissingDependencyError\n"
        "from rerender.languages import translate_prompt\n"
        "try:\n"
        f"    translate_prompt('một con mèo', 'vi', model={str(tiny_translator)!r})\n"
        "except MissingDependencyError as error:\n"
        "    print('ERROR', error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "pip install sentencepiece" in lines[0] and str(tiny_translator) in lines[0]


def test_an_unloadable_translator_is_one_line_naming_the_fix(tiny_translator, tmp_path):
    import shutil

    from rerender.errors import CheckpointError

    broken = tmp_path / "broken"
    shutil.copytree(tiny_translator, broken)
    (broken / "source.spm").write_bytes(b"not a sentencepiece model")
    with pytest.raises(
        CheckpointError,
        match=r"could not load the prompt translator .*broken.*rerender download "
        r"--translation-model",
    ) as caught:
        translate_prompt("một con mèo", "vi", model=str(broken))
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def bin_translator(tmp_path_factory) -> Path:
    from tests.tiny_models import save_tiny_translator

    return save_tiny_translator(tmp_path_factory.mktemp("tiny-marian-bin"), weights="bin")


def test_a_translator_with_only_pytorch_model_bin_loads_tensors_only(bin_translator, tiny_translator, tmp_path):
    import shutil

    import torch

    from rerender.errors import CheckpointError

    assert not list(bin_translator.glob("*.safetensors"))
    # Same seed, same weights: the .bin loads to the same translation as the safetensors folder.
    assert (
        translate_prompt("con chó", "vi", model=str(bin_translator)).english
        == translate_prompt("con chó", "vi", model=str(tiny_translator)).english
    )
    # A pickle that runs code is refused (weights_only=True), and the code never runs.
    evil = tmp_path / "evil"
    shutil.copytree(bin_translator, evil)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model.shared.weight": Payload()}, evil / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="evil"):
        translate_prompt("con chó", "vi", model=str(evil))
    assert not marker.exists()


def test_a_prompt_longer_than_the_model_positions_is_split_not_cut(tiny_translator):
    from transformers import AutoTokenizer

    sentence = "một con mèo đang ngủ trên ghế"
    prompt = ". ".join([sentence] * 8) + "."
    tokenizer = AutoTokenizer.from_pretrained(tiny_translator)
    assert len(tokenizer(prompt)["input_ids"]) > 32  # the tiny model has 32 positions: one call would IndexError
    record = translate_prompt(prompt, "vi", model=str(tiny_translator))
    one = Seq2SeqTranslator(str(tiny_translator))(sentence + ".", "vi")
    assert record.english == " ".join([one] * 8)


def test_the_negative_prompt_is_translated_with_the_prompt_and_recorded():
    from rerender.config import DEFAULT_NEGATIVE_PROMPT

    calls = []

    def to_english(text, language):
        calls.append((text, language))
        return {"một con mèo": "a cat", "mờ, xấu": "blurry, ugly"}[text]

    record = translate_prompt("một con mèo", "auto", translator=to_english, negative_prompt="mờ, xấu")
    assert calls == [("một con mèo", "vi"), ("mờ, xấu", "vi")]
    assert (record.english, record.negative_original, record.negative_english) == ("a cat", "mờ, xấu", "blurry, ugly")
    assert record.to_dict()["negative_english"] == "blurry, ugly"
    # Our default negative prompt is English: it is never sent through the translator.
    record = translate_prompt("một con mèo", "vi", translator=to_english, negative_prompt=DEFAULT_NEGATIVE_PROMPT)
    assert record.negative_english == DEFAULT_NEGATIVE_PROMPT and calls[-1] == ("một con mèo", "vi")


def test_scripts_without_a_default_translator_warn_or_translate(caplog):
    import logging

    assert [detect_language(text) for text in ("แมวนอนหลับ", "قطة نائمة", "सोती हुई बिल्ली", "חתול ישן", "γάτα")] == [
        "th",
        "ar",
        "hi",
        "he",
        "el",
    ]
    with caplog.at_level(logging.WARNING, logger="rerender.languages"):
        record = translate_prompt("แมวนอนหลับ", "auto")  # no translator configured: warned, not silently English
    assert record.english == "แมวนอนหลับ" and record.language == "th" and record.translator is None
    assert "Thai" in caplog.text and "prompt.translation_model" in caplog.text
    record = translate_prompt("แมวนอนหลับ", "auto", translator=lambda text, language: f"<{language}>")
    assert record.english == "<th>"
    with pytest.raises(ConfigError, match=r"'th' \(Thai\) has no default translator.*translation_model"):
        translate_prompt("แมวนอนหลับ", "th")


def test_mixed_prompts_are_decided_by_share_and_only_the_foreign_part_is_translated():
    assert detect_language("a beautiful landscape painting in the style of 水墨") == "en"  # one word of Chinese
    assert detect_language("a night street in Hà Nội, neon lights") == "en"  # a Vietnamese place name
    assert detect_language("a beach in Đà Nẵng at sunset") == "en"
    assert detect_language("一只白猫・黑狗在花园里") == "zh"  # ・ is not kana
    assert detect_language("猫が庭で寝ている") == "ja"
    calls = []

    def to_english(text, language):
        calls.append((text, language))
        return "a black cat sleeping"

    record = translate_prompt("masterpiece, 一只黑色的猫在睡觉, best quality", "auto", translator=to_english)
    assert calls == [("一只黑色的猫在睡觉", "zh")]
    assert record.english == "masterpiece, a black cat sleeping, best quality"
    assert record.translated == (("zh", "一只黑色的猫在睡觉", "a black cat sleeping"),)
    assert translate_prompt("a cat in 東京", "auto", translator=to_english).translator is None  # nothing to translate


def test_decomposed_unicode_is_read_as_composed():
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "một con mèo đang ngủ")
    assert decomposed != "một con mèo đang ngủ"
    assert detect_language(decomposed) == "vi"
    record = translate_prompt(decomposed, "auto", translator=lambda text, language: "a sleeping cat")
    assert record.original == "một con mèo đang ngủ" and record.english == "a sleeping cat"


def test_translate_records_both_prompts_and_renders_the_english_one(synthetic_clip, tmp_path):
    from rerender.workflow.translation import translate

    result = translate(
        synthetic_clip,
        "bức tranh màu nước",
        K=10,
        output=None,
        stage="first",
        renderer="classic",
        prompt_language="auto",
        prompt_translator=lambda text, language: "a watercolor painting",
        resolution=64,
        size_multiple=16,
        progress=False,
        workspace=tmp_path / "ws",
    )
    from rerender.config import DEFAULT_NEGATIVE_PROMPT

    assert result.prompt.to_dict() == {
        "original": "bức tranh màu nước",
        "english": "a watercolor painting",
        "language": "vi",
        "detected": True,
        "translator": "<lambda>",
        "negative_original": DEFAULT_NEGATIVE_PROMPT,
        "negative_english": DEFAULT_NEGATIVE_PROMPT,
        "translated": [["vi", "bức tranh màu nước", "a watercolor painting"]],
        "encoded": "a watercolor painting, best quality, extremely detailed",
    }
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["prompt"] == result.prompt.to_dict()


def test_missing_translator_fails_before_any_work(synthetic_clip, tmp_path):
    from rerender.workflow.translation import translate

    with pytest.raises(WeightsNotFoundError, match="opus-mt-ko-en"):
        translate(
            synthetic_clip,
            "수채화",
            output=tmp_path / "o.mp4",
            renderer="classic",
            prompt_language="ko",
            progress=False,
        )
    assert not (tmp_path / "o.mp4.work").exists()


def test_the_text_encoder_reads_the_translated_prompt(synthetic_clip, tmp_path, tiny_pipeline_dir, tiny_translator):
    from rerender.diffusion.pipeline import RerenderPipeline
    from rerender.workflow.translation import translate

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    encoded = []
    original_encode = pipeline.encode_prompt
    pipeline.encode_prompt = lambda prompt, *args, **kwargs: (
        encoded.append(prompt) or original_encode(prompt, *args, **kwargs)
    )
    result = translate(
        synthetic_clip,
        "con mèo đen",
        output=None,
        stage="first",
        pipeline=pipeline,
        translation_model=str(tiny_translator),
        prompt_language="vi",
        resolution=64,
        size_multiple=16,
        num_inference_steps=2,
        added_prompt="",
        negative_prompt="",
        device="cpu",
        dtype="float32",
        flow_estimator="dis",
        progress=False,
        workspace=tmp_path / "ws",
    )
    assert result.renderer == "diffusion" and result.prompt.english != "con mèo đen"
    assert encoded == [result.prompt.english]


def test_cli_prompt_language_flags(synthetic_clip, tmp_path, capsys):
    from rerender.cli import main

    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "그림",
            "--prompt-language",
            "xx",
            "-o",
            str(tmp_path / "o.mp4"),
            "--renderer",
            "classic",
        ]
    )
    assert code == 2 and "prompt_language" in capsys.readouterr().err
    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "그림",
            "--prompt-language",
            "auto",
            "-o",
            str(tmp_path / "o.mp4"),
            "--renderer",
            "classic",
            "--translation-model",
            str(tmp_path / "absent"),
        ]
    )
    assert code == 2 and "absent" in capsys.readouterr().err


@pytest.mark.slow
def test_prompt_language_example(synthetic_clip, tmp_path, tiny_translator):
    import os
    import subprocess
    import sys

    from rerender.video import probe_video

    example = Path(__file__).resolve().parents[1] / "examples" / "prompt_language.py"
    result = subprocess.run(
        [
            sys.executable,
            str(example),
            str(synthetic_clip),
            "một con mèo",
            str(tmp_path / "o.mp4"),
            "--renderer",
            "classic",
            "--translation-model",
            str(tiny_translator),
            "--set",
            "resolution=64",
            "--set",
            "size_multiple=16",
            "--set",
            "flow_estimator=dis",
            "--set",
            "propagation_preset=fast",
            "--set",
            "end_frame=6",
            "-K",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    english = translate_prompt("một con mèo", "vi", model=str(tiny_translator)).english
    assert f"prompt (vi): 'một con mèo' -> {english!r}" in result.stdout
    assert probe_video(tmp_path / "o.mp4").frame_count == 6


def test_download_takes_pytorch_model_bin_where_there_is_no_safetensors_and_says_so(
    bin_translator, tiny_pipeline_dir, tmp_path
):
    from tests.fake_hub import COMMIT, FakeHub, hub_env, run_cli
    from tests.test_weights import _fake_repositories, _folder_files

    repositories = _fake_repositories(tiny_pipeline_dir)
    # As Helsinki-NLP/opus-mt-vi-en on its main branch: PyTorch, TensorFlow and Rust weights, no safetensors.
    repositories["fake/bin-marian"] = {
        **_folder_files(bin_translator),
        "tf_model.h5": b"tf",
        "rust_model.ot": b"ot",
        "README.md": b"# fake",
    }
    options = [
        "download",
        "--model",
        "fake/tiny-sd",
        "--precision",
        "fp32",
        "--no-flow",
        "--prompt-language",
        "vi",
        "--translation-model",
        "fake/bin-marian",
    ]
    with FakeHub(repositories) as hub:
        env = hub_env(hub, tmp_path / "hf")
        dry = run_cli([*options, "--dry-run"], env)
        assert dry.returncode == 0, dry.stderr
        done = run_cli(options, env)
        assert done.returncode == 0, done.stderr
    assert "  fetch pytorch_model.bin" in dry.stdout and "  skip  tf_model.h5" in dry.stdout
    assert "weights: pytorch_model.bin (the repository has no .safetensors" in dry.stdout
    assert "weights_only=True" in dry.stdout
    snapshot = tmp_path / "hf" / "hub" / "models--fake--bin-marian" / "snapshots" / COMMIT
    assert sorted(path.name for path in snapshot.iterdir()) == sorted(_folder_files(bin_translator))
    assert (
        translate_prompt("con chó", "vi", model=str(snapshot)).english
        == translate_prompt("con chó", "vi", model=str(bin_translator)).english
    )
