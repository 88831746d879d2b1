"""Where the weights live: which hub repositories a config needs, whether they are on this machine, fetching them.

The keyframe models load like any diffusers model: a local path is read from disk, and a hub id comes from the
Hugging Face cache, or is downloaded into it on a connected machine (as `from_pretrained` does). Loading is
impossible only when the hub cannot be used (``HF_HUB_OFFLINE=1``, or no network) and a repository is not
cached; `missing_weights` lists exactly those, and `fetch_commands` says how to get them.

`download_weights` (``rerender download``) fetches the configured base model, its ControlNets, the VAE if one
is set, the GMFlow checkpoint, the prompt's translation model (when `prompt.prompt_language` is not English) and
the IP-Adapter with its image encoder (when `prompt.style_image` is set) into the hub cache, leaving out the files
rerender never reads (safety checker, feature extractor, single-file checkpoints beside a diffusers layout,
``.bin`` duplicates of ``.safetensors``, and full-precision weights when a half-precision variant is wanted);
`select_files` is that rule on a repository's file list. A dry run works offline too: it then lists each
repository's files by pattern, since the exact names need the hub's file list.

Nothing here imports torch or diffusers, and `rerender.flow` imports this module (never the reverse).
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import re
import shlex
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from rerender.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from rerender.config import ModelConfig, RerenderConfig

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
    "extra_sources",
    "missing_weights",
    "fetch_commands",
    "base_components",
    "ZIMAGE_FOLDERS",
    "ZIMAGE_CONTROLNET",
    "cached_folder",
    "fetch_repository",
    "select_files",
    "ip_adapter_files",
    "translator_files",
    "offline_listing",
    "download_weights",
]

GMFLOW_FILENAME = "gmflow_sintel-0c07dcb3.pth"
"""File name of the Sintel-finetuned GMFlow checkpoint that Rerender-A-Video uses (the hex is a SHA-256 prefix)."""

GMFLOW_HUB_FILES = (("PKUWilliamYang/Rerender", f"models/{GMFLOW_FILENAME}"),)
"""(repository, file) pairs of the Hugging Face Hub where Rerender-A-Video's installer gets the GMFlow weights."""

PIPELINE_FOLDERS = (
    "unet",
    "vae",
    "text_encoder",
    "tokenizer",
    "text_encoder_2",
    "tokenizer_2",
    "scheduler",
    "controlnet",
)
"""Sub-folders of a diffusers Stable Diffusion repository that `RerenderPipeline` reads (not the safety checker,
not the feature extractor); SDXL's second text encoder and tokenizer exist only in SDXL repositories."""

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
    if os.environ.get("HF_HUB_OFFLINE", os.environ.get("TRANSFORMERS_OFFLINE", "")).strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    ):
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
    return (
        bool(_HUB_ID.match(source))
        and not Path(source).expanduser().exists()
        and not source.lower().endswith(WEIGHT_SUFFIXES)
    )


_is_hub_id = is_hub_id


def _weight_candidates(folder: str) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    names = ("model", "pytorch_model") if folder == "text_encoder" else ("diffusion_pytorch_model",)
    return [
        f"{prefix}{name}{variant}{suffix}"
        for name in names
        for variant in (".fp16", "")
        for suffix in (".safetensors", ".bin")
    ]


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
        weighted = [
            folder for folder in components if folder in ("unet", "transformer", "vae", "text_encoder", "controlnet")
        ]
        if "text_encoder_2" in components and _lists_component(repository, "text_encoder_2"):
            weighted.append("text_encoder_2")
        return all(any(_cached(repository, name) for name in _weight_candidates(folder)) for folder in weighted)
    return _cached(repository, "config.json") and any(_cached(repository, name) for name in _weight_candidates(""))


def _lists_component(repository: str, folder: str) -> bool:
    """Whether the cached ``model_index.json`` of `repository` names `folder` with a class (SDXL's text_encoder_2)."""
    import json

    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repository, "model_index.json")
    if not isinstance(found, str):
        return False
    try:
        entry = json.loads(Path(found).read_text(encoding="utf-8")).get(folder)
    except (OSError, ValueError):
        return False
    return isinstance(entry, list) and entry[0] is not None


