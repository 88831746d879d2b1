"""Prompts in other languages: detect the language, translate the prompt to English before the CLIP text encoder.

Stable Diffusion 1.5's CLIP text encoder was trained on English captions, so a Vietnamese or Korean prompt is
translated first. `prompt_language` picks the source language ("auto" detects it from the Unicode scripts the
prompt uses); the translator is a transformers sequence-to-sequence model (MarianMT, NLLB or M2M100 families,
from a hub id or a local folder, loaded on first use) or any function `translator(text, language) -> str`.

Example:
    >>> from rerender.languages import detect_language
    >>> detect_language("một con mèo đang ngủ"), detect_language("고양이가 자고 있다"), detect_language("a cat")
    ('vi', 'ko', 'en')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rerender.config.sections import LANGUAGE_NAMES, PromptLanguage, choices
from rerender.errors import ConfigError, WeightsNotFoundError

__all__ = [
    "SUPPORTED_LANGUAGES", "LANGUAGE_CHOICES", "PromptTranslation", "Seq2SeqTranslator", "default_translation_model",
    "detect_language", "check_translator", "translate_prompt",
]

logger = logging.getLogger(__name__)

SUPPORTED_LANGUAGES: dict[str, str] = LANGUAGE_NAMES
"""ISO 639-1 codes `prompt_language` accepts (`rerender.config.PromptLanguage`). "auto" tells en, vi, ko, ja, zh
and ru apart by script; French, German and Spanish share English's script and are named explicitly."""

LANGUAGE_CHOICES = choices(PromptLanguage)

# NLLB-200 names languages by ISO 639-3 plus script; M2M100 by the 639-1 code in `__xx__` tokens.
_NLLB_CODES = {"en": "eng_Latn", "vi": "vie_Latn", "ko": "kor_Hang", "ja": "jpn_Jpan", "zh": "zho_Hans",
               "ru": "rus_Cyrl", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn"}

# Letters only Vietnamese uses among the Latin-script languages we support: ă ơ ư đ and the
# Latin Extended Additional block (U+1EA0–U+1EF9: vowels carrying both a quality mark and a tone mark).
_VIETNAMESE_LETTERS = set("ăĂơƠưƯđĐ") | {chr(code) for code in range(0x1EA0, 0x1EFA)}


@dataclass(frozen=True)
class PromptTranslation:
    """The prompt as written and as the text encoder reads it."""

    original: str
    """The prompt as the user wrote it."""
    english: str
    """The prompt sent to the CLIP text encoder (equal to `original` when it is English)."""
    language: str
    """The source language code (detected when `detected`)."""
    detected: bool
    """True when `language` came from `prompt_language: auto`."""
    translator: str | None
    """The model id or folder (or the function's name) that translated; None when no translation was needed."""

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original, "english": self.english, "language": self.language,
                "detected": self.detected, "translator": self.translator}


def check_language(language: str, key: str = "prompt.prompt_language") -> None:
    """Raise `ConfigError` unless `language` is "auto" or a supported code."""
    if language not in LANGUAGE_CHOICES:
        valid = ", ".join(f"{code} ({SUPPORTED_LANGUAGES.get(code, 'detect')})" for code in LANGUAGE_CHOICES)
        raise ConfigError(f"`{key}` must be one of {valid}, got {language!r}")


def detect_language(text: str) -> str:
    """The language of `text` from the Unicode scripts it uses (no model, nothing downloaded).

    Hangul → "ko"; kana → "ja"; Han ideographs without kana → "zh"; Cyrillic → "ru"; Latin with a letter only
    Vietnamese uses (ă ơ ư đ, or a vowel with both a quality and a tone mark) → "vi"; anything else → "en".
    Latin-script languages other than Vietnamese are not told apart from English: name them explicitly.

    Args:
        text: the prompt.

    Returns:
        A code of `SUPPORTED_LANGUAGES`.
    """
    counts = {"ko": 0, "ja": 0, "zh": 0, "ru": 0, "vi": 0}
    for character in text:
        code = ord(character)
        if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            counts["ko"] += 1
        elif 0x3040 <= code <= 0x30FF:
            counts["ja"] += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            counts["zh"] += 1
        elif 0x0400 <= code <= 0x04FF:
            counts["ru"] += 1
        elif character in _VIETNAMESE_LETTERS:
            counts["vi"] += 1
    if counts["ko"]:
        return "ko"
    if counts["ja"]:
        return "ja"  # Japanese mixes kanji (Han) with kana; kana alone marks it
    if counts["zh"]:
        return "zh"
    if counts["ru"]:
        return "ru"
    return "vi" if counts["vi"] else "en"


