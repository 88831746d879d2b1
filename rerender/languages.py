"""Prompts in other languages: detect the language, translate the prompt to English before the CLIP text encoder.

Stable Diffusion 1.5's CLIP text encoder was trained on English captions, so a Vietnamese or Korean prompt is
translated first. `prompt_language` picks the source language ("auto" detects it from the share of each Unicode
script in the prompt); the translator is a transformers sequence-to-sequence model (MarianMT, NLLB or M2M100
families, from a hub id or a local folder, loaded once per process) or any function `translator(text, language)`.

The steps (`translate_prompt`): normalise to NFC (macOS and some Vietnamese keyboards type decomposed letters);
split the prompt into clauses at commas and sentence ends; keep the clauses already in English; translate each
run of clauses in another language (split further where a run is longer than the model's positions); join.
The negative prompt goes through the same steps with the same language.

Example:
    >>> from rerender.languages import detect_language
    >>> detect_language("một con mèo đang ngủ"), detect_language("고양이가 자고 있다"), detect_language("a cat")
    ('vi', 'ko', 'en')
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerender.config.sections import DEFAULT_NEGATIVE_PROMPT, LANGUAGE_NAMES, PromptLanguage, choices
from rerender.errors import CheckpointError, ConfigError, MissingDependencyError, WeightsNotFoundError

__all__ = [
    "SUPPORTED_LANGUAGES",
    "LANGUAGE_CHOICES",
    "DEFAULT_TRANSLATOR_LANGUAGES",
    "PromptTranslation",
    "Seq2SeqTranslator",
    "default_translation_model",
    "detect_language",
    "check_translator",
    "translate_prompt",
    "load_translator",
    "translator_weights_format",
    "script_shares",
]

logger = logging.getLogger(__name__)

SUPPORTED_LANGUAGES: dict[str, str] = LANGUAGE_NAMES
"""ISO 639-1 codes `prompt_language` accepts (`rerender.config.PromptLanguage`). "auto" tells en, vi, ko, ja, zh,
ru, th, ar, hi, he and el apart by script; French, German and Spanish share English's script and are named
explicitly."""

LANGUAGE_CHOICES = choices(PromptLanguage)

DEFAULT_TRANSLATOR_LANGUAGES = ("vi", "ko", "ja", "zh", "ru", "fr", "de", "es")
"""Languages with a default translator (``Helsinki-NLP/opus-mt-<code>-en``). The others are detected, and translated
only when `prompt.translation_model` or a translator function is given."""

# NLLB-200 names languages by ISO 639-3 plus script; M2M100 by the 639-1 code in `__xx__` tokens.
_NLLB_CODES = {
    "en": "eng_Latn",
    "vi": "vie_Latn",
    "ko": "kor_Hang",
    "ja": "jpn_Jpan",
    "zh": "zho_Hans",
    "ru": "rus_Cyrl",
    "fr": "fra_Latn",
    "de": "deu_Latn",
    "es": "spa_Latn",
    "th": "tha_Thai",
    "ar": "arb_Arab",
    "hi": "hin_Deva",
    "he": "heb_Hebr",
    "el": "ell_Grek",
}

# Letters only Vietnamese uses among the Latin-script languages: ă ơ ư đ ĩ ũ and the Latin Extended Additional
# block (U+1EA0–U+1EF9: vowels carrying both a quality mark and a tone mark); and tone marks Vietnamese uses often
# and English and French do not (acute on a/i/o/u/y, tilde on a/o, grave on i/o).
_VIETNAMESE_LETTERS = set("ăĂơƠưƯđĐĩĨũŨ") | {chr(code) for code in range(0x1EA0, 0x1EFA)}
_VIETNAMESE_TONES = set("áÁíÍóÓúÚýÝãÃõÕìÌòÒ")
_ENGLISH_WORDS = frozenset(
    "a an the of in on at by with and or to for from into over under near style painting photo portrait art of "
    "is are its his her their this that".split()
)
# Letters per word, roughly, for the scripts written without spaces between words (a share is a share of words).
_CHARACTERS_PER_WORD = {"han": 1.7, "kana": 2.5, "thai": 5.0}
_SCRIPT_LANGUAGE = {
    "hangul": "ko",
    "cyrillic": "ru",
    "thai": "th",
    "arabic": "ar",
    "devanagari": "hi",
    "hebrew": "he",
    "greek": "el",
}
# Clause and sentence ends: a prompt is translated clause by clause so English clauses stay as written.
_CLAUSE_END = re.compile(r"([,;.!?，、；。！？\n]+\s*)")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s*")


def _script(character: str) -> str | None:
    """The script of one letter (None for digits, punctuation, spaces and symbols)."""
    code = ord(character)
    if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if 0x3040 <= code <= 0x30FF and code not in (0x30FB, 0x30FC, 0x30A0):  # ・ ー ゠ appear in Chinese too
        return "kana"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if 0x0400 <= code <= 0x04FF:
        return "cyrillic"
    if 0x0E00 <= code <= 0x0E7F:
        return "thai"
    if 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F:
        return "arabic"
    if 0x0900 <= code <= 0x097F:
        return "devanagari"
    if 0x0590 <= code <= 0x05FF:
        return "hebrew"
    if 0x0370 <= code <= 0x03FF:
        return "greek"
    if character.isalpha() and (code < 0x0250 or 0x1E00 <= code <= 0x1EFF):
        return "latin"
    return None


def _latin_language(words: list[str], sentence_starts: set[int]) -> str:
    """ "vi" when more Latin words carry Vietnamese letters than are English function words, else "en".

    A capitalised word inside a sentence is a name (Hà Nội, Đà Nẵng) and does not vote.
    """
    vietnamese = english = 0
    for index, word in enumerate(words):
        if word.lower() in _ENGLISH_WORDS:
            english += 1
        elif index not in sentence_starts and word[:1].isupper():
            continue
        elif any(letter in _VIETNAMESE_LETTERS or letter in _VIETNAMESE_TONES for letter in word):
            vietnamese += 1
    return "vi" if vietnamese > english else "en"


def script_shares(text: str) -> dict[str, float]:
    """The share of `text`'s words in each script ("latin", "han", "kana", "hangul", "cyrillic", …), summing to 1.

    Words are runs of letters of one script; scripts written without spaces count their letters divided by the
    letters per word (Han 1.7, kana 2.5, Thai 5). Empty when `text` has no letters.
    """
    units: dict[str, float] = {}
    for run in re.finditer(r"\w+", unicodedata.normalize("NFC", text)):
        previous = None
        for character in run.group():
            script = _script(character)
            if script is None:
                previous = None
                continue
            if script in _CHARACTERS_PER_WORD:
                units[script] = units.get(script, 0.0) + 1.0 / _CHARACTERS_PER_WORD[script]
            elif script != previous:
                units[script] = units.get(script, 0.0) + 1.0
            previous = script
    total = sum(units.values())
    return {script: count / total for script, count in units.items()} if total else {}


def detect_language(text: str) -> str:
    """The language of `text` from the share of each Unicode script in it (no model, nothing downloaded).

    The script with the largest share of the words decides (one Chinese word in an English prompt leaves it
    English): Hangul → "ko"; Han and kana → "ja" when kana is at least a sixth of those letters, else "zh" (a
    Chinese ・ is not kana); Cyrillic → "ru"; Thai, Arabic, Devanagari, Hebrew, Greek → th, ar, hi, he, el; Latin →
    "vi" when more words carry letters or tone marks typical of Vietnamese than are English function words
    (capitalised names such as Hà Nội do not count), else "en". French, German and Spanish are not told apart
    from English: name them explicitly. The text is normalised to NFC first.

    Args:
        text: the prompt.

    Returns:
        A code of `SUPPORTED_LANGUAGES`.
    """
    text = unicodedata.normalize("NFC", text)
    shares = script_shares(text)
    if not shares:
        return "en"
    cjk = shares.get("han", 0.0) + shares.get("kana", 0.0)
    best = max(shares, key=lambda script: cjk if script in ("han", "kana") else shares[script])
    if best in ("han", "kana"):
        kana = sum(_script(character) == "kana" for character in text)
        han = sum(_script(character) == "han" for character in text)
        return "ja" if kana >= (kana + han) / 6 else "zh"
    if best in _SCRIPT_LANGUAGE:
        return _SCRIPT_LANGUAGE[best]
    words, starts = [], set()
    for sentence in _SENTENCE_END.split(text):
        found = [word for word in re.findall(r"\w+", sentence) if _script(word[0]) == "latin"]
        if found:
            starts.add(len(words))
        words.extend(found)
    return _latin_language(words, starts)


@dataclass(frozen=True)
class PromptTranslation:
    """The prompt (and negative prompt) as written and as the text encoder reads it."""

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
    negative_original: str | None = None
    """The negative prompt as written; None when none was given."""
    negative_english: str | None = None
    """The negative prompt the text encoder reads."""
    translated: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    """Each piece that was translated: ``(language, text, english)``; the rest was kept as written."""
    encoded: str | None = None
    """The whole positive prompt the text encoder read (`english` plus `prompt.added_prompt`), set by `translate`."""
    sound: Any = None
    """What `prompt.audio_prompt` heard (a `rerender.sound.SoundPrompt`: events, scores, the prompt it made);
    None = no sound prompt. `english` then includes the heard events' phrases."""

    def to_dict(self) -> dict[str, Any]:
        record = {
            "original": self.original,
            "english": self.english,
            "language": self.language,
            "detected": self.detected,
            "translator": self.translator,
        }
        if self.negative_original is not None:
            record.update(negative_original=self.negative_original, negative_english=self.negative_english)
        if self.translated:
            record["translated"] = [list(piece) for piece in self.translated]
        if self.sound is not None:
            record["sound"] = self.sound.to_dict()
        if self.encoded is not None:
            record["encoded"] = self.encoded
        return record


