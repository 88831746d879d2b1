"""Loading the keyframe models: base model, ControlNets, a separate VAE, LoRAs; device and dtype.

Everything resolves through one function, `load_pipeline(model_config, control_configs)`, so YAML, CLI and
Python share the path. Sources may be:

* a local diffusers folder (``model_index.json``, or a model's ``config.json``);
* a single ``.safetensors`` / ``.ckpt`` checkpoint (DreamBooth, civitai) in the original Stable Diffusion
  layout, loaded **offline** with the SD 1.5 configuration folder shipped in ``rerender/assets/sd15-config``
  (configs and the CLIP tokenizer, no weights; diffusers would otherwise fetch them from the hub);
* a Hugging Face hub id, taken from the local cache when offline (``HF_HUB_OFFLINE=1``).

LoRAs (diffusers/peft or kohya/A1111 format) are loaded as adapters with their scales, several at once,
without merging them into the weights. A missing path, or a hub id that cannot be reached, fails with a message
saying where it looked and how to point to local weights; a ControlNet, VAE or LoRA that does not fit the base
model fails before anything runs.

Example:
    >>> from rerender.config import ModelConfig, ControlConfig
    >>> pipe = load_pipeline(ModelConfig(base_model="models/sd15", vae=None),     # doctest: +SKIP
    ...                      [ControlConfig(model="models/control_canny")])
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rerender.config import FAMILY_NAMES as config_family_names
from rerender.config import UNION_MODES, ControlConfig, LoraConfig, ModelConfig
from rerender.diffusion.control import union_control_mode
from rerender.errors import CheckpointError, ConfigError, InputNotFoundError
from rerender.weights import (  # family detection reads configs and file headers only: it lives with the weights
    LORA_WEIGHT_NAME,
    SDXL_FP16_VAE,
    SINGLE_FILE_SUFFIXES,
    cached_lora_file,
    checkpoint_keys,
    checkpoint_shapes,
    detect_family,
    detect_family_or_none,
    family_of_unet_config,
    hub_offline,
    is_hub_id,
    lora_file_name,
    read_json_file,
    register_family_detector,
    renamed_safetensors_hint,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SD15_CONFIG_DIR",
    "SDXL_CONFIG_DIR",
    "FAMILY_NAMES",
    "detect_family",
    "family_of_unet_config",
    "single_file_config_for",
    "register_family_detector",
    "check_families",
    "check_ip_adapter_family",
    "SDXL_FP16_VAE",
    "SINGLE_FILE_SUFFIXES",
    "resolve_device",
    "resolve_dtype",
    "load_controlnet",
    "load_vae",
    "load_loras",
    "fetch_hub_loras",
    "load_pipeline",
    "load_transformer_pipeline",
    "TransformerFamily",
    "TRANSFORMER_FAMILIES",
    "transformer_parts",
    "transformer_lora_family",
    "config_class_name",
    "controlnet_family",
    "check_controlnet_fits",
    "check_model_sources",
    "quiet_loading",
    "loading_bars",
]

SD15_CONFIG_DIR = Path(__file__).parents[1] / "assets" / "sd15-config"
"""Diffusers configs of SD 1.5 (UNet, VAE, CLIP text encoder and tokenizer, DDIM scheduler, ControlNet), no weights:
the `config=` folder that lets single-file checkpoints load offline."""

SDXL_CONFIG_DIR = Path(__file__).parents[1] / "assets" / "sdxl-config"
"""Diffusers configs of SDXL base 1.0 (UNet, VAE, both CLIP text encoders and tokenizers, DDIM scheduler, ControlNet),
no weights: the `config=` folder that lets SDXL single-file checkpoints load offline."""

FAMILY_NAMES = config_family_names
"""How messages name each `ModelFamily` (`rerender.config.FAMILY_NAMES`)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" → CUDA if available, then MPS, else CPU; other names are checked and returned.

    Raises:
        ConfigError: an unknown name, or a device that is not available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not (device in ("cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", device)):
        raise ConfigError(f"`model.device` must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"`model.device` is {device!r} but CUDA is not available here; use 'auto' or 'cpu'")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ConfigError(
            f"`model.device` is {device!r} but this machine has {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use one of them, 'cuda' or 'auto'"
        )
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ConfigError("`model.device` is 'mps' but MPS (Apple GPU) is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def _warn_half_precision_on_cpu(dtype: torch.dtype, device: torch.device) -> None:
    """float16 on the CPU runs, but several times slower than float32 (few CPUs compute in half precision): say so."""
    if dtype == torch.float16 and device.type == "cpu":
        logger.warning(
            "`model.dtype` is 'float16' on the CPU, which runs several times slower than float32 there (and saves no "
            "time); use 'auto' (float32 on the CPU) unless memory is short"
        )


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | str = "cpu") -> torch.dtype:
    """ "auto" → float16 on CUDA, float32 elsewhere (half precision is slower than float32 on most CPUs).

    Raises:
        ConfigError: an unknown name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if dtype == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in names:
        raise ConfigError(f"`model.dtype` must be one of 'auto', {', '.join(map(repr, names))}, got {dtype!r}")
    return names[dtype]


# Third-party log messages that are known to be noise on our loading route, by logger and text. transformers
# announces, once per class and at import time, that CLIPImageProcessor and SiglipImageProcessor fall back to PIL
# without torchvision; diffusers imports both for IP-Adapters, which rerender never uses.
_SPURIOUS_MESSAGES = (("transformers.utils.import_utils", "requires torchvision (not installed)"),)


class _DropSpurious(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Drop the known-spurious third-party messages (`_SPURIOUS_MESSAGES`) while loading; every other message passes.

    The filters sit on the emitting loggers only for the duration of the block, so nothing is changed for the
    caller's own logging configuration.
    """
    installed = []
    for name, text in _SPURIOUS_MESSAGES:
        found = _DropSpurious(text)
        logging.getLogger(name).addFilter(found)
        installed.append((name, found))
    try:
        yield
    finally:
        for name, found in installed:
            logging.getLogger(name).removeFilter(found)


# --------------------------------------------------------------------------------------------------------
# where a source is, and what to say when it is not there
# --------------------------------------------------------------------------------------------------------


def _is_single_file(source: str) -> bool:
    return Path(source).suffix.lower() in SINGLE_FILE_SUFFIXES


def _is_hub_id(source: str) -> bool:
    return is_hub_id(source)


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _offline() -> bool:
    return hub_offline()


def _check_local(source: str, key: str) -> Path | None:
    """The local path of `source`, None for a hub id; raise if it names a path that does not exist."""
    if _is_hub_id(source):
        return None
    path = Path(source).expanduser()
    if not path.exists():
        from rerender.weights import missing_source_error

        raise missing_source_error(key, source, path)
    return path