def base_components(separate_vae: bool, family: str = "sd15") -> tuple[str, ...]:
    """The sub-folders of a hub base model that are fetched and read (its own VAE only when no other is set;
    SDXL's second text encoder and tokenizer for an SDXL model)."""
    second = ("text_encoder_2", "tokenizer_2")
    return tuple(
        folder
        for folder in PIPELINE_FOLDERS
        if folder != "controlnet"
        and not (folder == "vae" and separate_vae)
        and (family == "sdxl" or folder not in second)
    )


ZIMAGE_FOLDERS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
"""The sub-folders of a Z-Image repository that are fetched and read."""

ZIMAGE_CONTROLNET = (
    "alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union",
    "Z-Image-Turbo-Fun-Controlnet-Union.safetensors",
)
"""The default Z-Image ControlNet: the Union ControlNet's repository and its single weight file."""


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


_FAMILY_LABELS = {"sd15": "SD 1.5", "sdxl": "SDXL", "zimage": "Z-Image", "flux": "Flux"}


def model_family(model: ModelConfig) -> str:
    """`model.family`, or when "auto" the family detected from the model (`detect_family`:
    configs and file headers, no weights, no network); "sd15" when the model is not here to look at."""
    if model.family != "auto":
        return model.family

    try:
        return detect_family(model.base_model)
    except (ConfigError, OSError):
        return "sd15"


def weight_sources(config: RerenderConfig, include_flow: bool = True) -> list[WeightSource]:
    """Every set of weights `config` names, with whether each is on this machine (no network access).

    The first ControlNet of a base-model folder that holds a ``controlnet/`` sub-folder comes from that folder,
    as `rerender.diffusion.loading.load_pipeline` does. GMFlow is listed when `config.flow` may use it ("auto" or "gmflow").
    """
    model = config.model
    sources: list[WeightSource] = []
    base_is_hub = _is_hub_id(model.base_model)
    family = model_family(model)
    components = ZIMAGE_FOLDERS if family == "zimage" else base_components(model.vae is not None, family)
    role = f"base model ({_FAMILY_LABELS.get(family, family)})"
    if base_is_hub:
        sources.append(
            WeightSource(
                role,
                "model.base_model",
                model.base_model,
                True,
                _hub_present(model.base_model, components),
                components=components,
            )
        )
    else:
        sources.append(
            WeightSource(
                role, "model.base_model", model.base_model, False, Path(model.base_model).expanduser().exists()
            )
        )
    base_folder = None if base_is_hub else Path(model.base_model).expanduser()
    for position, control in enumerate(config.control):
        key = f"control[{position}].model"
        role = f"ControlNet ({control.type})"
        if (
            control.model is None
            and position == 0
            and base_folder is not None
            and (base_folder / "controlnet" / "config.json").is_file()
        ):
            sources.append(WeightSource(role, key, str(base_folder / "controlnet"), False, True))
            continue
        if family == "zimage" and control.model is None:  # the Union ControlNet: one file of its repository
            repository, filename = ZIMAGE_CONTROLNET
            sources.append(
                WeightSource(
                    role, key, repository, True, _hub_present(repository, filename=filename), filename=filename
                )
            )
            continue
        location = control.model_for(family)
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
            sources.append(
                WeightSource("GMFlow", "flow.flow_checkpoint", path, False, Path(path).expanduser().is_file())
            )
        else:
            repository, filename = GMFLOW_HUB_FILES[0]
            local = rerender_cache_dir() / GMFLOW_FILENAME
            present = local.is_file() or _hub_present(repository, filename=filename)
            sources.append(
                WeightSource("GMFlow", "flow.flow_checkpoint", repository, True, present, filename=filename)
            )
    return sources


