"""`benchmarks/propagation_styles.py`: the suite's extra ground-truth styles.

What they must be for the suite to mean anything: deterministic per frame, BGR uint8 of the input's shape, and
honest about what their texture is fixed to: a content-fixed style commutes with moving the picture (stylise
then shift = shift then stylise, away from the borders), a screen-fixed one does not (its cells and dots stay
where they are while the picture moves under them).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


styles = _load("propagation_styles")


def _picture(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colourful picture with some blobs (BGR uint8), shift-friendly: no content at the borders' scale."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        for _ in range(6):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            sigma = rng.uniform(6, 20)
            image[..., channel] += rng.uniform(40, 120) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        image[..., channel] += 40 + 30 * np.sin(xs / rng.uniform(9, 17) + channel) * np.cos(ys / rng.uniform(9, 17))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(styles.STYLES))
def test_each_style_is_a_deterministic_bgr_uint8_image_of_the_frames_shape(name):
    stylise = styles.STYLES[name][0]
    frame = _picture()
    first, second = stylise(frame), stylise(frame.copy())
    assert first.dtype == np.uint8 and first.shape == frame.shape
    assert np.array_equal(first, second)
    # a style, not the identity: it changes the picture
    assert np.abs(first.astype(int) - frame.astype(int)).mean() > 5


def _shift_error(name: str, dx: int, dy: int) -> float:
    """Mean |stylise(shift(x)) − shift(stylise(x))| over the interior (0–255), for an integer shift."""
    stylise = styles.STYLES[name][0]
    big = _picture(160, 200, seed=3)
    frame = big[20:116, 20:148]
    moved = big[20 + dy : 116 + dy, 20 + dx : 148 + dx]  # the picture moved by (−dx, −dy) on the screen
    a = stylise(frame).astype(np.float32)[24:-24, 24:-24]
    b = stylise(moved).astype(np.float32)
    b = b[24 - dy : b.shape[0] - 24 - dy, 24 - dx : b.shape[1] - 24 - dx]
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize("name", ["impasto", "glass"])
def test_content_fixed_styles_move_with_the_content(name):
    assert _shift_error(name, 7, 5) < 1.0


@pytest.mark.parametrize("name", ["mosaic", "halftone"])
def test_screen_fixed_styles_stay_on_the_screen(name):
    # their texture does not follow the motion: stylising the moved picture differs from moving the stylised one
    assert _shift_error(name, 7, 5) > 3.0  # content-fixed styles: below 1
    # and with no motion at all, the same screen: the identity shift commutes
    assert _shift_error(name, 0, 0) == 0.0


def test_halftone_dot_area_is_the_ink_coverage():
    # a flat grey of 50 % black ink (K = 1 − 128/255), no colour ink: about half the paper is under dots
    grey = np.full((512, 512, 3), 128, np.uint8)  # 6-px cells at this size
    out = styles.stylize_halftone(grey).astype(np.float32) / 255
    covered = 1.0 - out.mean(axis=2)  # black ink at 0.1 darkens to 0.1: coverage ≈ (1 − out) / 0.9
    assert abs(covered[10:-10, 10:-10].mean() / 0.9 - (1 - 128 / 255)) < 0.03
    # white paper: no ink anywhere
    assert styles.stylize_halftone(np.full((40, 40, 3), 255, np.uint8)).min() == 255


def test_glass_lead_lines_lie_on_the_cut_levels():
    # a horizontal luminance ramp crossing several 24-level cuts: dark lead columns, bright panes between
    ramp = np.tile(np.linspace(20, 235, 256, dtype=np.float32), (64, 1))
    frame = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    out = styles.stylize_glass(frame).astype(np.float32).mean(axis=2)[32]
    dark = out < 0.5 * np.median(out)
    runs = np.flatnonzero(np.diff(dark.astype(int)) == 1)
    # Lab L of the ramp spans about 8..95 (×2.55 on OpenCV's scale): 8 or 9 cuts at multiples of 24
    assert 6 <= len(runs) <= 10


def test_suite_plus_registers_the_styles_in_the_bench(monkeypatch):
    # where the benchmark looks: $RERENDER_BENCH, else ../shared/bench beside the repository
    bench_dir = Path(os.environ.get("RERENDER_BENCH", Path(__file__).resolve().parents[2] / "shared" / "bench"))
    if not (bench_dir / "propagation_suite.py").exists():
        pytest.skip("the shared propagation bench is not beside the repository")
    monkeypatch.setenv("RERENDER_BENCH", str(bench_dir))
    monkeypatch.syspath_prepend(str(bench_dir))
    import propagation_bench
    import propagation_suite

    plus = _load("propagation_suite_plus")
    seen = []
    monkeypatch.setattr(
        propagation_suite, "main", lambda argv: seen.append((sorted(propagation_bench.STYLES), argv)) or 0
    )
    assert plus.main(["--propagator", "copy"]) == 0
    registered, argv = seen[0]
    assert set(styles.STYLES) <= set(registered)
    # without --styles: the five judged styles; with it, the caller's choice
    assert argv[argv.index("--styles") + 1] == "cartoon,pencil,watercolor,impasto,glass"
    assert plus.main(["--propagator", "copy", "--styles", "halftone"]) == 0
    assert seen[1][1].count("--styles") == 1 and seen[1][1][-1] == "halftone"