def check_language(language: str, key: str = "prompt.prompt_language") -> None:
    """Raise `ConfigError` unless `language` is "auto" or a supported code."""
    if language not in LANGUAGE_CHOICES:
        valid = ", ".join(f"{code} ({SUPPORTED_LANGUAGES.get(code, 'detect')})" for code in LANGUAGE_CHOICES)
        raise ConfigError(f"`{key}` must be one of {valid}, got {language!r}")


def default_translation_model(language: str) -> str:
    """The MarianMT model that translates `language` to English: ``Helsinki-NLP/opus-mt-{language}-en``."""
    return f"Helsinki-NLP/opus-mt-{language}-en"


def _configure_hint(language: str) -> str:
    name = SUPPORTED_LANGUAGES.get(language, language)
    return (
        f"set `prompt.translation_model` (--translation-model) to a model that translates {name} to English, "
        "e.g. facebook/nllb-200-distilled-600M (after `rerender download --translation-model ...`), or pass "
        "`prompt_translator=`"
    )


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
        f"{model} (or hf download {model}); or set `prompt.translation_model` (--translation-model) to a local "
        "folder, or write the prompt in English with `prompt.prompt_language` 'en' (--prompt-language en); from "
        "Python, `prompt_translator=` takes your own translator"
    )


def _local_files(model: str) -> list[str] | None:
    """The file names of `model`'s folder (a local folder, or the hub cache's snapshot); None when unknown."""
    from rerender.weights import is_hub_id

    if not is_hub_id(model):
        folder = Path(model).expanduser()
        return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - an unreadable cache is "unknown"
        return None
    return sorted(path.name for path in Path(config).parent.iterdir()) if isinstance(config, str) else None


