"""Guide images for video propagation and the flow helpers that build them (ebsynth.md §3.3).

Conventions:
    * Images are numpy channels-last; guides returned here are float32 in [0, 1] (what
      :class:`ebsynth_bridge.Guide` expects of float32 input).
    * ``backward_flow`` is a ``(H, W, 2)`` float32 pixel displacement, x first, defined on the *current*
      frame and pointing into the *previous* one: ``current(p) ≈ previous(p + backward_flow(p))``.
      ``forward_flow`` is the opposite: ``previous(q) ≈ current(q + forward_flow(q))``.
    * Coordinates are ``(H, W, 2)`` float32 ``(x, y)`` pixel positions in another image (e.g. where each
      pixel of the current frame was in the keyframe).
"""

from __future__ import annotations

import cv2
import numpy as np

#: 3×3 Laplacian used by Rerender's edge guide.
LAPLACIAN_KERNEL = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)


def edge_guide(image: np.ndarray) -> np.ndarray:
    """Edge guide: the 3×3 Laplacian of the luminance, centred on 0.5.

    Args:
        image: RGB (or grey) image, uint8 in [0, 255] or float32 in [0, 1].

    Returns:
        float32 in [0, 1]: ``0.5 + Laplacian / 255`` clipped (both edge sides kept, unlike Rerender's
        uint8 filter that saturates the negative side to 0).

    Shape: (H, W, 3) or (H, W) -> (H, W, 1).
    """
    luminance = _luminance(image)
    laplacian = cv2.filter2D(luminance, cv2.CV_32F, LAPLACIAN_KERNEL, borderType=cv2.BORDER_REPLICATE)
    return np.clip(0.5 + laplacian, 0.0, 1.0)[..., None].astype(np.float32)


def identity_coordinates(height: int, width: int) -> np.ndarray:
    """Every pixel's own ``(x, y)`` position.

    Shape: -> (height, width, 2) float32.
    """
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([grid_x, grid_y], axis=2)


def positional_guide(coordinates: np.ndarray, source_size: tuple[int, int]) -> np.ndarray:
    """Positional guide: coordinates in a source image of ``(height, width)`` scaled to [0, 1] ramps.

    With ``identity_coordinates`` of the keyframe as the source side and the keyframe coordinates advected
    to the current frame (:func:`advect_coordinates`) as the target side, it pulls each target pixel to the
    keyframe patch that the optical flow says it came from (Rerender's PositionalGuide, kept in float
    instead of an 8-bit image, so it does not quantise to 2 px steps at 512 px).

    Shape: coordinates (H, W, 2) -> (H, W, 2) float32.
    """
    source_height, source_width = source_size
    scale = np.array([1.0 / max(source_width - 1, 1), 1.0 / max(source_height - 1, 1)], np.float32)
    return np.clip(coordinates * scale, 0.0, 1.0).astype(np.float32)


