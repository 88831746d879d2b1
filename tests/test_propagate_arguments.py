"""`propagate_video` / `propagate_video_iter` refuse arguments of the wrong kind before any work, naming them."""

from __future__ import annotations

import numpy as np
import pytest

from rerender.errors import ConfigError
from rerender.propagation import PropagationOptions, propagate_video, propagate_video_iter

FRAMES = [np.full((16, 16, 3), 10 * t, np.uint8) for t in range(3)]
KEYS = {0: np.full((16, 16, 3), 200, np.uint8)}


def _never_called(*_):
    raise AssertionError("no flow may be computed for a refused call")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"options": {"preset": "fast"}}, "PropagationOptions(**options)"),
        ({"callback": 5}, "`callback`"),
        ({"flow": 5}, "`flow`"),
        ({"progress": "no"}, "`progress`"),
        ({"workers": "2"}, "`workers`"),
        ({"workers": True}, "`workers`"),
    ],
)
def test_wrong_kinds_are_refused_naming_the_argument(arguments, named):
    arguments = {"flow": _never_called, "progress": False, **arguments}
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        propagate_video(FRAMES, KEYS, **arguments)


def test_an_iterator_of_frames_is_refused_with_the_remedy():
    with pytest.raises(ConfigError, match=r"`frames` .* list\(frames\)"):
        next(propagate_video_iter((frame for frame in FRAMES), KEYS, flow=_never_called, progress=False))


def test_numpy_flags_and_integers_are_accepted():
    out = propagate_video(
        np.stack(FRAMES), KEYS, progress=np.False_, workers=np.int64(1), options=PropagationOptions.preset("fast")
    )
    assert len(out) == 3 and np.array_equal(out[0], KEYS[0])
