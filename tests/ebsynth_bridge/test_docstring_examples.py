"""The runnable examples in the docstrings stay true."""

from __future__ import annotations

import doctest

import pytest

import ebsynth_bridge
import ebsynth_bridge.synthesis


@pytest.mark.parametrize("module", [ebsynth_bridge, ebsynth_bridge.synthesis], ids=lambda module: module.__name__)
def test_docstring_examples(module):
    failures, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0
