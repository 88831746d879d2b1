"""Where the weights live: which hub repositories a config needs, whether they are on this machine, fetching them.

The keyframe models load like any diffusers model: a local path is read from disk, and a hub id comes from the
Hugging Face cache, or is downloaded into it on a connected machine (as `from_pretrained` does). Loading is
impossible only when the hub cannot be used (``HF_HUB_OFFLINE=1``, or no network) and a repository is not
cached; `missing_weights` lists exactly those, and `fetch_commands` says how to get them.

`download_weights` (``rerender download``) fetches the configured base model, its ControlNets, the VAE if one
is set, and the GMFlow checkpoint into the hub cache, leaving out the files rerender never reads (safety
checker, feature extractor, single-file checkpoints beside a diffusers layout, ``.bin`` duplicates of
``.safetensors``, and full-precision weights when a half-precision variant is wanted); `select_files` is that
rule on a repository's file list.

Nothing here imports torch or diffusers, and `rerender.flow` imports this module (never the reverse).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterable, Sequence
from urllib.parse import urlparse

if TYPE_CHECKING:  # pragma: no cover
    from rerender.config import RerenderConfig

logger = logging.getLogger(__name__)

__all__ = [
    "GMFLOW_FILENAME",
    "GMFLOW_HUB_FILES",
    "WeightSource",
    "rerender_cache_dir",
    "is_hub_id",
    "hub_offline",
    "hub_reachable",
    "weight_sources",
    "missing_weights",
    "fetch_commands",
    "base_components",
    "cached_folder",
    "fetch_repository",
    "select_files",
    "download_weights",
]

GMFLOW_FILENAME = "gmflow_sintel-0c07dcb3.pth"
"""File name of the Sintel-finetuned GMFlow checkpoint that Rerender-A-Video uses (the hex is a SHA-256 prefix)."""

GMFLOW_HUB_FILES = (("PKUWilliamYang/Rerender", f"models/{GMFLOW_FILENAME}"),)
"""(repository, file) pairs of the Hugging Face Hub where Rerender-A-Video's installer gets the GMFlow weights."""

PIPELINE_FOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "controlnet")
"""Sub-folders of a diffusers Stable Diffusion repository that `RerenderPipeline` reads (not the safety checker,
not the feature extractor)."""

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pth", ".pt", ".msgpack", ".h5", ".onnx", ".onnx_data", ".pb")
_UNUSED_FORMATS = (".msgpack", ".h5", ".onnx", ".onnx_data", ".pb", ".ckpt")  # Flax, TensorFlow, ONNX, original SD


