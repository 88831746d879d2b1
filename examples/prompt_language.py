"""Write the prompt in your language: it is translated to English before the CLIP text encoder.

    python examples/prompt_language.py input.mp4 "một bức tranh sơn dầu" out.mp4
    python examples/prompt_language.py input.mp4 "유화 스타일의 남자" out.mp4 --language ko

`--language auto` (the default here) tells Vietnamese, Korean, Japanese, Chinese, Russian, Thai, Arabic, Hindi,
Hebrew and Greek from English by the letters they use; French, German and Spanish are named with `--language`.
The translator is a transformers model (default Helsinki-NLP/opus-mt-<code>-en, or `--translation-model` hub id or
folder); Thai, Arabic, Hindi, Hebrew and Greek have no default one: name one with `--translation-model`. The result
and the workspace manifest keep both the original and the English prompt.
"""

from __future__ import annotations

import argparse
import sys

import rerender
from rerender.cli import run_example
from rerender.config import PromptLanguage, RendererName, choices, field_default, parse_override


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument("--language", default="auto", choices=choices(PromptLanguage), help="the prompt's language")
    parser.add_argument("--translation-model", default=None, help="hub id or folder of a MarianMT/NLLB/M2M100 model")
    parser.add_argument("--renderer", choices=choices(RendererName), default="auto")
    parser.add_argument("-K", type=int, default=field_default("keyframes.keyframe_interval"), help="keyframe interval")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config option")
    args = parser.parse_args()

    result = rerender.translate(
        args.video,
        args.prompt,
        K=args.K,
        output=args.output,
        renderer=args.renderer,
        prompt_language=args.language,
        translation_model=args.translation_model,
        **dict(map(parse_override, args.set)),
    )
    print(f"prompt ({result.prompt.language}): {result.prompt.original!r} -> {result.prompt.english!r}")
    print(f"wrote {result.output}: {result.frame_count} frames ({result.renderer} keyframes)")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