def warp(image: np.ndarray, backward_flow: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Bring the previous frame's ``image`` onto the current frame: ``out(p) = image(p + backward_flow(p))``.

    Args:
        image: any channels-last image (uint8 or float32); borders are replicated.
        backward_flow: current → previous displacement in pixels, x first.
        nearest: nearest-neighbour sampling (keeps masks and labels exact) instead of bilinear.

    Shape: image (H, W[, C]), backward_flow (H, W, 2) -> like image.
    """
    _check_flow(backward_flow, image.shape[:2], "backward_flow")
    coordinates = identity_coordinates(*backward_flow.shape[:2]) + backward_flow
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(image, coordinates[..., 0], coordinates[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(backward_flow: np.ndarray, forward_flow: np.ndarray) -> np.ndarray:
    """Pixels of the current frame whose backward flow is not trusted (forward–backward check).

    A pixel is occluded when following ``backward_flow`` and then ``forward_flow`` does not come back
    (``|b + f(p + b)| > 0.01 (|b| + |f(p + b)|) + 0.5`` px, the UnFlow check used by Rerender), or when
    ``p + backward_flow(p)`` falls outside the frame.

    Shape: backward_flow, forward_flow (H, W, 2) -> (H, W) bool.
    """
    _check_flow(forward_flow, backward_flow.shape[:2], "forward_flow")
    height, width = backward_flow.shape[:2]
    coordinates = identity_coordinates(height, width) + backward_flow
    returned = cv2.remap(
        forward_flow, coordinates[..., 0], coordinates[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    mismatch = _norm(backward_flow + returned)
    magnitude = _norm(backward_flow) + _norm(returned)
    outside = (
        (coordinates[..., 0] < 0)
        | (coordinates[..., 0] > width - 1)
        | (coordinates[..., 1] < 0)
        | (coordinates[..., 1] > height - 1)
    )
    return (mismatch > 0.01 * magnitude + 0.5) | outside


def fill_occluded(image: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """Replace occluded pixels by a smooth interpolation of the valid ones (push–pull).

    A cheap stand-in for Rerender's ``cv2.inpaint(radius=30)`` (0.7 s at 512 px): valid pixels are
    averaged down a pyramid and the holes are filled from the coarser levels on the way up.

    Shape: image (H, W[, C]) float32, occlusion (H, W) bool -> (H, W[, C]) float32.
    """
    squeezed = image.ndim == 2
    values = image[..., None] if squeezed else image
    values = values.astype(np.float32)
    valid = (~occlusion.astype(bool)).astype(np.float32)
    if valid.all() or not valid.any():
        return values[..., 0].copy() if squeezed else values.copy()
    weighted_levels = [values * valid[..., None]]
    weight_levels = [valid]
    while min(weight_levels[-1].shape) > 1:
        height, width = weight_levels[-1].shape
        size = (max(1, width // 2), max(1, height // 2))
        weighted_levels.append(_resize_area(weighted_levels[-1], size))
        weight_levels.append(cv2.resize(weight_levels[-1], size, interpolation=cv2.INTER_AREA))
    coarsest_weight = np.maximum(weight_levels[-1], 1e-6)[..., None]
    filled = weighted_levels[-1] / coarsest_weight
    for weighted, weight in zip(reversed(weighted_levels[:-1]), reversed(weight_levels[:-1])):
        height, width = weight.shape
        upsampled = _resize_linear(filled, (width, height))
        weight = np.clip(weight, 0.0, 1.0)[..., None]
        # weighted = weight * mean(valid values): keep those, top up the missing share from the coarse level
        filled = weighted + (1.0 - weight) * upsampled
    filled = np.where(valid[..., None] > 0, values, filled)
    return filled[..., 0] if squeezed else filled


def advect_coordinates(
    coordinates: np.ndarray, backward_flow: np.ndarray, occlusion: np.ndarray | None = None
) -> np.ndarray:
    """Carry per-pixel coordinates one frame forward along the flow: ``out(p) = coordinates(p + b(p))``.

    Applied frame after frame from :func:`identity_coordinates` this gives, for every pixel of the
    current frame, where it was in the keyframe (Rerender's cumulative positional warp). Occluded pixels
    are filled from their neighbours (:func:`fill_occluded`).

    Shape: coordinates (H, W, 2), backward_flow (H, W, 2), occlusion (H, W) bool -> (H, W, 2) float32.
    """
    advected = warp(coordinates.astype(np.float32), backward_flow)
    if occlusion is not None:
        advected = fill_occluded(advected, occlusion)
    return advected


def flow_render(
    key_style: np.ndarray,
    synthesis: np.ndarray,
    nnf: np.ndarray,
    coordinates: np.ndarray,
    *,
    interpolation: str = "cubic",
    tolerance: float = 1.0,
    smoothing: float = 1.0,
) -> np.ndarray:
    """Draw the keyframe at sub-pixel flow coordinates where a synthesis kept the flow's answer.

    A guided synthesis started from the flow keeps most matches at the flow's coordinates, but snapped to
    whole pixels, and the vote then averages neighbours half a pixel off: thin lines jitter and soften.
    Where the match ``nnf(p)`` lies within ``tolerance`` pixels (each axis) of ``coordinates(p)`` the
    keyframe is sampled at ``coordinates(p)`` instead; where the search moved the match (the flow was
    wrong there) the synthesis stays. The switch is feathered by a Gaussian of ``smoothing`` pixels.

    Args:
        key_style: the stylised keyframe, ``(Hs, Ws, C)`` uint8 or float32.
        synthesis: the synthesised frame, ``(H, W, C)``, same dtype.
        nnf: the synthesis's field, ``(H, W, 2)`` integer ``(x, y)`` keyframe positions.
        coordinates: ``(H, W, 2)`` float keyframe positions from the flow (:func:`advect_coordinates`).
        interpolation: ``"linear"`` or ``"cubic"`` (sharper).
        tolerance: largest per-axis distance in pixels between match and flow that counts as agreeing.
        smoothing: Gaussian sigma in pixels of the feathering (0 = hard switch).

    Returns:
        ``(H, W, C)`` image with the synthesis's dtype.

    Raises:
        ValueError: mismatched shapes or an unknown interpolation.

    Shape: key_style (Hs, Ws, C), synthesis (H, W, C), nnf (H, W, 2), coordinates (H, W, 2) -> (H, W, C).
    """
    modes = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
    if interpolation not in modes:
        raise ValueError(f"`interpolation` must be one of {sorted(modes)}, got {interpolation!r}")
    if nnf.shape[:2] != synthesis.shape[:2] or coordinates.shape != nnf.shape or nnf.shape[-1] != 2:
        raise ValueError(
            f"`nnf` and `coordinates` must be (H, W, 2) matching the synthesis {synthesis.shape[:2]}, "
            f"got {nnf.shape} and {coordinates.shape}"
        )
    if key_style.dtype != synthesis.dtype or key_style.shape[2:] != synthesis.shape[2:]:
        raise ValueError(
            f"`key_style` and `synthesis` must share dtype and channels, got {key_style.dtype} "
            f"{key_style.shape} and {synthesis.dtype} {synthesis.shape}"
        )
    coordinates = coordinates.astype(np.float32)
    warped = cv2.remap(
        key_style, coordinates[..., 0], coordinates[..., 1], modes[interpolation], borderMode=cv2.BORDER_REPLICATE
    )
    # the larger of the two axis distances (np.maximum of the planes: the same values as .max(axis=2), 10x faster)
    distance = np.abs(nnf.astype(np.float32) - coordinates)
    agree = (np.maximum(distance[..., 0], distance[..., 1]) <= tolerance).astype(np.float32)
    if smoothing > 0:
        # feather inwards only: a pixel counts fully as agreeing when its whole neighbourhood does
        agree = np.minimum(agree, cv2.GaussianBlur(agree, (0, 0), smoothing))
    agree = agree.reshape(agree.shape + (1,) * (synthesis.ndim - 2))
    blended = synthesis.astype(np.float32) + agree * (warped.astype(np.float32) - synthesis.astype(np.float32))
    if synthesis.dtype == np.uint8:
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return blended.astype(synthesis.dtype)


def carry_visibility(visibility: np.ndarray, backward_flow: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """Carry a visibility map one frame forward along the flow, zeroing the pixels the flow cannot trace.

    ``out(p) = visibility(p + b(p)) · (1 − occlusion(p))`` (bilinear). Applied frame after frame from all
    ones at a keyframe, it says how much of each pixel of the current frame can be followed back to the
    keyframe without crossing an occlusion: 0 on regions revealed (or entering the frame) since the key,
    whose synthesis can only be a guess, 1 where the flow holds all the way.

    Shape: visibility (H, W) float32, backward_flow (H, W, 2), occlusion (H, W) bool -> (H, W) float32.
    """
    if occlusion.shape != visibility.shape:
        raise ValueError(f"`occlusion` must have the visibility's shape {visibility.shape}, got {occlusion.shape}")
    carried = warp(np.ascontiguousarray(visibility, np.float32), backward_flow)
    return np.where(occlusion, np.float32(0.0), carried).astype(np.float32)


def advect_nnf(nnf: np.ndarray, backward_flow: np.ndarray) -> np.ndarray:
    """Carry a nearest-neighbour field one frame forward along the flow: ``out(p) = nnf(round(p + b(p)))``.

    The previous frame's field, advected, is a good ``initial_nnf`` for the current frame: it already
    holds the matches the previous synthesis found, moved to where their pixels went.

    Shape: nnf (H, W, 2) int, backward_flow (H, W, 2) -> (H, W, 2) int32.
    """
    _check_flow(backward_flow, nnf.shape[:2], "backward_flow")
    height, width = nnf.shape[:2]
    coordinates = identity_coordinates(height, width) + backward_flow
    columns = np.clip(np.rint(coordinates[..., 0]), 0, width - 1).astype(np.intp)
    rows = np.clip(np.rint(coordinates[..., 1]), 0, height - 1).astype(np.intp)
    return np.ascontiguousarray(nnf[rows, columns], dtype=np.int32)


def coordinates_to_nnf(coordinates: np.ndarray, source_size: tuple[int, int]) -> np.ndarray:
    """Round coordinates to an integer NNF inside a source of ``(height, width)``.

    Shape: (H, W, 2) float -> (H, W, 2) int32.
    """
    source_height, source_width = source_size
    nnf = np.empty(coordinates.shape, np.int32)
    nnf[..., 0] = np.clip(np.rint(coordinates[..., 0]), 0, source_width - 1)
    nnf[..., 1] = np.clip(np.rint(coordinates[..., 1]), 0, source_height - 1)
    return nnf


def _norm(vectors: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(vectors, axis=2)`` of 2-vectors, computed as it does (``sqrt(x·x + y·y)``, same dtype) but
    without its slow reduction over a length-2 axis. Shape: (H, W, 2) -> (H, W)."""
    x, y = vectors[..., 0], vectors[..., 1]
    return np.sqrt(x * x + y * y)


def _luminance(image: np.ndarray) -> np.ndarray:
    scale = 1.0 / 255.0 if image.dtype == np.uint8 else 1.0
    pixels = image.astype(np.float32) * np.float32(scale)
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 1:
        return pixels[..., 0]
    return pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114


def _resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return resized[..., None] if resized.ndim == 2 else resized


def _resize_linear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return resized[..., None] if resized.ndim == 2 else resized


def _check_flow(flow: np.ndarray, shape: tuple[int, int], name: str) -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != tuple(shape):
        raise ValueError(
            f"`{name}` must be a (H, W, 2) array matching the image size {tuple(shape)}, "
            f"got shape {getattr(flow, 'shape', None)}"
        )
    if flow.dtype != np.float32:
        raise TypeError(f"`{name}` must be float32 pixel displacements, got dtype {flow.dtype}")
