"""Processing size: sides rounded to 8 without distorting the picture (issue 9, "no distortion")."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from rerender.config import RerenderConfig
from rerender.video import compute_output_size, fit_frame, fit_size, read_frames, unfit_frame


def circle_frame(width: int, height: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """A grey frame with a white disc of `radius` px at `centre = (x, y)` px."""
    frame = np.full((height, width, 3), 60, np.uint8)
    cv2.circle(
        frame,
        (int(round(centre[0] * 16)), int(round(centre[1] * 16))),
        int(round(radius * 16)),
        (255, 255, 255),
        -1,
        lineType=cv2.LINE_AA,
        shift=4,
    )
    return frame


def disc_box(frame: np.ndarray) -> tuple[float, float, float, float]:
    """Centre x, centre y, width and height of the bright disc, from its area-weighted moments (sub-pixel)."""
    background = float(np.median(frame[..., 0]))  # a codec may shift the grey by a level or two
    weight = np.clip((frame[..., 0].astype(np.float64) - background) / (255 - background), 0, 1)
    weight[weight < 0.02] = 0
    ys, xs = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
    total = weight.sum()
    cx, cy = (weight * xs).sum() / total, (weight * ys).sum() / total
    # For a disc, the second moment about the centre along an axis is r²/4: width = 4·sqrt(var).
    width = 4 * np.sqrt((weight * (xs - cx) ** 2).sum() / total)
    height = 4 * np.sqrt((weight * (ys - cy) ** 2).sum() / total)
    return cx, cy, width, height


def write_clip(path, frames, fps=25) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


# ---------------------------------------------------------------------------------------------- the sizes


@pytest.mark.parametrize(
    "size, expected",
    [
        ((540, 960), (288, 512)),  # was 256×512, an 11 % squash
        ((512, 270), (512, 272)),  # was 512×256
        ((960, 506), (512, 272)),  # the shared 960×506 clip: was 512×256
        ((1920, 1080), (512, 288)),
        ((144, 108), (512, 384)),
    ],
)
def test_default_processing_size_keeps_the_aspect(size, expected):
    from rerender.workflow.preflight import resolve_model_defaults

    video = resolve_model_defaults(RerenderConfig(), "sd15").video  # the default model's size multiple
    assert video.size_multiple == 8
    result = compute_output_size(*size, video.resolution, video.resize_side, video.size_multiple)
    assert result == expected
    assert abs((result[0] / result[1]) / (size[0] / size[1]) - 1) < 0.01


def test_aspect_invariant_over_many_sizes():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        width, height = (int(v) for v in rng.integers(16, 4096, size=2))
        resolution = int(rng.choice([256, 384, 512, 640, 768]))
        side = str(rng.choice(["long", "short"]))
        size = compute_output_size(width, height, resolution, side, 8)
        scale = resolution / (max(width, height) if side == "long" else min(width, height))
        if min(width, height) * scale < 8:
            continue  # thinner than one multiple: clamped up to 8 px, nothing to keep
        assert size[0] % 8 == 0 and size[1] % 8 == 0
        scaled = fit_size(width, height, size)
        # the picture inside the frame keeps its aspect within 1 % (up to 1 px of rounding on a short side)
        long_axis = 0 if width >= height else 1
        exact_short = scaled[long_axis] * min(width, height) / max(width, height)
        assert abs(scaled[1 - long_axis] - exact_short) <= max(0.01 * exact_short, 1.0), (width, height, size, scaled)
        # and fills the frame but for a few pixels of crop or padding per side
        assert abs(scaled[0] - size[0]) <= 4 and abs(scaled[1] - size[1]) <= 4, (width, height, size, scaled)


# ---------------------------------------------------------------------------------------------- content


@pytest.mark.parametrize("source", [(512, 270), (540, 960), (1920, 200), (300, 44)])
def test_a_circle_stays_a_circle_where_it_was(source):
    width, height = source
    radius = min(width, height) * 0.3
    centre = (width * 0.4, height * 0.55)
    frame = circle_frame(width, height, centre, radius)
    size = compute_output_size(width, height, 512, "long", 8)
    fitted = fit_frame(frame, size)
    assert fitted.shape == (size[1], size[0], 3)
    cx, cy, disc_width, disc_height = disc_box(fitted)
    assert disc_width / disc_height == pytest.approx(1.0, abs=0.01)  # round, not squashed
    scale = disc_width / (2 * radius)
    scaled = fit_size(width, height, size)
    # the centre moves only by the centring of the crop (scaled > size) or padding (scaled < size)
    shift_x = (size[0] - scaled[0]) // 2 if size[0] >= scaled[0] else -((scaled[0] - size[0]) // 2)
    shift_y = (size[1] - scaled[1]) // 2 if size[1] >= scaled[1] else -((scaled[1] - size[1]) // 2)
    assert cx == pytest.approx(centre[0] * scaled[0] / width + shift_x, abs=0.6)
    assert cy == pytest.approx(centre[1] * scaled[1] / height + shift_y, abs=0.6)
    assert scale == pytest.approx(scaled[0] / width, rel=0.05)  # blur widens small discs a little


@pytest.mark.parametrize("source", [(512, 270), (1920, 200), (300, 44)])
def test_unfit_brings_a_processed_picture_back_onto_the_source(source):
    width, height = source
    centre, radius = (width * 0.6, height * 0.45), min(width, height) * 0.3
    frame = circle_frame(width, height, centre, radius)
    size = compute_output_size(width, height, 512, "long", 8)
    back = unfit_frame(fit_frame(frame, size), (width, height))
    assert back.shape == frame.shape
    cx, cy, disc_width, disc_height = disc_box(back)
    assert (cx, cy) == (pytest.approx(centre[0], abs=0.5), pytest.approx(centre[1], abs=0.5))
    assert disc_width == pytest.approx(2 * radius, rel=0.05) and disc_height == pytest.approx(2 * radius, rel=0.05)


def test_portrait_clip_is_read_at_its_own_aspect(tmp_path):
    width, height = 540, 960
    centre, radius = (270.0, 300.0), 150.0
    path = tmp_path / "portrait.mp4"
    write_clip(path, [circle_frame(width, height, centre, radius)] * 2)
    frames = list(read_frames(path, resolution=512))  # default multiple: 8
    assert frames[0].shape == (512, 288, 3)
    cx, cy, disc_width, disc_height = disc_box(frames[0])
    scale = 512 / 960
    assert disc_width / disc_height == pytest.approx(1.0, abs=0.01)
    assert (cx, cy) == (pytest.approx(centre[0] * scale, abs=0.5), pytest.approx(centre[1] * scale, abs=0.5))
