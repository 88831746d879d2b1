"""Colour correction of input frames when colours are not preserved (numpy; the official code's `color_preserve`).

* `match_color_histograms`: each LAB channel's histogram matched to a reference (exact CDF matching).
* `luminosity_blend`: the colours of one image with the luminance of another.
* `correct_colors`: both, so the structure of a frame is untouched and only its colours follow the rendered style.

Images are RGB ``(H, W, 3)`` uint8.
"""

from __future__ import annotations

import numpy as np

__all__ = ["match_color_histograms", "luminosity_blend", "correct_colors"]


def match_color_histograms(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Match each LAB channel's histogram of `image` to `reference` (exact CDF matching, as scikit-image).

    Args:
        image: RGB uint8.
        reference: RGB uint8, any size.

    Returns:
        RGB uint8 with the reference's colour distribution.

    Shape:
        - image: (H, W, 3)
        - reference: (H', W', 3)
        - Output: (H, W, 3)
    """
    import cv2

    source_lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    reference_lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB)
    matched = np.empty_like(source_lab)
    for channel in range(3):
        source_values, source_inverse, source_counts = np.unique(
            source_lab[..., channel].ravel(), return_inverse=True, return_counts=True
        )
        reference_values, reference_counts = np.unique(reference_lab[..., channel].ravel(), return_counts=True)
        source_quantiles = np.cumsum(source_counts) / source_lab[..., channel].size
        reference_quantiles = np.cumsum(reference_counts) / reference_lab[..., channel].size
        mapped = np.interp(source_quantiles, reference_quantiles, reference_values)
        matched[..., channel] = np.clip(np.round(mapped[source_inverse]), 0, 255).reshape(source_lab.shape[:2])
    return cv2.cvtColor(matched, cv2.COLOR_LAB2RGB)


def luminosity_blend(color_source: np.ndarray, luminance_source: np.ndarray) -> np.ndarray:
    """The "luminosity" blend mode: hue and saturation of `color_source`, luminosity of `luminance_source`.

    W3C compositing ``SetLum(C_b, Lum(C_s))`` with ``Lum = 0.3·R + 0.59·G + 0.11·B`` and ``ClipColor``, as the
    `blendmodes` package the official code uses.

    Shape:
        - color_source, luminance_source: (H, W, 3) RGB uint8
        - Output: (H, W, 3) RGB uint8
    """
    weights = np.array([0.3, 0.59, 0.11])
    color = color_source.astype(np.float64) / 255.0
    target_luma = (luminance_source.astype(np.float64) / 255.0) @ weights
    color = color + (target_luma - color @ weights)[..., None]
    luma = color @ weights
    lowest, highest = color.min(axis=-1), color.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = lowest < 0
        color = np.where(
            below[..., None], luma[..., None] + (color - luma[..., None]) * (luma / (luma - lowest))[..., None], color
        )
        above = highest > 1
        color = np.where(
            above[..., None],
            luma[..., None] + (color - luma[..., None]) * ((1 - luma) / (highest - luma))[..., None],
            color,
        )
    return np.clip(np.round(np.nan_to_num(color) * 255.0), 0, 255).astype(np.uint8)


def correct_colors(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Colour correction of an input frame toward a rendered reference (official `color_preserve=False`).

    The frame's LAB histograms are matched to the reference's, then the luminosity of the original frame is put
    back (`luminosity_blend`), so the structure is untouched and only the colours follow the rendered style.

    Shape:
        - frame: (H, W, 3) RGB uint8
        - reference: (H', W', 3) RGB uint8
        - Output: (H, W, 3) RGB uint8
    """
    return luminosity_blend(match_color_histograms(frame, reference), frame)
