"""The maths of the patch synthesis and of the reconstruction blend as batched torch functions.

Each function here is the data-parallel form of a numpy/numba function of :mod:`ebsynth_bridge`, with the same
definition (see the docstring it names); only the evaluation order differs (every pixel at once instead of a
scan). Conventions: images are channels-last float32 ``(B, H, W, C)`` on EbSynth's 0–255 scale; a
nearest-neighbour field (NNF) is int64 ``(B, H, W, 2)``, the ``(x, y)`` source patch centre of each target
pixel. Nothing here loops in Python over pixels or patches: the loops run over the ``patch_size²`` offsets of a
patch, over candidate kinds and over blocks of at most ``chunk_pixels`` pixels (the memory bound).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

_MASK32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------------
# random numbers: a counter hash, so that results do not depend on batching or chunking
# --------------------------------------------------------------------------------------------------


def _multiply32(value: torch.Tensor, constant: int) -> torch.Tensor:
    """``(value · constant) mod 2³²`` for int64 ``value`` in [0, 2³²), without int64 overflow."""
    low = value * (constant & 0xFFFF)
    high = ((value * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def mix32(value: torch.Tensor) -> torch.Tensor:
    """lowbias32, the integer hash of :func:`ebsynth_bridge.patchmatch._mix32`, elementwise on int64 tensors."""
    value = value & _MASK32
    value = value ^ (value >> 16)
    value = _multiply32(value, 0x7FEB352D)
    value = value ^ (value >> 15)
    value = _multiply32(value, 0x846CA68B)
    return value ^ (value >> 16)


def pixel_hash(seeds: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per frame and pixel, ``mix32(seed ^ mix32(y · 65536 + x))`` (the numba sweep's per-pixel state).

    Shape: seeds (B,) int64 -> (B, height, width) int64.
    """
    device = seeds.device
    rows = torch.arange(height, device=device, dtype=torch.int64)[:, None]
    columns = torch.arange(width, device=device, dtype=torch.int64)[None, :]
    return mix32(seeds[:, None, None] ^ mix32(rows * 65536 + columns)[None])


# --------------------------------------------------------------------------------------------------
# filters: the OpenCV definitions (reflect-101 borders), for any image size
# --------------------------------------------------------------------------------------------------


def _reflect101_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a reflect-101 padded axis (OpenCV's default border), valid for any ``pad``."""
    index = torch.arange(-pad, size + pad, device=device)
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * size - 2
    index = index.abs() % period
    return torch.where(index >= size, period - index, index)


def gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """``cv2.getGaussianKernel`` of the size ``cv2.GaussianBlur(…, (0, 0), sigma)`` picks for float images."""
    size = int(round(sigma * 8 + 1)) | 1
    offsets = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-offsets * offsets / (2 * sigma * sigma))
    return (kernel / kernel.sum()).to(torch.float32)


def _separable(image: torch.Tensor, kernel_x: torch.Tensor, kernel_y: torch.Tensor) -> torch.Tensor:
    """Correlate ``(N, H, W)`` planes with a separable kernel, reflect-101 borders."""
    planes, height, width = image.shape
    pad_x, pad_y = kernel_x.numel() // 2, kernel_y.numel() // 2
    padded = image.index_select(2, _reflect101_index(width, pad_x, image.device))
    rows = F.conv2d(padded.reshape(planes, 1, height, -1), kernel_x.view(1, 1, 1, -1))
    padded = rows.reshape(planes, height, width).index_select(1, _reflect101_index(height, pad_y, image.device))
    return F.conv2d(padded.reshape(planes, 1, -1, width), kernel_y.view(1, 1, -1, 1)).reshape(planes, height, width)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``cv2.GaussianBlur(image, (0, 0), sigma)`` (reflect-101) of ``(..., H, W)``; ``sigma ≤ 0`` = unchanged."""
    if sigma <= 0:
        return image
    kernel = gaussian_kernel(sigma, image.device)
    shape = image.shape
    return _separable(image.reshape(-1, shape[-2], shape[-1]), kernel, kernel).reshape(shape)


@functools.lru_cache(maxsize=256)
def constant(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A small float32 constant on `device`, made once: building it from Python values is a host-to-device copy,
    which waits for the GPU's queued work every time (the same values; treat the result as read-only).

    Shape: (len(values),).
    """
    return torch.tensor(values, device=device, dtype=torch.float32)