def extra_sources(config: RerenderConfig) -> tuple[list[WeightSource], list[str]]:
    """The weights `config` needs beyond the keyframe models: the prompt's translation model (when
    `prompt.prompt_language` is not English, or `prompt.translation_model` is named) and the IP-Adapter (when
    `prompt.style_image` is set).

    Returns:
        ``(sources, unresolved)``: the sources (IP-Adapter: `filename` is the adapter file, its image encoder sits in
        ``image_encoder/`` beside it), and one sentence for each need that cannot be named from the config alone.
    """
    from rerender.languages import DEFAULT_TRANSLATOR_LANGUAGES, default_translation_model, detect_language

    sources: list[WeightSource] = []
    unresolved: list[str] = []
    prompt = config.prompt
    language: str | None = prompt.prompt_language
    if language == "auto":
        if prompt.prompt.strip():
            language = detect_language(prompt.prompt)
        elif prompt.translation_model is None:
            unresolved.append(
                "the translation model: `prompt.prompt_language` is 'auto' and there is no prompt to "
                "detect the language of; give -p PROMPT or --prompt-language CODE"
            )
            language = "en"
        else:
            language = None  # not known without a prompt, but the model is named
    if language == "en" and prompt.translation_model is not None:
        language = None  # named explicitly: fetched although an English prompt does not use it
    if language not in (None, "en", *DEFAULT_TRANSLATOR_LANGUAGES) and prompt.translation_model is None:
        unresolved.append(
            f"the translation model: {language!r} has no default translator; name one with "
            "--translation-model (e.g. facebook/nllb-200-distilled-600M)"
        )
        language = "en"
    if language != "en":
        model = prompt.translation_model or default_translation_model(language or "")
        role = f"translation model ({language})" if language else "translation model"
        if _is_hub_id(model):
            sources.append(WeightSource(role, "prompt.translation_model", model, True, _cached(model, "config.json")))
        else:
            sources.append(
                WeightSource(
                    role,
                    "prompt.translation_model",
                    model,
                    False,
                    (Path(model).expanduser() / "config.json").is_file(),
                )
            )
    if prompt.audio_prompt is not None:  # the CLAP model that hears `prompt.audio_prompt`
        model = prompt.audio_model
        present = (
            _cached(model, "config.json")
            if _is_hub_id(model)
            else (Path(model).expanduser() / "config.json").is_file()
        )
        sources.append(WeightSource("sound model (CLAP)", "prompt.audio_model", model, _is_hub_id(model), present))
    if prompt.style_image is not None:
        source, weight_name = config.model.ip_adapter, config.model.ip_adapter_weight_name
        if _is_hub_id(source):
            sources.append(
                WeightSource(
                    "IP-Adapter", "model.ip_adapter", source, True, _cached(source, weight_name), filename=weight_name
                )
            )
        else:
            sources.append(
                WeightSource(
                    "IP-Adapter",
                    "model.ip_adapter",
                    source,
                    False,
                    (Path(source).expanduser() / weight_name).is_file(),
                    filename=weight_name,
                )
            )
    return sources, unresolved


def ip_adapter_files(files: Iterable[str], weight_name: str) -> tuple[list[str], list[str]]:
    """Split an IP-Adapter repository's files into those loading reads (the adapter file, and its image encoder's
    config and one set of weights in ``image_encoder/`` beside it) and the rest.

    Returns:
        ``(fetched, skipped)``, each sorted.
    """
    files = sorted(set(files))
    folder = PurePosixPath(weight_name).parent
    encoder = f"{folder}/image_encoder/" if str(folder) != "." else "image_encoder/"
    inside = [name[len(encoder) :] for name in files if name.startswith(encoder) and "/" not in name[len(encoder) :]]
    chosen, _ = select_files(inside)
    fetched = sorted([weight_name] * (weight_name in files) + [encoder + name for name in chosen])
    kept = set(fetched)
    return fetched, [name for name in files if name not in kept]