def default_translation_model(language: str) -> str:
    """The MarianMT model that translates `language` to English: ``Helsinki-NLP/opus-mt-{language}-en``."""
    return f"Helsinki-NLP/opus-mt-{language}-en"


def check_translator(model: str) -> None:
    """Raise `WeightsNotFoundError` naming `model` when it can be neither read here nor downloaded now.

    Cheap (a path check or a look at the hub cache), so `translate` calls it before any model loads.
    """
    from rerender.weights import _cached, hub_reachable, is_hub_id

    if not is_hub_id(model):
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            raise WeightsNotFoundError(
                f"the prompt translator `prompt.translation_model` {model!r} is not a folder holding a transformers "
                "translation model (config.json, weights, tokenizer); give an existing folder or a hub id such as "
                f"{default_translation_model('vi')!r}"
            )
        return
    if _cached(model, "config.json") or hub_reachable():
        return
    raise WeightsNotFoundError(
        f"translating the prompt needs the translation model {model!r}, which is not in the Hugging Face cache and "
        f"cannot be downloaded now (offline). On a connected machine run: rerender download --translation-model "
        f"{model} (or huggingface-cli download {model}); or set "
        "`prompt.translation_model` to a local folder, pass `prompt_translator=`, or write the prompt in English "
        "with prompt_language='en'"
    )


class Seq2SeqTranslator:
    """A transformers translation model (MarianMT, NLLB, M2M100), loaded on the first call.

    Args:
        model: a hub id or a local folder with the model and its tokenizer.
        device: where it runs ("cpu" by default: translating one prompt is fast).
        max_new_tokens: longest translation, in tokens.
    """

    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 128) -> None:
        self.model_name = model
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            self._model = AutoModelForSeq2SeqLM.from_pretrained(self.model_name, use_safetensors=True).to(self.device).eval()

    def __call__(self, text: str, language: str) -> str:
        """`text` (in `language`) translated to English by greedy decoding."""
        import torch

        self._load()
        tokenizer, model = self._tokenizer, self._model
        options: dict[str, Any] = {}
        model_type = model.config.model_type
        if model_type == "m2m_100":  # NLLB and M2M100: the source language is set on the tokenizer, English forced first
            nllb = _NLLB_CODES[language] in tokenizer.get_vocab()
            tokenizer.src_lang = _NLLB_CODES[language] if nllb else language
            target = "eng_Latn" if nllb else "__en__"
            options["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(target)
        inputs = tokenizer(text, return_tensors="pt").to(self.device)
        with torch.no_grad():
            tokens = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1, **options)
        return tokenizer.decode(tokens[0], skip_special_tokens=True).strip()


def translate_prompt(
    prompt: str,
    language: str = "auto",
    translator: Callable[[str, str], str] | None = None,
    model: str | None = None,
) -> PromptTranslation:
    """The English prompt for `prompt`, translated when it is in another language.

    Args:
        prompt: the prompt as written.
        language: "auto" (detect by script, see `detect_language`) or a code of `SUPPORTED_LANGUAGES`.
        translator: `translator(text, language) -> str`; `None` uses the transformers model `model`.
        model: hub id or folder of the translation model; `None` = `default_translation_model(language)`.

    Returns:
        A `PromptTranslation` (no model is loaded when the prompt is English or empty).

    Raises:
        ConfigError: an unknown language code, or a translator that does not return text (or returns none).
        WeightsNotFoundError: the translation model is neither here nor downloadable (offline).
    """
    check_language(language, "prompt_language")
    detected = language == "auto"
    source = detect_language(prompt) if detected else language
    if source == "en" or not prompt.strip():
        return PromptTranslation(prompt, prompt, source, detected, None)
    if translator is not None:
        english = translator(prompt, source)
        name = getattr(translator, "__name__", type(translator).__name__)
    else:
        name = model or default_translation_model(source)
        check_translator(name)
        english = Seq2SeqTranslator(name)(prompt, source)
    if not isinstance(english, str):
        raise ConfigError(f"the prompt translator {name!r} must return a str, got {type(english).__name__}")
    if not english.strip():  # a failed translation; rendering on would silently drop the prompt
        raise ConfigError(f"the prompt translator {name!r} returned an empty prompt for {prompt!r} ({source}); "
                          "it must return the English prompt")
    logger.info("prompt translated from %s: %r -> %r", source, prompt, english)
    return PromptTranslation(prompt, english, source, detected, name)