def translator_weights_format(files: list[str] | None) -> str:
    """ "safetensors" when the translator's files include ``*.safetensors``, "bin" when they include only a pickled
    ``pytorch_model.bin`` (loaded with ``torch.load(weights_only=True)``: tensors only, no code), or "safetensors"
    when the files are not known (the safe choice)."""
    if files is None or any(name.endswith(".safetensors") for name in files):
        return "safetensors"
    return "bin" if any(name.endswith(".bin") for name in files) else "safetensors"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _has_sentencepiece() -> bool:
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        return False
    return True


_CACHE: dict[tuple[str, str], tuple[Any, Any]] = {}
_CACHE_LOCK = threading.Lock()


def load_translator(model: str, device: str = "cpu") -> tuple[Any, Any]:
    """The tokenizer and model of the translator `model` on `device`, loaded once per process.

    Weights are read from ``*.safetensors`` when the folder has them, else from ``pytorch_model.bin`` with
    ``weights_only=True`` (tensors only). MarianMT's tokenizer reads SentencePiece files (``source.spm``,
    ``target.spm``) and needs the `sentencepiece` package.

    Raises:
        MissingDependencyError: the tokenizer needs `sentencepiece`, which is not installed.
        CheckpointError: the folder could not be loaded (one line naming the model, the cause and the fix).
    """
    key = (model, device)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        files = _local_files(model)
        if files is not None and any(name.endswith(".spm") for name in files) and not _has_sentencepiece():
            raise MissingDependencyError(
                f"the prompt translator {model!r} has a SentencePiece tokenizer (source.spm), which needs the "
                "`sentencepiece` package: pip install sentencepiece"
            )
        weights = translator_weights_format(files)
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model)
            network = (
                AutoModelForSeq2SeqLM.from_pretrained(
                    model, use_safetensors=weights == "safetensors", weights_only=True
                )
                .to(device)
                .eval()
            )
        except Exception as error:  # transformers raises many types; one line naming the fix
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            fix = (
                "pip install sentencepiece"
                if not _has_sentencepiece()
                else f"fetch it whole with `rerender download --translation-model {model}` or set "
                "`prompt.translation_model` to a MarianMT, NLLB or M2M100 model"
            )
            raise CheckpointError(
                f"could not load the prompt translator {model!r} ({_first_line(error)}); {fix}"
            ) from error
        logger.info("prompt translator %s loaded (%s weights) on %s", model, weights, device)
        _CACHE[key] = (tokenizer, network)
        return _CACHE[key]