def translator_files(files: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split a translation model repository's files into those loading reads (the top-level config, generation
    config, tokenizer files such as Marian's ``source.spm``/``target.spm``/``vocab.json``, and one set of weights:
    ``*.safetensors`` where the repository has them, else the pickled ``pytorch_model.bin``, which
    `rerender.languages.load_translator` reads with ``weights_only=True``, tensors only) and the rest (TensorFlow,
    Flax and Rust weights, READMEs).

    Returns:
        ``(fetched, skipped)``, each sorted.
    """
    files = sorted(set(files))
    top = [
        name
        for name in files
        if "/" not in name
        and not name.startswith(".")
        and not name.lower().endswith((".md", ".png", ".jpg", ".txt.gz"))
    ]
    safetensors = any(name.endswith(".safetensors") for name in top)
    fetched = [
        name
        for name in top
        if not name.endswith(WEIGHT_SUFFIXES + (".ot",))
        or name.endswith(".safetensors")
        or not safetensors
        and name.endswith(".bin")
        and name.startswith("pytorch_model")
    ]
    kept = set(fetched)
    return fetched, [name for name in files if name not in kept]


def translator_weights_note(fetched: Iterable[str]) -> str:
    """Which weights a translator loads from, for `rerender download --dry-run`."""
    names = [name for name in fetched if name.endswith((".safetensors", ".bin"))]
    if any(name.endswith(".safetensors") for name in names):
        return f"weights: {', '.join(names)} (safetensors)"
    return (
        f"weights: {', '.join(names)} (the repository has no .safetensors: a pickle, read with "
        "torch.load(weights_only=True), tensors only, no code runs)"
    )


def offline_listing(source: WeightSource) -> list[str]:
    """What fetching `source` would take, by name where the config fixes it and by pattern where only the hub's file
    list can tell (a dry run without the hub)."""
    if source.role == "IP-Adapter":
        folder = PurePosixPath(source.filename or "").parent
        encoder = f"{folder}/image_encoder" if str(folder) != "." else "image_encoder"
        return [source.filename or "", f"{encoder}/config.json", f"{encoder}/*.safetensors (or *.bin)"]
    if source.filename is not None:
        return [source.filename]
    if source.key == "prompt.audio_model":
        return [
            "config.json",
            "processor and tokenizer files (*.json, vocab.json, merges.txt)",
            "*.safetensors, or pytorch_model.bin where there are none (read with weights_only=True)",
        ]
    if source.key == "prompt.translation_model":
        return [
            "config.json",
            "generation_config.json",
            "tokenizer files (*.json, *.spm, *.model, vocab*)",
            "*.safetensors, or pytorch_model.bin where there are none (read with weights_only=True)",
        ]
    if source.components:
        return ["model_index.json", *(f"{folder}/*" for folder in source.components)]
    return ["config.json", "diffusion_pytorch_model.safetensors (or .bin)"]


def missing_weights(config: RerenderConfig) -> list[WeightSource]:
    """The keyframe weights (base model, ControlNets, VAE) that cannot be loaded here and now.

    A hub id that is not cached counts as missing only when the hub cannot be used (``HF_HUB_OFFLINE`` or no
    network): on a connected machine it is downloaded when loaded. A local path that does not exist is a
    mistake in the config, reported by `rerender.diffusion.loading.check_model_sources`, and not listed here.
    """
    absent = [source for source in weight_sources(config, include_flow=False) if source.is_hub and not source.present]
    if absent and hub_reachable():
        return []
    return absent


def fetch_commands(config: RerenderConfig, sources: Iterable[WeightSource]) -> list[str]:
    """Shell commands that fetch `sources` on a connected machine: ``rerender download`` and one ``hf download`` each."""
    from rerender.config import ModelConfig, PromptConfig

    arguments = ""
    if config.model.base_model != ModelConfig().base_model:
        arguments += f" --model {config.model.base_model}"
    if config.model.vae is not None:
        arguments += f" --vae {config.model.vae}"
    if config.prompt.prompt_language != "en":
        arguments += f" --prompt-language {config.prompt.prompt_language}"
        if config.prompt.prompt_language == "auto" and config.prompt.prompt.strip():
            arguments += f" -p {shlex.quote(config.prompt.prompt)}"
    if config.prompt.translation_model is not None:
        arguments += f" --translation-model {shlex.quote(config.prompt.translation_model)}"
    if config.prompt.audio_prompt is not None:
        arguments += f" --audio-prompt {shlex.quote(config.prompt.audio_prompt)}"
        if config.prompt.audio_model != PromptConfig().audio_model:
            arguments += f" --set audio_model={shlex.quote(config.prompt.audio_model)}"
    if config.prompt.style_image is not None:
        arguments += f" --style-image {shlex.quote(config.prompt.style_image)}"
        if config.model.ip_adapter != ModelConfig().ip_adapter:
            arguments += f" --set ip_adapter={shlex.quote(config.model.ip_adapter)}"
    commands = [f"rerender download{arguments}"]
    for source in sources:
        if not source.is_hub:
            continue
        if source.role == "IP-Adapter":
            encoder = posixpath.join(posixpath.dirname(source.filename or ""), "image_encoder")
            commands.append(f'hf download {source.location} --include "{source.filename}" "{encoder}/*"')
        elif source.key in ("prompt.translation_model", "prompt.audio_model"):
            commands.append(f'hf download {source.location} --exclude "*.h5" "*.msgpack" "*.ot" "*.md"')
        elif source.filename is not None:
            commands.append(f"hf download {source.location} {source.filename}")
        elif source.components:
            includes = " ".join(f'"{folder}/*"' for folder in source.components)
            commands.append(
                f'hf download {source.location} --include "model_index.json" {includes} --exclude "*.bin" "*non_ema*" "*.fp16.*"'
            )
        else:
            commands.append(
                f'hf download {source.location} --include "config.json" "*.safetensors" --exclude "*.fp16.*"'
            )
    return commands


def describe_missing(config: RerenderConfig, missing: Sequence[WeightSource]) -> str:
    """One message: what is missing, where it was looked for, and the commands that fetch it."""
    from huggingface_hub import constants

    listed = "; ".join(f"{source.role} {source.location!r} (`{source.key}`)" for source in missing)
    why = "HF_HUB_OFFLINE is set" if hub_offline() else f"the hub ({constants.ENDPOINT}) cannot be reached"
    commands = " or ".join(f"`{command}`" for command in fetch_commands(config, missing)[:2])
    return (
        f"diffusion weights missing: {listed} not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}. "
        f"Fetch them once on a connected machine with {commands} (copy the cache, or set HF_HOME to it), "
        f"or point {_local_options(missing)} at a local diffusers folder or .safetensors file"
    )


def _local_options(missing: Sequence[WeightSource]) -> str:
    """The options that name the missing weights, as the CLI takes them (`--model PATH`,
    `--set control.0.model=PATH`): only those of what is missing, since the others are already found."""
    options = []
    for source in missing:
        key = re.sub(r"\[(\d+)\]", r".\1", source.key)  # control[0].model → control.0.model, what --set takes
        option = "--model PATH" if source.key == "model.base_model" else f"--set {key}=PATH"
        options.append(f"{option} (`{source.key}`)")
    return ", ".join(dict.fromkeys(options))


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
        elif len(parts) == 1 and (
            name == "config.json" or name.endswith((".safetensors.index.json", *WEIGHT_SUFFIXES))
        ):
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
                if any(v == variant and s == suffix for v, s, _ in found):  # noqa: B023 (used in this iteration)
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


def _names_a_missing_thing(error: Exception) -> bool:
    """Whether a fetch failed because the config names what the hub does not have (a usage error), rather than
    because the hub or the network failed (a run-time failure)."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        from huggingface_hub.errors import RevisionNotFoundError
    except ImportError:  # pragma: no cover - older huggingface_hub
        RevisionNotFoundError = RepositoryNotFoundError  # noqa: N806
    if isinstance(error, LocalEntryNotFoundError):  # the network is down: the file could not be looked up
        return False
    return isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, FileNotFoundError))


