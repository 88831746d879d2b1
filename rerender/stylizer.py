"""A built-in, non-neural keyframe stylizer for running the whole workflow without diffusion weights.

When no Stable Diffusion weights are configured or cached, `translate` renders keyframes with
`ClassicStylizer` so that flow, propagation, blending, audio and video writing still produce a real stylized
video. It is also handy for trying the propagation engine on your own clips. The look is chosen from the
prompt's words ("watercolor", "pencil"/"sketch", "oil", otherwise a cartoon look).

Example:
    >>> import numpy as np
    >>> stylizer = ClassicStylizer.from_prompt("a watercolor painting")
    >>> stylizer.look
    'watercolor'
    >>> stylizer(np.zeros((32, 48, 3), np.uint8)).shape
    (32, 48, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = ["LOOKS", "ClassicStylizer"]

LOOKS = ("cartoon", "watercolor", "pencil", "oil")
Look = Literal["cartoon", "watercolor", "pencil", "oil"]

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "watercolor": ("watercolor", "watercolour", "aquarelle", "wash"),
    "pencil": ("pencil", "sketch", "drawing", "charcoal", "graphite"),
    "oil": ("oil", "impasto", "van gogh", "painting"),
    "cartoon": ("cartoon", "anime", "comic", "cel", "ghibli", "pixar"),
}


@dataclass(frozen=True)
class ClassicStylizer:
    """Stylize RGB `uint8` `(H, W, 3)` frames with a classical filter (deterministic, no weights)."""

    look: Look = "cartoon"
    """"cartoon" (flattened colours and ink lines), "watercolor", "pencil" or "oil"."""
    levels: int = 6
    """Colour levels per channel of the cartoon look."""

    def __post_init__(self) -> None:
        if self.look not in LOOKS:
            raise ValueError(f"`look` must be one of {', '.join(LOOKS)}, got {self.look!r}")
        if not 2 <= self.levels <= 64:
            raise ValueError(f"`levels` must be in [2, 64], got {self.levels}")

    @classmethod
    def from_prompt(cls, prompt: str) -> ClassicStylizer:
        """Pick the look whose keywords appear first in `prompt` (cartoon when none does)."""
        text = prompt.lower()
        found = [(text.find(word), look) for look, words in _KEYWORDS.items() for word in words if word in text]
        return cls(look=min(found)[1]) if found else cls()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"`frame` must be an (H, W, 3) uint8 RGB array, got {getattr(frame, 'shape', frame)!r}")
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if self.look == "watercolor":
            out = cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)
        elif self.look == "pencil":
            _, out = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
        elif self.look == "oil" and hasattr(cv2, "xphoto"):
            out = cv2.xphoto.oilPainting(bgr, 7, 1)
        else:
            out = self._cartoon(bgr)
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)

    def _cartoon(self, bgr: np.ndarray) -> np.ndarray:
        smooth = bgr
        for _ in range(3):
            smooth = cv2.bilateralFilter(smooth, 7, 40, 7)
        # Posterize in HSV, rotating hue a little so the result is visibly a new look, not a filter of the input.
        hsv = cv2.cvtColor(smooth, cv2.COLOR_BGR2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + 12) % 180
        step = 256 // self.levels
        hsv[..., 1:] = np.clip((hsv[..., 1:] // step) * step + step // 2 + np.array([40, 10]), 0, 255)
        flat = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
        gray = cv2.medianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 5)
        edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
        return cv2.bitwise_and(flat, flat, mask=edges)