def _position_limit(tokenizer: Any, model: Any) -> int:
    """The most source tokens one call may take: the model's positions, or the tokenizer's limit if lower."""
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < limit:
        limit = tokenizer_limit
    return limit


def _pieces(text: str, count: Callable[[str], int], limit: int) -> list[str]:
    """`text` cut into pieces of at most `limit` tokens: at sentence ends, then clauses, then words."""
    if count(text) <= limit:
        return [text]
    for pattern in (_SENTENCE_END, re.compile(r"(?<=[,;，、；])\s*"), re.compile(r"\s+")):
        parts = [part for part in pattern.split(text) if part.strip()]
        if len(parts) > 1:
            break
    else:  # one unbreakable word longer than the model: halve it by characters
        middle = len(text) // 2
        parts = [text[:middle], text[middle:]]
    pieces: list[str] = []
    current = ""
    for part in parts:
        joined = f"{current} {part}".strip() if current else part
        if current and count(joined) > limit:
            pieces.append(current)
            current = part
        else:
            current = joined
    if current:
        pieces.append(current)
    return [small for piece in pieces for small in (_pieces(piece, count, limit) if count(piece) > limit else [piece])]


class Seq2SeqTranslator:
    """A transformers translation model (MarianMT, NLLB, M2M100), loaded on the first call, once per process.

    Decoding uses the model's own generation settings (``generation_config.json``: beam search for MarianMT)
    unless `generation` overrides them. Text longer than the model's positions is cut at sentence ends (then
    clauses, then words), each piece translated, and the pieces joined; a piece whose translation reaches the
    length limit is logged as a warning, never cut silently.

    Args:
        model: a hub id or a local folder with the model and its tokenizer.
        device: where it runs ("cpu" by default: translating one prompt is fast).
        generation: keyword arguments for `generate` overriding the model's settings (e.g. ``{"num_beams": 1}``).
    """

    def __init__(self, model: str, device: str = "cpu", generation: dict[str, Any] | None = None) -> None:
        self.model_name = model
        self.device = device
        self.generation = dict(generation or {})

    def _options(self, tokenizer: Any, model: Any, language: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if model.config.model_type == "m2m_100":  # NLLB and M2M100: source language on the tokenizer, English first
            nllb = _NLLB_CODES.get(language, "") in tokenizer.get_vocab()
            tokenizer.src_lang = _NLLB_CODES[language] if nllb else language
            options["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids("eng_Latn" if nllb else "__en__")
        return {**options, **self.generation}

    def __call__(self, text: str, language: str) -> str:
        """`text` (in `language`) translated to English."""
        import torch

        tokenizer, model = load_translator(self.model_name, self.device)
        limit = _position_limit(tokenizer, model)
        options = self._options(tokenizer, model, language)
        count = lambda piece: len(tokenizer(piece)["input_ids"])  # with the special tokens
        results = []
        for piece in _pieces(text, count, limit):
            inputs = tokenizer(piece, return_tensors="pt").to(self.device)
            with torch.no_grad():
                tokens = model.generate(**inputs, **options)
            eos = model.generation_config.eos_token_id
            eos = set(eos if isinstance(eos, list) else [eos])
            longest = options.get("max_length", model.generation_config.max_length)
            if options.get("max_new_tokens") is not None:
                longest = options["max_new_tokens"] + 1
            if tokens.shape[1] >= (longest or 10**9) and int(tokens[0, -1]) not in eos:
                logger.warning(
                    "the translation of %r reached the translator's length limit (%d tokens) and may be "
                    "cut; shorten the prompt or raise max_length",
                    piece,
                    tokens.shape[1],
                )
            results.append(tokenizer.decode(tokens[0], skip_special_tokens=True).strip())
        return " ".join(result for result in results if result)


def _segments(text: str) -> list[tuple[str, str]]:
    """`text` as ``(clause, separator)`` pairs, the separator being the punctuation and spaces after the clause."""
    parts = _CLAUSE_END.split(text)
    return [(parts[index], parts[index + 1] if index + 1 < len(parts) else "") for index in range(0, len(parts), 2)]


def _clause_language(clause: str, language: str, whole: str) -> str:
    """The language a clause is translated from: under "auto" its own (a Latin clause with letters beyond ASCII
    in a Vietnamese prompt is Vietnamese, as many Vietnamese words carry no Vietnamese-only letter); under a named
    language that language, except ASCII clauses in a Vietnamese prompt and clauses detected as English in a
    prompt whose language is not written in Latin letters (French, German and Spanish are translated whole)."""
    if not clause.strip():
        return "en"
    own = detect_language(clause)
    if language == "auto":
        return "vi" if own == "en" and whole == "vi" and not clause.isascii() else own
    if language in ("fr", "de", "es"):
        return language
    if language == "vi":
        return "en" if clause.isascii() else "vi"
    return "en" if own == "en" else language


def _plan(text: str, language: str) -> list[tuple[str, str]]:
    """`text` as ``(piece, language)`` runs of consecutive clauses of one language (see `_clause_language`)."""
    whole = detect_language(text) if language == "auto" else language
    runs: list[tuple[str, str]] = []
    for clause, separator in _segments(text):
        own = _clause_language(clause, language, whole)
        if runs and runs[-1][1] == own:
            runs[-1] = (runs[-1][0] + clause + separator, own)
        else:
            runs.append((clause + separator, own))
    return runs


def _translate_text(
    text: str, language: str, translate: Callable[[str, str], str], name: str
) -> tuple[str, list[tuple[str, str, str]]]:
    """`text` with each run not in English replaced by its translation; and the runs translated."""
    output, done = [], []
    for piece, own in _plan(text, language):
        body = piece.rstrip()
        trailing = piece[len(body) :]
        stripped = body.rstrip(",;，、；")
        separator = body[len(stripped) :]
        if own == "en" or not stripped.strip():
            output.append(piece)
            continue
        english = translate(stripped.strip(), own)
        if not isinstance(english, str):
            raise ConfigError(f"the prompt translator {name!r} must return a str, got {type(english).__name__}")
        if not english.strip():  # a failed translation; rendering on would silently drop the prompt
            raise ConfigError(
                f"the prompt translator {name!r} returned an empty prompt for {stripped.strip()!r} "
                f"({own}); it must return the English prompt"
            )
        separator = ", " if separator else ""
        done.append((own, stripped.strip(), english.strip()))
        output.append(english.strip() + separator + (" " if trailing and not separator else ""))
    return re.sub(r"\s+", " ", "".join(output)).strip(), done


def translate_prompt(
    prompt: str,
    language: str = "auto",
    translator: Callable[[str, str], str] | None = None,
    model: str | None = None,
    negative_prompt: str | None = None,
) -> PromptTranslation:
    """The English prompt (and negative prompt) for `prompt`, with what is not in English translated.

    Args:
        prompt: the prompt as written.
        language: "auto" (detect by the share of each script, per clause, see `detect_language`) or a code of
            `SUPPORTED_LANGUAGES`.
        translator: `translator(text, language) -> str`; `None` uses the transformers model `model`.
        model: hub id or folder of the translation model; `None` = `default_translation_model(language)` for the
            languages of `DEFAULT_TRANSLATOR_LANGUAGES`.
        negative_prompt: translated the same way, with the same `language`; None = none.

    Returns:
        A `PromptTranslation` (no model is loaded when the prompts are English or empty).

    Raises:
        ConfigError: an unknown language code, a language without a default translator named explicitly with no
            translator configured, or a translator that does not return text (or returns none).
        WeightsNotFoundError: the translation model is neither here nor downloadable (offline).
    """
    check_language(language, "prompt_language")
    prompt = unicodedata.normalize("NFC", prompt)
    negative = unicodedata.normalize("NFC", negative_prompt) if negative_prompt is not None else None
    detected = language == "auto"
    source = detect_language(prompt) if detected else language
    for what, text in (("prompt", prompt), ("negative prompt", negative or "")):
        if language == "en" and text and (seen := detect_language(text)) != "en":  # CLIP reads English: said
            logger.warning(
                "the %s looks like %s (%s) but `prompt_language` is 'en', so it goes to the text encoder "
                "untranslated (it reads English); set `prompt_language` 'auto' (CLI --prompt-language auto) to "
                "translate it",
                what,
                SUPPORTED_LANGUAGES.get(seen, seen),
                seen,
            )
    if negative == DEFAULT_NEGATIVE_PROMPT:  # ours, in English whatever the prompt's language
        negative_plan_text = ""
    else:
        negative_plan_text = negative or ""
    plans = [_plan(text, language) for text in (prompt, negative_plan_text)]
    needed = sorted({own for plan in plans for _, own in plan if own != "en"})
    if not needed:
        return PromptTranslation(prompt, prompt, source, detected, None, negative, negative)
    untranslatable = [code for code in needed if code not in DEFAULT_TRANSLATOR_LANGUAGES]
    if translator is None and model is None and untranslatable:
        names = ", ".join(SUPPORTED_LANGUAGES.get(code, code) for code in untranslatable)
        if not detected:
            raise ConfigError(
                f"`prompt_language` {language!r} ({names}) has no default translator; "
                + _configure_hint(untranslatable[0])
            )
        logger.warning(
            "the prompt is partly in %s, which has no default translator: that text goes to the text "
            "encoder untranslated; %s",
            names,
            _configure_hint(untranslatable[0]),
        )
        needed = [code for code in needed if code not in untranslatable]
    translate: Callable[[str, str], str]
    if translator is not None:
        translate, name = translator, getattr(translator, "__name__", type(translator).__name__)
    elif model is not None:
        check_translator(model)
        translate, name = Seq2SeqTranslator(model), model
    else:
        for code in needed:
            check_translator(default_translation_model(code))
        name = ", ".join(default_translation_model(code) for code in needed) or None
        translate = lambda text, code: (
            Seq2SeqTranslator(default_translation_model(code))(text, code) if code in needed else text
        )
    english, done = _translate_text(prompt, language, translate, str(name))
    negative_english = negative
    if negative_plan_text:
        negative_english, negative_done = _translate_text(negative_plan_text, language, translate, str(name))
        done += negative_done
    done = [piece for piece in done if piece[1] != piece[2]] if translator is None and model is None else done
    logger.info("prompt (%s%s): %r -> %r", source, ", detected" if detected else "", prompt, english)
    if negative is not None and negative_english != negative:
        logger.info("negative prompt: %r -> %r", negative, negative_english)
    return PromptTranslation(
        prompt, english, source, detected, name if done else None, negative, negative_english, tuple(done)
    )
