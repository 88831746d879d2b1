"""A reference image as the prompt: an IP-Adapter (Ye et al. 2023) loaded with diffusers' `load_ip_adapter`.

The adapter adds image-conditioned keys and values to every *cross*-attention layer of the UNet; the cross-frame
constraints replace only the decoder *self*-attention processors (`rerender.diffusion.attention`), so the two compose. The
image is encoded once per run and applied to every keyframe with weight `style_image_scale`.

Supported: the SD 1.5 adapters of ``h94/IP-Adapter`` that diffusers loads, e.g. ``models/ip-adapter_sd15.safetensors``,
``models/ip-adapter-plus_sd15.safetensors``, ``models/ip-adapter-plus-face_sd15.safetensors`` and
``models/ip-adapter-full-face_sd15.safetensors``. FaceID adapters need face embeddings and are not supported.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rerender.errors import CheckpointError, ConfigError, WeightsNotFoundError
from rerender.weights import adapter_file

__all__ = [
    "adapter_file",
    "check_adapter_matches",
    "check_style_inputs",
    "install_ip_adapter",
    "read_style_image",
    "style_adapter",
    "unload_ip_adapter",
]

logger = logging.getLogger(__name__)


def read_style_image(path: str | os.PathLike) -> np.ndarray:
    """The reference image as RGB uint8 `(H, W, 3)`.

    Raises:
        InputNotFoundError: no such file; VideoReadError: the file is not an image (both messages name
            `style_image`).
    """
    from rerender.errors import InputNotFoundError, VideoReadError
    from rerender.video import read_image
    from rerender.video.files import unexpanded_home

    if os.path.isdir(os.path.expanduser(str(path))):  # it exists: "not found" would send the user looking for it
        raise VideoReadError(f"`style_image` {str(path)!r} is a folder, not an image: name one image file in it")
    try:
        return read_image(path)
    except InputNotFoundError as error:  # named: a run reads a video, keyframes and maps too
        raise InputNotFoundError(f"`style_image` {str(path)!r} not found{unexpanded_home(path)}") from error
    except VideoReadError as error:
        raise VideoReadError(
            f"`style_image` {str(path)!r} is not a readable image (PNG, JPEG, WebP, …): {error}"
        ) from error


def check_style_inputs(style_image: str | None, source: str, weight_name: str) -> None:
    """Check the reference image and that the adapter can be loaded, before any model loads.

    Raises:
        InputNotFoundError, VideoReadError: the image is missing or not an image.
        ConfigError: the adapter file is not `.safetensors` (nothing loaded may run code).
        WeightsNotFoundError: the adapter is neither here nor downloadable (offline); the message names it.
    """
    if style_image is None:
        return
    read_style_image(style_image)
    if not weight_name.endswith(".safetensors"):
        raise ConfigError(f"`model.ip_adapter_weight_name` must be a .safetensors file, got {weight_name!r}")
    from rerender.weights import hub_reachable, ip_adapter_encoder_folder, is_hub_id

    if adapter_file(source, weight_name) is None and not (is_hub_id(source) and hub_reachable()):
        raise WeightsNotFoundError(
            f"`style_image` needs the IP-Adapter {weight_name!r} of {source!r} (`model.ip_adapter`) and its image "
            f"encoder, which are not on this machine and cannot be downloaded now. On a connected machine run: "
            f"rerender download --style-image IMAGE (or hf download {source} --include {weight_name!r} "
            f"'{ip_adapter_encoder_folder(weight_name)}/*')"
            if is_hub_id(source)
            else f"`style_image` needs the IP-Adapter file {str(Path(source) / weight_name)!r} (`model.ip_adapter` + "
            "`model.ip_adapter_weight_name`), which does not exist"
        )


def check_adapter_matches(unet: Any, path: str | os.PathLike) -> None:
    """Raise `CheckpointError` unless the adapter at `path` fits `unet` (reads only the file's header).

    The adapter must have one `to_k_ip` per cross-attention layer of the UNet, each shaped like that layer's
    `to_k` (an SDXL adapter on SD 1.5 fails here, naming both sizes, instead of deep inside the loader).
    """
    from safetensors import safe_open

    modules = dict(unet.named_modules())
    layers = [modules[name[: -len(".processor")]] for name in unet.attn_processors if name.endswith("attn2.processor")]
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        keys = set(handle.keys())
        if not any(key.startswith("image_proj.") for key in keys):
            raise CheckpointError(f"{str(path)!r} is not an IP-Adapter (it has no image_proj.* weights)")
        if any("perceiver_resampler" in key for key in keys):
            raise CheckpointError(f"{str(path)!r} is a FaceID IP-Adapter, which needs face embeddings; not supported")
        numbers = sorted(int(key.split(".")[1]) for key in keys if key.endswith(".to_k_ip.weight"))
        if len(numbers) != len(layers):
            raise CheckpointError(
                f"the IP-Adapter {str(path)!r} has {len(numbers)} cross-attention layers but the base model has "
                f"{len(layers)}: it was made for another base model (use an SD 1.5 adapter)"
            )
        for number, layer in zip(numbers, layers):
            shape = tuple(handle.get_slice(f"ip_adapter.{number}.to_k_ip.weight").get_shape())
            if shape != tuple(layer.to_k.weight.shape):
                raise CheckpointError(
                    f"the IP-Adapter {str(path)!r} does not match the base model: its keys are {shape[0]}×{shape[1]} "
                    f"where the UNet's cross-attention has {tuple(layer.to_k.weight.shape)[0]}×"
                    f"{tuple(layer.to_k.weight.shape)[1]} (an adapter for another base model?)"
                )


def install_ip_adapter(pipeline: Any, source: str, weight_name: str, scale: float) -> None:
    """Load the adapter into `pipeline` with diffusers' `load_ip_adapter` (after `check_adapter_matches` when the
    file is already here) and set its scale. Undo with `unload_ip_adapter(pipeline)`.
    """
    subfolder, name = posixpath.split(weight_name)
    local = adapter_file(source, weight_name)
    if local is not None:
        check_adapter_matches(pipeline.unet, local)
    extra = {}
    if subfolder == "sdxl_models" and "vit-h" in name:  # h94's SDXL ViT-H adapters use the SD 1.5 image encoder
        extra["image_encoder_folder"] = "models/image_encoder"
    pipeline.load_ip_adapter(source, subfolder=subfolder, weight_name=name, **extra)
    offload_device = getattr(pipeline, "_offload_device", None)
    if offload_device is not None and hasattr(pipeline.unet, "_hf_hook"):
        # model CPU offload hooked the components it found; the image encoder came after it and would stay on the
        # CPU while `encode_image` sends the pixels to the GPU: hook it too (diffusers re-hooks every component)
        pipeline.enable_model_cpu_offload(device=offload_device)
    pipeline.set_ip_adapter_scale(scale)
    logger.info("IP-Adapter %s/%s loaded, scale %.2f", source, weight_name, scale)


def unload_ip_adapter(pipeline: Any) -> None:
    """Remove the adapter and its image encoder (diffusers' `unload_ip_adapter`); under model CPU offload, hook the
    remaining components again: in accelerate's offload chain each hook keeps the component run before it (to
    offload it when the next one starts), so the UNet's hook would keep the dropped image encoder in host memory
    until the next re-hook (the mirror of `install_ip_adapter`'s re-hook)."""
    offload_device = getattr(pipeline, "_offload_device", None)
    hooked = offload_device is not None and hasattr(pipeline.unet, "_hf_hook")
    pipeline.unload_ip_adapter()
    if hooked:
        pipeline.enable_model_cpu_offload(device=offload_device)


@contextlib.contextmanager
def style_adapter(pipeline: Any, config: Any) -> Iterator[np.ndarray | None]:
    """Yield the reference image of `config.prompt.style_image` with its IP-Adapter installed on `pipeline` for the
    block (removed afterwards when this installed it; an adapter already there only gets the scale), or None
    when no style image is set or its scale is 0 (no effect: no adapter is loaded for it). Pass the image to `RerenderPipeline.encode_style_image` (or `render_keyframes`).

    Args:
        pipeline: a `RerenderPipeline`.
        config: a `RerenderConfig` (`prompt.style_image`, `prompt.style_image_scale`, `model.ip_adapter`,
            `model.ip_adapter_weight_name`).
    """
    if config.prompt.style_image is None:
        yield None
        return
    installed = getattr(pipeline.unet, "encoder_hid_proj", None) is None
    if installed and not config.prompt.uses_style_image:  # scale 0: the adapter would add exactly nothing
        logger.info("`prompt.style_image_scale` is 0: the IP-Adapter is not loaded")
        yield None
        return
    image = read_style_image(config.prompt.style_image)
    if installed:
        family = getattr(pipeline, "family", "sd15")
        weight_name = config.model.resolved_ip_adapter_weight_name(family)  # the SDXL adapter on SDXL
        local = adapter_file(config.model.ip_adapter, weight_name)
        if local is not None:
            from rerender.diffusion.loading import check_ip_adapter_family

            check_ip_adapter_family(family, local)
        install_ip_adapter(pipeline, config.model.ip_adapter, weight_name, config.prompt.style_image_scale)
    else:  # the caller's own adapter: its scale is theirs again afterwards
        previous = _ip_adapter_scales(pipeline.unet)
        pipeline.set_ip_adapter_scale(config.prompt.style_image_scale)
    try:
        yield image
    finally:
        if installed:
            unload_ip_adapter(pipeline)
        else:
            processors = pipeline.unet.attn_processors
            for name, scale in previous.items():
                processors[name].scale = scale


def _ip_adapter_scales(unet: Any) -> dict[str, Any]:
    """The scale of every IP-Adapter attention processor of `unet`, by processor name (copies)."""
    return {
        name: copy.copy(processor.scale)
        for name, processor in unet.attn_processors.items()
        if hasattr(processor, "scale") and hasattr(processor, "to_k_ip")
    }
