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

import dataclasses
import functools
import logging
import os
import posixpath
import re
import shlex
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from rerender.config.sections import FAMILY_NAMES, VARIANT_NAMES
from rerender.errors import ConfigError, InputNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from rerender.config import ModelConfig, RerenderConfig

logger = logging.getLogger(__name__)

__all__ = [
    "adapter_file",
    "LORA_WEIGHT_NAME",
    "lora_file_name",
    "hub_file_reference",
    "cached_lora_file",
    "hub_lora_source",
    "GMFLOW_FILENAME",
    "SINGLE_FILE_SUFFIXES",
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
    "component_config",
    "base_variant",
    "fetch_repository",
    "select_files",
    "ip_adapter_files",
    "translator_files",
    "offline_listing",
    "download_weights",
    "download_sources",
    "FLUX_FOLDERS",
    "SDXL_FP16_VAE",
    "IP_ADAPTER_FAMILIES",
    "KNOWN_TERMS",
    "RepositoryListing",
    "repository_listing",
    "model_components",
    "precision_variant",
    "ip_adapter_encoder_folder",
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

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
"""The suffixes of a model given as one checkpoint file (DreamBooth, civitai) instead of a diffusers folder."""
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
    optional: bool = False
    """Used when here, not needed otherwise (SDXL's fp16-fixed VAE: without it the model's VAE decodes in float32)."""


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(source: str) -> bool:
    """True for a Hugging Face hub id (``owner/name``) that is not also a local path or a checkpoint file name."""
    return (
        bool(_HUB_ID.match(source))
        and not Path(source).expanduser().exists()
        and not source.lower().endswith(WEIGHT_SUFFIXES)
    )


_is_hub_id = is_hub_id

_HUB_HOST = r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/"
"""The start of a hub page's address, with or without the scheme (the one pattern for every hub URL below)."""
_REPOSITORY = r"([A-Za-z0-9][\w.-]*/[\w.-]+)"
"""owner/name, captured."""
_HUB_URL = re.compile(_HUB_HOST + _REPOSITORY + r"(?:/.*)?$")


def typed_hub_id(source: str) -> str | None:
    """The hub id a user meant by `source` when typed as its page URL (``https://huggingface.co/owner/name/…``) or
    with a trailing slash (``owner/name/``); None for anything else (a hub id as it should be included)."""
    typed = _HUB_URL.match(source.strip()) or _HUB_ID.match(source.strip().rstrip("/"))
    hub_id = typed.group(1) if typed and typed.groups() else source.strip().rstrip("/") if typed else None
    return hub_id if hub_id != source else None


_HUB_PAGE = re.compile(_HUB_HOST + _REPOSITORY + r"(?:/(?:blob|resolve|tree)/([^/]+)(?:/(.*?))?)?/?$")
_HUB_FILE = re.compile("^" + _REPOSITORY + r"/([^:]+\.safetensors)$")


def hub_file_reference(text: str) -> tuple[str, str | None] | None:
    """``(repository, path of a file inside it or None)`` when `text` names a file of a hub model repository the way
    users copy it, or the repository's page; None for anything else (a local path, a plain hub id):

    * ``owner/name/file.safetensors`` (a path inside the repository, sub-folders allowed), when no such local file
      exists and ``owner`` is no local folder (a mistyped local path stays a local path);
    * the page of a file, ``https://huggingface.co/owner/name/blob/main/file.safetensors`` (or ``resolve/main``), or
      of the repository, ``https://huggingface.co/owner/name`` (``hf.co`` too, with or without the scheme).

    Raises:
        ConfigError: a page of another revision than ``main`` (rerender reads a repository's main revision), or of
            a dataset or a Space.
    """
    text = text.strip()
    other = re.match(_HUB_HOST + r"(dataset|space)s/", text)
    if other is not None:
        raise ConfigError(f"{text!r} is a {other.group(1)} page, not a model repository")
    page = _HUB_PAGE.match(re.sub(r"[?#].*$", "", text))  # the download button's ?download=true, a #L1 anchor
    if page is not None:
        repository, revision, inside = page.groups()
        if revision not in (None, "main"):
            raise ConfigError(
                f"{text!r} is a file of revision {revision!r}; rerender reads a repository's main revision: "
                "download the file and pass its path"
            )
        return repository, inside or None
    named = _HUB_FILE.match(text)
    if named is None or Path(text).expanduser().exists() or Path(text.split("/")[0]).expanduser().is_dir():
        return None
    return named.group(1), named.group(2)


def missing_source_error(key: str, source: str, path: Path) -> InputNotFoundError:
    """The error for a model source that is neither a hub id nor an existing path; a hub id typed as a page URL
    (``https://huggingface.co/owner/name``) or with a trailing slash is named as the hub id to pass."""
    hub_id = typed_hub_id(source)
    try:
        hub_file = hub_file_reference(source)
    except ConfigError:  # a page of another revision: the general hint
        hub_file = None
    named_file = hub_file is not None and hub_file[1]
    hint = (
        f"; a file of a hub repository is given in a config as {{path: {hub_file[0]}, weight_name: {hub_file[1]}}} "
        f"(the CLI's --lora takes {source!r} as it is)"
        if named_file and key.startswith("model.loras[")
        else f"; {source!r} names one file of the hub repository {hub_file[0]!r}: download it "
        f"(`hf download {hub_file[0]} {hub_file[1]} --local-dir <folder>`) and pass its path, or pass the hub id "
        f"{hub_file[0]!r} for the repository's diffusers folder"
        if named_file and "://" in source  # a page's address; `a/b/c.safetensors` may be a mistyped local path
        else f"; for the Hugging Face model, pass its hub id {hub_id!r} (owner/name, no URL or trailing slash)"
        if hub_id is not None
        else "; pass a local diffusers folder, a .safetensors/.ckpt file, or a Hugging Face hub id (owner/name)"
    )
    return InputNotFoundError(f"`{key}` {source!r} does not exist (looked for {str(path.resolve())!r}){hint}")


def _weight_candidates(folder: str) -> list[str]:
    """The names one set of weights of `folder` may have: whole files, or the index of a sharded set (transformers'
    ``model``/``pytorch_model`` in the text encoders, diffusers' ``diffusion_pytorch_model`` elsewhere)."""
    prefix = f"{folder}/" if folder else ""
    names = ("model", "pytorch_model") if folder.startswith("text_encoder") else ("diffusion_pytorch_model",)
    whole = [
        f"{prefix}{name}{variant}{suffix}"
        for name in names
        for variant in (".fp16", ".bf16", "")
        for suffix in (".safetensors", ".bin")
    ]
    index = [
        f"{prefix}{name}{suffix}.index{variant}.json"
        for name in names
        for variant in (".fp16", ".bf16", "")
        for suffix in (".safetensors", ".bin")
    ]
    return whole + index


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

FLUX_FOLDERS = ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
"""The sub-folders of a Flux repository that are fetched and read (CLIP-L and T5-XXL with their tokenizers)."""

SDXL_FP16_VAE = "madebyollin/sdxl-vae-fp16-fix"
"""The SDXL VAE fine-tuned not to overflow in float16 (same latents, scaled-down activations): loaded instead of the
model's own VAE for SDXL in float16 when it is here (`rerender.diffusion.loading`), fetched by ``rerender download
--precision fp16`` for an SDXL model."""


FIXED_VAE_ROLE = "VAE (SDXL fp16-fixed)"


def model_components(family: str, separate_vae: bool = False) -> tuple[str, ...]:
    """The sub-folders of a hub base model of `family` that are fetched and read (`base_components` for the UNet
    families, `ZIMAGE_FOLDERS`, `FLUX_FOLDERS`)."""
    if family == "zimage":
        return ZIMAGE_FOLDERS
    if family == "flux":
        return FLUX_FOLDERS
    return base_components(separate_vae, family)


def cached_folder(repository: str, components: Sequence[str] = ()) -> Path | None:
    """The snapshot folder of `repository` in the hub cache when it holds what loading reads, else None."""
    if not _hub_present(repository, components):
        return None
    from huggingface_hub import try_to_load_from_cache

    return Path(try_to_load_from_cache(repository, "model_index.json" if components else "config.json")).parent


def fetch_repository(
    repository: str,
    half_precision: bool = False,
    components: Sequence[str] = (),
    dry_run: bool = False,
    variant: str | None = None,
) -> tuple[Path | None, list[str], list[str]]:
    """Download the files of `repository` that rerender reads (`select_files`) into the hub cache.

    Returns:
        ``(snapshot folder or None for a dry run, fetched files, skipped files)``.
    """
    from huggingface_hub import snapshot_download

    fetched, skipped = select_files(_repository_files(repository), half_precision, components or None, variant)
    if dry_run:
        return None, fetched, skipped
    logger.info("fetching %d files of %s (skipping %d unused)", len(fetched), repository, len(skipped))
    return Path(snapshot_download(repository, allow_patterns=fetched)), fetched, skipped


_FAMILY_LABELS = FAMILY_NAMES


def model_family(model: ModelConfig) -> str:
    """`model.family`, or when "auto" the family detected from the model (`detect_family`:
    configs and file headers, no weights, no network); "sd15" when the model is not here to look at."""
    if model.family != "auto":
        return model.family

    try:
        return detect_family(model.base_model)
    except (ConfigError, OSError):
        return "sd15"


def weight_sources(
    config: RerenderConfig,
    include_flow: bool = True,
    precision: str | None = None,
    controls: Sequence[Any] | None = None,
) -> list[WeightSource]:
    """Every set of weights `config` names, with whether each is on this machine (no network access).

    The first ControlNet of a base-model folder that holds a ``controlnet/`` sub-folder comes from that folder,
    as `rerender.diffusion.loading.load_pipeline` does. GMFlow is listed when `config.flow` may use it ("auto" or "gmflow").
    An SDXL model without `model.vae` in float16 (`precision`, default `model.dtype`; "auto" counts when the
    fixed VAE is here, since loading then uses it on a GPU) lists `SDXL_FP16_VAE` as an optional source; when it is
    here, the model's own VAE is not needed. Nothing here imports torch: "auto" is not resolved against the device.
    """
    model = config.model
    sources: list[WeightSource] = []
    base_is_hub = _is_hub_id(model.base_model)
    family = model_family(model)
    precision = precision or model.dtype
    fixed_vae = family == "sdxl" and model.vae is None and precision in ("float16", "auto")
    fixed_present = fixed_vae and _hub_present(SDXL_FP16_VAE)
    fixed_vae = fixed_vae and (precision == "float16" or fixed_present)
    components = model_components(family, model.vae is not None or fixed_present)
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
    for position, control in enumerate(config.control if controls is None else controls):  # generate loads none
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
        if family == "flux" and control.model is None:  # no default: the Flux loader asks for `control.model`
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
    sources = _merge_shared_controlnets(sources)
    if model.vae is not None:
        if _is_hub_id(model.vae):
            sources.append(WeightSource("VAE", "model.vae", model.vae, True, _hub_present(model.vae)))
        else:
            sources.append(WeightSource("VAE", "model.vae", model.vae, False, Path(model.vae).expanduser().exists()))
    if fixed_vae:
        sources.append(
            WeightSource(FIXED_VAE_ROLE, "model.vae", SDXL_FP16_VAE, True, bool(fixed_present), optional=True)
        )
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


def _merge_shared_controlnets(sources: list[WeightSource]) -> list[WeightSource]:
    """One source per ControlNet model: controls that name the same one (a Union ControlNet taking several
    conditions, as in configs/sdxl_union.yaml) share it, listed, fetched and counted once ("ControlNet (canny, depth)")."""
    merged: list[WeightSource] = []
    for source in sources:
        same = next(
            (
                index
                for index, kept in enumerate(merged)
                if kept.key.startswith("control[")
                and source.key.startswith("control[")
                and (kept.location, kept.filename) == (source.location, source.filename)
            ),
            None,
        )
        if same is None:
            merged.append(source)
        else:  # "ControlNet (canny)" + "ControlNet (depth)" -> "ControlNet (canny, depth)"
            kept = merged[same]
            merged[same] = dataclasses.replace(kept, role=f"{kept.role[:-1]}, {source.role.split('(', 1)[1]}")
    return merged


def extra_sources(config: RerenderConfig) -> tuple[list[WeightSource], list[str]]:
    """The weights `config` needs beyond the keyframe models: the prompt's translation model (when
    `prompt.prompt_language` is not English, or `prompt.translation_model` is named) and the IP-Adapter (when
    `prompt.style_image` is set with `prompt.style_image_scale` > 0).

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
    for position, lora in enumerate(config.model.loras):  # a hub LoRA: one file (`lora_file_name`)
        if _is_hub_id(lora.path):
            sources.append(hub_lora_source(lora, position))
    family = model_family(config.model) if prompt.uses_style_image else "sd15"
    if prompt.uses_style_image and family not in IP_ADAPTER_FAMILIES:
        unresolved.append(
            f"the IP-Adapter: `prompt.style_image` needs one, and rerender has none for "
            f"{_FAMILY_LABELS.get(family, family)} (reference images work on SD 1.5 and SDXL); leave --style-image out"
        )
    elif prompt.uses_style_image:  # at scale 0 the image has no effect: no adapter is loaded
        source, weight_name = config.model.ip_adapter, config.model.resolved_ip_adapter_weight_name(family)
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


LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
"""diffusers' name for a LoRA file (`save_lora_weights`): the one a folder or hub repository is read from when none
is named and it holds several ``.safetensors`` files."""


def lora_file_name(names: Iterable[str], weight_name: str | None, *, key: str, source: str, kind: str) -> str | None:
    """The file a LoRA folder or hub repository is read from, the one rule for the loader, the checks before a run,
    ``rerender env`` and ``rerender download``: `weight_name` when named, else diffusers' `LORA_WEIGHT_NAME`,
    else its only top-level ``.safetensors`` file; None when it holds no ``.safetensors`` file.

    Args:
        names: the paths of the files inside the folder or repository ("a.safetensors", "sub/b.safetensors").
        weight_name: the file the config names (`LoraConfig.weight_name`), or None.
        key, source: the option and its value, as the user wrote them (for the error).
        kind: "folder" or "repository" (what `source` is, for the error).

    Raises:
        ConfigError: several top-level ``.safetensors`` files and none named (listing them).
    """
    if weight_name:
        return weight_name
    top = sorted({name for name in names if "/" not in name and name.endswith(".safetensors")})
    if LORA_WEIGHT_NAME in top or not top:
        return LORA_WEIGHT_NAME if top else None
    if len(top) > 1:
        listed = f"{', '.join(top[:5])}{', …' if len(top) > 5 else ''}"
        if kind == "folder":
            raise ConfigError(
                f"{key} {source!r} is a folder of {len(top)} .safetensors files ({listed}): give the path of the "
                "one to use (or, in a config, its name as the LoRA's `weight_name`)"
            )
        raise ConfigError(
            f"{key} {source!r} is a hub repository of {len(top)} .safetensors files ({listed}): name the one to "
            f"use as a path inside it (--lora {source}/{top[0]}), or in a config as the LoRA's `weight_name`"
        )
    return top[0]


def cached_lora_file(lora: Any, key: str = "`model.loras[].path`") -> Path | None:
    """The cached file of a hub-id LoRA (`lora_file_name` on the files of its cached snapshots); None when it is not
    cached (or `lora.path` is no hub id).

    Raises:
        ConfigError: several ``.safetensors`` files are cached and none is named.
    """
    if not is_hub_id(lora.path):
        return None
    from huggingface_hub import constants, try_to_load_from_cache

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{lora.path.replace('/', '--')}" / "snapshots"
    names = [file.name for file in snapshots.glob("*/*.safetensors")] if snapshots.is_dir() else []
    name = lora_file_name(names, lora.weight_name, key=key, source=lora.path, kind="repository")
    if name is None:
        return None
    found = try_to_load_from_cache(lora.path, name)
    if isinstance(found, str) and os.path.isfile(found):
        return Path(found)
    files = sorted(snapshots.glob(f"*/{name}")) if snapshots.is_dir() else []  # a snapshot refs/main does not name
    return files[0] if files else None


def hub_lora_source(lora: Any, position: int) -> WeightSource:
    """The `WeightSource` of a hub-id LoRA: its file (`filename`) when it is named or cached, else None (the hub's
    file list tells, by `lora_file_name`, when it is fetched)."""
    key = f"model.loras[{position}].path"
    try:
        found = cached_lora_file(lora, f"`{key}`")
    except ConfigError:  # several files here, none named: nothing to fetch, and the run refuses it (`check_hub_loras`)
        return WeightSource("LoRA", key, lora.path, True, True)
    name = lora.weight_name or (found.name if found is not None else None)
    return WeightSource("LoRA", key, lora.path, True, found is not None, filename=name)


IP_ADAPTER_FAMILIES = ("sd15", "sdxl")
"""The families whose UNet takes an IP-Adapter (`prompt.style_image`); the transformer bases have none here."""


def ip_adapter_encoder_folder(weight_name: str) -> str:
    """The image encoder's folder of an adapter file: ``image_encoder`` beside it, except h94's SDXL ViT-H adapters
    (``sdxl_models/*vit-h*``), which use the SD 1.5 encoder in ``models/image_encoder``."""
    folder, name = posixpath.split(weight_name)
    if folder == "sdxl_models" and "vit-h" in name:
        return "models/image_encoder"
    return posixpath.join(folder, "image_encoder")


def ip_adapter_files(files: Iterable[str], weight_name: str) -> tuple[list[str], list[str]]:
    """Split an IP-Adapter repository's files into those loading reads (the adapter file, and its image encoder's
    config and one set of weights in ``image_encoder/`` beside it) and the rest.

    Returns:
        ``(fetched, skipped)``, each sorted.
    """
    files = sorted(set(files))
    encoder = ip_adapter_encoder_folder(weight_name) + "/"
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
        encoder = ip_adapter_encoder_folder(source.filename or "")
        return [source.filename or "", f"{encoder}/config.json", f"{encoder}/*.safetensors (or *.bin)"]
    if source.filename is not None:
        return [source.filename]
    if source.role == "LoRA":
        return [f"{LORA_WEIGHT_NAME}, else the repository's only .safetensors file"]
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


def missing_weights(config: RerenderConfig, controls: Sequence[Any] | None = None) -> list[WeightSource]:
    """The keyframe weights (base model, ControlNets, VAE) that cannot be loaded here and now.

    A hub id that is not cached counts as missing only when the hub cannot be used (``HF_HUB_OFFLINE`` or no
    network): on a connected machine it is downloaded when loaded. A local path that does not exist is a
    mistake in the config, reported by `rerender.diffusion.loading.check_model_sources`, and not listed here.
    """
    absent = [
        source
        for source in weight_sources(config, include_flow=False, controls=controls)
        if source.is_hub and not source.present and not source.optional
    ]
    if absent and hub_reachable():
        return []
    return absent


def fetch_commands(config: RerenderConfig, sources: Iterable[WeightSource]) -> list[str]:
    """Shell commands that fetch `sources` on a connected machine: ``rerender download`` and one ``hf download`` each."""
    from rerender.config import ControlConfig, ModelConfig, PromptConfig

    arguments = ""
    if config.model.base_model != ModelConfig().base_model:
        arguments += f" --model {shlex.quote(config.model.base_model)}"
    if config.model.vae is not None:
        arguments += f" --vae {shlex.quote(config.model.vae)}"
    if config.control:  # the first ControlNet (--set reaches the positions the defaults have)
        control = config.control[0]
        if control.type != ControlConfig().type:
            arguments += f" --set control.0.type={control.type}"
        if control.model is not None:
            arguments += f" --set control.0.model={shlex.quote(control.model)}"
    if config.model.dtype != "auto":
        arguments += f" --precision {config.model.dtype}"
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
    if config.prompt.uses_style_image:
        arguments += f" --style-image {shlex.quote(config.prompt.style_image)}"
        if config.model.ip_adapter != ModelConfig().ip_adapter:
            arguments += f" --set ip_adapter={shlex.quote(config.model.ip_adapter)}"
    commands = [f"rerender download{arguments}"]
    for source in sources:
        if not source.is_hub:
            continue
        if source.role == "IP-Adapter":
            encoder = ip_adapter_encoder_folder(source.filename or "")
            commands.append(f'hf download {source.location} --include "{source.filename}" "{encoder}/*"')
        elif source.key in ("prompt.translation_model", "prompt.audio_model"):
            commands.append(f'hf download {source.location} --exclude "*.h5" "*.msgpack" "*.ot" "*.md"')
        elif source.filename is not None:
            commands.append(f"hf download {source.location} {source.filename}")
        elif source.role == "LoRA":  # not named, not cached: its top-level .safetensors (`lora_file_name` picks)
            commands.append(f'hf download {source.location} --include "*.safetensors" --exclude "*/*"')
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


_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_INDEX = re.compile(r"^(?P<stem>.+?)(?P<suffix>\.safetensors|\.bin)\.index(?:\.(?P<variant>[\w-]+))?\.json$")
WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
"""The weight file names `from_pretrained` reads (diffusers' and transformers'), before variant and shard marks; other
weight files beside them (A1111 single files, ``*_promax`` and the like) are never read by a folder load."""


def _variant_and_stem(name: str) -> tuple[str, str | None, str]:
    """`unet/diffusion_pytorch_model.fp16.safetensors` → (`unet/diffusion_pytorch_model`, "fp16", ".safetensors");
    shards lose their ``-0000k-of-0000n`` mark (`model.fp16-00001-of-00002.safetensors` → variant "fp16"); an
    index (`model.safetensors.index.fp16.json`) gives the stem, variant and format of the weights it lists."""
    path = PurePosixPath(name)
    folder = str(path.parent)
    index = _INDEX.match(path.name)
    if index is not None:
        stem, variant, suffix = index["stem"], index["variant"], index["suffix"]
    else:
        suffix = path.suffix
        stem = path.name[: -len(suffix)] if suffix else path.name
        stem = _SHARD.sub("", stem)
        variant = None
        if "." in stem:
            stem, variant = stem.rsplit(".", 1)
        variant = _SHARD.sub("", variant) if variant else variant
        stem = _SHARD.sub("", stem)
    return (stem if folder == "." else f"{folder}/{stem}"), variant, suffix


def _unused(name: str) -> bool:
    """Files no PyTorch load reads: Flax/TensorFlow/ONNX/OpenVINO exports, EMA-free duplicates, original checkpoints."""
    base = PurePosixPath(name).name
    return name.endswith(_UNUSED_FORMATS) or base.startswith("openvino_") or "non_ema" in name or "non-ema" in name


def precision_variant(precision: str | None) -> str | None:
    """The hub file variant loading reads at a precision: "fp16" for float16 (`rerender.diffusion.loading` asks
    diffusers for ``variant="fp16"`` when only those files are here), else None: the default files. bfloat16 has no
    variant of its own here: Z-Image-Turbo and FLUX.1 publish their default files in bfloat16, and the loaders read
    those (a ``*.bf16.*`` file would not be read)."""
    return "fp16" if precision in ("float16", "fp16") else None


def select_files(
    files: Iterable[str],
    half_precision: bool = False,
    components: Sequence[str] | None = None,
    variant: str | None = None,
) -> tuple[list[str], list[str]]:
    """Split a hub repository's files into those rerender reads and those it never uses.

    Kept: ``model_index.json``; in a pipeline repository (one with ``model_index.json``) only the sub-folders
    in `components` (default `PIPELINE_FOLDERS`); in a single-model repository (a ControlNet, a VAE) its
    ``config.json`` and weights. Of each set of weights one: the `variant` (``fp16``, ``bf16``) when the repository
    has it, else the full-precision file; ``.safetensors`` before ``.bin``; every shard of the chosen set and its
    index, no other index. Only the names `from_pretrained` reads (`WEIGHT_STEMS`) where a folder has them.
    Dropped as well: EMA-free duplicates (``non_ema``), Flax/TensorFlow/ONNX/OpenVINO files, original single-file
    checkpoints, docs and images.

    Args:
        files: the repository's file paths (`HfApi.list_repo_files`, or the keys of `RepositoryListing.files`).
        half_precision: float16 weights are wanted (the same as ``variant="fp16"``).
        components: sub-folders of a pipeline repository to keep.
        variant: the precision variant wanted (`precision_variant`), None for full precision.

    Returns:
        ``(fetched, skipped)``, each sorted.
    """
    variant = variant or ("fp16" if half_precision else None)
    files = sorted(set(files))
    pipeline = "model_index.json" in files
    wanted_folders = tuple(components if components is not None else PIPELINE_FOLDERS)
    candidates: list[str] = []
    for name in files:
        parts = PurePosixPath(name).parts
        if pipeline:
            if name == "model_index.json" or (len(parts) > 1 and parts[0] in wanted_folders):
                candidates.append(name)
        elif len(parts) == 1 and (name == "config.json" or bool(_INDEX.match(name)) or name.endswith(WEIGHT_SUFFIXES)):
            candidates.append(name)
    fetched = []
    weights: dict[str, list[tuple[str | None, str, str, str]]] = {}
    for name in candidates:
        if _unused(name):
            continue
        if not (name.endswith(WEIGHT_SUFFIXES) or _INDEX.match(PurePosixPath(name).name)):
            fetched.append(name)
            continue
        stem, its_variant, suffix = _variant_and_stem(name)
        folder = str(PurePosixPath(stem).parent)
        weights.setdefault(folder, []).append((its_variant, suffix, PurePosixPath(stem).name, name))
    for found in weights.values():
        standard = [entry for entry in found if entry[2] in WEIGHT_STEMS]
        found = standard or found  # noqa: PLW2901 - a folder of other names only (a bare checkpoint repo): keep them
        # the weights proper (not only an index) decide which set is there
        present = {(v, s) for v, s, _, name in found if name.endswith(WEIGHT_SUFFIXES)}

        def pick(wanted: str | None) -> tuple[str | None, str] | None:
            for suffix in (".safetensors", ".bin", ".pth", ".pt"):
                if (wanted, suffix) in present:  # noqa: B023 (used in this iteration)
                    return wanted, suffix
            return None

        preferred = (pick(variant) if variant else None) or pick(None) or pick("fp16") or pick("bf16")
        if preferred is None and present:
            preferred = sorted(present, key=str)[0]
        # Every file of the chosen format and variant: one file, or the shards of one model and their index.
        chosen_stems = [stem for v, s, stem, name in found if (v, s) == preferred and name.endswith(WEIGHT_SUFFIXES)]
        stem = chosen_stems[0] if chosen_stems else None
        fetched.extend(name for v, s, its_stem, name in found if (v, s) == preferred and its_stem == stem)
    fetched = sorted(fetched)
    kept = set(fetched)
    return fetched, [name for name in files if name not in kept]


@dataclass(frozen=True)
class RepositoryListing:
    """What the hub says of a model repository before anything is downloaded (one `HfApi.model_info` call)."""

    files: dict[str, int | None]
    """Every file's path in the repository → its size in bytes (None where the hub gave none)."""
    gated: str | bool = False
    """False, or how access is granted ("auto", "manual"): the user must accept the terms while logged in."""
    license: str | None = None
    """The licence of the model card (its ``license_name`` for "other")."""

    @property
    def non_commercial(self) -> bool:
        """The licence forbids commercial use (a "non-commercial" licence name, or a CC BY-NC one)."""
        text = (self.license or "").lower()
        return "non-commercial" in text or "noncommercial" in text or text.startswith("cc-by-nc")


def repository_listing(repository: str) -> RepositoryListing:
    """The files of a hub model repository with their sizes, and its access terms, from the hub's file metadata
    (``HfApi().model_info(repository, files_metadata=True)``); nothing is downloaded.

    Raises:
        huggingface_hub's errors: RepositoryNotFoundError (no such id, or private), GatedRepoError, network errors.
    """
    from huggingface_hub import HfApi

    info = HfApi().model_info(repository, files_metadata=True)
    files = {sibling.rfilename: sibling.size for sibling in info.siblings or ()}
    card = info.card_data
    license_name = None
    if card is not None:
        license_name = getattr(card, "license_name", None) or getattr(card, "license", None)
        if isinstance(license_name, list):
            license_name = ", ".join(map(str, license_name))
    return RepositoryListing(files, info.gated or False, license_name)


def _repository_files(repository: str) -> list[str]:
    return list(repository_listing(repository).files)


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


KNOWN_TERMS = {
    "black-forest-labs/FLUX.1-dev": "gated, FLUX.1 [dev] Non-Commercial License: accept it on "
    "https://huggingface.co/black-forest-labs/FLUX.1-dev while logged in (`hf auth login`), and use the outputs "
    "non-commercially only",
}
"""Access terms said even when the hub cannot be asked (a dry run offline); online, the hub's own metadata says."""


def _terms(location: str, listing: RepositoryListing | None) -> str | None:
    """One sentence on a repository's access terms: gated, non-commercial; None for an open, permissive one."""
    if listing is None:
        return KNOWN_TERMS.get(location)
    parts = []
    if listing.gated:
        parts.append(
            f"gated: accept its terms on https://huggingface.co/{location} while logged in (`hf auth login`, or "
            "HF_TOKEN) before downloading"
        )
    if listing.non_commercial:
        parts.append(f"licence {listing.license}: non-commercial use only")
    return "; ".join(parts) or None


def _record(source: WeightSource, **values: Any) -> dict[str, Any]:
    record = {
        "role": source.role,
        "key": source.key,
        "location": source.location,
        "fetched": [],
        "skipped": [],
        "sizes": {},
        "size": None,
        "cached_files": [],
        "path": None,
        "resolved": True,
        "cached": source.present,
        "note": None,
        "terms": None,
        "optional": source.optional,
    }
    record.update(values)
    return record


def _fetch_failure(source: WeightSource, error: Exception) -> Exception:
    """The project's error for a failed look-up or fetch of `source`, naming it, its option and what to do."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from rerender.errors import InputNotFoundError, ServiceUnavailableError

    first_line = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, GatedRepoError):
        return InputNotFoundError(
            f"the {source.role} {source.location!r} (`{source.key}`) is gated: accept its terms on "
            f"https://huggingface.co/{source.location} while logged in, then log in here (`hf auth login`, or set "
            "HF_TOKEN) and run again"
        )
    if isinstance(error, RepositoryNotFoundError):
        return InputNotFoundError(
            f"the hub has no model {source.location!r} (`{source.key}`, the {source.role}), or it is private: check the "
            "id (owner/name, as on huggingface.co), log in (`hf auth login`) for a private one, or pass a local folder"
        )
    kind = InputNotFoundError if _names_a_missing_thing(error) else ServiceUnavailableError
    return kind(
        f"could not fetch the {source.role} {source.location!r} (`{source.key}`): {type(error).__name__}: {first_line}"
    )


def _plan(
    source: WeightSource, listing: RepositoryListing, variant: str | None
) -> tuple[list[str], list[str], str | None]:
    """``(fetched, skipped, note)`` for a hub source from its repository's file list."""
    files = list(listing.files)
    if source.role == "IP-Adapter":
        fetched, skipped = ip_adapter_files(files, source.filename or "")
        if (source.filename or "") not in fetched:
            raise FileNotFoundError(f"the repository has no {source.filename!r} (`model.ip_adapter_weight_name`)")
        return fetched, skipped, None
    if source.key in ("prompt.translation_model", "prompt.audio_model"):
        fetched, skipped = translator_files(files)
        if not any(name.endswith((".safetensors", ".bin")) for name in fetched):
            raise FileNotFoundError(
                f"it has neither .safetensors nor pytorch_model.bin weights; choose another `{source.key}`"
            )
        return fetched, skipped, translator_weights_note(fetched)
    if source.filename is not None:
        if source.filename not in listing.files:
            from huggingface_hub.errors import EntryNotFoundError

            raise EntryNotFoundError(f"the repository has no {source.filename!r}")
        return [source.filename], [], None
    fetched, skipped = select_files(files, components=source.components or None, variant=variant)
    return fetched, skipped, None


def download_sources(
    config: RerenderConfig, precision: str | None = None, include_flow: bool = True
) -> tuple[list[WeightSource], list[str]]:
    """What `download_weights` fetches for `config` at `precision`: its keyframe weights (`weight_sources`, with SDXL's
    fp16-fixed VAE in place of the model's own VAE in float16), the GMFlow checkpoint and the extras
    (`extra_sources`); and one sentence for each need the config leaves open (e.g. a Flux model without a
    ControlNet named)."""
    model = config.model
    family = model_family(model)
    sources = weight_sources(config, include_flow=include_flow, precision=precision)
    unresolved: list[str] = []
    if any(source.role == FIXED_VAE_ROLE for source in sources):  # it will be here: the model's own VAE is not read
        sources = [
            dataclasses.replace(source, components=model_components(family, True))
            if source.key == "model.base_model" and source.is_hub
            else dataclasses.replace(source, optional=False)
            if source.role == FIXED_VAE_ROLE
            else source
            for source in sources
        ]
    if family == "flux":
        for position, control in enumerate(config.control):
            if control.model is None:
                unresolved.append(
                    f"the ControlNet of control[{position}] ({control.type}): Flux has no default; name a Flux "
                    f"ControlNet in `control[{position}].model` (CLI: --set control.{position}.model=ID), e.g. "
                    "InstantX/FLUX.1-dev-Controlnet-Canny or InstantX/FLUX.1-dev-Controlnet-Union"
                )
    extras, more = extra_sources(config)
    return sources + extras, unresolved + more


def download_weights(
    config: RerenderConfig,
    half_precision: bool = False,
    include_flow: bool = True,
    progress: bool = True,
    dry_run: bool = False,
    precision: str | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Fetch every hub repository `config` names into the Hugging Face cache (only the files rerender reads).

    That is the base model (its pipeline folders for its family: SD 1.5, SDXL with both text encoders and
    tokenizers, Z-Image, Flux), its ControlNets (Z-Image's Union ControlNet file by default), the VAE if set (for
    SDXL in float16 `SDXL_FP16_VAE`, since SDXL's own VAE overflows in float16), GMFlow, the translation model when
    the prompt is not English, and the IP-Adapter with its image encoder when a style image is set (`download_sources`).
    The file list and each file's size come from the hub's file metadata first (`repository_listing`), so a dry
    run says exactly what would be fetched and how large it is. Local paths are left alone. Already cached files
    are not downloaded again. Progress bars are the hub library's (one per file), unless `progress` is False.

    Args:
        config: the models, flow, prompt and style settings to fetch for.
        half_precision: fetch the ``fp16`` variants (the same as ``precision="float16"``).
        include_flow: also fetch the GMFlow checkpoint (when `config.flow` may use it).
        progress: show download progress bars.
        dry_run: list what would be fetched and skipped, with sizes, without downloading. Without the hub
            (offline) it still answers: by name where the config fixes the file, by pattern where only the hub's file
            list can tell (no sizes then).
        precision: "float16": the ``*.fp16.*`` variant where a repository publishes one (as loading reads it), and
            for SDXL the fp16-fixed VAE; "bfloat16", "float32" or None: the default files (Z-Image-Turbo's and
            FLUX.1's are bfloat16 already).
        on_record: called with each record as soon as its files and sizes are known, before they are downloaded
            (so that a caller can say how large a download is before it starts).

    Returns:
        One record per source: ``{"role", "key", "location", "fetched", "skipped", "sizes", "size", "cached_files",
        "path", "resolved", "cached", "note", "terms", "optional"}`` (``sizes``: bytes per fetched file, None where
        unknown; ``size``: their sum, None when unknown; ``cached_files``: those already here; ``path``: the local
        snapshot folder or file, None for a dry run or a local source; ``resolved``: False when ``fetched`` holds
        patterns; ``cached``: already on this machine; ``note``: why something is not resolved, or which weights a
        translator reads; ``terms``: gated access or a non-commercial licence). A need that the config does not name
        is a record with role "unresolved", no location, and its ``note``.

    Raises:
        InputNotFoundError: ``HF_HUB_OFFLINE`` is set (except for a dry run), a repository or file does not exist
            (an unknown or private id: named, with its option), a gated repository whose terms are not accepted,
            or a translation model without ``.safetensors`` or ``.bin`` weights.
        ServiceUnavailableError: the hub cannot be reached, or a fetch failed on the way (network, server).
    """

    precision = precision or ("float16" if half_precision else None)
    variant = precision_variant(precision)
    sources, unresolved = download_sources(config, precision or "float32", include_flow)
    records: list[dict[str, Any]] = [
        {"role": "unresolved", "location": None, "fetched": [], "skipped": [], "sizes": {}, "size": None,
         "cached_files": [], "path": None, "resolved": False, "cached": False, "note": note, "terms": None,
         "optional": False}
        for note in unresolved
    ]  # fmt: skip
    report = on_record or (lambda record: None)
    if not hub_reachable():
        records += _offline_records(sources, dry_run)
        for record in records:
            report(record)
        return records
    for record in records:
        report(record)
    try:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError:  # pragma: no cover
        disable_progress_bars = enable_progress_bars = lambda: None  # noqa: E731
    if not progress:
        disable_progress_bars()
    try:
        for source in sources:
            if not source.is_hub:
                records.append(_record(source, path=source.location))
                report(records[-1])
                continue
            try:
                records.append(_hub_record(source, variant, dry_run, report))
            except Exception as error:  # noqa: BLE001 - the hub raises many types; report which source failed
                if isinstance(error, (KeyboardInterrupt, SystemExit, ConfigError)):
                    raise
                raise _fetch_failure(source, error) from error
    finally:
        if not progress:
            enable_progress_bars()
    return records


def _offline_records(sources: Sequence[WeightSource], dry_run: bool) -> list[dict[str, Any]]:
    """Without the hub: refuse a download that has something to fetch; a dry run (or a download whose sources are
    all local) lists each source by name or by pattern (no sizes)."""
    from rerender.errors import InputNotFoundError, ServiceUnavailableError

    if hub_offline():
        why = "HF_HUB_OFFLINE is set"
    else:
        from huggingface_hub import constants

        why = f"the hub ({constants.ENDPOINT}) cannot be reached"
    if not dry_run and any(source.is_hub for source in sources):  # all local: nothing to fetch, no network needed
        # HF_HUB_OFFLINE is the user's own setting (a usage error); an unreachable hub is a run-time failure.
        error = InputNotFoundError if hub_offline() else ServiceUnavailableError
        raise error(
            f"`rerender download` needs the network, but {why}; "
            + ("unset it and run again" if hub_offline() else "check the network (or HF_ENDPOINT) and run again")
        )
    records = []
    for source in sources:
        exact = source.is_hub and source.filename is not None and source.role != "IP-Adapter"
        records.append(
            _record(
                source,
                fetched=offline_listing(source) if source.is_hub else [],
                path=None if source.is_hub else source.location,
                resolved=exact or not source.is_hub,
                terms=_terms(source.location, None) if source.is_hub else None,
                note=None
                if exact or not source.is_hub
                else f"listed by pattern: {why}, and the exact file names and sizes need the hub's file list",
            )
        )
    return records


def _hub_record(
    source: WeightSource, variant: str | None, dry_run: bool, report: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """List `source`'s repository with sizes (`repository_listing`), choose its files, `report` the record, and
    fetch the files unless `dry_run`: the record `download_weights` returns for it."""
    from huggingface_hub import snapshot_download

    listing = repository_listing(source.location)
    if source.role == "LoRA" and source.filename is None:  # the file the loader reads, by the one rule
        name = lora_file_name(listing.files, None, key=f"`{source.key}`", source=source.location, kind="repository")
        source = dataclasses.replace(source, filename=name or LORA_WEIGHT_NAME)
    fetched, skipped, note = _plan(source, listing, variant)
    sizes = {name: listing.files.get(name) for name in fetched}
    record = _record(
        source,
        fetched=fetched,
        skipped=skipped,
        sizes=sizes,
        size=None if None in sizes.values() else sum(sizes.values()),
        cached_files=[name for name in fetched if _cached(source.location, name)],
        note=note,
        terms=_terms(source.location, listing),
    )
    report(record)
    if not dry_run:
        folder = Path(snapshot_download(source.location, allow_patterns=fetched))
        single = source.filename is not None and source.role != "IP-Adapter"
        record["path"] = str(folder / source.filename if single else folder)
    return record


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


def _model_folder_hint(path: Path) -> str:
    """``"; it is a file of the diffusers model folder '…': pass that folder"`` for a file inside a model folder (its
    model_index.json, a component's weights or config), "" otherwise."""
    above = next((up for up in path.resolve().parents if (up / "model_index.json").is_file()), None)
    return f"; it is a file of the diffusers model folder {str(above)!r}: pass that folder" if above else ""


def renamed_safetensors_hint(path: Path) -> str:
    """``"; it is a .safetensors file saved without its suffix (…): rename it to '….safetensors'"`` when `path`,
    whose suffix is not .safetensors (a browser saved a Civitai download as ``model`` or ``model.tmp``), parses as
    one; "" otherwise. Loaders pick the reader by the suffix, and would unpickle anything else."""
    if path.suffix.lower() == ".safetensors" or not path.is_file():
        return ""
    try:
        safetensors_shapes(path)
    except (ConfigError, OSError, AttributeError, TypeError, KeyError):  # not a safetensors header
        return ""
    return (
        "; it is a .safetensors file saved without its suffix (loaders choose the reader by the suffix): rename it "
        f"to {str(path) + '.safetensors'!r}"
    )


def checkpoint_keys(path: Path) -> set[str]:
    """The tensor names of a `.safetensors` file (header only); empty for other formats. The header is read once
    per file version (`checkpoint_shapes`)."""
    return set(checkpoint_shapes(path))


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a `.safetensors` file, from its header alone; empty for other formats.

    The header is read once per (resolved path, modification time, size): the checks before a run ask for the same
    LoRA's keys several times, and a file changed since is read again.

    Raises:
        OSError, safetensors.SafetensorError: a missing or unreadable file, as `safetensors.safe_open` raises them.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        resolved = path.resolve()
        stat = resolved.stat()
    except OSError:  # not there: the reader's own error
        return _read_shapes(str(path), -1, -1)
    return dict(_read_shapes(str(resolved), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _read_shapes(path: str, mtime_ns: int, size: int) -> dict[str, tuple[int, ...]]:
    """`checkpoint_shapes` of one file version (`mtime_ns` and `size` key the cache; callers copy the result)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt", device="cpu") as handle:
        return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}


@dataclass(frozen=True)
class SingleFilePart:
    """One part a single-file checkpoint must hold (`SINGLE_FILE_PARTS`), and how its key names show it."""

    part: str
    """Which part: "unet", "vae", "text_encoder" or "text_encoder_2" (the diffusers component it becomes)."""
    label: str
    """What messages call it ("the VAE")."""
    entries: tuple[str, ...]
    """Key names (or key-name prefixes) of which one is enough."""
    prefix: bool = False
    """Whether `entries` are key-name prefixes (any key under them) rather than whole key names."""

    def found_in(self, keys: set[str]) -> bool:
        """Whether the checkpoint's key names hold this part."""
        if self.prefix:
            return any(name.startswith(self.entries) for name in keys)
        return any(entry in keys for entry in self.entries)

    def described(self) -> str:
        """``the VAE (first_stage_model.* or vae.*)``: the part and the keys looked for."""
        return f"{self.label} ({' or '.join(entry + ('*' if self.prefix else '') for entry in self.entries)})"


_LDM_UNET = SingleFilePart("unet", "the UNet", ("model.diffusion_model.",), prefix=True)
_LDM_VAE = SingleFilePart("vae", "the VAE", ("first_stage_model.", "vae."), prefix=True)

SINGLE_FILE_PARTS: dict[str, tuple[SingleFilePart, ...]] = {
    "sd15": (
        _LDM_UNET,
        _LDM_VAE,
        SingleFilePart(
            "text_encoder",
            "the text encoder",
            (_SD_CHECKPOINT_KEYS[0], "cond_stage_model.model.token_embedding.weight"),
        ),
    ),
    "sdxl": (
        _LDM_UNET,
        _LDM_VAE,
        SingleFilePart(
            "text_encoder",
            "the text encoder (CLIP ViT-L)",
            ("conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",),
        ),
        SingleFilePart("text_encoder_2", "the second text encoder (OpenCLIP ViT-bigG)", (_SDXL_CHECKPOINT_KEYS[0],)),
    ),
}
"""What a single-file checkpoint (original A1111 / Civitai layout) of each family must hold for diffusers'
``from_single_file``, as its loader looks for each part (`diffusers.loaders.single_file_utils`: the UNet under
``LDM_UNET_KEY``, the VAE under ``LDM_VAE_KEYS``, a text encoder by one key of ``CHECKPOINT_KEY_NAMES`` ("clip",
"open_clip", "clip_sdxl", "open_clip_sdxl"))."""


TRANSFORMER_CHECKPOINT_KEYS = {
    "flux": ("double_blocks.0.img_attn.norm.key_norm.scale",),
    "zimage": ("layers.0.adaLN_modulation.0.weight",),
}
"""Key names by which a single-file transformer of a flow-matching base shows its family, bare (Black Forest Labs'
``flux1-dev.safetensors``) or under ComfyUI's ``model.diffusion_model.`` prefix: diffusers'
`single_file_utils.CHECKPOINT_KEY_NAMES` "flux" and "z-image-turbo". Such files hold the transformer alone (the VAE
and the text encoders are published apart), and rerender loads these bases from their diffusers folder only."""

TRANSFORMER_HUB_IDS = {"flux": "black-forest-labs/FLUX.1-dev", "zimage": "Tongyi-MAI/Z-Image-Turbo"}
"""An example diffusers repository of each transformer family, for messages."""


def transformer_checkpoint_family(keys: set[str]) -> str | None:
    """ "flux" or "zimage" when a checkpoint's key names are a Flux or Z-Image transformer's
    (`TRANSFORMER_CHECKPOINT_KEYS`), else None."""
    for family, names in TRANSFORMER_CHECKPOINT_KEYS.items():
        if any(name in keys or f"model.diffusion_model.{name}" in keys for name in names):
            return family
    return None


def single_file_transformer_error(source: str, family: str, key: str, read: str) -> ConfigError:
    """The refusal of a single file as a Z-Image or Flux base model (`read`: how its family was known)."""
    name = FAMILY_NAMES.get(family, family)
    return ConfigError(
        f"`{key}` {source!r} is a single-file {name} checkpoint ({read}): rerender loads {name} base models from "
        f"their diffusers folder or hub id only (e.g. {TRANSFORMER_HUB_IDS[family]}), which also holds the VAE and "
        "the text encoders that such a file leaves out; pass that folder or hub id (a fine-tuned transformer file: "
        "save it as the transformer/ of a copy of that folder with diffusers)"
    )


def check_single_file_parts(model: ModelConfig, family: str, key: str = "model.base_model") -> None:
    """Refuse a single ``.safetensors`` base model that lacks a part diffusers needs (a UNet-only or a
    VAE-less file), from its header alone (no tensor is read), before any frame is decoded. The VAE is not needed
    when `model.vae` names one, nor on SDXL in a precision other than float32 (the fp16-fixed VAE may stand in).

    Only SD 1.5 and SDXL load from a single file (`from_single_file`); a single file stated to be a Z-Image or Flux
    base (`model.family`) is refused (`detect_family` refuses one it recognises by its keys). ``.ckpt``/``.pt``/
    ``.pth``/``.bin`` files are pickles: their key names cannot be read without unpickling, which could run code, so
    they are not checked here (diffusers reads them when the model loads).

    Raises:
        CheckpointError: the file misses one or more parts (each named), with what to pass instead.
        ConfigError: a single file as a Z-Image or Flux base.
    """
    path = Path(model.base_model).expanduser()
    if family in TRANSFORMER_CHECKPOINT_KEYS and path.is_file():
        raise single_file_transformer_error(model.base_model, family, key, f"`model.family` is {family!r}")
    if family not in SINGLE_FILE_PARTS or path.suffix.lower() != ".safetensors" or not path.is_file():
        return
    from rerender.errors import CheckpointError

    keys = checkpoint_keys(path)  # the header's tensor names, as `detect_family` reads them
    vae_elsewhere = model.vae is not None or (family == "sdxl" and model.dtype != "float32")
    missing = [
        part
        for part in SINGLE_FILE_PARTS[family]
        if not (part.part == "vae" and vae_elsewhere) and not part.found_in(keys)
    ]
    if missing:
        vae = ", or name a VAE in `model.vae`" if any(part.part == "vae" for part in missing) else ""
        raise CheckpointError(
            f"`{key}` {model.base_model!r} is a single-file {FAMILY_NAMES.get(family, family)} checkpoint without "
            f"{', '.join(part.described() for part in missing)}: diffusers reads a single file only when it holds the "
            f"whole model in the original (A1111 / Civitai) layout; give the diffusers folder or hub id of the model "
            f"it belongs to{vae}"
        )


def check_folder_parts(model: ModelConfig, family: str, key: str = "model.base_model") -> None:
    """Refuse a local diffusers folder whose model_index.json lists a component the run reads (`model_components`)
    that has no sub-folder (a download that stopped early, a folder copied without vae/ or tokenizer_2/), before
    any frame is decoded; diffusers would fail with a message about the model folder's own config.json.

    Raises:
        CheckpointError: naming each missing sub-folder.
    """
    path = Path(str(model.base_model)).expanduser()
    index_file = path / "model_index.json"
    if not index_file.is_file():
        return
    index = read_json_file(index_file)
    missing = [
        folder
        for folder in model_components(family, model.vae is not None)
        if isinstance(index.get(folder), list) and index[folder][:1] != [None] and not (path / folder).is_dir()
    ]
    if missing:
        from rerender.errors import CheckpointError

        vae = " (or name a VAE in `model.vae`)" if "vae" in missing else ""
        raise CheckpointError(
            f"`{key}` {model.base_model!r} is a diffusers folder whose model_index.json lists "
            f"{', '.join(f'{name}/' for name in missing)} but the folder has no such sub-folder: copy or download the "
            f"whole model folder{vae}"
        )


def family_from_hub_files(repository: str) -> str | None:
    """The family of a diffusers UNet pipeline on the hub, "sdxl" or "sd15", from its file list (no file is
    downloaded): SDXL's has ``text_encoder_2/`` beside ``unet/``. None offline, when the hub cannot be reached or does not answer, and
    for other layouts: the caller then goes by the id's name (an SDXL model such as RunDiffusion/Juggernaut-X-v10
    has no "xl" in it)."""
    if not hub_reachable():
        return None
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repository)
    except Exception:  # noqa: BLE001 - a hint only: not found, gated, network errors all leave it to the name
        return None
    folders = {sibling.rfilename.split("/")[0] for sibling in info.siblings or () if "/" in sibling.rfilename}
    if "unet" not in folders or "transformer" in folders:
        return None
    return "sdxl" if "text_encoder_2" in folders else "sd15"


def detect_family(source: str | os.PathLike, key: str = "model.base_model") -> str:
    """The `ModelFamily` of a base model, read from the model itself; no weights are loaded.

    * a diffusers folder (or a cached hub snapshot): ``unet/config.json`` (`family_of_unet_config`); a folder with
      a ``transformer/`` instead is left to the registered detectors;
    * a single ``.safetensors`` file: its key names (SDXL files hold ``conditioner.embedders.1`` and
      ``label_emb``; a Flux or Z-Image transformer file is refused, `TRANSFORMER_CHECKPOINT_KEYS`); ``.ckpt`` files,
      which cannot be inspected without unpickling, count as SD 1.5;
    * a hub id that is not cached: its file list on the hub when the hub can be reached (`family_from_hub_files`:
      SDXL's ``text_encoder_2/`` beside ``unet/``), else by name ("z-image" means Z-Image, "FLUX.1" Flux, "xl"
      SDXL), the only clue without the hub.

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
            listed = family_from_hub_files(source)
            if listed is not None:
                return listed
            if re.search(r"z-?image", source, re.IGNORECASE):
                return "zimage"
            if source.lower().split("/")[-1].startswith("flux.1"):
                return "flux"
            return "sdxl" if re.search(r"xl", source, re.IGNORECASE) else "sd15"
        path = cached
    if not path.exists():  # a local path (a hub id was resolved above): nothing to read the family from
        raise missing_source_error(key, source, path)
    for detector in _FAMILY_DETECTORS:
        family = detector(path)
        if family is not None:
            return family
    if path.is_dir():
        kind = str(read_json_file(path / "config.json").get("_class_name", ""))
        if "ControlNet" in kind:  # a folder of its own, with a root config.json like a bare UNet's
            raise ConfigError(
                f"`{key}` {source!r} is a ControlNet ({kind}), not a base model: name it as a ControlNet "
                "(`control[0].model`; CLI: --set control.0.model=PATH) and pass the base model's folder or hub id"
            )
        if (path / "unet" / "config.json").is_file():
            return family_of_unet_config(read_json_file(path / "unet" / "config.json"))
        if kind:  # a UNet, VAE or text encoder saved on its own (e.g. the model folder's unet/): not loadable alone
            above = next((str(up) for up in path.resolve().parents if (up / "model_index.json").is_file()), None)
            raise ConfigError(
                f"`{key}` {source!r} is one component of a model ({kind}), not a base model: pass the model's "
                + (f"folder {above!r}" if above else "folder (with model_index.json and unet/)")
                + " or its hub id"
            )
        pipeline = (
            read_json_file(path / "model_index.json").get("_class_name")
            if (path / "model_index.json").is_file()
            else None
        )
        raise ConfigError(
            f"`{key}` {source!r} is a folder without unet/config.json: not a Stable Diffusion model folder"
            + (
                f" (its model_index.json names {pipeline}; rerender reads SD 1.5 and SDXL folders with unet/, and "
                "Z-Image and Flux folders with transformer/)"
                if pipeline
                else ""
            )
        )
    if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise ConfigError(
            f"`{key}` {source!r} is a {path.suffix.lower() or 'suffix-less'!r} file, not a model: pass a diffusers "
            f"folder, a checkpoint file ({', '.join(SINGLE_FILE_SUFFIXES)}) or a Hugging Face hub id (owner/name)"
            + (renamed_safetensors_hint(path) or _model_folder_hint(path))
        )
    keys = checkpoint_keys(path)
    if not keys:
        return "sd15"
    transformer = transformer_checkpoint_family(keys)
    if transformer is not None:  # before the SD rule: ComfyUI files put it under model.diffusion_model. too
        raise single_file_transformer_error(source, transformer, key, "its keys are a transformer's")
    if any(name in keys for name in _SDXL_CHECKPOINT_KEYS):
        return "sdxl"
    if any(name in keys for name in _SD_CHECKPOINT_KEYS) or any(
        name.startswith("model.diffusion_model.") for name in keys
    ):
        return "sd15"
    raise ConfigError(
        f"`{key}` {source!r} is not a Stable Diffusion checkpoint in the original layout (no model.diffusion_model.* "
        "weights); pass an SD 1.5 or SDXL .safetensors file, a diffusers folder or a hub id"
        + (
            "; its key names are a LoRA's: give it as a LoRA (`model.loras`; CLI: --lora FILE) on a base model"
            if any("lora" in name.lower() for name in keys)
            else _model_folder_hint(path)
        )
    )


# --------------------------------------------------------------------------------------------------------
# which family an IP-Adapter is made for (file header, or the hub's path convention), before any model loads
# --------------------------------------------------------------------------------------------------------


def safetensors_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """Tensor name → shape of a ``.safetensors`` file, read from its header alone (an 8-byte little-endian length,
    then that many bytes of JSON; the format's specification); no tensor is read and torch is not imported.

    Raises:
        ConfigError: the file is not a safetensors file (its header does not parse).
    """
    import json
    import struct

    with open(path, "rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        try:
            if not 0 < length < 100_000_000:
                raise ValueError(f"header length {length}")
            header = json.loads(handle.read(length))
        except ValueError as error:
            raise ConfigError(f"{str(path)!r} is not a .safetensors file ({error})") from error
    return {name: list(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}


IP_ADAPTER_WIDTHS = {768: "sd15", 2048: "sdxl"}
"""The cross-attention width an IP-Adapter's ``to_k_ip`` projections take (their input), per family: CLIP ViT-L's 768
for SD 1.5, the two SDXL text encoders' 768 + 1280 = 2048 for SDXL."""


def adapter_file(source: str, weight_name: str) -> Path | None:
    """The adapter's `.safetensors` file when it is on this machine (a local folder, or the hub cache), else None."""
    if not is_hub_id(source):
        path = Path(source).expanduser() / weight_name
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source, weight_name)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def ip_adapter_family(
    source: str, weight_name: str, base_width: int | None = None, family: str | None = None
) -> str | None:
    """The family an IP-Adapter is made for, without loading it; None when nothing tells.

    * the file, when it is here (a folder, or the hub cache): its header (`safetensors_shapes`). The input width
      of its ``ip_adapter.*.to_k_ip`` projections is the UNet's cross-attention width: the base's own (`base_width`,
      of family `family`) means that family, 768 SD 1.5, 2048 SDXL, another width the other UNet family; Flux
      adapters (XLabs: ``double_blocks.*.ip_adapter_*``) are "flux";
    * else the path convention of ``h94/IP-Adapter``: ``sdxl_models/`` (or "sdxl" in the name) is SDXL,
      ``models/`` (or "sd15") SD 1.5; "flux" in the name or repository is Flux.
    """
    path = adapter_file(source, weight_name)
    if path is not None and path.suffix == ".safetensors":
        shapes = safetensors_shapes(path)
        if any("ip_adapter_double_stream" in name or name.startswith("double_blocks.") for name in shapes):
            return "flux"
        widths = [shape[-1] for name, shape in sorted(shapes.items()) if name.endswith(".to_k_ip.weight")]
        if widths:
            if base_width is not None and widths[0] == base_width:
                return family
            if widths[0] in IP_ADAPTER_WIDTHS:
                return IP_ADAPTER_WIDTHS[widths[0]]
            if base_width is not None and family in ("sd15", "sdxl"):
                return "sdxl" if family == "sd15" else "sd15"
            return None
    folder, name = posixpath.split(weight_name.lower())
    if "flux" in name or "flux" in source.lower():
        return "flux"
    if folder.split("/")[0] == "sdxl_models" or "sdxl" in name:
        return "sdxl"
    if folder.split("/")[0] == "models" or "sd15" in name:
        return "sd15"
    return None


def component_config(base_model: str, component: str, filename: str = "config.json") -> dict | None:
    """A base model's ``<component>/<filename>`` (e.g. "unet", "transformer"; "scheduler" with
    "scheduler_config.json") from its folder or the hub cache, without downloading; None when it is not here."""
    path = Path(base_model).expanduser()
    if path.is_dir():
        config = path / component / filename
    elif is_hub_id(base_model):
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(base_model, f"{component}/{filename}")
        config = Path(found) if isinstance(found, str) else None
    else:
        config = None
    return read_json_file(config) if config is not None and config.is_file() else None


ZIMAGE_SCHEDULER_SHIFTS = {3.0: "zimage-turbo", 6.0: "zimage"}
"""The ``shift`` of each published Z-Image's ``scheduler/scheduler_config.json`` (FlowMatchEulerDiscreteScheduler,
``use_dynamic_shifting: false``): Tongyi-MAI/Z-Image-Turbo 3.0, Tongyi-MAI/Z-Image 6.0. Their ``model_index.json``
and ``transformer/config.json`` do not differ, so the scheduler is what tells the two apart (fine-tunes keep it)."""

_VARIANT_RULES_LOGGED: set[tuple[str, str, str]] = set()


def _model_name(base_model: str) -> str:
    """The name a model goes by, lower-cased: a hub id's or a folder's last part (not the folders above it); a hub
    cache snapshot's repository (``models--Tongyi-MAI--Z-Image-Turbo/snapshots/<hash>``)."""
    path = PurePosixPath(str(base_model).replace("\\", "/"))
    if path.parent.name == "snapshots":
        return path.parent.parent.name.lower()
    return path.name.lower()


def base_variant(base_model: str, family: str, scheduler: dict | None = None) -> str:
    """The `rerender.config.BaseVariant` of a base model of `family`, from its configs (no weights), its name when they
    are not here:

    * Flux is "flux-dev" when its ``transformer/config.json`` (folder or hub cache) has a guidance embedding
      (``guidance_embeds``; not here: unless its name says "schnell"), else "flux-schnell";
    * Z-Image is "zimage-turbo" or "zimage" by its scheduler's ``shift`` (`ZIMAGE_SCHEDULER_SHIFTS`; `scheduler`: a
      loaded pipeline's scheduler config, else ``scheduler/scheduler_config.json`` of the folder or hub cache), and
      when that is not here or is another shift, by its name ("turbo" in it). Which rule decided is logged (info,
      once per model). A user who knows better sets the sampling options (`sampling.num_inference_steps`,
      `sampling.guidance_scale`), which the variant only fills in when unset;
    * SD 1.5 and SDXL are their family.
    """
    name = _model_name(base_model)
    if family == "flux":
        config = component_config(base_model, "transformer")
        embedded = bool(config.get("guidance_embeds")) if config is not None else "schnell" not in name
        return "flux-dev" if embedded else "flux-schnell"
    if family != "zimage":
        return family
    if scheduler is None:
        scheduler = component_config(base_model, "scheduler", "scheduler_config.json") or {}
    shift = scheduler.get("shift")
    variant = ZIMAGE_SCHEDULER_SHIFTS.get(float(shift)) if isinstance(shift, (int, float)) else None
    if variant is not None:
        rule = f"its scheduler's shift {shift:g}"
    else:
        variant = "zimage-turbo" if "turbo" in name else "zimage"
        seen = "no scheduler config here" if shift is None else f"its scheduler's shift {shift!r} is neither 3 nor 6"
        rule = f"its name ({seen})"
    if (str(base_model), variant, rule) not in _VARIANT_RULES_LOGGED:
        _VARIANT_RULES_LOGGED.add((str(base_model), variant, rule))
        logger.info("%s is %s, by %s", base_model or "the Z-Image model", VARIANT_NAMES[variant], rule)
    return variant


def _base_cross_attention_width(base_model: str) -> int | None:
    """The base UNet's cross-attention width from its ``unet/config.json`` (a folder, or the hub cache), else None."""
    width = (component_config(base_model, "unet") or {}).get("cross_attention_dim")
    return width if isinstance(width, int) else None


def check_ip_adapter_family(config: RerenderConfig) -> None:
    """Refuse a reference image (`prompt.style_image`) whose IP-Adapter is made for another family than the base
    model, or any on a base without one (Z-Image, Flux): from configs, file headers and hub paths, before the
    UNet or transformer loads.

    Raises:
        ConfigError: naming the adapter (`model.ip_adapter`, `model.ip_adapter_weight_name`), both families and
            what to use instead.
    """
    if not config.prompt.uses_style_image:  # none, or at scale 0: no adapter is loaded
        return
    model = config.model
    family = model_family(model)
    weight_name = model.resolved_ip_adapter_weight_name(family)
    base_width = _base_cross_attention_width(model.base_model) if family in IP_ADAPTER_FAMILIES else None
    its_family = ip_adapter_family(model.ip_adapter, weight_name, base_width, family)
    named = (
        f"the IP-Adapter {model.ip_adapter!r} / {weight_name!r} (`model.ip_adapter`, `model.ip_adapter_weight_name`)"
    )
    label = _FAMILY_LABELS.get(family, family)
    if family not in IP_ADAPTER_FAMILIES:
        made = f" is made for {_FAMILY_LABELS.get(its_family, its_family)}, and" if its_family else ""
        raise ConfigError(
            f"`prompt.style_image` (--style-image) needs an IP-Adapter: {named}{made} the base model "
            f"{model.base_model!r} is {label}, for which rerender has no reference-image adapter (SD 1.5 and SDXL "
            "have one); leave style_image out, or use an SD 1.5 or SDXL base model"
        )
    if its_family is not None and its_family != family:
        advice = (
            "sdxl_models/ip-adapter_sdxl_vit-h.safetensors of h94/IP-Adapter"
            if family == "sdxl"
            else "models/ip-adapter_sd15.safetensors of h94/IP-Adapter"
        )
        raise ConfigError(
            f"{named} is made for {_FAMILY_LABELS.get(its_family, its_family)}, but the base model "
            f"{model.base_model!r} is {label}; use an IP-Adapter made for {label} (e.g. {advice})"
        )