def _hub_folder(source: str, key: str, dtype: torch.dtype, components: Sequence[str] = ()) -> Path:
    """The local folder of a hub id: its cached snapshot, else downloaded now (only the files rerender reads).

    Loading from the snapshot folder (rather than by hub id) keeps diffusers from asking for files rerender never
    reads, such as the safety checker, and so lets a cache made by `rerender download` load offline.
    """
    from rerender.weights import cached_folder, fetch_repository

    folder = cached_folder(source, components)
    if folder is not None:
        return folder
    from rerender.weights import hub_reachable

    if not hub_reachable():  # offline, or no network: fail now rather than after the hub client's retries
        raise _unreachable(key, source, FileNotFoundError("not in the Hugging Face cache"))
    try:
        return fetch_repository(source, half_precision=dtype == torch.float16, components=components)[0]
    except Exception as error:  # noqa: BLE001 - the hub raises many types (connection, 404, gated)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        raise _unreachable(key, source, error) from error


def _unreachable(key: str, source: str, error: BaseException) -> InputNotFoundError:
    offline = "HF_HUB_OFFLINE is set, so the hub was not contacted" if _offline() else "the hub could not be reached"
    return InputNotFoundError(
        f"`{key}` {source!r} could not be loaded: it is not a local path, it is not in the Hugging Face cache "
        f"({_hub_cache()!r}), and {offline} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
        f"Download it on a connected machine (`rerender download`, or `hf download {source}`) and copy the cache, "
        f"or pass a local folder (`hf download {source} --local-dir <folder>`), or point HF_HOME to a cache that holds it"
    )


