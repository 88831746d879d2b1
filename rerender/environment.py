"""What `rerender env` reports: versions, devices, optional components and where weights are looked for."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["collect_environment", "rerender_cache_dir", "weight_search_paths"]

CORE_PACKAGES = (
    "rerender", "torch", "diffusers", "transformers", "accelerate", "safetensors", "peft", "kornia",
    "opencv-contrib-python-headless", "numpy", "numba", "av", "einops", "scipy",
)
OPTIONAL_PACKAGES = {
    "controlnet-aux": "HED/lineart/depth/openpose annotators (extra `annotators`; needs torchvision)",
    "torchvision": "needed by controlnet-aux",
    "xformers": "memory-efficient attention on CUDA (optional; SDPA is used otherwise)",
}


def rerender_cache_dir() -> Path:
    """Folder for rerender's own caches and weights: `$RERENDER_HOME`, else `$XDG_CACHE_HOME/rerender`, else `~/.cache/rerender`."""
    if os.environ.get("RERENDER_HOME"):
        return Path(os.environ["RERENDER_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rerender"


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


def collect_environment() -> dict[str, Any]:
    """A JSON-ready description of this installation.

    Returns:
        `{"python", "platform", "packages", "optional", "devices", "weights"}`.
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
    }
