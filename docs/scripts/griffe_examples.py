"""A griffe extension for the API reference: read a docstring's ``Example:`` section as ``Examples:``.

Google style names the section "Examples"; griffe reads only that spelling, and a doctest under "Example:" would
render as a quotation with its output lines read as Markdown links. Loaded by mkdocs.yml (mkdocstrings' python
handler, ``extensions``).
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
