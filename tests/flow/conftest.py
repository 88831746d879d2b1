"""Flow tests: OpenCV on one thread, and frames of a textured plane under an exact affine motion.

`rerender.synthetic` makes whole scenes with objects and occlusion; the frames here have no motion boundaries,
so estimators and warps can be held to sub-pixel answers.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

cv2.setNumThreads(1)


def smooth_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Band-limited colour noise, (H, W, 3) float32 in [0.05, 0.95]: detail at several scales, so flow is
    well defined everywhere, and smooth at the pixel scale, so bilinear resampling stays exact enough."""
    rng = np.random.default_rng(seed)
    texture = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((32, 1.0), (12, 0.7), (5, 0.5)):
        coarse = rng.random((height // cell + 3, width // cell + 3, 3), dtype=np.float32)
        texture += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
    texture -= texture.min()
    return (0.05 + 0.9 * texture / texture.max()).astype(np.float32)


def affine_pair(
    size: int, matrix: np.ndarray, seed: int = 0, margin: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two frames of a textured plane under the 2×3 affine motion `matrix` (pixel coordinates of the frame).

    Returns ``(source, target, forward_flow)``: source and target (H, W, 3) float32, and the exact flow
    source→target (H, W, 2). The plane is larger than the frame, so content enters instead of borders.
    """
    texture = smooth_texture(size + 2 * margin, size + 2 * margin, seed)
    shift_to_frame = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], np.float64)
    source = texture[margin : margin + size, margin : margin + size]
    motion = np.vstack([matrix, [0, 0, 1]])
    # target(q) = source(motion⁻¹ q), sampled from the large texture.
    inverse = np.linalg.inv(shift_to_frame) @ np.linalg.inv(motion) @ np.eye(3)
    target = cv2.warpAffine(
        texture, inverse[:2], (size, size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float64)
    moved_x = matrix[0, 0] * columns + matrix[0, 1] * rows + matrix[0, 2]
    moved_y = matrix[1, 0] * columns + matrix[1, 1] * rows + matrix[1, 2]
    flow = np.stack((moved_x - columns, moved_y - rows), axis=-1).astype(np.float32)
    return source, np.clip(target, 0, 1), flow


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def rotation(degrees: float, size: int) -> np.ndarray:
    return cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), degrees, 1.0)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) array → (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