def download_weights(
    config: RerenderConfig,
    half_precision: bool = False,
    include_flow: bool = True,
    progress: bool = True,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Fetch every hub repository `config` names into the Hugging Face cache (only the files rerender reads).

    That is the base model, its ControlNets, the VAE if set, GMFlow, the translation model when the prompt is not
    English, and the IP-Adapter with its image encoder when a style image is set (`extra_sources`). Local paths
    are left alone. Already cached files are not downloaded again. Progress bars are the hub library's (one per
    file), unless `progress` is False.

    Args:
        config: the models, flow, prompt and style settings to fetch for.
        half_precision: fetch the ``fp16`` variants where a repository has them (for float16 on a GPU).
        include_flow: also fetch the GMFlow checkpoint (when `config.flow` may use it).
        progress: show download progress bars.
        dry_run: list what would be fetched and skipped without downloading. Without the hub (offline) it still
            answers: by name where the config fixes the file, by pattern where only the hub's file list can tell.

    Returns:
        One record per source: ``{"role", "location", "fetched", "skipped", "path", "resolved", "cached", "note"}``
        (``path``: the local snapshot folder or file, None for a dry run or a local source; ``resolved``: False when
        ``fetched`` holds patterns; ``cached``: already on this machine; ``note``: why something is not resolved).
        A need that the config does not name (a translation model for ``prompt_language: auto`` without a prompt)
        is a record with role "unresolved", no location, and its ``note``.

    Raises:
        InputNotFoundError: ``HF_HUB_OFFLINE`` is set (except for a dry run), a repository or file does not exist,
            or a translation model has no ``.safetensors`` weights (names which).
        ServiceUnavailableError: the hub cannot be reached, or a fetch failed on the way (network, server).
    """
    from rerender.errors import InputNotFoundError, ServiceUnavailableError

    sources = weight_sources(config, include_flow=include_flow)
    extras, unresolved = extra_sources(config)
    sources += extras
    records: list[dict[str, Any]] = [
        {
            "role": "unresolved",
            "location": None,
            "fetched": [],
            "skipped": [],
            "path": None,
            "resolved": False,
            "cached": False,
            "note": note,
        }
        for note in unresolved
    ]
    if not hub_reachable():
        if hub_offline():
            why = "HF_HUB_OFFLINE is set"
        else:
            from huggingface_hub import constants

            why = f"the hub ({constants.ENDPOINT}) cannot be reached"
        if not dry_run:
            # HF_HUB_OFFLINE is the user's own setting (a usage error); an unreachable hub is a run-time failure.
            error = InputNotFoundError if hub_offline() else ServiceUnavailableError
            raise error(
                f"`rerender download` needs the network, but {why}; "
                + ("unset it and run again" if hub_offline() else "check the network (or HF_ENDPOINT) and run again")
            )
        for source in sources:
            listing = offline_listing(source) if source.is_hub else []
            exact = source.is_hub and source.filename is not None and source.role != "IP-Adapter"
            records.append(
                {
                    "role": source.role,
                    "location": source.location,
                    "fetched": listing,
                    "skipped": [],
                    "path": None if source.is_hub else source.location,
                    "resolved": exact or not source.is_hub,
                    "cached": source.present,
                    "note": None
                    if exact or not source.is_hub
                    else f"listed by pattern: {why}, and the exact file names need the hub's file list",
                }
            )
        return records
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError:  # pragma: no cover
        disable_progress_bars = enable_progress_bars = lambda: None  # noqa: E731
    if not progress:
        disable_progress_bars()
    try:
        for source in sources:
            record: dict[str, Any] = {
                "role": source.role,
                "location": source.location,
                "fetched": [],
                "skipped": [],
                "path": None,
                "resolved": True,
                "cached": source.present,
                "note": None,
            }
            records.append(record)
            if not source.is_hub:
                record["path"] = source.location
                continue
            try:
                if source.role == "IP-Adapter" or source.key in ("prompt.translation_model", "prompt.audio_model"):
                    files = _repository_files(source.location)
                    if source.role == "IP-Adapter":
                        record["fetched"], record["skipped"] = ip_adapter_files(files, source.filename or "")
                        if (source.filename or "") not in record["fetched"]:
                            raise FileNotFoundError(
                                f"the repository has no {source.filename!r} (`model.ip_adapter_weight_name`)"
                            )
                    else:
                        record["fetched"], record["skipped"] = translator_files(files)
                        if not any(name.endswith((".safetensors", ".bin")) for name in record["fetched"]):
                            raise FileNotFoundError(
                                "it has neither .safetensors nor pytorch_model.bin weights; "
                                f"choose another `{source.key}`"
                            )
                        record["note"] = translator_weights_note(record["fetched"])
                    if not dry_run:
                        record["path"] = snapshot_download(source.location, allow_patterns=record["fetched"])
                    continue
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
                raise (InputNotFoundError if _names_a_missing_thing(error) else ServiceUnavailableError)(
                    f"could not fetch the {source.role} {source.location!r} (`{source.key}`): "
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                ) from error
    finally:
        if not progress:
            enable_progress_bars()
    return records


# --------------------------------------------------------------------------------------------------------
# which family a model belongs to, read from the model itself (cheap: configs and file headers only)
# --------------------------------------------------------------------------------------------------------

# Keys only an SDXL single file (A1111/Civitai layout) has: the second text encoder (OpenCLIP bigG) and the
# added size/crop embedding of the UNet.
_SDXL_CHECKPOINT_KEYS = (
    "conditioner.embedders.1.model.positional_embedding",
    "model.diffusion_model.label_emb.0.0.weight",
)
_SD_CHECKPOINT_KEYS = (
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
    "model.diffusion_model.input_blocks.0.0.weight",
)
_FAMILY_DETECTORS: list = []
"""Further detectors ``(path) -> family or None``, tried before the Stable Diffusion ones (other model families,
e.g. flow-matching transformers, register theirs with `register_family_detector`)."""


def register_family_detector(detector) -> None:
    """Add ``detector(path: Path) -> ModelFamily | None`` to `detect_family` (tried first, in order added)."""
    _FAMILY_DETECTORS.append(detector)


def transformer_family(path: Path) -> str | None:
    """ "zimage" or "flux" for a Z-Image or Flux diffusers folder (its model_index.json or transformer/config.json
    says so), else None."""
    if not path.is_dir():
        return None
    for config in (path / "model_index.json", path / "transformer" / "config.json"):
        name = str(read_json_file(config).get("_class_name", "")) if config.is_file() else ""
        if name.startswith("ZImage"):
            return "zimage"
        if name.startswith("Flux"):
            return "flux"
    return None


register_family_detector(transformer_family)


def detect_family_or_none(model: ModelConfig) -> str | None:
    """`detect_family` of the base model, None when it cannot tell (the loaders then say what is wrong)."""
    try:
        return detect_family(model.base_model)
    except (ConfigError, OSError):
        return None


def family_of_unet_config(config: dict) -> str:
    """ "sdxl" for a UNet with SDXL's added conditioning (``addition_embed_type="text_time"``), else "sd15".

    The same rule holds for ControlNets, whose configs carry the UNet's conditioning settings.
    """
    return "sdxl" if config.get("addition_embed_type") == "text_time" else "sd15"


def read_json_file(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def checkpoint_keys(path: Path) -> set[str]:
    """The tensor names of a `.safetensors` file (header only); empty for other formats."""
    if path.suffix.lower() != ".safetensors":
        return set()
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return set(handle.keys())


def detect_family(source: str | os.PathLike, key: str = "model.base_model") -> str:
    """The `ModelFamily` of a base model, read from the model itself; no weights are loaded.

    * a diffusers folder (or a cached hub snapshot): ``unet/config.json`` (`family_of_unet_config`); a folder with
      a ``transformer/`` instead is left to the registered detectors;
    * a single ``.safetensors`` file: its key names (SDXL files hold ``conditioner.embedders.1`` and
      ``label_emb``); ``.ckpt`` files, which cannot be inspected without unpickling, count as SD 1.5;
    * a hub id that is not cached: by name ("z-image" means Z-Image, "FLUX.1" Flux, "xl" SDXL), the only clue
      without downloading.

    Args:
        source: a folder, a file or a hub id.
        key: the argument named in errors.

    Returns:
        "sd15" or "sdxl" (or what a registered detector returns).

    Raises:
        ConfigError: a file or folder that is neither family's layout.
    """
    source = str(source)
    path = Path(source).expanduser()
    if not path.exists() and is_hub_id(source):
        cached = cached_folder(source, ())
        if cached is None:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(source, "unet/config.json")
            cached = Path(found).parent.parent if isinstance(found, str) else None
            if cached is None:  # a transformer model's snapshot (Z-Image) has no unet/
                index = try_to_load_from_cache(source, "model_index.json")
                cached = Path(index).parent if isinstance(index, str) else None
        if cached is None:
            if re.search(r"z-?image", source, re.IGNORECASE):
                return "zimage"
            if source.lower().split("/")[-1].startswith("flux.1"):
                return "flux"
            return "sdxl" if re.search(r"xl", source, re.IGNORECASE) else "sd15"
        path = cached
    for detector in _FAMILY_DETECTORS:
        family = detector(path)
        if family is not None:
            return family
    if path.is_dir():
        for config in (path / "unet" / "config.json", path / "config.json"):
            if config.is_file():
                return family_of_unet_config(read_json_file(config))
        raise ConfigError(
            f"`{key}` {source!r} is a folder without unet/config.json: not a Stable Diffusion model folder"
        )
    keys = checkpoint_keys(path)
    if not keys:
        return "sd15"
    if any(name in keys for name in _SDXL_CHECKPOINT_KEYS):
        return "sdxl"
    if any(name in keys for name in _SD_CHECKPOINT_KEYS) or any(
        name.startswith("model.diffusion_model.") for name in keys
    ):
        return "sd15"
    raise ConfigError(
        f"`{key}` {source!r} is not a Stable Diffusion checkpoint in the original layout (no model.diffusion_model.* "
        "weights); pass an SD 1.5 or SDXL .safetensors file, a diffusers folder or a hub id"
    )
