"""Extra ground-truth styles for the propagation suite: looks whose texture does NOT follow the source's edges.

The shared bench's three stylizers (cartoon, pencil, watercolor) are edge-preserving filters: their texture sits
on the source's own edges, which the propagator's colour and edge guides see. These differ in kind:

* ``impasto`` (texture fixed to the CONTENT): thick paint ridges that run along the isophotes of a heavily
  smoothed luminance, shaded by a fixed light, over a posterised palette. Every step is a shift-equivariant
  function of one frame (no screen coordinates, no seeds), so when the content moves the ridges move with it;
  but the ridges appear where the source has smooth shading and no edge at all (a sky gradient, a cheek).
* ``glass`` (texture fixed to the CONTENT): stained glass whose panes are cut along the isophotes of the
  smoothed luminance and of a chroma channel, with dark leading: the lead lines cross smooth shading where
  the source has no edge, and move with the content. (A Voronoi glass seeded at the content's blobs was
  tried first: a seed appearing or vanishing redraws the large panes around it, so its ground truth changes
  from frame to frame by more than the motion, 12.5 dB between neighbours: not a look one can propagate.)
* ``mosaic`` (texture fixed to the SCREEN): stained glass. Voronoi cells from seeds on a jittered grid at fixed
  image positions, each cell filled with its mean colour (saturated), dark lead lines between cells.
* ``halftone`` (texture fixed to the SCREEN): a CMYK dot screen at the printing angles (15, 75, 0, 45 degrees)
  on a fixed grid, dot area proportional to ink coverage.

What a keyframe restyle should reproduce. A screen-fixed texture (``mosaic``, ``halftone``) is not a property
of the content: its ground truth keeps the cells/dots still while the picture moves under them (the "shower
door" look). A keyframe propagator is built to carry the keyframes' look WITH the content, which is what a
diffusion keyframe's brush texture needs, so on moving regions it moves the cells or dots and misses the
ground truth's phase; where the picture is still it matches. Against such a ground truth, PSNR rewards a blur
(the mean of dots at unknown phase) and the sharpness figure punishes it, so these two styles measure whether
the propagator keeps a crisp texture of the right statistics without ghosting; they are not a target the
method should chase by fixing texture to the screen. ``impasto`` is the case a restyle must reproduce exactly:
content-attached texture that its guides cannot see.

Every function maps ``img`` (H×W×3 BGR uint8) to H×W×3 BGR uint8 and depends only on that one frame (and on
its size, for the screen-fixed ones); sizes scale with ``max(H, W) / 512`` as the bench's own styles do.
"""

from __future__ import annotations

import cv2
import numpy as np


def _scale(img: np.ndarray) -> float:
    return max(img.shape[:2]) / 512.0


