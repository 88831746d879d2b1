"""The examples in the docstrings of `rerender.flow` run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module_name",
    ["rerender.flow", "rerender.flow.ops", "rerender.flow.estimators", "rerender.flow.gmflow", "rerender.flow.cache"],
)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, extraglobs={"torch": importlib.import_module("torch")}, optionflags=doctest.ELLIPSIS
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
