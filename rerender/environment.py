"""What `rerender env` reports: versions, devices, optional components, where weights are looked for, which are
present, the family of the keyframe model (read from its configs, no weights loaded), the propagation engine and
device that "auto" resolves to here, and whether `translate` will run diffusion or fall back.

Imports flow one way: this module reads `rerender.weights`, `rerender.flow`, `rerender.propagation` and the model
checks of `rerender.workflow.preflight` (what a run refuses); none of them imports it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

from rerender.weights import rerender_cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from rerender.config import RerenderConfig

__all__ = [
    "collect_environment",
    "rerender_cache_dir",
    "weight_search_paths",
    "model_report",
    "family_report",
    "propagation_report",
]

CORE_PACKAGES = (
    "rerender",
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "peft",
    "kornia",
    "opencv-contrib-python-headless",
    "numpy",
    "numba",
    "av",
    "scipy",
)
OPTIONAL_PACKAGES = {
    "controlnet-aux": "HED/lineart/depth/openpose annotators (extra `annotators`; needs torchvision)",
    "torchvision": "needed by controlnet-aux",
    "xformers": "memory-efficient attention on CUDA (optional; SDPA is used otherwise)",
}


def weight_search_paths() -> dict[str, str]:
    """Where model weights are looked for: the Hugging Face hub cache and rerender's own folder."""
    try:
        from huggingface_hub import constants

        hub_cache = constants.HF_HUB_CACHE
        offline = bool(constants.HF_HUB_OFFLINE)
    except Exception:  # noqa: BLE001 - report what we can
        hub_cache, offline = os.path.expanduser("~/.cache/huggingface/hub"), False
    return {
        "huggingface_hub_cache": str(hub_cache),
        "huggingface_offline": str(offline),
        "rerender_home": str(rerender_cache_dir()),
        "gmflow_checkpoint": _gmflow_location(),
    }


def _gmflow_location() -> str:
    try:
        from rerender.flow import find_gmflow_checkpoint

        found = find_gmflow_checkpoint()
    except Exception:  # noqa: BLE001 - torch missing or broken: report, do not fail
        found = None
    if found is not None:
        return str(found)
    return f"not found (put gmflow_sintel-0c07dcb3.pth in {rerender_cache_dir()} or set flow.flow_checkpoint)"


def model_report(config: RerenderConfig | None = None) -> dict[str, Any]:
    """Which weights `config` (default: the built-in defaults) names, whether each is here, and what translate does.

    Returns:
        ``{"sources": [{"role", "key", "location", "present", "downloadable", "optional"}], "translate": str,
        "fetch": [commands]}`` (an optional source, SDXL's fp16-fixed VAE, is used when here);
        ``translate`` is "diffusion", or says that the library raises and the CLI falls back to the classic stylizer,
        or starts with "refused: " and says why `translate` refuses the model files, in its words (`_refusal`: a local
        folder that is no base model, a ControlNet of another family, a Flux base without a ControlNet named, …).
    """
    from rerender.config import RerenderConfig
    from rerender.weights import extra_sources, fetch_commands, hub_reachable, missing_weights, weight_sources

    config = config if config is not None else RerenderConfig()
    online = hub_reachable()
    sources = weight_sources(config)
    if sources and sources[-1].role == "GMFlow" and not sources[-1].present:
        found = _gmflow_location()  # also looks in torch hub's folder
        if not found.startswith("not found"):
            sources[-1] = type(sources[-1])(
                **{**sources[-1].__dict__, "present": True, "location": found, "is_hub": False}
            )
    sources += extra_sources(config)[0]  # the prompt's translation model, the IP-Adapter
    missing = missing_weights(config)
    refused = _refusal(config)
    if refused:
        verdict = f"refused: {refused}"
    elif not missing:
        verdict = "diffusion"
    else:
        verdict = (
            "classic stylizer: the CLI (--renderer auto) falls back with a warning; the library "
            "(renderer='diffusion') raises WeightsNotFoundError"
        )
    absent = [source for source in sources if source.is_hub and not source.present]
    if _download_refusal(config):  # `rerender download` refuses the same file or path: no command that cannot work
        absent = []
    return {
        "sources": [
            {
                "role": source.role,
                "key": source.key,
                "location": source.location,
                "present": source.present,
                "downloadable": source.present or (source.is_hub and online),
                "optional": source.optional,
            }
            for source in sources
        ],
        "translate": verdict,
        "fetch": fetch_commands(config, absent) if absent else [],
    }