def stylize_impasto(img: np.ndarray) -> np.ndarray:
    """Thick paint whose ridges follow the smoothed luminance's isophotes (content-fixed texture).

    Shape:
        img: (H, W, 3) uint8 BGR -> (H, W, 3) uint8 BGR.

    Height field ``h = 0.5 + 0.5·sin(2π·L_s / 10)`` with ``L_s`` the luminance (0–255) after a Gaussian of
    σ = 3 px·scale: one ridge per 10 grey levels, so ridges crowd where shading is steep and vanish on flat
    paint. Lit by a fixed light from the upper left (the height's gradient along (−1, −1)), over a
    mean-shift-flattened, 6-level posterised palette.
    """
    scale = _scale(img)
    base = cv2.pyrMeanShiftFiltering(img, sp=max(3, int(round(8 * scale))), sr=24)
    base = (np.round(base.astype(np.float32) / 255 * 5) / 5 * 255).astype(np.float32)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lum = cv2.GaussianBlur(grey, (0, 0), 3.0 * scale)
    height = 0.5 + 0.5 * np.sin(2 * np.pi * lum / 10.0)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)
    light = np.clip(1.0 - 0.35 * (gx + gy) / 2.0, 0.4, 1.6)
    out = base * light[..., None] + 30.0 * (height[..., None] - 0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def _jittered_seeds(height: int, width: int, cell: float, seed: int = 7) -> np.ndarray:
    """Voronoi seeds on a fixed jittered grid (screen-fixed). Shape: -> (N, 2) float32, (x, y)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0 : height + cell : cell, 0 : width + cell : cell]
    jitter = rng.uniform(-0.4 * cell, 0.4 * cell, size=(2,) + xs.shape)
    pts = np.stack([xs + jitter[0], ys + jitter[1]], axis=-1).reshape(-1, 2)
    keep = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    return pts[keep].astype(np.float32)


def stylize_mosaic(img: np.ndarray) -> np.ndarray:
    """Stained glass: screen-fixed Voronoi cells, each its mean colour saturated, with dark leading.

    Shape:
        img: (H, W, 3) uint8 BGR -> (H, W, 3) uint8 BGR.

    Cells ≈ 14 px·scale across; the labels come from a distance transform to the seeds (exact Voronoi
    under the L2 mask). Lead lines: pixels whose 3×3 neighbourhood holds another label, widened to
    2 px·scale, at 15 % of the glass colour.
    """
    height, width = img.shape[:2]
    scale = _scale(img)
    seeds = _jittered_seeds(height, width, 14.0 * scale)
    cols = np.clip(np.round(seeds[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(seeds[:, 1]).astype(int), 0, height - 1)
    return _glass(img, rows, cols, scale)


def stylize_glass(img: np.ndarray) -> np.ndarray:
    """Stained glass whose panes are cut along the content's isophotes (content-fixed texture).

    Shape:
        img: (H, W, 3) uint8 BGR -> (H, W, 3) uint8 BGR.

    Two smooth fields of the frame, its luminance ``L`` and its blue–yellow opponent ``b`` (Lab, both after a
    Gaussian of σ = 4 px·scale), are cut every 24 and 10 levels: each pane is one (L band, b band) pair, filled
    with its band-centre lightness and the frame's smoothed colour, saturated; lead lines 2.5 px·scale wide
    run along the cuts (distance to the nearest cut level over the field's gradient, so the width is in
    pixels). Every step is a shift-equivariant function of the frame, so the panes move with the content; they
    cross smooth shading where the source has no edge, and are stable from frame to frame.
    """
    scale = _scale(img)
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab).astype(np.float32)
    smooth = cv2.GaussianBlur(lab, (0, 0), 4.0 * scale)
    lead = np.zeros(img.shape[:2], np.float32)
    for channel, period in ((0, 24.0), (2, 10.0)):
        field = smooth[..., channel] / period
        gy, gx = np.gradient(field)
        distance = np.abs(field - np.round(field)) / np.maximum(np.hypot(gx, gy), 1e-3)
        lead = np.maximum(lead, np.clip(1.25 * scale + 0.5 - distance, 0.0, 1.0))
    pane = smooth.copy()
    pane[..., 0] = (np.floor(smooth[..., 0] / 24.0) + 0.5) * 24.0
    pane[..., 1:] = 128.0 + 1.6 * (smooth[..., 1:] - 128.0)
    glass = cv2.cvtColor(np.clip(pane, 0, 255).astype(np.uint8), cv2.COLOR_Lab2BGR).astype(np.float32)
    glass *= 1.0 - 0.85 * lead[..., None]
    return np.clip(glass, 0, 255).astype(np.uint8)


def _glass(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, scale: float) -> np.ndarray:
    """Voronoi cells around the seed pixels ``(rows, cols)``, each its mean colour saturated, dark leading."""
    height, width = img.shape[:2]
    marker = np.full((height, width), 255, np.uint8)
    marker[rows, cols] = 0
    if rows.size == 0:
        marker[height // 2, width // 2] = 0
    _, labels = cv2.distanceTransformWithLabels(marker, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    labels = labels.astype(np.int64)
    count = np.bincount(labels.ravel(), minlength=labels.max() + 1).astype(np.float32)
    mean = (
        np.stack(
            [
                np.bincount(labels.ravel(), weights=img[..., c].ravel().astype(np.float64), minlength=count.size)
                for c in range(3)
            ],
            axis=-1,
        )
        / np.maximum(count, 1)[:, None]
    )
    glass = mean[labels].astype(np.float32)
    hsv = cv2.cvtColor(np.clip(glass, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.5 + 20, 0, 255)
    glass = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    lab32 = labels.astype(np.float32)
    edge = cv2.dilate(lab32, np.ones((3, 3), np.uint8)) != cv2.erode(lab32, np.ones((3, 3), np.uint8))
    width_px = max(1, int(round(2 * scale)))
    edge = cv2.dilate(edge.astype(np.uint8), np.ones((width_px, width_px), np.uint8)) > 0
    glass[edge] *= 0.15
    return np.clip(glass, 0, 255).astype(np.uint8)


def stylize_halftone(img: np.ndarray) -> np.ndarray:
    """CMYK halftone on a fixed screen (screen-fixed texture).

    Shape:
        img: (H, W, 3) uint8 BGR -> (H, W, 3) uint8 BGR.

    Inks from naive CMYK (K = 1 − max(RGB), C = (1 − R − K)/(1 − K), …), each smoothed over a cell
    (σ = cell/3) and screened at its angle on a grid of ``cell`` = 6 px·scale: a pixel is inked when its
    distance to the cell centre is below ``cell·sqrt(ink/π)`` (dot area = ink coverage), with a 1-px
    anti-aliased rim. Inks multiply on white paper.
    """
    height, width = img.shape[:2]
    cell = 6.0 * _scale(img)
    rgb = img[..., ::-1].astype(np.float32) / 255.0
    k = 1.0 - rgb.max(axis=-1)
    denom = np.maximum(1.0 - k, 1e-6)
    inks = [(1.0 - rgb[..., c] - k) / denom for c in range(3)] + [k]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    paper = np.ones((height, width, 3), np.float32)
    # ink colours in RGB: cyan, magenta, yellow, black
    ink_rgb = [(0.0, 0.68, 0.94), (0.93, 0.0, 0.55), (1.0, 0.95, 0.0), (0.1, 0.1, 0.1)]
    for ink, angle, colour in zip(inks, (15.0, 75.0, 0.0, 45.0), ink_rgb):
        cover = cv2.GaussianBlur(np.clip(ink, 0, 1), (0, 0), cell / 3.0)
        theta = np.deg2rad(angle)
        u = (xs * np.cos(theta) + ys * np.sin(theta)) / cell
        v = (-xs * np.sin(theta) + ys * np.cos(theta)) / cell
        du = (u - np.floor(u) - 0.5) * cell
        dv = (v - np.floor(v) - 0.5) * cell
        dist = np.sqrt(du * du + dv * dv)
        radius = cell * np.sqrt(cover / np.pi)
        # 1-px anti-aliased rim; faded out for dots under 1 px across, so that no ink prints no dot
        dot = np.clip(radius - dist + 0.5, 0.0, 1.0) * np.clip(2.0 * radius, 0.0, 1.0)
        paper *= 1.0 - dot[..., None] * (1.0 - np.asarray(colour, np.float32))
    return np.clip(paper[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)


# name -> (function, description), the shape of propagation_bench.STYLES
STYLES = {
    "impasto": (stylize_impasto, "impasto (ridges along smoothed isophotes, lit; content-fixed texture)"),
    "glass": (stylize_glass, "stained glass (panes cut along smoothed isophotes, dark leading; content-fixed)"),
    "mosaic": (stylize_mosaic, "stained-glass mosaic (screen-fixed Voronoi cells, dark leading)"),
    "halftone": (stylize_halftone, "CMYK halftone (screen-fixed dot screen at 15/75/0/45 deg)"),
}
