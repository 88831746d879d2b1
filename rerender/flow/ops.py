"""Optical-flow operations: warping, occlusion, composition, the latent grid, visualisation.

Every function here is pure: tensors in, tensors out, nothing stored. Conventions (the README's table):

* ``flow``: ``(B, 2, H, W)`` float displacement in pixels, x first. "Flow a→b" means that the pixel ``p`` of
  frame a moves to ``p + flow(p)`` in frame b. The *forward* flow of a pair (source, target) is source→target,
  the *backward* flow is target→source.
* ``occlusion``: ``(B, 1, H, W)`` float32 in {0, 1}, 1 where the flow is not trusted.
* Pixel centres sit on integer coordinates, and samples follow ``grid_sample(align_corners=True)``, as in the
  official GMFlow and Rerender-A-Video code, so a flow of exactly one pixel moves content by exactly one pixel.

The occlusion test and the latent-grid conversion reproduce Rerender-A-Video (Yang et al., SIGGRAPH Asia 2023),
§4.1.2–4.1.3 of the paper; the thresholds are those of UnFlow (Meister et al., AAAI 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from rerender.errors import ConfigError, FlowInputError

__all__ = [
    "WARP_MODES",
    "warp",
    "warp_with_validity",
    "forward_backward_occlusion",
    "photometric_occlusion",
    "compose_flows",
    "soften_mask",
    "flow_to_latent",
    "mask_to_latent",
    "flow_to_rgb",
]

WARP_MODES = ("bilinear", "nearest")
"""Sampling modes of `warp`: ``"bilinear"`` for images, ``"nearest"`` for latents (as Rerender-A-Video)."""


def _check_tensor(value: object, name: str, channels: int | None, layout: str) -> torch.Tensor:
    """Raise `FlowInputError` unless `value` is a 4-D floating tensor with `channels` channels (any if None)."""
    if not isinstance(value, torch.Tensor):
        raise FlowInputError(f"`{name}` must be a torch.Tensor of shape {layout}, got {type(value).__name__}")
    if value.ndim != 4 or (channels is not None and value.shape[1] != channels):
        raise FlowInputError(f"`{name}` must have shape {layout}, got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise FlowInputError(
            f"`{name}` must have a floating dtype (float32, float16, bfloat16, float64), got {value.dtype}"
        )
    return value


def _check_flow(flow: object, name: str = "flow") -> torch.Tensor:
    return _check_tensor(flow, name, 2, "(B, 2, H, W) with the x displacement first")


def _check_same_size(first: torch.Tensor, first_name: str, second: torch.Tensor, second_name: str) -> None:
    if first.shape[-2:] != second.shape[-2:]:
        raise FlowInputError(
            f"`{first_name}` and `{second_name}` must have the same height and width, got "
            f"{tuple(first.shape[-2:])} and {tuple(second.shape[-2:])}"
        )
    if first.device != second.device:
        raise FlowInputError(
            f"`{first_name}` and `{second_name}` must be on the same device, got {first.device} and {second.device}"
        )


def _check_batch(image: torch.Tensor, image_name: str, flow: torch.Tensor, flow_name: str) -> None:
    if flow.shape[0] not in (1, image.shape[0]):
        raise FlowInputError(
            f"`{flow_name}` must have batch size 1 or {image.shape[0]} (the batch of `{image_name}`), "
            f"got {flow.shape[0]}"
        )


def _sample_along_flow(
    image: torch.Tensor, flow: torch.Tensor, mode: str, padding_mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample `image` at ``p + flow(p)``; return the samples and the sample coordinates in pixels.

    The coordinates are computed in float32 even for half-precision flows, because float16 cannot hold a
    sub-pixel offset on top of a coordinate of a few hundred pixels.
    """
    batch, _, height, width = image.shape
    flow = flow.float().expand(batch, -1, -1, -1)
    rows, columns = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=torch.float32),
        torch.arange(width, device=flow.device, dtype=torch.float32),
        indexing="ij",
    )
    sample_x = columns + flow[:, 0]  # (B, H, W)
    sample_y = rows + flow[:, 1]
    # align_corners=True maps -1 and +1 to the centres of the first and last pixels.
    grid = torch.stack(
        (2.0 * sample_x / max(width - 1, 1) - 1.0, 2.0 * sample_y / max(height - 1, 1) - 1.0), dim=-1
    )  # (B, H, W, 2)
    samples = F.grid_sample(image.float(), grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return samples.to(image.dtype), torch.stack((sample_x, sample_y), dim=1)


def warp_with_validity(
    image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward-warp `image` along `flow` and say which samples fell inside the frame.

    ``warped(p) = image(p + flow(p))``. To bring frame a into the geometry of frame b, pass the flow b→a
    (the *backward* flow of the pair (a, b)). Samples outside the frame read zeros.

    Args:
        image: the frame (or latent, or mask) to sample from.
        flow: where each output pixel reads from, in pixels, x first. A batch of 1 is used for every image.
        mode: ``"bilinear"`` (images) or ``"nearest"`` (latents, as Rerender-A-Video's shape-aware fusion).

    Returns:
        ``(warped, valid)``: the warped image, in the dtype of `image`, and 1 where ``p + flow(p)`` lies inside
        ``[0, W-1] × [0, H-1]``, 0 elsewhere, in the dtype of `image`.

    Raises:
        FlowInputError: wrong shapes, sizes, dtypes or devices.
        ValueError: `mode` not in `WARP_MODES` (as `rerender.errors.ConfigError`).

    Shape:
        - image: (B, C, H, W)
        - flow: (B, 2, H, W) or (1, 2, H, W)
        - Output: (B, C, H, W) and (B, 1, H, W)

    Example:
        >>> image = torch.arange(6.0).view(1, 1, 2, 3)
        >>> flow = torch.zeros(1, 2, 2, 3); flow[:, 0] = 1.0  # read one pixel to the right
        >>> warped, valid = warp_with_validity(image, flow)
        >>> warped[0, 0].tolist(), valid[0, 0].tolist()
        ([[1.0, 2.0, 0.0], [4.0, 5.0, 0.0]], [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    """
    image = _check_tensor(image, "image", None, "(B, C, H, W)")
    flow = _check_flow(flow)
    _check_same_size(image, "image", flow, "flow")
    _check_batch(image, "image", flow, "flow")
    if mode not in WARP_MODES:
        raise ConfigError(f"`mode` must be one of {WARP_MODES}, got {mode!r}")
    warped, coordinates = _sample_along_flow(image, flow, mode, "zeros")
    height, width = image.shape[-2:]
    sample_x, sample_y = coordinates[:, 0:1], coordinates[:, 1:2]
    valid = (sample_x >= 0) & (sample_x <= width - 1) & (sample_y >= 0) & (sample_y <= height - 1)
    return warped, valid.to(image.dtype)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward-warp `image` along `flow`: ``warped(p) = image(p + flow(p))``, zeros outside the frame.

    The same as `warp_with_validity` without the validity mask; see there for the arguments and errors.

    Shape:
        - image: (B, C, H, W)
        - flow: (B, 2, H, W) or (1, 2, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> image = torch.rand(2, 3, 8, 8)
        >>> torch.allclose(warp(image, torch.zeros(2, 2, 8, 8)), image)
        True
    """
    return warp_with_validity(image, flow, mode)[0]


def forward_backward_occlusion(
    forward: torch.Tensor, backward: torch.Tensor, alpha: float = 0.01, beta: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flag pixels whose forward and backward flows disagree (forward–backward consistency).

    For the backward flow ``b`` (target→source) and the forward flow ``f`` (source→target), a pixel ``p`` of the
    target is occluded when ``|b(p) + f(p + b(p))| > alpha·(|f(p)| + |b(p)|) + beta``, and symmetrically for the
    source. These are the thresholds of UnFlow as the official GMFlow and Rerender-A-Video code apply them: the
    magnitude term sums the two flows' norms at ``p`` (UnFlow itself uses squared norms of the warped flow).
    Samples that leave the frame read a zero flow, so pixels that move out of view are flagged too.

    Args:
        forward: flow source→target.
        backward: flow target→source.
        alpha: tolerance proportional to the motion (UnFlow: 0.01).
        beta: constant tolerance in pixels (UnFlow: 0.5).

    Returns:
        ``(occlusion_forward, occlusion_backward)``, float32 in {0, 1}, 1 = occluded or untrusted.
        ``occlusion_forward`` lives on the source's grid (source pixels with no match in the target),
        ``occlusion_backward`` on the target's grid (target pixels with no source; the mask Rerender-A-Video uses).

    Raises:
        FlowInputError: the flows have different shapes or are not ``(B, 2, H, W)``.
        ValueError: a negative threshold (as `rerender.errors.ConfigError`).

    Shape:
        - forward, backward: (B, 2, H, W)
        - Output: (B, 1, H, W), (B, 1, H, W)

    Example:
        >>> flow = torch.zeros(1, 2, 4, 4)
        >>> occlusion_forward, occlusion_backward = forward_backward_occlusion(flow, flow)
        >>> float(occlusion_backward.sum())
        0.0
    """
    forward = _check_flow(forward, "forward")
    backward = _check_flow(backward, "backward")
    if forward.shape != backward.shape:
        raise FlowInputError(
            f"`forward` and `backward` must have the same shape, got {tuple(forward.shape)} and "
            f"{tuple(backward.shape)}"
        )
    _check_same_size(forward, "forward", backward, "backward")
    if alpha < 0 or beta < 0:
        raise ConfigError(f"`alpha` and `beta` must be >= 0, got alpha={alpha}, beta={beta}")
    forward, backward = forward.float(), backward.float()
    threshold = alpha * (forward.norm(dim=1, keepdim=True) + backward.norm(dim=1, keepdim=True)) + beta
    round_trip_forward = forward + warp(backward, forward)  # ≈ 0 where consistent, (B, 2, H, W)
    round_trip_backward = backward + warp(forward, backward)
    occlusion_forward = (round_trip_forward.norm(dim=1, keepdim=True) > threshold).float()
    occlusion_backward = (round_trip_backward.norm(dim=1, keepdim=True) > threshold).float()
    return occlusion_forward, occlusion_backward


def photometric_occlusion(
    source: torch.Tensor, target: torch.Tensor, backward: torch.Tensor, threshold: float = 0.25
) -> torch.Tensor:
    """Flag target pixels whose colour differs from the source warped onto them.

    ``occluded(p) = mean_c |target(p) − source(p + backward(p))| > threshold``: Rerender-A-Video's optional
    ``pixel_consistency`` check (0.25 of the range), which FRESCO always applies. Combine it with
    `forward_backward_occlusion` by ``torch.maximum``.

    Args:
        source: the source frame, values in [0, 1].
        target: the target frame, values in [0, 1].
        backward: flow target→source.
        threshold: largest trusted mean absolute difference, in units of the [0, 1] range.

    Returns:
        float32 in {0, 1} on the target's grid, 1 = occluded or untrusted.

    Raises:
        FlowInputError: mismatched shapes, sizes or devices.
        ValueError: `threshold` outside (0, 1] (as `rerender.errors.ConfigError`).

    Shape:
        - source, target: (B, C, H, W)
        - backward: (B, 2, H, W)
        - Output: (B, 1, H, W)

    Example:
        >>> frame = torch.rand(1, 3, 8, 8)
        >>> float(photometric_occlusion(frame, frame, torch.zeros(1, 2, 8, 8)).sum())
        0.0
    """
    source = _check_tensor(source, "source", None, "(B, C, H, W)")
    target = _check_tensor(target, "target", None, "(B, C, H, W)")
    if source.shape != target.shape:
        raise FlowInputError(
            f"`source` and `target` must have the same shape, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    _check_same_size(source, "source", _check_flow(backward, "backward"), "backward")
    if not 0 < threshold <= 1:
        raise ConfigError(f"`threshold` must be in (0, 1] (a fraction of the [0, 1] range), got {threshold}")
    warped_source = warp(source.float(), backward)
    difference = (target.float() - warped_source).abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (difference > threshold).float()


def compose_flows(flow_ab: torch.Tensor, flow_bc: torch.Tensor) -> torch.Tensor:
    """Chain two flows: ``flow_ac(p) = flow_ab(p) + flow_bc(p + flow_ab(p))``.

    ``flow_bc`` is sampled bilinearly; points that leave frame b take the flow of the nearest border pixel,
    which is a guess: flag them with `warp_with_validity` (warp anything along ``flow_ab``) or an occlusion test.

    Args:
        flow_ab: flow a→b.
        flow_bc: flow b→c.

    Returns:
        flow a→c, float32.

    Raises:
        FlowInputError: the flows are not ``(B, 2, H, W)`` of one size.

    Shape:
        - flow_ab: (B, 2, H, W)
        - flow_bc: (B, 2, H, W) or (1, 2, H, W)
        - Output: (B, 2, H, W)

    Example:
        >>> one = torch.ones(1, 2, 4, 4)
        >>> compose_flows(one, one)[0, :, 1, 1].tolist()
        [2.0, 2.0]
    """
    flow_ab = _check_flow(flow_ab, "flow_ab")
    flow_bc = _check_flow(flow_bc, "flow_bc")
    _check_same_size(flow_ab, "flow_ab", flow_bc, "flow_bc")
    _check_batch(flow_ab, "flow_ab", flow_bc, "flow_bc")
    flow_bc = flow_bc.float().expand(flow_ab.shape[0], -1, -1, -1)
    flow_bc_at_b, _ = _sample_along_flow(flow_bc, flow_ab, "bilinear", "border")
    return flow_ab.float() + flow_bc_at_b


def soften_mask(
    mask: torch.Tensor, dilate: int | None = 9, blur_kernel: int | None = 9, blur_sigma: float = 18.0
) -> torch.Tensor:
    """Grow and feather an occlusion mask: ``clamp(blur(max_pool(mask)) + mask, 0, 1)``.

    Rerender-A-Video softens every occlusion mask this way before pixel-aware fusion (rerender-method.md §1.2):
    a 9×9 max-pool dilation, a 9×9 Gaussian blur with sigma 18 (reflect border), then the raw mask added back
    so occluded pixels stay fully occluded.

    Args:
        mask: 1 = occluded, values in [0, 1].
        dilate: odd side of the max-pool window in pixels; None skips the dilation.
        blur_kernel: odd side of the Gaussian kernel in pixels; None skips the blur.
        blur_sigma: standard deviation of the Gaussian in pixels.

    Returns:
        The soft mask in [0, 1], same dtype as `mask`.

    Raises:
        FlowInputError: `mask` is not a 4-D floating tensor.
        ValueError: an even or non-positive window, or a non-positive sigma (as `rerender.errors.ConfigError`).

    Shape:
        - mask: (B, C, H, W), usually C = 1
        - Output: (B, C, H, W)

    Example:
        >>> mask = torch.zeros(1, 1, 32, 32); mask[..., 16, 16] = 1
        >>> soft = soften_mask(mask)
        >>> float(soft[0, 0, 16, 16]), bool(soft[0, 0, 16, 22] > 0), float(soft[0, 0, 0, 0])
        (1.0, True, 0.0)
    """
    mask = _check_tensor(mask, "mask", None, "(B, C, H, W)")
    for name, size in (("dilate", dilate), ("blur_kernel", blur_kernel)):
        if size is not None and (not isinstance(size, int) or size < 1 or size % 2 == 0):
            raise ConfigError(f"`{name}` must be an odd integer >= 1 or None, got {size!r}")
    if not blur_sigma > 0:
        raise ConfigError(f"`blur_sigma` must be > 0, got {blur_sigma}")
    softened = mask
    if dilate is not None and dilate > 1:
        softened = F.max_pool2d(softened, kernel_size=dilate, stride=1, padding=dilate // 2)
    if blur_kernel is not None and blur_kernel > 1:
        softened = gaussian_blur2d(softened, (blur_kernel, blur_kernel), (blur_sigma, blur_sigma))
    return torch.clamp(softened + mask, 0.0, 1.0)


def _check_latent_factor(tensor: torch.Tensor, name: str, factor: int) -> None:
    if not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"`factor` must be an integer >= 1, got {factor!r}")
    height, width = tensor.shape[-2:]
    if height % factor or width % factor:
        raise FlowInputError(
            f"`{name}` height and width must be multiples of factor={factor} (the latent grid), got {height}×{width}"
        )


def flow_to_latent(flow: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Bring a pixel flow to the latent grid: divide by `factor`, then downsample bilinearly by `factor`.

    As Rerender-A-Video's shape-aware fusion (``interpolate(flow / 8, scale_factor=1/8, mode="bilinear")``,
    align_corners=False): each latent cell takes the mean of the flow at the centre of its 8×8 block.

    Args:
        flow: pixel flow.
        factor: the VAE's downsampling factor.

    Returns:
        Flow in latent cells, float32.

    Raises:
        FlowInputError: wrong shape, or a size that is not a multiple of `factor`.

    Shape:
        - flow: (B, 2, H, W)
        - Output: (B, 2, H / factor, W / factor)

    Example:
        >>> flow_to_latent(torch.full((1, 2, 16, 16), 8.0)).unique().tolist()
        [1.0]
    """
    flow = _check_flow(flow)
    _check_latent_factor(flow, "flow", factor)
    height, width = flow.shape[-2:]
    return F.interpolate(
        flow.float() / factor, size=(height // factor, width // factor), mode="bilinear", align_corners=False
    )


def mask_to_latent(mask: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Bring an occlusion mask to the latent grid conservatively: a cell is as untrusted as its worst pixel.

    A ``factor × factor`` max-pool, as Rerender-A-Video (``1 − max_pool2d(mask, 8)`` gives the trusted cells).

    Args:
        mask: 1 = occluded, hard or soft.
        factor: the VAE's downsampling factor.

    Returns:
        The latent-grid mask, same dtype as `mask`.

    Raises:
        FlowInputError: wrong shape, or a size that is not a multiple of `factor`.

    Shape:
        - mask: (B, C, H, W)
        - Output: (B, C, H / factor, W / factor)

    Example:
        >>> mask = torch.zeros(1, 1, 16, 16); mask[..., 3, 12] = 1
        >>> mask_to_latent(mask)[0, 0].tolist()
        [[0.0, 1.0], [0.0, 0.0]]
    """
    mask = _check_tensor(mask, "mask", None, "(B, C, H, W)")
    _check_latent_factor(mask, "mask", factor)
    return F.max_pool2d(mask, kernel_size=factor)


def _middlebury_color_wheel(device: torch.device) -> torch.Tensor:
    """The 55 hues of the Middlebury flow colour wheel (Baker et al., IJCV 2011), (55, 3) in [0, 1]."""
    # Segment lengths red→yellow→green→cyan→blue→magenta→red, chosen for perceptual evenness.
    segments = ((15, 0, 1), (6, 1, 0), (4, 1, 2), (11, 2, 1), (13, 2, 0), (6, 0, 2))
    rows = []
    for length, steady_channel, ramp_channel in segments:
        ramp = torch.floor(255.0 * torch.arange(length, dtype=torch.float32) / length) / 255.0
        block = torch.zeros(length, 3)
        block[:, steady_channel] = 1.0
        # Even segments raise the next primary; odd segments lower the previous one.
        block[:, ramp_channel] = ramp if len(rows) % 2 == 0 else 1.0 - ramp
        rows.append(block)
    return torch.cat(rows).to(device)


def flow_to_rgb(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """Colour-code a flow with the Middlebury colour wheel: hue = direction, saturation = magnitude.

    Args:
        flow: pixel flow.
        max_magnitude: the magnitude drawn at full saturation; None uses each image's largest magnitude. Pass a
            fixed value to compare the frames of a video.

    Returns:
        RGB images, float32 in [0, 1], channels first (``(image * 255).byte().permute(0, 2, 3, 1)`` for
        uint8 HWC). A zero flow is white; with image y pointing down, motion to the right is red, down is yellow,
        left is cyan and up is blue-violet.

    Raises:
        FlowInputError: `flow` is not ``(B, 2, H, W)``.
        ValueError: a non-positive `max_magnitude` (as `rerender.errors.ConfigError`).

    Shape:
        - flow: (B, 2, H, W)
        - Output: (B, 3, H, W)

    Example:
        >>> flow_to_rgb(torch.zeros(1, 2, 2, 2)).unique().tolist()
        [1.0]
    """
    flow = _check_flow(flow).float()
    if max_magnitude is not None and not max_magnitude > 0:
        raise ConfigError(f"`max_magnitude` must be > 0 or None, got {max_magnitude}")
    wheel = _middlebury_color_wheel(flow.device)
    magnitude = flow.norm(dim=1)  # (B, H, W)
    if max_magnitude is None:
        scale = magnitude.flatten(1).amax(dim=1).clamp_min(1e-5).view(-1, 1, 1)
    else:
        scale = torch.full_like(magnitude[:, :1, :1], float(max_magnitude))
    radius = magnitude / scale
    angle = torch.atan2(-flow[:, 1], -flow[:, 0]) / math.pi  # (B, H, W) in [-1, 1]
    position = (angle + 1.0) / 2.0 * (wheel.shape[0] - 1)
    lower = position.floor().long().clamp(0, wheel.shape[0] - 1)
    upper = (lower + 1) % wheel.shape[0]
    fraction = (position - lower.float()).unsqueeze(-1)
    colour = (1.0 - fraction) * wheel[lower] + fraction * wheel[upper]  # (B, H, W, 3)
    radius = radius.unsqueeze(-1)
    # Inside the unit circle saturation grows with the magnitude; beyond it the colour is dimmed.
    colour = torch.where(radius <= 1.0, 1.0 - radius * (1.0 - colour), colour * 0.75)
    return colour.permute(0, 3, 1, 2).contiguous()