def _download_refusal(config: RerenderConfig) -> str | None:
    """Why `rerender download` would refuse `config` before fetching anything: the sound prompt's file (missing, no
    audio, silent), a local path the config names that is not there (`check_model_sources`); None when it would not."""
    from rerender.diffusion.loading import check_model_sources
    from rerender.errors import RerenderError
    from rerender.sound import check_audio_prompt

    try:
        if config.prompt.audio_prompt not in (None, "source"):
            check_audio_prompt(config.prompt.audio_prompt, None, config.prompt.audio_vocabulary)
        check_model_sources(config.model, config.control)
    except RerenderError as error:
        return str(error)
    return None


def _refusal(config: RerenderConfig) -> str | None:
    """Why `translate` refuses the model files of `config` before any loads, in its own words: the one check a run
    makes (`rerender.workflow.preflight.check_model_files`: the base model, its ControlNets, LoRAs, VAE and
    IP-Adapter, for every family; the IP-Adapter's weights, here or fetchable; `check_prompt_inputs`: the sound prompt
    and its CLAP model, the translation model);
    None when a run accepts them (or the classic stylizer renders: no model)."""
    from rerender.errors import RerenderError
    from rerender.workflow.preflight import check_model_files, check_prompt_inputs, check_style_image

    try:
        # the sound prompt (its file and CLAP model) and a prompt not in English (its translation model), as the run
        # checks them whatever the renderer; 'source' is the video's sound, unknown here
        check_prompt_inputs(config, video_known=False)
        if config.model.renderer == "classic":
            check_style_image(config, used=False)  # unused, but a run still refuses a bad image
            return None
        check_model_files(config)
        check_style_image(config, used=config.prompt.uses_style_image)  # its IP-Adapter, as the run checks it
    except RerenderError as error:
        return str(error)
    return None


def family_report(config: RerenderConfig | None = None) -> dict[str, Any]:
    """The family of `config`'s base model and how it is known, without loading any weights.

    Returns:
        ``{"base_model", "family", "label", "how", "error"}``: ``family`` a `ModelFamily` ("sd15", "sdxl", "zimage",
        "flux") or None when the model cannot be read (``error`` says why); ``how`` says where it was read
        (`model.family`, the model's configs or checkpoint keys, or, when it is not cached, its file list on the hub or
        else its hub id's name).
    """
    from rerender.config import RerenderConfig
    from rerender.errors import ConfigError
    from rerender.weights import cached_folder, detect_family, family_from_hub_files, is_hub_id

    config = config if config is not None else RerenderConfig()
    model = config.model
    labels = {"sd15": "SD 1.5", "sdxl": "SDXL", "zimage": "Z-Image", "flux": "Flux"}
    if model.family != "auto":
        how = "set by `model.family`"
    elif not is_hub_id(model.base_model):
        how = "read from the model's configs or checkpoint keys (no weights loaded)"
    elif cached_folder(model.base_model) is not None or _cached_config(model.base_model):
        how = "read from the cached model's configs (no weights loaded)"
    elif family_from_hub_files(model.base_model) is not None:  # as detect_family reads it, when the hub answers
        how = "read from its file list on the hub (not cached: `rerender download` fetches it)"
    else:
        how = "guessed from the hub id's name (not cached: `rerender download` fetches it)"
    try:
        family = model.family if model.family != "auto" else detect_family(model.base_model)
        error = None
    except (ConfigError, OSError) as failure:
        family, error, how = None, str(failure), "not readable"
    return {
        "base_model": model.base_model,
        "family": family,
        "label": labels.get(family or "", family),
        "how": how,
        "error": error,
    }


