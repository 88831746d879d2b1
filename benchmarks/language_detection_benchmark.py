#!/usr/bin/env python
"""Accuracy of `rerender.languages.detect_language` (`prompt_language: auto`) on the labelled prompts in
`tests/data/prompt_languages.tsv` (20 short video prompts per auto-detected language, written for this check).

    python benchmarks/language_detection_benchmark.py

Prints the accuracy per language and overall, and every prompt it gets wrong.
"""

from __future__ import annotations

from pathlib import Path

from rerender.languages import detect_language

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "prompt_languages.tsv"


def main() -> None:
    rows = [
        line.split("\t", 1)
        for line in DATA.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    hits: dict[str, list[bool]] = {}
    for language, prompt in rows:
        found = detect_language(prompt)
        hits.setdefault(language, []).append(found == language)
        if found != language:
            print(f"wrong: {prompt!r} is {language}, detected {found}")
    for language, results in hits.items():
        print(f"{language}: {sum(results)}/{len(results)} = {sum(results) / len(results):.0%}")
    total = [hit for results in hits.values() for hit in results]
    print(f"overall: {sum(total)}/{len(total)} = {sum(total) / len(total):.1%}")


if __name__ == "__main__":
    main()
