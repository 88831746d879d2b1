"""HDR to SDR: PQ and HLG transfer functions, BT.2020 → BT.709, a highlight roll-off (`tone_map_to_sdr`)."""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

__all__ = ["SDR_WHITE_NITS", "HDR_KNEE", "tone_map_to_sdr"]


SDR_WHITE_NITS = 203.0
"""HDR reference (diffuse) white in cd/m², ITU-R BT.2408; it becomes SDR white (before the highlight knee)."""


HDR_KNEE = 0.75
"""Linear SDR level above which highlights are compressed smoothly towards white instead of clipped."""


# Linear-light BT.2020 → BT.709 primaries (ITU-R BT.2087).
_BT2020_TO_BT709 = np.array(
    [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]], dtype=np.float32
)


def _pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 (PQ) EOTF: non-linear signal in [0, 1] → display light in cd/m²."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    power = np.power(np.clip(signal, 0, 1), 1 / m2)
    return 10000.0 * np.power(np.maximum(power - c1, 0) / (c2 - c3 * power), 1 / m1)


def _hlg_to_scene(signal: np.ndarray) -> np.ndarray:
    """ITU-R BT.2100 HLG inverse OETF: non-linear signal in [0, 1] → scene light in [0, 1]."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    signal = np.clip(signal, 0, 1)
    return np.where(signal <= 0.5, signal**2 / 3, (np.exp((np.maximum(signal, 0.5) - c) / a) + b) / 12)


def _hlg_ootf(scene: np.ndarray, peak: float = 1000.0) -> np.ndarray:
    """ITU-R BT.2100 HLG OOTF of a `peak` cd/m² display (system gamma 1.2 at 1000): scene → cd/m²."""
    luminance = (scene.reshape(-1, 3) @ np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)).reshape(scene.shape[:-1])
    gamma = 1.2 + 0.42 * np.log10(peak / 1000.0)
    return peak * np.power(np.maximum(luminance, 1e-6), gamma - 1)[..., None] * scene


def _hlg_to_nits(signal: np.ndarray) -> np.ndarray:
    return _hlg_ootf(_hlg_to_scene(signal))


@functools.lru_cache(maxsize=2)
def _hdr_table(transfer: str) -> np.ndarray:
    """Per-channel EOTF (PQ: cd/m²) or inverse OETF (HLG: scene light) for every 16-bit code value."""
    codes = np.arange(65536, dtype=np.float64) / 65535.0
    return (_pq_to_nits(codes) if transfer == "PQ" else _hlg_to_scene(codes)).astype(np.float32)


def tone_map_to_sdr(signal: np.ndarray, transfer: Literal["PQ", "HLG"]) -> np.ndarray:
    """Tone-map HDR (BT.2020 primaries, PQ or HLG) to SDR RGB (BT.709 primaries, BT.1886 gamma 2.4).

    Display light is taken relative to HDR reference white (203 cd/m², ITU-R BT.2408), converted to
    BT.709 primaries in linear light (out-of-gamut colours clipped), and highlights above `HDR_KNEE` are
    rolled off smoothly towards white on the largest channel, which keeps hue. Diffuse white reads as
    about 245, a 20 cd/m² grey as about 97 (what an SDR display shows for 20/203 of white).

    Args:
        signal: non-linear R'G'B' (decoded with the BT.2020 matrix), floats in [0, 1] or uint16 codes
            (0–65535, faster: the transfer function comes from a table).
        transfer: "PQ" (SMPTE ST 2084) or "HLG" (ARIB STD-B67).

    Returns:
        RGB `uint8`.

    Shape:
        - signal: `(H, W, 3)` float32 or uint16.
        - output: `(H, W, 3)` uint8.
    """
    if transfer not in ("PQ", "HLG"):
        raise ValueError(f"`transfer` must be 'PQ' or 'HLG', got {transfer!r}")
    if signal.dtype == np.uint16:  # 16-bit code values (the reader's path): the EOTF from a table
        nits = _hdr_table(transfer)[signal] if transfer == "PQ" else _hlg_ootf(_hdr_table(transfer)[signal])
    else:
        nits = _pq_to_nits(signal) if transfer == "PQ" else _hlg_to_nits(signal)
    shape = nits.shape
    # One (HW, 3) × (3, 3) product: far faster than a batch of per-pixel products.
    linear = np.maximum(nits.reshape(-1, 3).astype(np.float32) @ (_BT2020_TO_BT709.T / SDR_WHITE_NITS), 0).reshape(
        shape
    )
    peak = linear.max(axis=-1, keepdims=True)
    span = 1 - HDR_KNEE
    mapped = np.where(peak <= HDR_KNEE, peak, HDR_KNEE + span * (1 - np.exp(-(peak - HDR_KNEE) / span)))
    linear = linear * (mapped / np.maximum(peak, 1e-6))
    return np.clip(np.round(np.power(np.clip(linear, 0, 1), 1 / 2.4) * 255), 0, 255).astype(np.uint8)
