"""The built-in non-neural stylizer used when no diffusion weights are available."""

from __future__ import annotations

import numpy as np
import pytest

from rerender.stylizer import LOOKS, ClassicStylizer
from rerender.synthetic import make_synthetic_video


@pytest.mark.parametrize("look", LOOKS)
def test_each_look_changes_the_frame_deterministically(look):
    frame = make_synthetic_video(num_frames=2, width=64, height=48).frames[0]
    stylizer = ClassicStylizer(look)
    first, second = stylizer(frame), stylizer(frame)
    assert first.shape == frame.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert np.abs(first.astype(int) - frame).mean() > 5  # a visible restyle, not a copy


@pytest.mark.parametrize(
    "prompt, look",
    [
        ("a watercolor painting of a woman", "watercolor"),
        ("pencil sketch", "pencil"),
        ("oil painting", "oil"),
        ("anime girl", "cartoon"),
        ("a CG statue", "cartoon"),
        ("a sketch in oil", "pencil"),
    ],
)
def test_look_from_prompt(prompt, look):
    assert ClassicStylizer.from_prompt(prompt).look == look


def test_bad_input():
    with pytest.raises(ValueError, match="`look` must be one of"):
        ClassicStylizer("vaporwave")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        ClassicStylizer()(np.zeros((8, 8, 3), np.float32))