def gradient_magnitude(rgb: torch.Tensor) -> torch.Tensor:
    """3×3 Sobel gradient magnitude of the luminance (0–255 scale), as ``ebsynth_bridge.blending``'s.

    Shape: (..., H, W, 3) on the 0–255 scale -> (..., H, W).
    """
    weights = constant((0.299, 0.587, 0.114), rgb.device)
    luminance = (rgb.clamp(0, 255) * weights).sum(-1)
    shape = luminance.shape
    planes = luminance.reshape(-1, shape[-2], shape[-1])
    smooth = constant((1.0, 2.0, 1.0), rgb.device)
    derivative = constant((-1.0, 0.0, 1.0), rgb.device)
    gradient_x = _separable(planes, derivative, smooth)
    gradient_y = _separable(planes, smooth, derivative)
    return torch.sqrt(gradient_x * gradient_x + gradient_y * gradient_y).reshape(shape)


def gradient_energy(rgb: torch.Tensor) -> torch.Tensor:
    """:func:`ebsynth_bridge.gradient_energy`: the mean Sobel magnitude per image. Shape: (..., H, W, 3) -> (...)."""
    return gradient_magnitude(rgb).mean(dim=(-2, -1))


def remap(image: torch.Tensor, coordinates: torch.Tensor, mode: str) -> torch.Tensor:
    """``cv2.remap`` with replicated borders: ``out(p) = image(coordinates(p))``, bilinear or bicubic (a = −0.75).

    Shape: image (B, Hs, Ws, C), coordinates (B, H, W, 2) float pixel ``(x, y)`` -> (B, H, W, C) float32.
    """
    height, width = image.shape[1:3]
    scale = constant((2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)), image.device)
    grid = coordinates * scale - 1.0
    sampled = F.grid_sample(
        image.permute(0, 3, 1, 2).float(), grid, mode=mode, padding_mode="border", align_corners=True
    )
    return sampled.permute(0, 2, 3, 1)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Round and clip to uint8, as numpy's ``np.clip(np.rint(x), 0, 255)``."""
    return torch.round(image).clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------------
# the patch search (ebsynth.md §1; ebsynth_bridge.patchmatch)
# --------------------------------------------------------------------------------------------------


