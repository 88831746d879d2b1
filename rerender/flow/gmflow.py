"""GMFlow: optical flow as global matching (Xu et al., CVPR 2022), as Rerender-A-Video configures it.

Our implementation of the architecture of haofeixu/gmflow (Apache-2.0; read at commit 07efab98 of
``gmflow/gmflow.py`` and the matching ``backbone.py``/``transformer.py``/``matching.py``/``utils.py``/
``position.py``). Module and parameter names follow the official code, so the released checkpoint
``gmflow_sintel-0c07dcb3.pth`` loads with ``strict=True``. Only what Rerender-A-Video runs is kept: one scale
at 1/8 resolution, 128 feature channels, 6 transformer layers with shifted-window ("swin") attention in 2×2
windows, global matching, global flow propagation, convex upsampling by 8, bidirectional prediction.

The network:
    1. a CNN (`CNNEncoder`) turns both frames into 1/8-resolution features;
    2. a transformer (`FeatureTransformer`) alternates self-attention and cross-attention between them;
    3. `global_matching` takes a softmax over all correlations, giving flow as the expected correspondence;
    4. `FeatureFlowAttention` propagates flow from well-matched to occluded pixels by feature self-similarity;
    5. `convex_upsample` brings the flow to full resolution with learnt 3×3 convex weights (as RAFT).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rerender.errors import CheckpointError, ConfigError, FlowInputError, InputNotFoundError
from rerender.weights import (
    GMFLOW_FILENAME as OFFICIAL_GMFLOW_FILENAME,
)  # file name of the Sintel-finetuned checkpoint

__all__ = [
    "OFFICIAL_GMFLOW_FILENAME",
    "GMFlow",
    "CNNEncoder",
    "ResidualBlock",
    "FeatureTransformer",
    "TransformerBlock",
    "TransformerLayer",
    "FeatureFlowAttention",
    "sine_position_embedding",
    "window_attention",
    "shifted_window_attention_mask",
    "global_matching",
    "convex_upsample",
    "read_gmflow_checkpoint",
    "check_gmflow_state_dict",
    "load_gmflow",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with instance norm and a (strided 1×1 when needed) shortcut.

    The instance norms have no affine parameters, so the checkpoint holds only the convolutions.

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: (B, out_channels, H / stride, W / stride)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm2d(out_channels)
        self.norm2 = nn.InstanceNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride), nn.InstanceNorm2d(out_channels)
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        residual = self.relu(self.norm1(self.conv1(features)))
        residual = self.relu(self.norm2(self.conv2(residual)))
        shortcut = features if self.downsample is None else self.downsample(features)
        return self.relu(shortcut + residual)


class CNNEncoder(nn.Module):
    """The feature CNN: a 7×7 stride-2 stem, three stages of two residual blocks (64, 96, 128 channels,
    strides 1, 2, 2), then a 1×1 projection to `output_channels`.

    Shape:
        - Input: (B, 3, H, W), ImageNet-normalised
        - Output: (B, output_channels, H / 8, W / 8)
    """

    def __init__(self, output_channels: int = 128) -> None:
        super().__init__()
        stage_channels = (64, 96, 128)
        self.conv1 = nn.Conv2d(3, stage_channels[0], kernel_size=7, stride=2, padding=3, bias=False)  # 1/2
        self.norm1 = nn.InstanceNorm2d(stage_channels[0])
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(
            ResidualBlock(stage_channels[0], stage_channels[0]), ResidualBlock(stage_channels[0], stage_channels[0])
        )  # 1/2
        self.layer2 = nn.Sequential(
            ResidualBlock(stage_channels[0], stage_channels[1], stride=2),
            ResidualBlock(stage_channels[1], stage_channels[1]),
        )  # 1/4
        self.layer3 = nn.Sequential(
            ResidualBlock(stage_channels[1], stage_channels[2], stride=2),
            ResidualBlock(stage_channels[2], stage_channels[2]),
        )  # 1/8
        self.conv2 = nn.Conv2d(stage_channels[2], output_channels, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.relu1(self.norm1(self.conv1(images)))
        features = self.layer3(self.layer2(self.layer1(features)))
        return self.conv2(features)


def sine_position_embedding(height: int, width: int, channels: int, device: torch.device) -> torch.Tensor:
    """The 2-D sine position embedding of DETR, normalised to one period over the map (GMFlow's choice).

    Half the channels encode y, half x; within each half, channel pairs are (sin, cos) at geometric
    frequencies with base 10000.

    Args:
        height: rows of the map.
        width: columns of the map.
        channels: embedding channels, a multiple of 4.
        device: where to build it.

    Returns:
        The embedding, float32.

    Shape:
        - Output: (1, channels, height, width)
    """
    channels_per_axis = channels // 2
    scale = 2 * math.pi
    rows = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + 1e-6) * scale
    columns = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + 1e-6) * scale
    index = torch.arange(channels_per_axis, dtype=torch.float32, device=device)
    frequencies = 10000 ** (2 * torch.div(index, 2, rounding_mode="floor") / channels_per_axis)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        phases = positions[:, None] / frequencies  # (N, channels_per_axis)
        return torch.stack((phases[:, 0::2].sin(), phases[:, 1::2].cos()), dim=2).flatten(1)

    embedding_y = encode(rows)[:, None, :].expand(height, width, channels_per_axis)
    embedding_x = encode(columns)[None, :, :].expand(height, width, channels_per_axis)
    return torch.cat((embedding_y, embedding_x), dim=2).permute(2, 0, 1)[None]  # (1, C, H, W)


def _split_windows(features: torch.Tensor, num_splits: int) -> torch.Tensor:
    """(B, H, W, C) → (B·K·K, H/K, W/K, C), windows in row-major order within each batch element."""
    batch, height, width, channels = features.shape
    features = features.view(batch, num_splits, height // num_splits, num_splits, width // num_splits, channels)
    return features.permute(0, 1, 3, 2, 4, 5).reshape(
        batch * num_splits * num_splits, height // num_splits, width // num_splits, channels
    )


def _merge_windows(windows: torch.Tensor, num_splits: int) -> torch.Tensor:
    """Inverse of `_split_windows`: (B·K·K, H/K, W/K, C) → (B, H, W, C)."""
    batch_windows, window_height, window_width, channels = windows.shape
    batch = batch_windows // (num_splits * num_splits)
    windows = windows.view(batch, num_splits, num_splits, window_height, window_width, channels)
    return windows.permute(0, 1, 3, 2, 4, 5).reshape(
        batch, num_splits * window_height, num_splits * window_width, channels
    )


def shifted_window_attention_mask(height: int, width: int, num_splits: int, device: torch.device) -> torch.Tensor:
    """Additive mask that stops shifted windows from attending across the wrap-around seam (Swin Transformer).

    After rolling the map by half a window, a window can hold pixels from up to four regions that were not
    neighbours; pairs from different regions get -100 (≈ zero weight after softmax), as in Swin and GMFlow.

    Shape:
        - Output: (K·K, (H/K)·(W/K), (H/K)·(W/K)) for K = num_splits
    """
    window_height, window_width = height // num_splits, width // num_splits
    shift_height, shift_width = window_height // 2, window_width // 2
    region = torch.zeros(1, height, width, 1, device=device)
    label = 0
    for rows in (slice(0, -window_height), slice(-window_height, -shift_height), slice(-shift_height, None)):
        for columns in (slice(0, -window_width), slice(-window_width, -shift_width), slice(-shift_width, None)):
            region[:, rows, columns, :] = label
            label += 1
    region_windows = _split_windows(region, num_splits).view(-1, window_height * window_width)
    different = region_windows.unsqueeze(1) != region_windows.unsqueeze(2)
    return torch.zeros_like(different, dtype=torch.float32).masked_fill(different, -100.0)


def window_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    height: int,
    width: int,
    num_splits: int,
    shift_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Single-head attention inside a K×K grid of windows, optionally shifted by half a window.

    Args:
        query, key, value: token features of an ``height × width`` map, row-major.
        height, width: the map's size, both multiples of `num_splits`.
        num_splits: K, windows per side.
        shift_mask: `shifted_window_attention_mask` to shift the windows by half their size; None for no shift.

    Returns:
        The attended values.

    Shape:
        - query, key, value: (B, H·W, C)
        - Output: (B, H·W, C)
    """
    batch, _, channels = query.shape
    window_height, window_width = height // num_splits, width // num_splits
    query, key, value = (tensor.view(batch, height, width, channels) for tensor in (query, key, value))
    if shift_mask is not None:
        shift = (-(window_height // 2), -(window_width // 2))
        query, key, value = (torch.roll(tensor, shifts=shift, dims=(1, 2)) for tensor in (query, key, value))
    query, key, value = (
        _split_windows(tensor, num_splits).view(-1, window_height * window_width, channels)
        for tensor in (query, key, value)
    )  # (B·K·K, window tokens, C)
    scores = torch.matmul(query, key.transpose(1, 2)) / math.sqrt(channels)
    if shift_mask is not None:
        scores = scores + shift_mask.to(scores.dtype).repeat(batch, 1, 1)
    attended = torch.matmul(torch.softmax(scores, dim=-1), value)
    attended = _merge_windows(attended.view(-1, window_height, window_width, channels), num_splits)  # (B, H, W, C)
    if shift_mask is not None:
        attended = torch.roll(attended, shifts=(window_height // 2, window_width // 2), dims=(1, 2))
    return attended.reshape(batch, height * width, channels)


class TransformerLayer(nn.Module):
    """Single-head attention (projections without bias), merge, layer norm, and for cross-attention an FFN
    on the concatenation of the input and the message; the result is added to the input.

    Shape:
        - source, target: (B, H·W, C)
        - Output: (B, H·W, C)
    """

    def __init__(self, channels: int = 128, with_ffn: bool = True, ffn_expansion: int = 4) -> None:
        super().__init__()
        self.q_proj = nn.Linear(channels, channels, bias=False)
        self.k_proj = nn.Linear(channels, channels, bias=False)
        self.v_proj = nn.Linear(channels, channels, bias=False)
        self.merge = nn.Linear(channels, channels, bias=False)
        self.norm1 = nn.LayerNorm(channels)
        self.with_ffn = with_ffn
        if with_ffn:
            hidden = 2 * channels * ffn_expansion
            self.mlp = nn.Sequential(
                nn.Linear(2 * channels, hidden, bias=False), nn.GELU(), nn.Linear(hidden, channels, bias=False)
            )
            self.norm2 = nn.LayerNorm(channels)

    def forward(
        self,
        source: torch.Tensor,
        target: torch.Tensor,
        height: int,
        width: int,
        num_splits: int,
        shift_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        query, key, value = self.q_proj(source), self.k_proj(target), self.v_proj(target)
        if num_splits > 1:
            message = window_attention(query, key, value, height, width, num_splits, shift_mask)
        else:
            scores = torch.matmul(query, key.transpose(1, 2)) / math.sqrt(query.shape[-1])
            message = torch.matmul(torch.softmax(scores, dim=-1), value)
        message = self.norm1(self.merge(message))
        if self.with_ffn:
            message = self.norm2(self.mlp(torch.cat((source, message), dim=-1)))
        return source + message


class TransformerBlock(nn.Module):
    """Self-attention (no FFN), then cross-attention with FFN.

    Shape:
        - source, target: (B, H·W, C)
        - Output: (B, H·W, C)
    """

    def __init__(self, channels: int = 128, ffn_expansion: int = 4, shifted: bool = False) -> None:
        super().__init__()
        self.shifted = shifted
        self.self_attn = TransformerLayer(channels, with_ffn=False, ffn_expansion=ffn_expansion)
        self.cross_attn_ffn = TransformerLayer(channels, with_ffn=True, ffn_expansion=ffn_expansion)

    def forward(
        self,
        source: torch.Tensor,
        target: torch.Tensor,
        height: int,
        width: int,
        num_splits: int,
        shift_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        mask = shift_mask if self.shifted else None
        source = self.self_attn(source, source, height, width, num_splits, mask)
        return self.cross_attn_ffn(source, target, height, width, num_splits, mask)


class FeatureTransformer(nn.Module):
    """Stacked `TransformerBlock`s updating both frames' features; odd blocks use shifted windows.

    Both directions run as one batch: ``[features0; features1]`` attends to ``[features1; features0]``.

    Shape:
        - features0, features1: (B, C, H, W)
        - Output: (B, C, H, W), (B, C, H, W)
    """

    def __init__(self, num_layers: int = 6, channels: int = 128, ffn_expansion: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.layers = nn.ModuleList(
            TransformerBlock(channels, ffn_expansion, shifted=index % 2 == 1) for index in range(num_layers)
        )
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(
        self, features0: torch.Tensor, features1: torch.Tensor, num_splits: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = features0.shape
        shift_mask = (
            shifted_window_attention_mask(height, width, num_splits, features0.device) if num_splits > 1 else None
        )
        source = torch.cat((features0, features1), dim=0).flatten(2).transpose(1, 2)  # (2B, H·W, C)
        for layer in self.layers:
            target = torch.cat(source.chunk(2, dim=0)[::-1], dim=0)  # each frame attends to the other
            source = layer(source, target, height, width, num_splits, shift_mask)
        features = source.transpose(1, 2).reshape(2 * batch, channels, height, width)
        return features[:batch], features[batch:]


def _pixel_coordinates(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H·W, 2) pixel coordinates (x, y) in row-major order."""
    rows, columns = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack((columns, rows), dim=-1).view(-1, 2)


def global_matching(features0: torch.Tensor, features1: torch.Tensor, bidirectional: bool = True) -> torch.Tensor:
    """Flow as the expected correspondence under a softmax over all feature correlations.

    ``flow(p) = Σ_q softmax_q(<f0(p), f1(q)> / √C) · q − p``. The backward flow reuses the transposed
    correlation matrix.

    Args:
        features0, features1: the two frames' features.
        bidirectional: also return the flow 1→0.

    Returns:
        Flow 0→1 in feature-map pixels, followed by flow 1→0 along the batch when `bidirectional`.

    Shape:
        - features0, features1: (B, C, H, W)
        - Output: (B, 2, H, W), or (2B, 2, H, W) when bidirectional
    """
    _, channels, height, width = features0.shape
    correlation = torch.matmul(features0.flatten(2).transpose(1, 2), features1.flatten(2)) / math.sqrt(
        channels
    )  # (B, H·W, H·W)
    if bidirectional:
        correlation = torch.cat((correlation, correlation.transpose(1, 2)), dim=0)  # (2B, H·W, H·W)
    coordinates = _pixel_coordinates(height, width, features0.device, correlation.dtype)  # (H·W, 2)
    correspondence = torch.matmul(torch.softmax(correlation, dim=-1), coordinates)  # (2B, H·W, 2)
    flow = correspondence - coordinates
    return flow.transpose(1, 2).reshape(-1, 2, height, width)


class FeatureFlowAttention(nn.Module):
    """Propagate flow by global self-attention on the first frame's features (query, key) over flow (value).

    Reproduces an oddity of the official code on purpose: the key is projected from the already projected
    query (``k_proj(q_proj(x))``). The released weights were trained that way, and since both maps are linear
    the result is still a linear key projection.

    Shape:
        - features: (B, C, H, W)
        - flow: (B, 2, H, W)
        - Output: (B, 2, H, W)
    """

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.q_proj = nn.Linear(channels, channels)
        self.k_proj = nn.Linear(channels, channels)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(self, features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = features.shape
        query = self.q_proj(features.flatten(2).transpose(1, 2))  # (B, H·W, C)
        key = self.k_proj(query)
        value = flow.flatten(2).transpose(1, 2)  # (B, H·W, 2)
        scores = torch.matmul(query, key.transpose(1, 2)) / math.sqrt(channels)  # (B, H·W, H·W)
        propagated = torch.matmul(torch.softmax(scores, dim=-1), value.to(scores.dtype))
        return propagated.transpose(1, 2).reshape(batch, 2, height, width)


def convex_upsample(flow: torch.Tensor, mask_logits: torch.Tensor, factor: int) -> torch.Tensor:
    """Upsample flow by `factor`: each fine pixel is a softmax-weighted mix of the 3×3 coarse neighbours.

    Args:
        flow: coarse flow in coarse pixels.
        mask_logits: per coarse pixel, 9 logits for each of the factor² fine pixels.
        factor: the upsampling factor.

    Returns:
        Fine flow in fine pixels.

    Shape:
        - flow: (B, 2, H, W)
        - mask_logits: (B, 9·factor², H, W)
        - Output: (B, 2, factor·H, factor·W)
    """
    batch, _, height, width = flow.shape
    weights = torch.softmax(mask_logits.view(batch, 1, 9, factor, factor, height, width), dim=2)
    neighbours = F.unfold(factor * flow, kernel_size=3, padding=1).view(batch, 2, 9, 1, 1, height, width)
    upsampled = torch.sum(weights * neighbours, dim=2)  # (B, 2, K, K, H, W)
    upsampled = upsampled.permute(0, 1, 4, 2, 5, 3)  # (B, 2, H, K, W, K)
    return upsampled.reshape(batch, 2, factor * height, factor * width)


class GMFlow(nn.Module):
    """GMFlow without refinement, as in Rerender-A-Video (the configuration of ``gmflow_sintel-0c07dcb3.pth``).

    Args:
        feature_channels: feature width (official: 128).
        num_transformer_layers: transformer blocks (official: 6).
        ffn_expansion: FFN width factor (official: 4).
        upsample_factor: feature stride and convex-upsampling factor (official: 8; the CNN is fixed at 1/8).
        attention_splits: windows per side in the transformer (Rerender-A-Video: 2); 1 = full attention.

    Inputs are RGB in 0–255 (ImageNet normalisation happens inside, as in the official code), with height and
    width multiples of `padding_multiple` (``upsample_factor · attention_splits``); `GMFlowEstimator` pads.

    Shape:
        - image0, image1: (B, 3, H, W), float 0–255
        - Output: forward (B, 2, H, W) and backward (B, 2, H, W) flow in pixels, or backward None

    Example:
        >>> model = GMFlow(num_transformer_layers=1)
        >>> forward, backward = model(torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255)
        >>> forward.shape, backward.shape
        (torch.Size([1, 2, 32, 32]), torch.Size([1, 2, 32, 32]))
    """

    def __init__(
        self,
        feature_channels: int = 128,
        num_transformer_layers: int = 6,
        ffn_expansion: int = 4,
        upsample_factor: int = 8,
        attention_splits: int = 2,
    ) -> None:
        super().__init__()
        if upsample_factor != 8:
            raise ConfigError(f"`upsample_factor` must be 8 (the CNN's stride), got {upsample_factor}")
        if feature_channels % 4:
            raise ConfigError(f"`feature_channels` must be a multiple of 4, got {feature_channels}")
        if attention_splits < 1:
            raise ConfigError(f"`attention_splits` must be >= 1, got {attention_splits}")
        self.feature_channels = feature_channels
        self.upsample_factor = upsample_factor
        self.attention_splits = attention_splits
        self.backbone = CNNEncoder(output_channels=feature_channels)
        self.transformer = FeatureTransformer(num_transformer_layers, feature_channels, ffn_expansion)
        self.feature_flow_attn = FeatureFlowAttention(feature_channels)
        self.upsampler = nn.Sequential(
            nn.Conv2d(2 + feature_channels, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, upsample_factor**2 * 9, kernel_size=1),
        )
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def padding_multiple(self) -> int:
        """Inputs' height and width must be multiples of this: 1/8 features split into equal windows."""
        return self.upsample_factor * self.attention_splits

    def forward(
        self, image0: torch.Tensor, image1: torch.Tensor, bidirectional: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if image0.shape != image1.shape or image0.ndim != 4 or image0.shape[1] != 3:
            raise FlowInputError(
                f"`image0` and `image1` must both have shape (B, 3, H, W), got {tuple(image0.shape)} and "
                f"{tuple(image1.shape)}"
            )
        height, width = image0.shape[-2:]
        if height % self.padding_multiple or width % self.padding_multiple:
            raise FlowInputError(
                f"image height and width must be multiples of {self.padding_multiple}, got {height}×{width}; "
                "pad them (GMFlowEstimator does) first"
            )
        batch = image0.shape[0]
        # 1. features at 1/8 for both frames in one batch
        images = torch.cat((image0, image1), dim=0)
        images = (images / 255.0 - self.image_mean.to(images.dtype)) / self.image_std.to(images.dtype)
        features0, features1 = self.backbone(images).chunk(2, dim=0)  # (B, C, H/8, W/8) each
        # 2. position embedding: computed per window and tiled, so every window sees the same positions
        feature_height, feature_width = features0.shape[-2:]
        splits = self.attention_splits
        position = (
            sine_position_embedding(
                feature_height // splits, feature_width // splits, self.feature_channels, features0.device
            )
            .repeat(1, 1, splits, splits)
            .to(features0.dtype)
        )
        features0, features1 = self.transformer(features0 + position, features1 + position, splits)
        # 3. global matching
        flow = global_matching(features0, features1, bidirectional)  # (B or 2B, 2, H/8, W/8)
        # 4. propagation: each direction attends over its own source frame's features
        source_features = torch.cat((features0, features1), dim=0) if bidirectional else features0
        flow = self.feature_flow_attn(source_features, flow)
        # 5. convex upsampling to full resolution
        mask_logits = self.upsampler(torch.cat((flow.to(source_features.dtype), source_features), dim=1))
        flow = convex_upsample(flow, mask_logits, self.upsample_factor)
        if bidirectional:
            return flow[:batch], flow[batch:]
        return flow, None


def read_gmflow_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a GMFlow state dict from a ``.pth`` (``torch.save``) or ``.safetensors`` file, on the CPU.

    Accepts the released files' layout (``{"model": state_dict}``), a bare state dict, and state dicts saved
    from ``DistributedDataParallel`` (keys prefixed ``module.``). Pickled files are read with
    ``weights_only=True``: no code in the file runs.

    Args:
        path: the checkpoint file.

    Returns:
        Parameter name → tensor.

    Raises:
        InputNotFoundError: no file at `path` (a `FileNotFoundError`).
        CheckpointError: the file is not a readable checkpoint, or holds no state dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputNotFoundError(
            f"`checkpoint` {str(path)!r} is not a file; expected the GMFlow weights, e.g. {OFFICIAL_GMFLOW_FILENAME} "
            "(Rerender-A-Video's models/ folder)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            content = load_file(str(path), device="cpu")
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for damaged files
        # torch's weights_only refusal runs to several paragraphs with terminal colour codes: keep the first line.
        first_line = re.sub(r"\x1b\[[0-9;]*m", "", (str(error).strip().splitlines() or [""])[0])
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} cannot be read ({type(error).__name__}: {first_line}); expected a PyTorch "
            "file (torch.save) or .safetensors holding the GMFlow state dict, optionally under a top-level 'model' "
            "key. The file may be truncated (download it again), or hold objects other than tensors, which are "
            "refused because pickled files are read with weights_only=True."
        ) from error
    state_dict = content.get("model", content) if isinstance(content, Mapping) else content
    if (
        not isinstance(state_dict, Mapping)
        or not state_dict
        or not all(isinstance(name, str) and isinstance(value, torch.Tensor) for name, value in state_dict.items())
    ):
        raise CheckpointError(
            f"`checkpoint` {str(path)!r} holds {type(state_dict).__name__}, not a state dict; expected a mapping of "
            "parameter names to tensors, optionally under a top-level 'model' key"
        )
    if all(name.startswith("module.") for name in state_dict):
        state_dict = {name.removeprefix("module."): value for name, value in state_dict.items()}
    return dict(state_dict)


def _looks_like(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Name the model a foreign state dict seems to come from, for the error message."""
    names = list(state_dict)
    if any(name.startswith(("fnet.", "cnet.", "update_block.")) for name in names):
        return " It looks like a RAFT checkpoint."
    if any(name.startswith("backbone.trident_conv.") for name in names):
        return " It looks like GMFlow with refinement (num_scales=2, e.g. gmflow_with_refine_*.pth)."
    if any(name.startswith(("refine_proj.", "refine.")) for name in names):
        return " It looks like a UniMatch (GMFlow+) checkpoint."
    if any(name.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")) for name in names):
        return " It looks like a Stable Diffusion checkpoint."
    return ""


def check_gmflow_state_dict(model: GMFlow, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise `CheckpointError` unless `state_dict` has exactly the keys and shapes of `model`.

    The message lists the missing keys, the unexpected keys and the shape mismatches (first few of each),
    and names the model the weights seem to come from when it can tell.

    Args:
        model: the network the weights are for.
        state_dict: parameter name → tensor.

    Raises:
        CheckpointError: any mismatch.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{name}: got {tuple(state_dict[name].shape)}, expected {tuple(expected[name].shape)}"
        for name in sorted(set(expected) & set(state_dict))
        if state_dict[name].shape != expected[name].shape
    ]
    if not (missing or unexpected or mismatched):
        return

    def listing(label: str, items: list[str]) -> str:
        shown = ", ".join(items[:5]) + (f", ... ({len(items) - 5} more)" if len(items) > 5 else "")
        return f"{len(items)} {label} ({shown})"

    problems = [
        listing(label, items)
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    raise CheckpointError(
        "`checkpoint` does not hold GMFlow weights in the official layout (gmflow_sintel-0c07dcb3.pth: "
        f"{len(expected)} tensors, feature_channels={model.feature_channels}, "
        f"{len(model.transformer.layers)} transformer layers, 1 scale): "
        + "; ".join(problems)
        + "."
        + _looks_like(state_dict)
    )


def load_gmflow(path: str | Path, device: str | torch.device = "cpu") -> GMFlow:
    """Build the official GMFlow configuration and load a checkpoint into it (strictly), in eval mode.

    Args:
        path: the checkpoint file (see `read_gmflow_checkpoint` for the accepted layouts).
        device: where to put the network.

    Returns:
        The network, float32, on `device`.

    Raises:
        InputNotFoundError: no file at `path`.
        CheckpointError: unreadable file, or the weights of a different model.
    """
    state_dict = read_gmflow_checkpoint(path)
    model = GMFlow()
    check_gmflow_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().to(device)
