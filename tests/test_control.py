"""Control maps: built-in canny, the controlnet-aux bridge, precomputed maps from folders and videos."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rerender.config import ControlConfig
from rerender.diffusion.control import MissingDependencyError, canny, load_annotator, load_control_maps, make_annotator
from rerender.errors import ConfigError, InputNotFoundError


def _square(size: int = 64) -> np.ndarray:
    frame = np.zeros((size, size, 3), np.uint8)
    frame[16:48, 16:48] = 200
    return frame


def test_canny_finds_the_square_edges():
    edges = canny(_square())
    assert edges.shape == (64, 64, 3) and edges.dtype == np.uint8
    assert set(np.unique(edges)) == {0, 255}
    assert edges[16:48, 16].any() and not edges[30, 30].any()  # edge on the border, nothing inside
    assert (edges[..., 0] == edges[..., 2]).all()


def test_canny_thresholds_are_configurable_and_checked():
    frame = _square()
    frame[16:48, 16:32] = 190  # a weak edge (190 → 200) in the middle of the square
    weak = canny(frame, 10, 20)[30, 30:34].any()
    strong = canny(frame, 200, 250)[30, 30:34].any()
    assert weak and not strong
    with pytest.raises(ConfigError, match="0 ≤ low ≤ high ≤ 255"):
        canny(frame, 200, 100)
    with pytest.raises(ConfigError, match=r"RGB uint8 array of shape \(H, W, 3\)"):
        canny(frame.astype(np.float32))


def test_make_annotator_follows_the_control_config():
    annotate = make_annotator(ControlConfig(type="canny", canny_low_threshold=10, canny_high_threshold=20))
    assert np.array_equal(annotate(_square()), canny(_square(), 10, 20))
    assert make_annotator(ControlConfig(type="precomputed", maps="maps/", model="some/controlnet")) is None


def test_missing_controlnet_aux_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "controlnet_aux", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"rerender\[annotators\]") as raised:
        load_annotator("hed")
    assert isinstance(raised.value, ImportError)
    with pytest.raises(MissingDependencyError, match="annotators"):
        make_annotator(ControlConfig(type="depth"))
    with pytest.raises(ConfigError, match="must be one of"):
        load_annotator("segmentation")


def test_precomputed_maps_from_a_folder(tmp_path):
    from rerender.video import write_image

    for index in range(4):
        write_image(np.full((48, 64, 3), index * 50, np.uint8), tmp_path / f"{index}.png")
    maps = load_control_maps(tmp_path, count=4, size=(64, 48))
    assert len(maps) == 4 and maps[2][0, 0, 0] == 100
    picked = load_control_maps(tmp_path, count=2, indices=[3, 1])
    assert [m[0, 0, 0] for m in picked] == [150, 50]
    with pytest.raises(ConfigError, match=r"one map per frame: 5 needed, got 4"):
        load_control_maps(tmp_path, count=5)
    with pytest.raises(ConfigError, match=r"is 64×48, expected 32×32"):
        load_control_maps(tmp_path, size=(32, 32))
    with pytest.raises(ConfigError, match="index 7 is out of range"):
        load_control_maps(tmp_path, indices=[7])
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_control_maps(tmp_path / "missing")


def test_precomputed_maps_from_a_video(silent_clip):
    maps = load_control_maps(silent_clip, count=12, size=(64, 48))
    assert len(maps) == 12 and maps[0].shape == (48, 64, 3)
    with pytest.raises(ConfigError, match="12 maps"):
        load_control_maps(silent_clip, indices=[12])