def _cached_config(repository: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(try_to_load_from_cache(repository, name), str) for name in ("unet/config.json", "model_index.json")
    )


def propagation_report(config: RerenderConfig | None = None) -> dict[str, Any]:
    """The propagation engine and device `config.propagation` asks for, what they resolve to on this machine
    (`rerender.propagation.resolve_engine`: "auto" is the torch engine when torch sees a CUDA GPU, else numba),
    and whether the torch engine can run on CUDA here.

    Returns:
        ``{"engine", "device", "resolved_engine", "resolved_device", "error", "torch_on_cuda", "cuda_reason"}``;
        ``resolved_*`` are None and ``error`` says why when the configured choice cannot run here (e.g.
        ``device: cuda`` without a GPU).
    """
    from rerender.config import RerenderConfig
    from rerender.errors import ConfigError, MissingDependencyError
    from rerender.propagation import PropagationOptions, resolve_engine

    config = config if config is not None else RerenderConfig()
    settings = config.propagation
    report: dict[str, Any] = {"engine": settings.engine, "device": settings.device}
    options = PropagationOptions.preset(settings.propagation_preset, engine=settings.engine, device=settings.device)
    try:
        choice = resolve_engine(options)
        report.update(resolved_engine=choice.name, resolved_device=choice.device or "cpu", error=None)
    except (ConfigError, MissingDependencyError) as failure:
        report.update(resolved_engine=None, resolved_device=None, error=str(failure))
    try:
        import torch

        on_cuda = bool(torch.cuda.is_available())
        reason = (
            f"torch {torch.__version__} sees {torch.cuda.get_device_name(0)}"
            if on_cuda
            else f"torch {torch.__version__} sees no CUDA GPU; its CUDA build: {torch.version.cuda or 'none'}"
        )
    except Exception as failure:  # noqa: BLE001 - torch missing or broken: report it
        on_cuda, reason = False, f"torch is not importable ({failure})"
    report.update(torch_on_cuda=on_cuda, cuda_reason=reason)
    return report


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001 - a broken install (e.g. CUDA torchvision on a CPU torch) counts as missing
        return False


def _devices() -> dict[str, Any]:
    try:
        import torch
    except Exception as error:  # noqa: BLE001
        return {"torch": f"not importable ({error})"}
    devices: dict[str, Any] = {"cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        devices["cuda"] = [
            f"{torch.cuda.get_device_name(index)} ({torch.cuda.get_device_properties(index).total_memory / 2**30:.1f} GiB)"
            for index in range(torch.cuda.device_count())
        ]
        devices["cuda_version"] = torch.version.cuda
    mps = getattr(torch.backends, "mps", None)
    devices["mps_available"] = bool(mps and mps.is_available())
    return devices


def collect_environment(config: RerenderConfig | None = None) -> dict[str, Any]:
    """A JSON-ready description of this installation.

    Args:
        config: the config whose weights are reported (default: the built-in defaults).

    Returns:
        `{"python", "platform", "packages", "optional", "devices", "weights", "model", "propagation", "models"}`
        (see `family_report`, `propagation_report`, `model_report`).
    """
    optional = {}
    for name, purpose in OPTIONAL_PACKAGES.items():
        module = name.replace("-", "_")
        available = importlib.util.find_spec(module) is not None and _importable(module)
        optional[name] = {"version": _version(name), "usable": available, "for": purpose}
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in CORE_PACKAGES},
        "optional": optional,
        "devices": _devices(),
        "weights": weight_search_paths(),
        "model": family_report(config),
        "propagation": propagation_report(config),
        "models": model_report(config),
    }