def pixel_blocks(batch: int, height: int, width: int, chunk_pixels: int) -> Iterator[tuple[int, int, int, int]]:
    """``(b0, b1, y0, y1)`` blocks of frames and rows covering ``(batch, height, width)``, each of at most
    ``chunk_pixels`` pixels (whole frames when they fit, else row bands of one frame; at least one row)."""
    frame_pixels = height * width
    if frame_pixels <= chunk_pixels:
        step = max(1, chunk_pixels // frame_pixels)
        for start in range(0, batch, step):
            yield start, min(batch, start + step), 0, height
        return
    rows = max(1, chunk_pixels // width)
    for frame in range(batch):
        for top in range(0, height, rows):
            yield frame, frame + 1, top, min(height, top + rows)


class PatchSpace:
    """One pyramid level's feature images, and the patch distance between target pixels and source centres.

    ``distance`` is the weighted patch SSD of :func:`ebsynth_bridge.patchmatch.nnf_error` (the feature channels
    carry ``sqrt(weight)``; edges replicated), evaluated for every target pixel at once: one gather of the
    matched source patches against a strided view of the target patches, in blocks of at most
    ``chunk_pixels`` target pixels (the gathered block, ``chunk_pixels × P² × C`` floats, is the largest
    temporary).

    Shape: source (Hs, Ws, C) shared by the batch, target (B, Ht, Wt, C).
    """

    def __init__(self, source: torch.Tensor, target: torch.Tensor, patch_size: int, chunk_pixels: int) -> None:
        self.radius = patch_size // 2
        self.patch_size, self.chunk_pixels = patch_size, chunk_pixels
        self.source_shape = tuple(source.shape[:2])
        self.set_source(source)
        self.set_target(target)

    def set_source(self, source: torch.Tensor) -> None:
        radius = self.radius
        padded = F.pad(source.permute(2, 0, 1)[None], (radius,) * 4, mode="replicate")[0].permute(1, 2, 0)
        self.padded_width = padded.shape[1]
        self.source_rows = padded.reshape(-1, padded.shape[2]).contiguous()

    def set_target(self, target: torch.Tensor) -> None:
        radius = self.radius
        self.target_shape = tuple(target.shape[:3])
        padded = F.pad(target.permute(0, 3, 1, 2), (radius,) * 4, mode="replicate").permute(0, 2, 3, 1)
        self.target = padded.contiguous()
        offsets = torch.arange(-radius, radius + 1, device=target.device)
        self.offsets = offsets[:, None] * self.padded_width + offsets[None, :]  # (P, P) source index steps

    def target_patches(self, b0: int, b1: int, y0: int, y1: int) -> torch.Tensor:
        """The target patches of frames ``b0:b1``, rows ``y0:y1``: a strided view, no copy.

        Shape: -> (b1 − b0, y1 − y0, Wt, P, P, C).
        """
        return _patches(self.target[b0:b1, y0 : y1 + 2 * self.radius], self.patch_size, self.target_shape[2])

    def distance(self, nnf: torch.Tensor) -> torch.Tensor:
        """Patch SSD of each target pixel against the source patch its ``nnf`` names. (B, Ht, Wt, 2) -> (B, Ht, Wt)."""
        batch, height, width = self.target_shape
        result = torch.empty((batch, height, width), device=nnf.device, dtype=torch.float32)
        for b0, b1, y0, y1 in pixel_blocks(batch, height, width, self.chunk_pixels):
            block = nnf[b0:b1, y0:y1]
            base = (block[..., 1] + self.radius) * self.padded_width + block[..., 0] + self.radius
            source = gather_rows(self.source_rows, base[..., None, None] + self.offsets)
            result[b0:b1, y0:y1] = source.sub_(self.target_patches(b0, b1, y0, y1)).square_().sum(dim=(-3, -2, -1))
        return result


def gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``rows[index]``: the feature vectors of the source positions ``index`` (the search's one big temporary).

    Shape: rows (L, C), index (...) -> (..., C).
    """
    return rows.index_select(0, index.reshape(-1)).view(*index.shape, rows.shape[1])


def occupancy(
    nnf: torch.Tensor, source_shape: tuple[int, int], patch_size: int, coverage_ratio: float
) -> torch.Tensor:
    """:func:`ebsynth_bridge.synthesis._occupancy` per frame: the normalised use of every source centre
    (patch mean of the patch mean of the use counts, zero outside, over the same for uniform use).

    Shape: nnf (B, Ht, Wt, 2) -> (B, Hs·Ws) float32.
    """
    source_height, source_width = source_shape
    batch = nnf.shape[0]
    index = (nnf[..., 1] * source_width + nnf[..., 0]).reshape(batch, -1)
    counts = torch.zeros((batch, source_height * source_width), device=nnf.device, dtype=torch.float32)
    counts.scatter_add_(1, index, torch.ones(index.shape, device=nnf.device, dtype=torch.float32))
    radius = patch_size // 2

    def coverage(values: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            values = F.avg_pool2d(values, patch_size, stride=1, padding=radius, count_include_pad=True)
        return values

    uniform = coverage(torch.ones((1, 1, source_height, source_width), device=nnf.device))
    used = coverage(counts.view(batch, 1, source_height, source_width))
    return (used / (uniform * coverage_ratio)).reshape(batch, -1)


class Search:
    """The PatchMatch state of one level for a batch of frames: ``nnf``, ``error`` and the cost rule.

    A candidate ``s'`` replaces ``s`` at target pixel ``t`` when ``E(t, s') + u·occ(s') < E(t, s) + u·occ(s)``
    (ebsynth.md §1.2; :func:`ebsynth_bridge.patchmatch.patchmatch_sweep`), ``occ`` being the occupancy snapshot
    taken before the sweep. Pixels outside ``active`` keep their match (the stop threshold).
    """

    def __init__(self, space: PatchSpace, nnf: torch.Tensor, uniformity: float, coverage_ratio: float) -> None:
        self.space, self.nnf, self.uniformity, self.coverage_ratio = space, nnf, uniformity, coverage_ratio
        self.error = space.distance(nnf)
        self.occupancy: torch.Tensor | None = None
        self.active: torch.Tensor | None = None

    def snapshot_occupancy(self) -> None:
        if self.uniformity > 0:
            self.occupancy = occupancy(self.nnf, self.space.source_shape, self.space.patch_size, self.coverage_ratio)

    def _occupancy_cost(self, nnf: torch.Tensor) -> torch.Tensor | float:
        if self.occupancy is None:
            return 0.0
        source_width = self.space.source_shape[1]
        index = (nnf[..., 1] * source_width + nnf[..., 0]).reshape(nnf.shape[0], -1)
        return self.uniformity * self.occupancy.gather(1, index).view(nnf.shape[:3])

    def consider(self, candidate: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Adopt ``candidate`` (B, Ht, Wt, 2) wherever it is valid, active and cheaper."""
        source_height, source_width = self.space.source_shape
        inside = (
            (candidate[..., 0] >= 0)
            & (candidate[..., 0] < source_width)
            & (candidate[..., 1] >= 0)
            & (candidate[..., 1] < source_height)
        )
        valid = inside if valid is None else valid & inside
        candidate = torch.where(valid[..., None], candidate, self.nnf)  # in range for the gathers
        error = self.space.distance(candidate)
        better = valid & (error + self._occupancy_cost(candidate) < self.error + self._occupancy_cost(self.nnf))
        if self.active is not None:
            better &= self.active
        self.nnf = torch.where(better[..., None], candidate, self.nnf)
        self.error = torch.where(better, error, self.error)

    def sweep(self, max_radius: int, jumps: tuple[int, ...], seeds: torch.Tensor) -> None:
        """One data-parallel PatchMatch iteration: propagation (each pixel tries its four neighbours' matches,
        shifted, at every distance in ``jumps``, largest first: jump flooding) then random search around the
        match held at its start, one candidate per radius ``max_radius, max_radius / 2, …, 1``.

        ``seeds`` (B,) int64: this iteration's per-frame seeds (:func:`pixel_hash`).
        """
        self.snapshot_occupancy()
        batch, height, width = self.nnf.shape[:3]
        for jump in jumps:
            for shift_x, shift_y in ((jump, 0), (-jump, 0), (0, jump), (0, -jump)):
                self.consider(*_neighbour_candidate(self.nnf, shift_x, shift_y))
        centre = self.nnf.clone()
        state = pixel_hash(seeds, height, width)
        source_height, source_width = self.space.source_shape
        radius = max_radius
        while radius >= 1:
            state = mix32(state + 0x9E3779B9)
            low_x = (centre[..., 0] - radius).clamp(min=0)
            high_x = (centre[..., 0] + radius).clamp(max=source_width - 1)
            low_y = (centre[..., 1] - radius).clamp(min=0)
            high_y = (centre[..., 1] + radius).clamp(max=source_height - 1)
            candidate = torch.stack(
                [low_x + (state & 0xFFFF) % (high_x - low_x + 1), low_y + (state >> 16) % (high_y - low_y + 1)], dim=-1
            )
            radius //= 2
            self.consider(candidate)


def _neighbour_candidate(nnf: torch.Tensor, shift_x: int, shift_y: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``nnf(p − d) + d`` for ``d = (shift_x, shift_y)``, and where ``p − d`` lies inside the target."""
    height, width = nnf.shape[1:3]
    shifted = torch.roll(nnf, shifts=(shift_y, shift_x), dims=(1, 2))  # a new tensor: added to in place
    shifted[..., 0] += shift_x  # Python scalars: no host-to-device copy, which would wait for the GPU 16× a sweep
    shifted[..., 1] += shift_y
    rows = torch.arange(height, device=nnf.device)[:, None] - shift_y
    columns = torch.arange(width, device=nnf.device)[None, :] - shift_x
    valid = ((rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)).expand(nnf.shape[:3])
    return shifted, valid


def vote(
    style: torch.Tensor,
    nnf: torch.Tensor,
    patch_size: int,
    error: torch.Tensor | None = None,
    error_scale: float = 0.0,
    chunk_pixels: int = 1 << 20,
) -> torch.Tensor:
    """Patch voting, :func:`ebsynth_bridge.patchmatch.vote`: ``out(p)`` averages ``style(nnf(q) + (p − q))`` over
    the centres ``q`` within the patch around ``p`` (inside the target); with ``error_scale > 0`` each patch
    weighs ``1 / (1 + E(q) / error_scale)``. Evaluated for all pixels and centres at once, in blocks whose
    gathered ``(pixels, P, P, C)`` values hold at most ``chunk_pixels × C`` floats.

    Shape: style (Hs, Ws, C), nnf (B, Ht, Wt, 2), error (B, Ht, Wt) -> (B, Ht, Wt, C) float32.
    """
    source_height, source_width, channels = style.shape
    batch, height, width = nnf.shape[:3]
    radius = patch_size // 2
    rows = style.reshape(-1, channels).float()
    weight = (
        torch.ones((batch, height, width), device=nnf.device)
        if error is None or error_scale <= 0
        else 1.0 / (1.0 + error / error_scale)
    )
    padded_nnf = F.pad(nnf.permute(0, 3, 1, 2), (radius,) * 4).permute(0, 2, 3, 1).contiguous()
    padded_weight = F.pad(weight, (radius,) * 4)  # zero weight outside the target
    # offsets o = p − q of the centres q = p − o around p, as patch-shaped axes (i, j) = (r − o_y, r − o_x)
    offsets = torch.arange(radius, -radius - 1, -1, device=nnf.device)
    output = torch.empty((batch, height, width, channels), device=nnf.device)
    for b0, b1, y0, y1 in pixel_blocks(batch, height, width, max(1, chunk_pixels // (patch_size * patch_size))):
        centres = _patches(padded_nnf[b0:b1, y0 : y1 + 2 * radius], patch_size, width)  # (b, h, W, P, P, 2)
        weights = _patches(padded_weight[b0:b1, y0 : y1 + 2 * radius, :, None], patch_size, width)[..., 0]
        source_x = (centres[..., 0] + offsets[None, :]).clamp(0, source_width - 1)
        source_y = (centres[..., 1] + offsets[:, None]).clamp(0, source_height - 1)
        values = gather_rows(rows, source_y * source_width + source_x)  # (b, h, W, P, P, C)
        total = (weights[..., None] * values).sum(dim=(-3, -2))
        output[b0:b1, y0:y1] = total / weights.sum(dim=(-2, -1))[..., None]
    return output


def _patches(padded: torch.Tensor, patch_size: int, width: int) -> torch.Tensor:
    """The ``patch_size²`` neighbourhoods of a padded channels-last block as a strided view (no copy).

    Shape: (B, h + 2r, W + 2r, C) -> (B, h, W, P, P, C).
    """
    padded = padded.contiguous()
    batch_stride, row_stride, column_stride, channel_stride = padded.stride()
    height = padded.shape[1] - patch_size + 1
    return padded.as_strided(
        (padded.shape[0], height, width, patch_size, patch_size, padded.shape[3]),
        (batch_stride, row_stride, column_stride, row_stride, column_stride, channel_stride),
    )


# --------------------------------------------------------------------------------------------------
# the reconstruction blend (ebsynth_bridge.blending)
# --------------------------------------------------------------------------------------------------


def reconstruction_weights(
    errors: torch.Tensor, temporal_weights: list[float], smoothing: float = 2.0, floor: float = 1.0, power: float = 1.0
) -> torch.Tensor:
    """:func:`ebsynth_bridge.reconstruction_weights`: ``c_k = t_k · (G_σ * e_k + floor)^−power``, normalised.

    Shape: errors (K, H, W) -> (K, H, W), summing to 1 over K.
    """
    times = torch.tensor(temporal_weights, device=errors.device, dtype=torch.float32)[:, None, None]
    confidences = times * (gaussian_blur(errors, smoothing) + floor) ** (-power)
    return confidences / confidences.sum(0).clamp(min=1e-30)


def match_sharpness(
    blended: torch.Tensor,
    candidates: torch.Tensor,
    weights: torch.Tensor,
    target_energy: float,
    detail_sigma: float = 5.0,
    energy_sigma: float = 8.0,
    max_gain: float = 3.0,
    max_scale: float = 4.0,
) -> torch.Tensor:
    """:func:`ebsynth_bridge.match_sharpness`: restore the detail band ``D = blended − G_s * blended`` by the local
    gain ``g = clip(√(Σ w_k E_k / E_D), 1, max_gain)`` at the strength ``β`` (bisection, 8 steps) at which the
    gradient energy reaches ``target_energy``.

    Shape: blended (H, W, C), candidates (K, H, W, C), weights (K, H, W) -> (H, W, C) float32 (not clipped).
    """
    if float(gradient_energy(blended)) >= target_energy:
        return blended

    def band(image: torch.Tensor) -> torch.Tensor:  # (..., H, W, C) -> its detail band
        return image - gaussian_blur(image.movedim(-1, -3), detail_sigma).movedim(-3, -1)

    detail = band(blended)
    base = blended - detail
    expected = (weights * gaussian_blur(band(candidates.float()).square().sum(-1), energy_sigma)).sum(0)
    own = gaussian_blur(detail.square().sum(-1), energy_sigma) + 1e-3
    gain = torch.sqrt(expected / own).clamp(1.0, max_gain)[..., None]

    def render(strength: float) -> torch.Tensor:
        factor = 1 + strength * (gain - 1) if strength <= 1 else strength * gain
        return base + factor * detail

    low, high = 0.0, float(max_scale)
    if float(gradient_energy(render(high))) < target_energy:
        return render(high)
    for _ in range(8):
        middle = (low + high) / 2
        if float(gradient_energy(render(middle))) < target_energy:
            low = middle
        else:
            high = middle
    return render(high)


def flow_render(
    key: torch.Tensor,
    synthesis: torch.Tensor,
    nnf: torch.Tensor,
    coordinates: torch.Tensor,
    interpolation: str,
    tolerance: float = 1.0,
    smoothing: float = 1.0,
) -> torch.Tensor:
    """:func:`ebsynth_bridge.flow_render`: the keyframe sampled at the flow's sub-pixel ``coordinates`` where the
    match lies within ``tolerance`` px of them (feathered inwards by a Gaussian), the synthesis elsewhere.

    Shape: key (Hs, Ws, C), synthesis (B, H, W, C) float, nnf (B, H, W, 2), coordinates (B, H, W, 2)
    -> (B, H, W, C) float32, rounded to whole values as the uint8 original.
    """
    mode = {"linear": "bilinear", "cubic": "bicubic"}[interpolation]
    warped = remap(key[None].expand(nnf.shape[0], *key.shape), coordinates, mode)
    warped = torch.round(warped).clamp(0, 255)  # cv2.remap of a uint8 image gives uint8
    agree = ((nnf.float() - coordinates).abs().amax(-1) <= tolerance).float()
    if smoothing > 0:
        agree = torch.minimum(agree, gaussian_blur(agree, smoothing))
    return torch.round(synthesis + agree[..., None] * (warped - synthesis)).clamp(0, 255)


def absolute_error(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``Σ_channels |image − reference|`` (0–255 scale). Shape: (..., H, W, C) × 2 -> (..., H, W)."""
    return (image.float() - reference.float()).abs().sum(-1)


def batches(count: int, size: int) -> Iterator[range]:
    """``range(0, count)`` in consecutive runs of at most ``size``."""
    for start in range(0, count, size):
        yield range(start, min(count, start + size))


__all__ = [
    "PatchSpace",
    "Search",
    "vote",
    "occupancy",
    "reconstruction_weights",
    "match_sharpness",
    "flow_render",
    "gaussian_blur",
    "gradient_energy",
    "remap",
    "mix32",
    "pixel_hash",
    "pixel_blocks",
]