def _dtype_argument(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``{"dtype": ...}`` for diffusers that accept it, else the older ``{"torch_dtype": ...}``."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (present since `dtype` exists)
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def _variant_argument(source: str, path: Path | None, dtype: torch.dtype, subfolder: str = "") -> dict[str, str]:
    """``{"variant": "fp16"}`` when only the fp16 weights are here (as `rerender download` fetches them for a GPU;
    in another `dtype` they are cast on loading, so a CPU run reads them too), else ``{}``; a hub id that is not
    cached downloads the full-precision files."""
    from rerender.weights import _cached

    prefix = f"{subfolder}/" if subfolder else ""

    def exists(name: str) -> bool:
        return (path / name).is_file() if path is not None else _cached(source, name)

    full = [f"{prefix}diffusion_pytorch_model{suffix}" for suffix in (".safetensors", ".bin")]
    half = [f"{prefix}diffusion_pytorch_model.fp16{suffix}" for suffix in (".safetensors", ".bin")]
    if path is not None and not path.is_dir():
        return {}
    return {"variant": "fp16"} if not any(map(exists, full)) and any(map(exists, half)) else {}


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:
        from huggingface_hub import errors as hub_errors

        errors += [
            getattr(hub_errors, name)
            for name in (
                "LocalEntryNotFoundError",
                "RepositoryNotFoundError",
                "EntryNotFoundError",
                "OfflineModeIsEnabled",
            )
            if hasattr(hub_errors, name)
        ]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def single_file_config_for(family: str) -> Path:
    """The shipped config folder single files of `family` load with."""
    return SDXL_CONFIG_DIR if family == "sdxl" else SD15_CONFIG_DIR


# --------------------------------------------------------------------------------------------------------
# components
# --------------------------------------------------------------------------------------------------------


def check_controlnet_fits(unet: torch.nn.Module, controlnet: torch.nn.Module, source: str = "controlnet") -> None:
    """Raise `ConfigError` unless a ControlNet's residuals fit the UNet (same family, e.g. SD 1.5 with SD 1.5).

    Compares the cross-attention width (768 for SD 1.5, 1024 for SD 2.x), the block widths and the latent
    channels, which decide whether the residual shapes match.
    """
    for name in ("cross_attention_dim", "block_out_channels", "in_channels"):
        unet_value = unet.config.get(name) if hasattr(unet.config, "get") else getattr(unet.config, name)
        control_value = (
            controlnet.config.get(name) if hasattr(controlnet.config, "get") else getattr(controlnet.config, name)
        )
        if isinstance(unet_value, (list, tuple)):
            unet_value, control_value = tuple(unet_value), tuple(control_value or ())
        if unet_value != control_value:
            raise ConfigError(
                f"ControlNet {source!r} does not fit the base model: its {name} is {control_value!r}, the UNet's is "
                f"{unet_value!r} (a ControlNet must be made for the same Stable Diffusion version, e.g. SD 1.5)"
            )


def load_controlnet(
    source: str,
    dtype: torch.dtype = torch.float32,
    single_file_config: str | os.PathLike = SD15_CONFIG_DIR / "controlnet",
):
    """Load a ControlNet (or a ControlNet Union, by its config) from a local folder, a single file (offline, with
    `single_file_config`), or a hub id.

    Raises:
        InputNotFoundError: a missing path, or a hub id that is neither cached nor reachable.
    """
    from diffusers import ControlNetModel, ControlNetUnionModel

    path = _check_local(source, "control.model")
    if path is None:
        path = _hub_folder(source, "control.model", dtype)
    if path is not None and path.is_dir() and _is_union(str(path)):
        ControlNetModel = ControlNetUnionModel  # noqa: N806 - the same loading calls, the Union class
    try:
        if path is not None and path.is_file():
            return ControlNetModel.from_single_file(
                str(path), config=str(single_file_config), local_files_only=True, **_dtype_argument(dtype)
            )
        return ControlNetModel.from_pretrained(
            str(path) if path is not None else source,
            **_dtype_argument(dtype),
            **_variant_argument(source, path, dtype),
        )
    except _hub_errors() as error:
        if path is not None:
            raise InputNotFoundError(f"`control.model` {source!r} is not a loadable ControlNet: {error}") from error
        raise _unreachable("control.model", source, error) from error


def load_vae(source: str, dtype: torch.dtype = torch.float32, single_file_config: str | os.PathLike = SD15_CONFIG_DIR):
    """Load a VAE (e.g. ``stabilityai/sd-vae-ft-mse``) from a folder, a single file, or a hub id.

    Raises:
        InputNotFoundError: as `load_controlnet`.
    """
    from diffusers import AutoencoderKL

    path = _check_local(source, "model.vae")
    if path is None:
        path = _hub_folder(source, "model.vae", dtype)
    try:
        if path is not None and path.is_file():
            return AutoencoderKL.from_single_file(
                str(path),
                config=str(single_file_config),
                subfolder="vae",
                local_files_only=True,
                **_dtype_argument(dtype),
            )
        location = str(path) if path is not None else source
        if path is not None and (path / "vae" / "config.json").is_file():
            return AutoencoderKL.from_pretrained(
                location, subfolder="vae", **_dtype_argument(dtype), **_variant_argument(source, path, dtype, "vae")
            )
        return AutoencoderKL.from_pretrained(
            location, **_dtype_argument(dtype), **_variant_argument(source, path, dtype)
        )
    except _hub_errors() as error:
        if path is not None:
            raise InputNotFoundError(f"`model.vae` {source!r} is not a loadable VAE: {error}") from error
        raise _unreachable("model.vae", source, error) from error


def check_hub_loras(loras: Sequence[LoraConfig]) -> None:
    """Refuse a hub-id LoRA that is neither cached nor downloadable now (offline), or whose file cannot be chosen
    (several ``.safetensors`` files, none named: `rerender.weights.lora_file_name`), before any frame is decoded.

    Raises:
        WeightsNotFoundError: naming `model.loras[i].path`, and how to fetch it.
        ConfigError: several files to choose from, listing them.
    """
    from rerender.errors import WeightsNotFoundError
    from rerender.weights import hub_reachable

    for position, lora in enumerate(loras):
        key = f"`model.loras[{position}].path`"
        if not _is_hub_id(lora.path) or cached_lora_file(lora, key) is not None:
            continue
        if hub_reachable():
            hub_lora_file(lora, key)  # several files and none named: refused now, listing them
        else:
            name = lora.weight_name or LORA_WEIGHT_NAME
            raise WeightsNotFoundError(
                f"`model.loras[{position}].path` {lora.path!r} is a hub id whose LoRA file ({name!r}) is not in the "
                f"Hugging Face cache ({_hub_cache()!r}) and the hub cannot be reached now; on a connected machine run "
                f"`hf download {lora.path} {name}`, or download the file and pass its path"
            )


def fetch_hub_loras(loras: Sequence[LoraConfig]) -> list[Path]:
    """Fetch into the Hugging Face cache the file of each hub-id LoRA that is not cached yet (one file, the one the
    loader reads: `hub_lora_file`), so that `check_families` reads its header, the same check preflight makes on a
    cached LoRA, and refuses one of another family before the base model is fetched or loaded. A LoRA the hub cannot
    give now (offline, unreachable, no such file) is left to the loader, which says why.

    Returns:
        The files fetched.

    Raises:
        ConfigError: a repository of several ``.safetensors`` files and none named (listing them).
    """
    from huggingface_hub import hf_hub_download

    from rerender.weights import hub_reachable

    fetched = []
    for position, lora in enumerate(loras):
        key = f"`model.loras[{position}].path`"
        if not _is_hub_id(lora.path) or cached_lora_file(lora, key) is not None or not hub_reachable():
            continue
        name = hub_lora_file(lora, key)
        if name is None:
            continue
        try:
            fetched.append(Path(hf_hub_download(lora.path, name)))
        except Exception as error:  # noqa: BLE001 - the hub raises many types; loading reports them with the option
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            logger.debug("could not fetch %s from %s: %s", name, lora.path, error)
            continue
        logger.info("LoRA %s: fetched %s", lora.path, name)
    return fetched


def load_loras(pipeline, loras: Sequence[LoraConfig]) -> list[str]:
    """Load LoRA adapters (diffusers or kohya format) and activate them together with their scales.

    The base weights are not changed (no fusing): ``pipeline.set_adapters(names, weights)`` can re-weight or
    switch them off later, and ``pipeline.unload_lora_weights()`` removes them.

    Returns:
        The adapter names, ``lora_0``, ``lora_1``, … in the order given.

    Raises:
        InputNotFoundError: a missing file or folder, or an unreachable hub id.
        ConfigError: a LoRA that does not fit the base model (wrong shapes, or no layer in common).
    """
    names = []
    for position, lora in enumerate(loras):
        key = f"model.loras[{position}].path"
        name = f"lora_{position}"
        path = _check_local(lora.path, key)
        if path is None:  # a cached hub LoRA loads from its file: offline, diffusers wants a weight_name
            path = cached_lora_file(lora, f"`{key}`")
        source = str(path) if path is not None else lora.path
        weight_name = lora.weight_name or (hub_lora_file(lora, f"`{key}`") if path is None else None)
        kwargs = {"weight_name": weight_name} if weight_name else {}
        if path is not None and path.is_file():  # folder + file name: older diffusers refuse a bare file offline
            source, kwargs = str(path.parent), {"weight_name": path.name}
        try:
            pipeline.load_lora_weights(source, adapter_name=name, **kwargs)
        except _hub_errors() as error:
            if path is None:
                raise _unreachable(key, lora.path, error) from error
            raise ConfigError(f"`{key}` {lora.path!r} could not be read as a LoRA: {error}") from error
        except (RuntimeError, ValueError, KeyError) as error:
            family = FAMILY_NAMES.get(getattr(pipeline, "family", None) or "")
            family = f"the base model's family, {family}" if family else "the base model's family"
            raise ConfigError(
                f"`{key}` {lora.path!r} does not fit the base model (a LoRA must be made for {family}): "
                f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
            ) from error
        loaded = {adapter for adapters in pipeline.get_list_adapters().values() for adapter in adapters}
        if name not in loaded:
            raise ConfigError(
                f"`{key}` {lora.path!r} matched no layer of the base model's UNet or text encoder; it is not a "
                "LoRA for this model (or not a LoRA file)"
            )
        names.append(name)
    if names:
        pipeline.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
        logger.info("LoRA adapters %s active with scales %s", names, [lora.scale for lora in loras])
    return names


def _controlnet_source(control: ControlConfig, position: int, base_path: Path | None, family: str = "sd15") -> str:
    """Where the ControlNet of `control` comes from: its `model`, else the `controlnet/` folder of a saved
    ControlNet pipeline given as the base model (first ControlNet only), else the family's default for its type."""
    if (
        control.model is None
        and position == 0
        and base_path is not None
        and (base_path / "controlnet" / "config.json").is_file()
    ):
        return str(base_path / "controlnet")
    return control.model_for(family)


def _local_config(source: str) -> dict | None:
    """The ``config.json`` of a local or cached model (folder or hub id), None when it is not here (or a single file)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return read_json_file(path / "config.json") if (path / "config.json").is_file() else None
    if not path.exists() and is_hub_id(source):
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "config.json")
        return read_json_file(Path(found)) if isinstance(found, str) else None
    return None


def _is_union(source: str) -> bool:
    config = _local_config(source)
    if config is not None:
        return config.get("_class_name") == "ControlNetUnionModel"
    return "union" in source.lower()


def _mismatch(what: str, source: str, its_family: str, family: str, base_model: str | None = None) -> ConfigError:
    """The refusal of `what` (`source`, made for `its_family`) on a base of `family`, naming both (and the base
    model, `base_model`, when given)."""
    base = f" ({base_model!r})" if base_model is not None else ""
    return ConfigError(
        f"{what} {source!r} is made for {FAMILY_NAMES.get(its_family, its_family)}, but the base model is "
        f"{FAMILY_NAMES.get(family, family)}{base}; use one made for {FAMILY_NAMES.get(family, family)}"
    )


_CROSS_ATTENTION_WIDTH = {768: "sd15", 2048: "sdxl"}


def _single_file_controlnet_family(path: Path) -> str | None:
    """The family a single-file ControlNet (A1111 ``control_model.*`` or diffusers key names) was made for, from the
    input width of a cross-attention key projection (768 SD 1.5, 2048 SDXL); None when the file does not tell or
    cannot be read (the loader then says why)."""
    try:
        shapes = checkpoint_shapes(path)
    except Exception:  # noqa: BLE001 - unreadable here: loading it names the file and the error
        return None
    key = next((key for key in sorted(shapes) if key.endswith("attn2.to_k.weight")), None)
    return _CROSS_ATTENTION_WIDTH.get(shapes[key][-1]) if key is not None else None


def _lora_family(path: Path, family: str, width: int | None) -> str | None:
    """The family a LoRA file was made for, from its key names (SDXL's second text encoder) and the input width of
    its cross-attention key projection against the base's (`width`); None when the file does not tell."""
    shapes = checkpoint_shapes(path)  # the header, read once for every check of this file
    if not shapes:
        return None
    if any(key.startswith(("lora_te2_", "text_encoder_2.", "te2.")) for key in shapes):
        return "sdxl"
    for key in sorted(shapes):
        if "attn2" in key and "to_k" in key and any(down in key for down in ("lora_down", "lora_A", "lora.down")):
            its_width = shapes[key][-1]
            if width is None or its_width == width:
                return _CROSS_ATTENTION_WIDTH.get(its_width, family if width is not None else None)
            return _CROSS_ATTENTION_WIDTH.get(its_width, "sd15" if family == "sdxl" else "sdxl")
    return None


def _lora_folder_file(folder: Path, lora: LoraConfig, key: str) -> Path:
    """The file a LoRA folder is read from (`rerender.weights.lora_file_name`: `lora.weight_name`, else diffusers'
    ``pytorch_lora_weights.safetensors``, else its only ``.safetensors`` file).

    Raises:
        ConfigError: the folder holds several ``.safetensors`` files and none is named (diffusers would pick one).
    """
    names = [file.name for file in folder.iterdir() if file.is_file()]
    name = lora_file_name(names, lora.weight_name, key=key, source=lora.path, kind="folder")
    return folder / (name or LORA_WEIGHT_NAME)


def lora_file(lora: LoraConfig, position: int) -> Path:
    """The file of `model.loras[position]` the checks read: the file given, a folder's (`_lora_folder_file`), a hub
    LoRA's cached one (`rerender.weights.cached_lora_file`); the path as given when it is not here.

    Raises:
        ConfigError: a folder or cached repository of several ``.safetensors`` files and none named.
    """
    key = f"`model.loras[{position}].path`"
    path = Path(lora.path).expanduser()
    if path.is_dir():
        return _lora_folder_file(path, lora, key)
    return (cached_lora_file(lora, key) or path) if _is_hub_id(lora.path) else path


def hub_lora_file(lora: LoraConfig, key: str) -> str | None:
    """The file of a hub-id LoRA that is not cached, from the hub's file list (`lora_file_name`); `lora.weight_name`
    when named, None when the hub cannot tell now (offline, unreachable, or the listing failed: loading says why).

    Raises:
        ConfigError: the repository holds several ``.safetensors`` files and none is named (listing them).
    """
    from rerender.weights import hub_reachable, repository_listing

    if lora.weight_name or not hub_reachable():
        return lora.weight_name

    try:
        files = repository_listing(lora.path).files
    except Exception as error:  # noqa: BLE001 - the hub raises many types; loading reports them with the option
        logger.debug("could not list %s: %s", lora.path, error)
        return None
    return lora_file_name(files, None, key=key, source=lora.path, kind="repository")


_FULL_CHECKPOINT_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner.")
"""Key prefixes of a whole model in the original (A1111 / Civitai) layout: UNet, VAE, text encoder(s)."""


def _refuse_non_lora(path: Path, key: str, source: str) -> None:
    """Refuse a ``.safetensors`` file without one LoRA weight (every LoRA format's key names hold "lora": kohya's
    ``lora_unet_*``, diffusers/peft's ``lora_A``/``lora_B``), from its header alone; a whole checkpoint is named so.

    Raises:
        ConfigError: naming `key` as the user spelled it, and what to pass instead.
    """
    if not path.is_file():
        return
    hint = renamed_safetensors_hint(path) if not path.suffix else ""
    if hint:  # diffusers would take it for a pickle (torch.load) and fail after the frames are decoded
        raise ConfigError(f"{key} {source!r} cannot be read as a LoRA{hint}")
    if path.suffix.lower() != ".safetensors":
        return
    keys = checkpoint_keys(path)
    if not keys or any("lora" in name.lower() for name in keys):
        return
    if any(name.startswith(_FULL_CHECKPOINT_PREFIXES) for name in keys):
        raise ConfigError(
            f"{key} {source!r} is a whole model checkpoint (UNet, VAE and text encoder weights), not a LoRA: pass it "
            "as the base model (`model.base_model`), or give a LoRA file"
        )
    raise ConfigError(f"{key} {source!r} holds no LoRA weights (no key name has 'lora'): it is not a LoRA file")


def _unet_config(base: Path | str, family: str) -> dict | None:
    """The base UNet's config (the shipped one for a single file), None when there is none."""
    path = Path(base)
    config = (
        path / "unet" / "config.json" if path.is_dir() else single_file_config_for(family) / "unet" / "config.json"
    )
    return read_json_file(config) if config.is_file() else None


def _cross_attention_width(base: Path | str, family: str) -> int | None:
    """The base UNet's cross-attention width, from its config (the shipped one for a single file)."""
    return (_unet_config(base, family) or {}).get("cross_attention_dim")


_FAMILY_VAE_SCALING = {"sd15": 0.18215, "sdxl": 0.13025}
"""The latent scale of each UNet family's VAE (`rerender/assets/*-config/vae/config.json`; SDXL's fp16-fix VAE
keeps 0.13025): two 4-channel VAEs are told apart by it."""
_VAE_SCALING_FAMILY = {scale: family for family, scale in _FAMILY_VAE_SCALING.items()}


def _not_a_sd_union(control: ControlConfig, position: int | None, source: str, config: dict) -> ConfigError:
    """The refusal of a `control_mode` on a UNet ControlNet that is no Union (one condition type)."""
    return ConfigError(
        f"`control[{position}].control_mode` is {control.control_mode}, but `control[{position}].model` "
        f"{source!r} is not a ControlNet Union (a {config.get('_class_name', 'ControlNet')}, one condition "
        "type): leave control_mode unset, or use a Union ControlNet"
    )


def not_a_flux_union(
    control: ControlConfig, position: int | None, source: str = "", config: Any = None
) -> ConfigError:
    """The refusal of a `control_mode` on a Flux ControlNet without modes (no ``num_mode`` in its config)."""
    where = "control" if position is None else f"control[{position}]"
    return ConfigError(
        f"`{where}.control_mode` is {control.control_mode!r}, but this Flux ControlNet is not a "
        "ControlNet Union (it has no modes: `num_mode` is not set in its config; it reads the kind of control "
        f"from the map): leave control_mode unset (--set control.{position or 0}.control_mode=null), or use a "
        "Union ControlNet (InstantX/FLUX.1-dev-Controlnet-Union)"
    )


@dataclass(frozen=True)
class UnionControlNets:
    """How one family's ControlNet config says it is a Union, and how many modes it has (`check_union_mode`)."""

    union_class: str
    """The ``_class_name`` a Union ControlNet of the family has."""
    count_field: str
    """Its config field holding the number of modes."""
    default_count: int | None
    """The number of modes when that field is absent; None = no field, no modes (not a Union)."""
    not_union: Callable[[ControlConfig, int | None, str, dict], ConfigError]
    """The refusal of a `control_mode` on a ControlNet of the family that is no Union."""


UNION_CONTROLNETS = {
    "sd15": UnionControlNets("ControlNetUnionModel", "num_control_type", 8, _not_a_sd_union),
    "sdxl": UnionControlNets("ControlNetUnionModel", "num_control_type", 8, _not_a_sd_union),
    "flux": UnionControlNets("FluxControlNetModel", "num_mode", None, not_a_flux_union),
}
"""Per family with a Union ControlNet: `ControlNetUnionModel`'s ``num_control_type`` (default 8) on SD, the Flux
ControlNet's ``num_mode`` (absent: one without modes) on Flux."""


def check_union_mode(control: ControlConfig, position: int, source: str, family: str) -> None:
    """Before any weights load, the condition mode of `control[position]` (ControlNet `source`) on a `family` base:
    with the ControlNet's ``config.json`` here (a folder, or a cached hub id), a Union (`UNION_CONTROLNETS[family]`)
    needs a mode it has (`union_control_mode`, against its mode count) and any other ControlNet takes none; without
    it, a mode name, or the condition of a ControlNet whose name says Union, must be one of the family's
    (`rerender.config.UNION_MODES`).

    Raises:
        ConfigError: naming `control[position]`'s option as the user wrote it.
    """
    table = UNION_CONTROLNETS.get(family)
    if table is None:
        return
    config = _local_config(source)
    if config is not None:
        is_union = config.get("_class_name") == table.union_class
        count = config.get(table.count_field, table.default_count) if is_union else None
        if count is not None:
            union_control_mode(control, count, family, position)
        elif control.control_mode is not None:
            raise table.not_union(control, position, source, config)
    elif isinstance(control.control_mode, str) or "union" in source.lower():  # not here yet: its names, at least
        union_control_mode(control, max(UNION_MODES[family].values()) + 1, family, position)


def check_families(model: ModelConfig, controls: Sequence[ControlConfig] = (), base_path: Path | None = None) -> str:
    """The base model's family, and a refusal of every ControlNet or LoRA made for another; no weights are loaded.

    Reads the base model's UNet config or checkpoint keys (`detect_family`), each local or cached ControlNet's
    ``config.json``, and each LoRA file's key names, so that a mismatch fails before the UNet is loaded.

    Raises:
        ConfigError: `model.family` contradicts the model, a ControlNet or LoRA of another family (naming both), or a
            ControlNet Union condition without a mode the model has (`control[i].control_mode`), a mode on a ControlNet
            that is not a Union, a 4-channel VAE of the other family (its `scaling_factor`).
    """
    family = detect_family(model.base_model if base_path is None else base_path)
    if model.family not in ("auto", family):
        raise ConfigError(
            f"`model.family` is {model.family!r}, but `model.base_model` {model.base_model!r} is a "
            f"{FAMILY_NAMES.get(family, family)} model ({family!r}); set model.family to 'auto' or {family!r}"
        )
    for position, control in enumerate(controls):
        source = _controlnet_source(control, position, base_path, family)
        config = _local_config(source)
        its_family = family_of_unet_config(config) if config is not None and "block_out_channels" in config else None
        if config is None and Path(source).expanduser().is_file():  # a single file: no config.json, its key widths
            its_family = _single_file_controlnet_family(Path(source).expanduser())
        if its_family is not None and its_family != family:
            raise _mismatch(f"`control[{position}].model`", source, its_family, family)
        check_union_mode(control, position, source, family)  # a Union takes a mode it has; any other none
    vae = _local_config(model.vae) if model.vae is not None else None
    if vae and vae.get("_class_name", "AutoencoderKL") != "AutoencoderKL":  # `load_vae` reads an AutoencoderKL
        raise ConfigError(
            f"`model.vae` {model.vae!r} is a {vae['_class_name']}, not a VAE (AutoencoderKL); name a VAE's folder "
            "(e.g. the base model's vae/), a VAE file or hub id, or leave it empty for the base model's own"
        )
    unet = _unet_config(base_path, family) if base_path is not None else None
    if vae and unet and vae.get("latent_channels", 4) != unet.get("in_channels", 4):  # as load_pipeline checks
        raise ConfigError(
            f"`model.vae` {model.vae!r} does not fit the base model: {vae.get('latent_channels', 4)} latent "
            f"channels, the UNet takes {unet.get('in_channels', 4)}"
        )
    its_family = _VAE_SCALING_FAMILY.get(vae.get("scaling_factor")) if vae else None
    if its_family is not None and its_family != family:  # same 4 channels, another latent scale: washed-out frames
        raise ConfigError(
            f"`model.vae` {model.vae!r} is made for {FAMILY_NAMES[its_family]} (scaling_factor "
            f"{vae['scaling_factor']}), but the base model is {FAMILY_NAMES.get(family, family)}: use a "
            f"{FAMILY_NAMES.get(family, family)} VAE (scaling_factor {_FAMILY_VAE_SCALING[family]}) or leave it empty"
        )
    width = _cross_attention_width(base_path, family) if base_path is not None else None
    for position, lora in enumerate(model.loras):
        path = lora_file(lora, position)
        _refuse_non_lora(path, f"`model.loras[{position}].path`", lora.path)
        its_family = _lora_family(path, family, width) if path.is_file() else None
        if its_family is not None and its_family != family:
            raise _mismatch(f"`model.loras[{position}].path`", lora.path, its_family, family, model.base_model)
    return family


def check_ip_adapter_family(family: str, path: str | os.PathLike) -> None:
    """Refuse an IP-Adapter file made for another family than `family` (reads the header only).

    Raises:
        ConfigError: naming both families.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        keys = [key for key in handle.keys() if key.endswith(".to_k_ip.weight")]
        if not keys:
            return
        width = handle.get_slice(keys[0]).get_shape()[-1]
    its_family = {768: "sd15", 2048: "sdxl"}.get(width)
    if its_family is not None and its_family != family:
        raise _mismatch("the IP-Adapter", str(path), its_family, family)


def check_model_sources(
    model: ModelConfig, controls: Sequence[ControlConfig] = (), check_controlnets: bool = True
) -> Path | None:
    """Check that every local path the config names exists (hub ids are checked when loaded); cheap, no loading.

    Returns:
        The local path of the base model, or None when it is a hub id.

    Raises:
        InputNotFoundError: a named path does not exist (the message says where it looked).
    """
    base_path = _check_local(model.base_model, "model.base_model")
    for position, control in enumerate(controls):
        if check_controlnets and control.model is not None:
            _check_local(control.model, f"control[{position}].model")
    if model.vae is not None:
        _check_local(model.vae, "model.vae")
    for position, lora in enumerate(model.loras):
        _check_local(lora.path, f"model.loras[{position}].path")
    return base_path


class _QuietLoading:
    """The runs inside ``loading_bars(False)`` now: diffusers' and transformers' progress-bar switches are global,
    so they are turned off when the first such run enters and restored (to what they were then) when the last one
    leaves. Turning them back on when any one run leaves would show the bars of another run still loading quietly.
    """

    lock = threading.Lock()
    holders = 0
    restore: list[Callable[[], None]] = []

    @classmethod
    def enter(cls) -> None:
        import importlib

        with cls.lock:
            if cls.holders == 0:
                for name in ("diffusers.utils.logging", "transformers.utils.logging"):
                    try:
                        module = importlib.import_module(name)
                    except ImportError:  # pragma: no cover - both are dependencies
                        continue
                    if module.is_progress_bar_enabled():
                        module.disable_progress_bar()
                        cls.restore.append(module.enable_progress_bar)
            cls.holders += 1

    @classmethod
    def leave(cls) -> None:
        with cls.lock:
            cls.holders -= 1
            if cls.holders == 0:
                for enable in cls.restore:
                    enable()
                cls.restore.clear()


@contextlib.contextmanager
def loading_bars(enabled: bool = True) -> Iterator[None]:
    """With ``enabled=False``: no progress bars from diffusers or transformers while models load (their own
    global switches, restored afterwards), so that ``progress=False`` turns off every bar a call draws.

    Safe for concurrent runs (threads of one process): the switches stay off until the last quiet run leaves, and
    a run with bars on never turns them on. Being the libraries' global switches, a run with ``enabled=True`` that
    loads while a quiet one does shows no loading bars meanwhile (its denoising bars are its pipeline's own:
    `denoising_bars`).

    Example:
        >>> with loading_bars(False):
        ...     pass  # load models here
    """
    if enabled:
        yield
        return
    _QuietLoading.enter()
    try:
        yield
    finally:
        _QuietLoading.leave()


@contextlib.contextmanager
def denoising_bars(pipeline: Any, enabled: bool = True) -> Iterator[None]:
    """With ``enabled=False``: no per-pass denoising bars from `pipeline` (diffusers' ``set_progress_bar_config``,
    its own setting restored afterwards), as `loading_bars` for loading: Z-Image and Flux draw one per pass.

    Example:
        >>> with denoising_bars(object(), False):
        ...     pass  # run the pipeline here
    """
    if enabled or not hasattr(pipeline, "set_progress_bar_config"):
        yield
        return
    restore = dict(getattr(pipeline, "_progress_bar_config", None) or {})
    pipeline.set_progress_bar_config(**{**restore, "disable": True})
    try:
        yield
    finally:
        pipeline.set_progress_bar_config(**restore)


def load_pipeline(
    model: ModelConfig | str | os.PathLike | None = None,
    controls: Sequence[ControlConfig] | ControlConfig = (ControlConfig(),),
    *,
    controlnets: Sequence[torch.nn.Module] | None = None,
    single_file_config: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
):
    """Build a `RerenderPipeline` from the `model` and `control` sections of the config.

    Args:
        model: base model, VAE, LoRAs, dtype, device, offload and tiling; a folder, file or hub id alone (the
            base model, every other option its default); None = `ModelConfig()`.
        controls: one entry per ControlNet; each `ControlConfig.resolved_model` is loaded unless `controlnets`
            gives the models; empty: no ControlNet (what `generate` needs: it renders from text alone).
        controlnets: already loaded ControlNets (skips loading them).
        single_file_config: the diffusers config folder for single-file checkpoints (default: the shipped one of
            the detected family, `SD15_CONFIG_DIR` or `SDXL_CONFIG_DIR`).
        device: overrides `model.device`.
        dtype: overrides `model.dtype`.

    The family (`ModelFamily`) is detected from the model before any weights load (`check_families`), and logged.
    SDXL in float16: the SDXL VAE overflows in half precision, so unless `model.vae` is set the fp16-fixed VAE
    (`SDXL_FP16_VAE`) is used when it is on this machine or the hub is reachable; otherwise the model's VAE stays
    in float32. Several conditions of one ControlNet Union (the same `model`) load that model once.

    Returns:
        The pipeline on its device, LoRAs active, offload/tiling as configured.

    Raises:
        InputNotFoundError: a missing path or an unreachable hub id (the message says where it looked).
        ConfigError: a ControlNet, VAE or LoRA that does not fit the base model (another family: named before
            the UNet loads); bad device or dtype.
    """
    if isinstance(model, (str, os.PathLike)):  # a folder, file or hub id, as diffusers' `from_pretrained` takes one
        model = ModelConfig(base_model=os.fspath(model))
    elif model is not None and not isinstance(model, ModelConfig):
        raise ConfigError(
            "`model` must be a ModelConfig (config.model, with config.control as `controls`), a model's folder, "
            f"file or hub id, or None, got a {type(model).__name__}"
        )
    controls = (controls,) if isinstance(controls, ControlConfig) else controls
    if not all(isinstance(control, ControlConfig) for control in controls):
        raise ConfigError(f"`controls` must be ControlConfig objects (config.control), got {controls!r}")
    with quiet_loading():
        family = None if model is None else model.family if model.family != "auto" else detect_family_or_none(model)
        if family in TRANSFORMER_FAMILIES:  # a flow-matching transformer: its own components
            controlnet = controlnets[0] if controlnets else None
            pipeline = load_transformer_pipeline(
                model, controls, family=family, controlnet=controlnet, device=device, dtype=dtype
            )
        else:
            pipeline = _load_pipeline(model, controls, controlnets, single_file_config, device, dtype)
    model = model or ModelConfig()  # what it was read from: a run given it beside other weights says so (preflight)
    pipeline._rerender_sources = {"base_model": model.base_model, "vae": model.vae}
    return pipeline


# --------------------------------------------------------------------------------------------------------
# flow-matching transformers (Z-Image, Flux): one loader, a table of what differs
# --------------------------------------------------------------------------------------------------------

TRANSFORMER_FAMILIES = ("zimage", "flux")
"""The `ModelFamily` values that are flow-matching transformers, loaded by `load_transformer_pipeline`."""


@dataclass(frozen=True)
class TransformerFamily:
    """What `load_transformer_pipeline` needs of one transformer family (`transformer_parts`)."""

    family: str
    """The `ModelFamily` value."""
    pipeline_class: type
    """The Rerender pipeline class (``from_pretrained`` on the repository folder)."""
    components: tuple[str, ...]
    """The repository sub-folders the pipeline reads (what a hub id downloads)."""
    load_controlnet: Callable[[str, torch.dtype], torch.nn.Module]
    """``load_controlnet(source, dtype)``; refuses a ControlNet of another family (naming both)."""
    is_controlnet: Callable[[str], bool | None]
    """Whether a source is this family's ControlNet, None when its files cannot tell."""
    default_controlnet: str | None
    """The ControlNet an empty `control.model` means; None = the user must name one."""
    controlnet_advice: str
    """What to say when `control.model` is empty and there is no default, or when several are listed."""


def transformer_parts(family: str) -> TransformerFamily:
    """The `TransformerFamily` of "zimage" or "flux" (imports its module).

    Raises:
        ConfigError: another family.
    """
    if family == "zimage":
        from rerender.diffusion import zimage

        return TransformerFamily(
            "zimage",
            zimage.RerenderZImagePipeline,
            tuple(zimage.ZIMAGE_COMPONENTS),
            zimage.load_zimage_controlnet,
            zimage.is_zimage_controlnet,
            zimage.DEFAULT_ZIMAGE_CONTROLNET,
            "Z-Image takes one (the Union ControlNet reads several kinds of map)",
        )
    if family == "flux":
        from rerender.diffusion import flux

        return TransformerFamily(
            "flux",
            flux.RerenderFluxPipeline,
            tuple(flux.FLUX_COMPONENTS),
            flux.load_flux_controlnet,
            flux.is_flux_controlnet,
            None,
            "Flux takes one Flux ControlNet (e.g. InstantX/FLUX.1-dev-Controlnet-Canny; a Union one takes "
            "control.control_mode, else the mode of control.type)",
        )
    raise ConfigError(f"{family!r} is not a transformer family; use one of {', '.join(TRANSFORMER_FAMILIES)}")


def config_class_name(config_file: Path) -> str:
    """The ``_class_name`` a diffusers ``config.json``/``model_index.json`` names; "" when unreadable."""
    return str(read_json_file(Path(config_file)).get("_class_name", ""))


def transformer_lora_family(source: str | os.PathLike) -> str | None:
    """The family a LoRA file was made for, read from its keys: "sd" (a UNet's), "flux", "zimage", or None.

    UNet LoRAs name ``down_blocks``/``up_blocks``/``mid_block`` (diffusers) or ``input_blocks``/``output_blocks``/
    ``middle_block`` (original) modules; Flux LoRAs name ``transformer_blocks``/``single_transformer_blocks``
    (diffusers) or ``double_blocks``/``single_blocks`` (original, kohya ``lora_unet_double_blocks_…``); Z-Image
    LoRAs name ``layers.<i>.attention`` (diffusers ``transformer.`` prefix or the original ``diffusion_model.`` one).
    """
    path = Path(source)
    if not (path.is_file() and path.suffix == ".safetensors"):
        return None
    keys = checkpoint_keys(path)
    unet = ("down_blocks", "up_blocks", "mid_block", "input_blocks", "output_blocks", "middle_block")
    if any(marker in key for key in keys for marker in unet):
        return "sd"
    if any(marker in key for key in keys for marker in ("double_blocks", "single_blocks", "transformer_blocks")):
        return "flux"
    if any(".layers." in key and "attention" in key for key in keys) or any(key.startswith("layers.") for key in keys):
        return "zimage"
    return None


_CONTROLNET_CLASSES = {
    "ZImageControlNetModel": "zimage",
    "FluxControlNetModel": "flux",
    "FluxMultiControlNetModel": "flux",
}


def controlnet_family(source: str) -> str | None:
    """The family a local or cached ControlNet was made for, from its ``config.json`` (no weights are read):
    "sd15"/"sdxl" for a UNet ControlNet (`family_of_unet_config`), "zimage", "flux"; None when it cannot tell."""
    config = _local_config(source)
    if config is None:
        return None
    name = str(config.get("_class_name", ""))
    if name in _CONTROLNET_CLASSES:
        return _CONTROLNET_CLASSES[name]
    return family_of_unet_config(config) if "block_out_channels" in config else None


def _transformer_dtype(wanted: str | torch.dtype, device: torch.device) -> torch.dtype:
    """`resolve_dtype`, but "auto" is bfloat16 on CUDA: the transformers are trained and published in bf16."""
    if wanted == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return resolve_dtype(wanted, device)


def check_transformer_sources(model: ModelConfig, controls: Sequence[Any], family: str) -> str | None:
    """Refuse, before any weights load, what does not fit a transformer base: `model.vae`, several ControlNets,
    no ControlNet where the family has no default, a ControlNet or LoRA of another family (naming both), on Flux a
    `control_mode` its ControlNet does not have (`check_union_mode`).

    Returns:
        The ControlNet source to load (None without control).

    Raises:
        ConfigError: as above.
    """
    parts, name = transformer_parts(family), FAMILY_NAMES[family]
    if model.vae is not None:
        raise ConfigError(
            f"`model.vae` {model.vae!r} does not apply to {name} (its 16-channel VAE is part of the model); "
            "leave it empty"
        )
    if len(controls) > 1:
        raise ConfigError(f"`control` lists {len(controls)} ControlNets; {parts.controlnet_advice}")
    source = None
    if controls:
        source = controls[0].model or parts.default_controlnet
        if not source:
            raise ConfigError(
                f"`control[0].model` must name a {name} ControlNet when the base model is {name} (the default "
                f"ControlNets are Stable Diffusion ones; CLI: --set control.0.model=ID): {parts.controlnet_advice}"
            )
        its_family = controlnet_family(source)
        if its_family is not None and its_family != family:
            raise _mismatch("`control[0].model`", source, its_family, family)
        if parts.is_controlnet(source) is False:
            parts.load_controlnet(source, torch.float32)  # raises, naming the family, before the big model
        check_union_mode(controls[0], 0, source, family)  # Flux: its Union's mode, by the model's `num_mode`
    for position, lora in enumerate(model.loras):
        its_family = transformer_lora_family(lora_file(lora, position))
        if its_family is not None and its_family != family:
            made_for = "a Stable Diffusion UNet" if its_family == "sd" else FAMILY_NAMES[its_family]
            raise ConfigError(
                f"`model.loras[{position}].path` {lora.path!r} is a LoRA for {made_for} ({its_family}); the base "
                f"model is {name} (a transformer): use a LoRA made for {name}"
            )
    return source


def load_transformer_pipeline(
    model: ModelConfig,
    controls: Sequence[Any] = (),
    *,
    family: str,
    controlnet: torch.nn.Module | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
):
    """Build a flow-matching transformer pipeline (`RerenderZImagePipeline`, `RerenderFluxPipeline`) from the
    `model` and `control` config sections, as `load_pipeline` does for SD.

    What differs per family is one `TransformerFamily` (`transformer_parts`). Everything that does not fit is
    refused before the transformer loads (`check_transformer_sources`); `model.vae` does not apply. LoRAs load
    through diffusers' LoRA loader of the family. Default dtype: bfloat16 on CUDA.

    Args:
        model: the `model` section.
        controls: the `control` section (one entry at most).
        family: "zimage" or "flux".
        controlnet: an already loaded ControlNet (skips loading `controls[0].model`).
        device: overrides `model.device`.
        dtype: overrides `model.dtype`.

    Raises:
        ConfigError: see `check_transformer_sources`.
        InputNotFoundError: a missing path or an unreachable hub id.
    """
    parts = transformer_parts(family)
    resolved_device = resolve_device(device if device is not None else model.device)
    resolved_dtype = _transformer_dtype(dtype if dtype is not None else model.dtype, resolved_device)
    _warn_half_precision_on_cpu(resolved_dtype, resolved_device)
    fetch_hub_loras(model.loras)  # small: its family is checked now, before the transformer is fetched or loaded
    source = check_transformer_sources(model, controls if controlnet is None else (), family)
    base_path = _check_local(model.base_model, "model.base_model")
    if base_path is None:
        base_path = _hub_folder(model.base_model, "model.base_model", resolved_dtype, parts.components)
    if source is not None:
        controlnet = parts.load_controlnet(source, resolved_dtype)
    try:
        pipeline = parts.pipeline_class.from_pretrained(
            str(base_path), controlnet=controlnet, **_dtype_argument(resolved_dtype)
        )
    except _hub_errors() as error:
        raise _unreachable("model.base_model", model.base_model, error) from error
    load_loras(pipeline, model.loras)
    if model.cpu_offload and resolved_device.type != "cpu":
        pipeline.enable_model_cpu_offload(device=resolved_device)
    else:
        pipeline.to(resolved_device)
    logger.info(
        "loaded %s from %s (%s, %s)%s",
        FAMILY_NAMES[family],
        model.base_model,
        resolved_device,
        resolved_dtype,
        "" if controlnet is None else f" with the ControlNet {source or 'given'}",
    )
    return pipeline


def _load_controlnets(controls, base_path, family, dtype):
    """The ControlNets of `controls`: one model each, or one ControlNet Union serving every condition."""
    sources = [_controlnet_source(control, position, base_path, family) for position, control in enumerate(controls)]
    unions = [source for source in sources if _is_union(source)]
    if unions:
        if len(set(sources)) != 1:
            raise ConfigError(
                f"a ControlNet Union ({unions[0]!r}) takes every condition itself: `control[].model` must name it "
                f"for every control, got {sources}"
            )
        return [load_controlnet(sources[0], dtype, single_file_config_for(family) / "controlnet")], sources[:1]
    config = single_file_config_for(family) / "controlnet"
    return [load_controlnet(source, dtype, config) for source in sources], sources


def _fp16_vae(model: ModelConfig, family: str, dtype: torch.dtype):
    """SDXL in float16 without a chosen VAE: the fp16-fixed VAE when here or reachable, else None."""
    if family != "sdxl" or dtype != torch.float16 or model.vae is not None:
        return None
    from rerender.weights import cached_folder, hub_reachable

    if cached_folder(SDXL_FP16_VAE) is None and not hub_reachable():
        logger.info("%s is not here and the hub is unreachable: the SDXL VAE runs in float32", SDXL_FP16_VAE)
        return None
    try:
        return load_vae(SDXL_FP16_VAE, dtype)
    except InputNotFoundError as error:
        logger.warning("%s could not be loaded (%s): the SDXL VAE runs in float32", SDXL_FP16_VAE, error)
        return None


def _load_pipeline(model, controls, controlnets, single_file_config, device, dtype):
    from diffusers import DDIMScheduler

    from rerender.diffusion.pipeline import RerenderPipeline

    model = model if model is not None else ModelConfig()
    resolved_device = resolve_device(device if device is not None else model.device)
    resolved_dtype = resolve_dtype(dtype if dtype is not None else model.dtype, resolved_device)
    _warn_half_precision_on_cpu(resolved_dtype, resolved_device)
    base_path = check_model_sources(model, controls, check_controlnets=controlnets is None)
    fetch_hub_loras(model.loras)  # small: its family is checked now, before the base model is fetched or loaded
    family = check_families(model, controls if controlnets is None else (), base_path)
    logger.info("base model %s: %s", model.base_model, FAMILY_NAMES.get(family, family))
    # SDXL in float16: the fp16-fixed VAE when here (or reachable), before the base, whose own VAE is then not read
    fixed_vae = _fp16_vae(model, family, resolved_dtype) if model.vae is None else None
    if base_path is None:
        from rerender.weights import base_components

        separate_vae = model.vae is not None or fixed_vae is not None
        base_path = _hub_folder(
            model.base_model, "model.base_model", resolved_dtype, base_components(separate_vae, family)
        )
    single_file_config = single_file_config if single_file_config is not None else single_file_config_for(family)

    sources = [str(index) for index in range(len(controlnets))] if controlnets is not None else None
    if controlnets is None:
        controlnets, sources = _load_controlnets(controls, base_path, family, resolved_dtype)
        for position, (net, source) in enumerate(zip(controlnets, sources)):  # e.g. fetched just now: before the UNet
            its_family = family_of_unet_config(dict(net.config))
            if its_family != family:
                raise _mismatch(f"`control[{position}].model`", source, its_family, family)
    if not controlnets:  # `generate` (Text2Video-Zero) uses no control: none is loaded
        controlnet = None
    elif len(controlnets) == 1:
        controlnet = controlnets[0]
    else:  # diffusers' loader type-checks components: several ControlNets travel as one MultiControlNetModel
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        controlnet = MultiControlNetModel(list(controlnets))
    components = {"controlnet": controlnet}
    if model.vae is not None:
        components["vae"] = load_vae(model.vae, resolved_dtype, single_file_config)
    elif fixed_vae is not None:
        components["vae"] = fixed_vae
        logger.info("SDXL in float16: the VAE is %s (the model's own overflows in float16)", SDXL_FP16_VAE)

    try:
        if base_path is not None and base_path.is_file():
            try:
                pipeline = RerenderPipeline.from_single_file(
                    str(base_path),
                    config=str(single_file_config),
                    local_files_only=True,
                    **_dtype_argument(resolved_dtype),
                    **components,
                )
            except (
                ValueError,
                KeyError,
                RuntimeError,
            ) as error:  # diffusers' conversion names neither file nor option
                raise CheckpointError(
                    f"`model.base_model` {model.base_model!r} is an {FAMILY_NAMES.get(family, family)} checkpoint "
                    f"diffusers cannot read ({error}); a single file must hold the whole model in the original "
                    "(A1111 / Civitai) layout: UNet, VAE and text encoder(s); for a UNet-only file, give the "
                    "diffusers folder of the model it belongs to"
                ) from error
        else:
            location = str(base_path) if base_path is not None else model.base_model
            scheduler = DDIMScheduler.from_pretrained(location, subfolder="scheduler")
            pipeline = RerenderPipeline.from_pretrained(
                location,
                scheduler=scheduler,
                **_dtype_argument(resolved_dtype),
                **components,
                **_variant_argument(model.base_model, base_path, resolved_dtype, "unet"),
            )
    except _hub_errors() as error:
        if base_path is not None:
            raise InputNotFoundError(
                f"`model.base_model` {model.base_model!r} is not a loadable model: {error}"
            ) from error
        raise _unreachable("model.base_model", model.base_model, error) from error

    for net, source in zip(pipeline.controlnets, sources):
        check_controlnet_fits(pipeline.unet, net, source)
    if pipeline.vae.config.latent_channels != pipeline.unet.config.in_channels:
        raise ConfigError(
            f"`model.vae` {model.vae!r} does not fit the base model: {pipeline.vae.config.latent_channels} latent "
            f"channels, the UNet takes {pipeline.unet.config.in_channels}"
        )
    if resolved_dtype == torch.float16 and pipeline.vae.config.get("force_upcast", False):
        pipeline.vae.to(torch.float32)  # SDXL's VAE overflows in float16 (NaN, black frames): keep it in float32
        logger.info("the VAE overflows in float16 (force_upcast): it runs in float32")
    load_loras(pipeline, model.loras)
    if model.vae_tiling:
        pipeline.vae.enable_tiling()
    if model.cpu_offload:
        if resolved_device.type == "cpu":
            logger.warning("`model.cpu_offload` has no effect on the CPU; ignored")
            pipeline.to(resolved_device)
        else:
            pipeline.enable_model_cpu_offload(device=resolved_device)
    else:
        pipeline.to(resolved_device)
    pipeline.set_progress_bar_config(disable=None)
    return pipeline