def rerender_cache_dir() -> Path:
    """Folder for rerender's own caches and weights: `$RERENDER_HOME`, else `$XDG_CACHE_HOME/rerender`, else `~/.cache/rerender`."""
    if os.environ.get("RERENDER_HOME"):
        return Path(os.environ["RERENDER_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rerender"


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE``, as huggingface_hub reads it)."""
    if os.environ.get("HF_HUB_OFFLINE", os.environ.get("TRANSFORMERS_OFFLINE", "")).strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return True
    return bool(constants.HF_HUB_OFFLINE)


@functools.lru_cache(maxsize=4)
def _endpoint_reachable(endpoint: str, timeout: float) -> bool:
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub can be used now: not offline, and its endpoint (``HF_ENDPOINT``) accepts a connection.

    The answer for an endpoint is remembered for the life of the process (one connection attempt at most).
    """
    if hub_offline():
        return False
    from huggingface_hub import constants

    return _endpoint_reachable(constants.ENDPOINT, timeout)


# --------------------------------------------------------------------------------------------------------
# what a config needs, and what of it is here
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightSource:
    """One set of weights a config names."""

    role: str
    """What it is: "base model", "ControlNet (canny)", "VAE", "GMFlow"."""
    key: str
    """The config key that names it (`model.base_model`, `control[0].model`, `model.vae`, `flow.flow_checkpoint`)."""
    location: str
    """A hub id, or a local path."""
    is_hub: bool
    """True for a hub id (cached or downloaded), False for a local file or folder."""
    present: bool
    """The weights are on this machine (the local path exists, or the hub cache holds them)."""
    filename: str | None = None
    """For a single file in a hub repository (GMFlow): its path in the repository."""
    components: tuple[str, ...] = ()
    """For a diffusers pipeline repository: the sub-folders rerender reads."""


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(source: str) -> bool:
    """True for a Hugging Face hub id (``owner/name``) that is not also a local path or a checkpoint file name."""
    return bool(_HUB_ID.match(source)) and not Path(source).expanduser().exists() and not source.lower().endswith(WEIGHT_SUFFIXES)


_is_hub_id = is_hub_id


def _weight_candidates(folder: str) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    names = ("model", "pytorch_model") if folder == "text_encoder" else ("diffusion_pytorch_model",)
    return [f"{prefix}{name}{variant}{suffix}" for name in names for variant in (".fp16", "") for suffix in (".safetensors", ".bin")]


def _cached(repository: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repository, filename)
    return isinstance(found, str) and os.path.isfile(found)


def _hub_present(repository: str, components: Sequence[str] = (), filename: str | None = None) -> bool:
    """Whether the hub cache holds what loading reads: a config and one weights file per component."""
    if filename is not None:
        return _cached(repository, filename)
    if components:
        if not _cached(repository, "model_index.json"):
            return False
        weighted = [folder for folder in components if folder in ("unet", "vae", "text_encoder", "controlnet")]
        return all(any(_cached(repository, name) for name in _weight_candidates(folder)) for folder in weighted)
    return _cached(repository, "config.json") and any(_cached(repository, name) for name in _weight_candidates(""))


def base_components(separate_vae: bool) -> tuple[str, ...]:
    """The sub-folders of a hub base model that are fetched and read (its own VAE only when no other is set)."""
    return tuple(folder for folder in PIPELINE_FOLDERS if folder != "controlnet" and not (folder == "vae" and separate_vae))


def cached_folder(repository: str, components: Sequence[str] = ()) -> Path | None:
    """The snapshot folder of `repository` in the hub cache when it holds what loading reads, else None."""
    if not _hub_present(repository, components):
        return None
    from huggingface_hub import try_to_load_from_cache

    return Path(try_to_load_from_cache(repository, "model_index.json" if components else "config.json")).parent


def fetch_repository(
    repository: str, half_precision: bool = False, components: Sequence[str] = (), dry_run: bool = False
) -> tuple[Path | None, list[str], list[str]]:
    """Download the files of `repository` that rerender reads (`select_files`) into the hub cache.

    Returns:
        ``(snapshot folder or None for a dry run, fetched files, skipped files)``.
    """
    from huggingface_hub import snapshot_download

    fetched, skipped = select_files(_repository_files(repository), half_precision, components or None)
    if dry_run:
        return None, fetched, skipped
    logger.info("fetching %d files of %s (skipping %d unused)", len(fetched), repository, len(skipped))
    return Path(snapshot_download(repository, allow_patterns=fetched)), fetched, skipped


def weight_sources(config: "RerenderConfig", include_flow: bool = True) -> list[WeightSource]:
    """Every set of weights `config` names, with whether each is on this machine (no network access).

    The first ControlNet of a base-model folder that holds a ``controlnet/`` sub-folder comes from that folder,
    as `rerender.models.load_pipeline` does. GMFlow is listed when `config.flow` may use it ("auto" or "gmflow").
    """
    model = config.model
    sources: list[WeightSource] = []
    base_is_hub = _is_hub_id(model.base_model)
    components = base_components(model.vae is not None)
    if base_is_hub:
        sources.append(WeightSource("base model", "model.base_model", model.base_model, True,
                                    _hub_present(model.base_model, components), components=components))
    else:
        sources.append(WeightSource("base model", "model.base_model", model.base_model, False, Path(model.base_model).expanduser().exists()))
    base_folder = None if base_is_hub else Path(model.base_model).expanduser()
    for position, control in enumerate(config.control):
        key = f"control[{position}].model"
        role = f"ControlNet ({control.type})"
        if control.model is None and position == 0 and base_folder is not None and (base_folder / "controlnet" / "config.json").is_file():
            sources.append(WeightSource(role, key, str(base_folder / "controlnet"), False, True))
            continue
        location = control.resolved_model
        if _is_hub_id(location):
            sources.append(WeightSource(role, key, location, True, _hub_present(location)))
        else:
            sources.append(WeightSource(role, key, location, False, Path(location).expanduser().exists()))
    if model.vae is not None:
        if _is_hub_id(model.vae):
            sources.append(WeightSource("VAE", "model.vae", model.vae, True, _hub_present(model.vae)))
        else:
            sources.append(WeightSource("VAE", "model.vae", model.vae, False, Path(model.vae).expanduser().exists()))
    if include_flow and config.flow.flow_estimator != "dis":
        if config.flow.flow_checkpoint is not None:
            path = config.flow.flow_checkpoint
            sources.append(WeightSource("GMFlow", "flow.flow_checkpoint", path, False, Path(path).expanduser().is_file()))
        else:
            repository, filename = GMFLOW_HUB_FILES[0]
            local = rerender_cache_dir() / GMFLOW_FILENAME
            present = local.is_file() or _hub_present(repository, filename=filename)
            sources.append(WeightSource("GMFlow", "flow.flow_checkpoint", repository, True, present, filename=filename))
    return sources


def missing_weights(config: "RerenderConfig") -> list[WeightSource]:
    """The keyframe weights (base model, ControlNets, VAE) that cannot be loaded here and now.

    A hub id that is not cached counts as missing only when the hub cannot be used (``HF_HUB_OFFLINE`` or no
    network): on a connected machine it is downloaded when loaded. A local path that does not exist is a
    mistake in the config, reported by `rerender.models.check_model_sources`, and not listed here.
    """
    absent = [source for source in weight_sources(config, include_flow=False) if source.is_hub and not source.present]
    if absent and hub_reachable():
        return []
    return absent


def fetch_commands(config: "RerenderConfig", sources: Iterable[WeightSource]) -> list[str]:
    """Shell commands that fetch `sources` on a connected machine: ``rerender download`` and one ``hf download`` each."""
    from rerender.config import ModelConfig

    arguments = ""
    if config.model.base_model != ModelConfig().base_model:
        arguments += f" --model {config.model.base_model}"
    if config.model.vae is not None:
        arguments += f" --vae {config.model.vae}"
    commands = [f"rerender download{arguments}"]
    for source in sources:
        if not source.is_hub:
            continue
        if source.filename is not None:
            commands.append(f"hf download {source.location} {source.filename}")
        elif source.components:
            includes = " ".join(f'"{folder}/*"' for folder in source.components)
            commands.append(
                f'hf download {source.location} --include "model_index.json" {includes} --exclude "*.bin" "*non_ema*" "*.fp16.*"'
            )
        else:
            commands.append(f'hf download {source.location} --include "config.json" "*.safetensors" --exclude "*.fp16.*"')
    return commands


def describe_missing(config: "RerenderConfig", missing: Sequence[WeightSource]) -> str:
    """One message: what is missing, where it was looked for, and the commands that fetch it."""
    from huggingface_hub import constants

    listed = "; ".join(f"{source.role} {source.location!r} (`{source.key}`)" for source in missing)
    why = "HF_HUB_OFFLINE is set" if hub_offline() else f"the hub ({constants.ENDPOINT}) cannot be reached"
    commands = " or ".join(f"`{command}`" for command in fetch_commands(config, missing)[:2])
    return (
        f"diffusion weights missing: {listed} not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}. "
        f"Fetch them once on a connected machine with {commands} (copy the cache, or set HF_HOME to it), "
        "or pass --model/`model.base_model` a local diffusers folder or .safetensors file"
    )


# --------------------------------------------------------------------------------------------------------
# downloading
# --------------------------------------------------------------------------------------------------------


def _variant_and_stem(name: str) -> tuple[str, str | None, str]:
    """`unet/diffusion_pytorch_model.fp16.safetensors` → (`unet/diffusion_pytorch_model`, "fp16", ".safetensors")."""
    path = PurePosixPath(name)
    suffix = path.suffix
    stem = path.name[: -len(suffix)] if suffix else path.name
    variant = None
    if "." in stem:
        stem, variant = stem.rsplit(".", 1)
    folder = str(path.parent)
    return (stem if folder == "." else f"{folder}/{stem}"), variant, suffix


def select_files(
    files: Iterable[str], half_precision: bool = False, components: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Split a hub repository's files into those rerender reads and those it never uses.

    Kept: ``model_index.json``; in a pipeline repository (one with ``model_index.json``) only the sub-folders
    in `components` (default `PIPELINE_FOLDERS`); in a single-model repository (a ControlNet, a VAE) its
    ``config.json`` and weights. Of each set of weights one file: the ``fp16`` variant when `half_precision`
    and the repository has one, else the full-precision file; ``.safetensors`` before ``.bin``. Dropped as
    well: EMA-free duplicates (``non_ema``), Flax/TensorFlow/ONNX files, original single-file checkpoints, docs.

    Args:
        files: the repository's file paths (`HfApi.list_repo_files`).
        half_precision: float16 weights are wanted.
        components: sub-folders of a pipeline repository to keep.

    Returns:
        ``(fetched, skipped)``, each sorted.
    """
    files = sorted(set(files))
    pipeline = "model_index.json" in files
    wanted_folders = tuple(components if components is not None else PIPELINE_FOLDERS)
    candidates: list[str] = []
    for name in files:
        parts = PurePosixPath(name).parts
        if pipeline:
            if name == "model_index.json" or (len(parts) > 1 and parts[0] in wanted_folders):
                candidates.append(name)
        elif len(parts) == 1 and (name == "config.json" or name.endswith((".safetensors.index.json", *WEIGHT_SUFFIXES))):
            candidates.append(name)
    fetched = []
    weights: dict[str, list[tuple[str | None, str, str]]] = {}
    for name in candidates:
        if not name.endswith(WEIGHT_SUFFIXES):
            fetched.append(name)
            continue
        if name.endswith(_UNUSED_FORMATS) or "non_ema" in name or "non-ema" in name:
            continue
        stem, variant, suffix = _variant_and_stem(name)
        folder = str(PurePosixPath(stem).parent)
        weights.setdefault(folder, []).append((variant, suffix, name))
    for found in weights.values():
        def pick(variant: str | None) -> tuple[str | None, str] | None:
            for suffix in (".safetensors", ".bin", ".pth", ".pt"):
                if any(v == variant and s == suffix for v, s, _ in found):
                    return variant, suffix
            return None

        preferred = (pick("fp16") if half_precision else None) or pick(None) or pick("fp16")
        # Every file of the chosen format and variant: one file, or the shards of one model.
        fetched.extend(name for variant, suffix, name in found if (variant, suffix) == preferred)
    fetched = sorted(fetched)
    kept = set(fetched)
    return fetched, [name for name in files if name not in kept]


def _repository_files(repository: str) -> list[str]:
    from huggingface_hub import HfApi

    return list(HfApi().list_repo_files(repository))


def download_weights(
    config: "RerenderConfig",
    half_precision: bool = False,
    include_flow: bool = True,
    progress: bool = True,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Fetch every hub repository `config` names into the Hugging Face cache (only the files rerender reads).

    Local paths are left alone. Already cached files are not downloaded again. Progress bars are the hub
    library's (one per file), unless `progress` is False.

    Args:
        config: the base model, ControlNets, VAE and flow settings to fetch for.
        half_precision: fetch the ``fp16`` variants where a repository has them (for float16 on a GPU).
        include_flow: also fetch the GMFlow checkpoint (when `config.flow` may use it).
        progress: show download progress bars.
        dry_run: list what would be fetched and skipped without downloading.

    Returns:
        One record per source: ``{"role", "location", "fetched", "skipped", "path"}`` (``path`` is the local
        snapshot folder or file; None for a dry run or a local source).

    Raises:
        InputNotFoundError: the hub cannot be reached or a repository does not exist (names which).
    """
    from rerender.errors import InputNotFoundError

    if hub_offline():
        raise InputNotFoundError("`rerender download` needs the network, but HF_HUB_OFFLINE is set; unset it and run again")
    if not hub_reachable():
        from huggingface_hub import constants

        raise InputNotFoundError(
            f"`rerender download` cannot reach the hub ({constants.ENDPOINT}); check the network (or HF_ENDPOINT) and run again"
        )
    from huggingface_hub import hf_hub_download

    try:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError:  # pragma: no cover
        disable_progress_bars = enable_progress_bars = lambda: None  # noqa: E731
    records: list[dict[str, Any]] = []
    if not progress:
        disable_progress_bars()
    try:
        for source in weight_sources(config, include_flow=include_flow):
            record: dict[str, Any] = {"role": source.role, "location": source.location, "fetched": [], "skipped": [], "path": None}
            records.append(record)
            if not source.is_hub:
                record["path"] = source.location
                continue
            try:
                if source.filename is not None:
                    record["fetched"] = [source.filename]
                    if not dry_run:
                        record["path"] = hf_hub_download(source.location, source.filename)
                    continue
                folder, record["fetched"], record["skipped"] = fetch_repository(
                    source.location, half_precision, source.components, dry_run
                )
                record["path"] = str(folder) if folder is not None else None
            except Exception as error:  # noqa: BLE001 - the hub raises many types; report which source failed
                if isinstance(error, (KeyboardInterrupt, SystemExit)):
                    raise
                raise InputNotFoundError(
                    f"could not fetch the {source.role} {source.location!r} (`{source.key}`): "
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                ) from error
    finally:
        if not progress:
            enable_progress_bars()
    return records
