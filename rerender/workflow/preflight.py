"""The checks every entry point runs first, before any decoding or model loading.

`translate`, `propagate_keyframes`, `animate`, `generate`, `batch` and the web page call `check_run` as their step 1
(the diffusers pattern of `check_inputs`): every argument that can be checked without decoding is checked here,
once, and refused with the project's message (the argument as the user spelled it, the value, what is valid).
Entry points add their own domain checks (the still of `animate`, the camera move of `generate`) before or after it.

Example:
    >>> from rerender.workflow.preflight import check_run
    >>> check_run(None, output=None, stage="keyframes").stage
    'keyframes'
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerender.config import RerenderConfig, Stage, choices
from rerender.errors import ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = [
    "Preflight",
    "absolute_path",
    "helper_device",
    "check_run",
    "check_stage",
    "check_renderer",
    "check_model_inputs",
    "check_model_files",
    "check_prompt_inputs",
    "check_prompt_language",
    "check_workspace_paths",
    "run_family",
    "run_variant",
    "size_multiples",
    "resolve_model_defaults",
    "resolve_family_defaults",
    "WRITING_STAGES",
]

WRITING_STAGES: tuple[str, ...] = ("all", "propagate")
"""The stages that end by writing a video, and so need an `output`."""


def absolute_path(path: str | os.PathLike) -> Path:
    """`path` made absolute against the working folder now (``..`` folded, symlinks kept), so that a result's paths
    still name the same files after the caller's `os.chdir`. "~" is left as it is: the run never expands it in an
    argument (a quoted path; `unexpanded_home` says so), so the result names the file that was written."""
    return Path(os.path.abspath(path))


def helper_device(config: RerenderConfig, pipeline: Any = None) -> str:
    """Where a run's helper networks (`animate`'s depth annotator, the CLAP sound model) run: on the keyframe model's
    device, as the flow estimator and the control annotators do, so that `model.device: cuda:1` keeps them off
    cuda:0 (a GPU the user kept the run off) and `cpu` off every GPU. A loaded `pipeline`'s execution device, else
    `model.device` when it names one, else ("auto") CUDA when there is one, else the CPU."""
    device = getattr(pipeline, "_execution_device", None) if pipeline is not None else None
    if device is not None:
        return str(device)
    if config.model.device != "auto":
        return str(config.model.device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Preflight:
    """What `check_run` resolved: the config every later step uses and the checked arguments."""

    config: RerenderConfig
    """The config with the prompt, K, the renderer choice and the overrides applied."""
    stage: str
    """How far the run goes (`rerender.config.Stage`)."""
    output: Path | None
    """The checked output video, or None when the stage writes none."""
    renderer: Any | None
    """A renderer object the caller passed (it replaces the configured renderer), else None."""


def check_stage(stage: Any, output: Any, staged: bool = True) -> None:
    """Refuse an unknown `stage`, and `output=None` with a stage that writes a video; `staged=False` for an entry
    point without a `stage` argument (`animate`, `generate`, `propagate_keyframes`: they always write one).

    Raises:
        ConfigError: naming `stage` or `output`, the value and what is valid.
    """
    if stage not in choices(Stage):
        raise ConfigError(f"`stage` must be one of {', '.join(map(repr, choices(Stage)))}, got {stage!r}")
    if output is None and stage in WRITING_STAGES:
        if not staged:
            raise ConfigError(
                "`output` is None, but this writes a video; pass output=... (a .mp4, .mov or a .mkv path)"
            )
        raise ConfigError(
            f"`output` is None, but stage {stage!r} writes a video; pass output=... (a .mp4, .mov or "
            "a .mkv path), or stage='keyframes' (CLI: --stage keyframes) to stop before writing"
        )


MODEL_SOURCE_OPTIONS: tuple[str, ...] = ("base_model", "vae")
"""The `model` options naming the weights `rerender.load_pipeline` loads: beside a loaded pipeline they are not read."""


def pipeline_source(pipeline: Any, option: str) -> str | None:
    """What `pipeline` was loaded from for `option` ("base_model" or "vae"): as `rerender.load_pipeline` recorded it,
    else the folder diffusers' `from_pretrained` read (its `_name_or_path`); None when nothing says."""
    recorded = getattr(pipeline, "_rerender_sources", None)
    if isinstance(recorded, Mapping):
        return recorded.get(option)
    part = pipeline if option == "base_model" else getattr(pipeline, "vae", None)
    config = getattr(part, "config", None)
    name = config.get("_name_or_path") if isinstance(config, Mapping) else None
    return name if isinstance(name, str) and name else None


def same_weights(configured: str, pipeline: Any, option: str) -> bool | None:
    """Whether `configured` (a `model.base_model` or `model.vae` value) names what `pipeline` was loaded from
    (`pipeline_source`): the same text, the same local path, or the hub id whose cache folder it was read from
    (`models--owner--name`); None when the pipeline does not say."""
    from rerender.weights import is_hub_id

    loaded = pipeline_source(pipeline, option)
    if loaded is None:
        return None
    if configured == loaded:
        return True
    if is_hub_id(configured) and not os.path.exists(os.path.expanduser(configured)):
        return f"models--{configured.replace('/', '--')}" in Path(loaded).parts
    return os.path.abspath(os.path.expanduser(configured)) == os.path.abspath(os.path.expanduser(loaded))


def warn_unread_model_options(config: RerenderConfig, pipeline: Any, given: Mapping[str, Any]) -> None:
    """Log a warning for each of `config`'s `MODEL_SOURCE_OPTIONS` that names other weights than the caller's
    loaded `pipeline` holds (set in the config, not left at its default, and not in this call's `given` options,
    which `ignored_by_pipeline` refuses): it is not read, and the run renders with the pipeline's, naming both.
    Not refused: a config file shared by several runs (a preset) may name a model a caller's pipeline replaces."""
    from rerender.config import ModelConfig

    for option in MODEL_SOURCE_OPTIONS:
        value = getattr(config.model, option)
        if value in (None, getattr(ModelConfig(), option)) or any(
            key.removeprefix("model.") == option for key in given
        ):
            continue  # the default was not set by anyone (a pipeline of any other weights is the caller's choice)
        if same_weights(str(value), pipeline, option) is False:
            logger.warning(
                "`model.%s` is %r, but the given `pipeline` was loaded from %r: the option is not read, the "
                "keyframes render with the pipeline's weights; load the pipeline from the config "
                "(rerender.load_pipeline(config.model, config.control)) or leave the option out",
                option,
                value,
                pipeline_source(pipeline, option),
            )


def ignored_by_pipeline(changes: Mapping[str, Any], pipeline: Any) -> list[str]:
    """The options of `changes` that choose how a model is loaded (`rerender.load_pipeline`) and that a caller's
    loaded `pipeline` does not have: LoRAs on a pipeline without any, another dtype, another base model or VAE
    (`MODEL_SOURCE_OPTIONS`, `same_weights`). Each would be ignored. A base model or VAE the pipeline does not say
    it was loaded from is not refused, but logged (it is not read either)."""
    ignored = []
    for key, value in changes.items():
        option = key.removeprefix("model.")
        if option in MODEL_SOURCE_OPTIONS and value is not None:
            same = same_weights(str(value), pipeline, option)
            if same is False:
                ignored.append(
                    f"`{key}` {value!r} (the pipeline was loaded from {pipeline_source(pipeline, option)!r})"
                )
            elif same is None:
                logger.warning(
                    "`%s` %r is not read: the given `pipeline` is loaded already (from weights it does not name)",
                    key,
                    value,
                )
        elif option == "loras" and value:
            adapters = getattr(pipeline, "get_list_adapters", None)
            if not (callable(adapters) and any(adapters().values())):
                ignored.append(f"`{key}` (the pipeline has no LoRA loaded)")
        elif option == "dtype" and value not in (None, "auto"):
            has = str(getattr(pipeline, "dtype", value)).removeprefix("torch.")
            if has != value:
                ignored.append(f"`{key}` {value!r} (the pipeline is in {has})")
    return ignored


def check_renderer(renderer: Any, overrides: Mapping[str, Any]) -> tuple[Any | None, dict[str, Any]]:
    """Split `renderer` into a renderer object (returned) or a name (moved into the overrides as `model.renderer`).

    Raises:
        ConfigError: a string that is no renderer name, or an object without `name` and `render`.
    """
    from rerender.config import RendererName

    if renderer is None:
        return None, dict(overrides)
    if isinstance(renderer, str):
        if renderer not in choices(RendererName):
            raise ConfigError(
                f"`renderer` must be one of {', '.join(map(repr, choices(RendererName)))} or a renderer "
                f"object, got {renderer!r}"
            )
        return None, {**overrides, "model.renderer": renderer}
    if not callable(getattr(renderer, "render", None)) or not isinstance(getattr(renderer, "name", None), str):
        raise ConfigError(
            f"`renderer` must be a renderer name or an object with a `name` and a `render` method "
            f"(rerender.workflow.renderers.KeyframeRenderer), got {type(renderer).__name__}"
        )
    try:  # the protocol's arguments, so that a renderer written to an older protocol is refused now, by name
        inspect.signature(renderer.render).bind([], [], [], Path("."), on_progress=None)
    except TypeError:
        raise ConfigError(
            f"`renderer` {type(renderer).__name__}.render must take (frames, indices, done, state_dir, "
            "on_progress=None) (rerender.workflow.renderers.KeyframeRenderer)"
        ) from None
    except ValueError:  # no signature to read (a builtin): its call will say
        pass
    return renderer, dict(overrides)


def check_model_inputs(
    config: RerenderConfig, *, renderer: Any = None, pipeline: Any = None, controls: Sequence[Any] | None = None
) -> None:
    """The keyframe model's sources and weights (a mistyped `--model`, weights missing offline), the style image
    and its IP-Adapter: everything cheap to check before any model loads. A caller's `renderer` object or
    `pipeline` replaces the configured model, whose weights are then not needed. `controls`: the ControlNets the
    run loads (None = `config.control`; `generate` loads none, so none is checked or needed).

    Raises:
        ConfigError, WeightsNotFoundError, InputNotFoundError, VideoReadError: from the checks named above.
    """
    own_model = renderer is None and pipeline is None
    controls = config.control if controls is None else tuple(controls)
    if own_model and config.model.renderer != "classic":
        from rerender.diffusion.loading import resolve_device
        from rerender.workflow.renderers import check_diffusion_weights

        resolve_device(config.model.device)  # "cuda" on a machine without one: before any frame is decoded
        check_model_files(config, controls)
        check_diffusion_weights(config, controls)
        warn_unused_options(config)
    if renderer is None and config.model.renderer != "classic" and controls:
        _check_annotators(config, controls, fallback=pipeline is None and config.model.renderer == "auto")
    if config.prompt.style_image is None:
        return
    classic = own_model and config.model.renderer == "classic"
    check_style_image(config, used=not classic and config.prompt.uses_style_image)
    if classic:
        logger.warning("the classic renderer does not use `prompt.style_image` (an IP-Adapter input): it is ignored")
    elif not config.prompt.uses_style_image:  # scale 0: the image would change nothing
        logger.info("`prompt.style_image_scale` is 0: the reference image has no effect; the IP-Adapter is skipped")


def check_style_image(config: RerenderConfig, *, used: bool) -> None:
    """`prompt.style_image` (if set) before any model loads: an image unused (the classic renderer, scale 0) must
    still be readable (a mistyped path is refused); one used needs its IP-Adapter, here or fetchable. The one check
    of `check_model_inputs` and ``rerender env``.

    Raises:
        InputNotFoundError, VideoReadError: the image; WeightsNotFoundError, ConfigError: its IP-Adapter.
    """
    if config.prompt.style_image is None:
        return
    if not used:
        from rerender.diffusion.ip_adapter import read_style_image

        read_style_image(config.prompt.style_image)
        return
    from rerender.diffusion.ip_adapter import check_style_inputs
    from rerender.weights import model_family

    weight_name = config.model.resolved_ip_adapter_weight_name(model_family(config.model))
    check_style_inputs(config.prompt.style_image, config.model.ip_adapter, weight_name)


def check_model_files(config: RerenderConfig, controls: Sequence[Any] | None = None) -> str:
    """Every refusal a run makes of the keyframe model's files before any of them loads (configs, file headers and
    the hub cache only, no weights): the one check that `check_model_inputs` runs and that ``rerender env`` reports
    (`rerender.environment.model_report`), so that env refuses exactly what a run refuses.

    In order: the IP-Adapter's family (`check_ip_adapter_family`; a config mistake says so before any weights are
    looked for), the local paths the config names (`check_model_sources`), hub LoRAs offline or with several files
    (`check_hub_loras`), the base model's family (read once: "auto" refuses a local path that is no base model, such
    as a ControlNet folder), its ControlNets, LoRAs and VAE against it (`check_model_families`: SD 1.5/SDXL and
    Z-Image/Flux each by their own rules), the parts of a single file (`check_single_file_parts`: a UNet-only file)
    and of a folder (`check_folder_parts`: no vae/ or tokenizer_2/), whatever `model.family` says.

    Args:
        config: the run's config (`model.renderer` is not looked at: the caller decides whether a model is used).
        controls: the ControlNets the run loads (None = `config.control`).

    Returns:
        The base model's `ModelFamily`.

    Raises:
        ConfigError, InputNotFoundError, WeightsNotFoundError, CheckpointError: naming the option and the value.
    """
    from rerender.diffusion.loading import check_hub_loras, check_model_sources
    from rerender.weights import check_folder_parts, check_ip_adapter_family, check_single_file_parts, detect_family

    controls = config.control if controls is None else tuple(controls)
    check_ip_adapter_family(config)
    base_path = check_model_sources(config.model, controls)
    check_hub_loras(config.model.loras)
    family = detect_family(config.model.base_model) if config.model.family == "auto" else config.model.family
    check_model_families(config, base_path, controls, family)
    check_single_file_parts(config.model, family)  # header only: a UNet-only file
    check_folder_parts(config.model, family)  # a folder without vae/ or tokenizer_2/
    return family


def warn_unused_options(config: RerenderConfig) -> None:
    """Warn once, before any work, about Flux's true guidance asked for with an empty negative prompt: it stays off
    then, as in diffusers (options that do nothing on a base warn in `resolve_model_defaults`)."""
    from rerender.weights import model_family

    cfg, negative = config.sampling.true_cfg_scale, config.prompt.negative_prompt
    if cfg > 1 and negative is not None and not negative.strip() and model_family(config.model) == "flux":
        logger.warning(
            "`sampling.true_cfg_scale` is %s, but `prompt.negative_prompt` is empty: true guidance stays off (as in "
            "diffusers' FluxPipeline); give a negative prompt (--set negative_prompt=...)",
            cfg,
        )


def _check_annotators(config: RerenderConfig, controls: Sequence[Any], fallback: bool) -> None:
    """A control type whose annotator cannot import (controlnet-aux) is refused before the frames are decoded, unless
    (`fallback`) `renderer: auto` will use the classic stylizer, which reads no control maps (weights missing)."""
    from rerender.diffusion.control import check_annotators
    from rerender.workflow.renderers import missing_default_weights

    try:
        check_annotators(controls)
    except MissingDependencyError:
        if not fallback or not missing_default_weights(config):
            raise


def run_family(config: RerenderConfig, renderer: Any = None, pipeline: Any = None) -> str | None:
    """The `ModelFamily` of what renders the keyframes: a caller's `pipeline`'s, else the configured model's, read
    from its configs and file headers (`rerender.weights.model_family`, no weights load); None when the classic
    stylizer or a caller's renderer object renders them."""
    if renderer is not None or (pipeline is None and config.model.renderer == "classic"):
        return None
    if pipeline is not None:
        return getattr(pipeline, "family", None)
    from rerender.weights import model_family

    return model_family(config.model)


def run_variant(config: RerenderConfig, family: str | None, pipeline: Any = None) -> str | None:
    """The `rerender.config.BaseVariant` whose defaults (`FAMILY_DEFAULTS`) a run on `family` (`run_family`) takes:
    a caller's `pipeline`'s own (its `variant`, else its family), else the configured model's, read from its
    configs and name (`rerender.weights.base_variant`, no weights load); None without a diffusion model (`family`
    None: the classic stylizer, a caller's renderer object), which takes SD 1.5's."""
    from rerender.config import BaseVariant

    if family is None:
        return None
    if pipeline is not None:
        variant = getattr(pipeline, "variant", None) or family
    else:
        from rerender.weights import base_variant

        variant = base_variant(config.model.base_model, family)
    return variant if variant in choices(BaseVariant) else None


def size_multiples(family: str | None, pipeline: Any = None) -> tuple[int, int]:
    """``(default, required)``: what `video.size_multiple` is when left unset, and what a value set must be a multiple
    of. On a `family`, both are `FAMILY_SIZE_MULTIPLES`'s (8 on SD, 16 on Z-Image and Flux); a caller's loaded
    `pipeline` requires its own `size_multiple` (VAE factor × patch size) and the default is a multiple of both;
    the classic stylizer (`family` None) takes any size, and 8 by default."""
    from rerender.config import FAMILY_SIZE_MULTIPLES

    usual = FAMILY_SIZE_MULTIPLES.get(family or "", 8)
    if getattr(pipeline, "size_multiple", None):
        required = int(pipeline.size_multiple)
    else:
        required = usual if family is not None else 1
    return math.lcm(usual, required), required


def resolve_model_defaults(config: RerenderConfig, family: str | None, pipeline: Any = None) -> RerenderConfig:
    """The options whose default depends on the base model, set from its `family` (`run_family`) when the user left
    them unset, and checked when they did not:

    * `video.size_multiple`: the family's multiple (`size_multiples`: 8 on SD, 16 on Z-Image and Flux; with a
      caller's loaded `pipeline`, a multiple of its own `size_multiple` too); 8 for the classic stylizer;
    * `prompt.negative_prompt`: `default_negative_prompt` of the family (and `sampling.true_cfg_scale`);
    * `sampling.num_inference_steps`, `sampling.guidance_scale`, `prompt.added_prompt` and, when FreeU is on, its
      factors (`constraints.freeu.b1` …): the model's row of `FAMILY_DEFAULTS` (`run_variant`: FLUX.1 [dev] and
      [schnell], Z-Image and Z-Image-Turbo apart), logged once with the values the run uses;
    * options that do nothing on this base (`BASE_SPECIFIC_OPTIONS`) warn, naming the bases that use them.

    Raises:
        ConfigError: a `video.size_multiple` that is not a multiple of the model's, naming both.
    """
    from rerender.config import (
        BASE_SPECIFIC_OPTIONS,
        FAMILY_NAMES,
        apply_overrides,
        default_negative_prompt,
        field_default,
    )

    default, required = size_multiples(family, pipeline)
    changes: dict[str, Any] = {}
    given = config.video.size_multiple
    if given is None:
        changes["video.size_multiple"] = default
    elif given % required:
        raise ConfigError(
            f"`video.size_multiple` is {given}, but {FAMILY_NAMES.get(family or '', 'this model')}'s frames must have "
            f"sides that are multiples of {required}; set it to a multiple of {required} (--set "
            f"size_multiple={required}), or leave it unset to take the model's own"
        )
    if config.prompt.negative_prompt is None:
        changes["prompt.negative_prompt"] = default_negative_prompt(family, config.sampling.true_cfg_scale)
    changes.update(_family_defaults(config, family, run_variant(config, family, pipeline)))
    for option, families in BASE_SPECIFIC_OPTIONS.items() if family is not None else ():
        for name, value in _option_values(config, option):
            if family in families or value == field_default(option):
                continue
            logger.warning(
                "`%s` is set (%s) but does nothing on %s: only %s use%s it; it is ignored",
                name,
                value,
                FAMILY_NAMES.get(family, family),
                " and ".join(FAMILY_NAMES[base] for base in families),
                "s" if len(families) == 1 else "",
            )
    return apply_overrides(config, changes) if changes else config


def resolve_family_defaults(config: RerenderConfig, pipeline: Any) -> RerenderConfig:
    """`config` with the `FAMILY_DEFAULTS` options it leaves unset set for `pipeline`'s base (its `family` and
    `variant`): for a renderer handed a config that did not pass `check_run`, which sets them with the rest; a config
    that leaves none unset comes back as it is (nothing logged again)."""
    from rerender.config import apply_overrides

    family = getattr(pipeline, "family", None)
    variant = run_variant(config, family, pipeline)
    if not _unset_defaults(config, variant):
        return config
    changes = _family_defaults(config, family, variant)
    return apply_overrides(config, changes) if changes else config


def _option_value(config: RerenderConfig, option: str) -> Any:
    """The value of the dotted `option` (e.g. "sampling.guidance_scale") in `config`."""
    return functools.reduce(getattr, option.split("."), config)


def _section_on(config: RerenderConfig, option: str) -> bool:
    """Whether the optional section that holds the dotted `option` is on (``constraints.freeu.b1``: FreeU is)."""
    section = functools.reduce(getattr, option.split(".")[1:-1], getattr(config, option.split(".")[0]))
    return section is not None


def _option_values(config: RerenderConfig, option: str) -> list[tuple[str, Any]]:
    """``(name, value)`` of the dotted `option` in `config`: one per entry of the `control` list for a ``control.x``
    option (named ``control[i].x``), else the one value."""
    section, _, leaf = option.partition(".")
    if section == "control":
        return [(f"control[{index}].{leaf}", getattr(control, leaf)) for index, control in enumerate(config.control)]
    return [(option, _option_value(config, option))]


def _unset_defaults(config: RerenderConfig, variant: str | None) -> dict[str, Any]:
    """The `FAMILY_DEFAULTS` options `config` leaves unset (None) that take a value on `variant`, with that value:
    those of a section that is off (FreeU's factors without FreeU) and those the base does not use (its entry None:
    FreeU on Flux) are left as they are."""
    from rerender.config import FAMILY_DEFAULTS, family_default

    unset = {}
    for option in FAMILY_DEFAULTS:
        if _section_on(config, option) and _option_value(config, option) is None:
            value = family_default(option, variant)
            if value is not None:
                unset[option] = value
    return unset


def _family_defaults(config: RerenderConfig, family: str | None, variant: str | None) -> dict[str, Any]:
    """The `FAMILY_DEFAULTS` options `config` leaves unset, with `variant`'s values (`_unset_defaults`); logs, once,
    the value each takes in a run on a diffusion model (`family` not None), and whether it is the model's own or the
    one set (an option of a section that is off, or that this base does not use, is not named)."""
    from rerender.config import FAMILY_DEFAULTS, VARIANT_NAMES

    changes = _unset_defaults(config, variant)
    used = []
    for option in FAMILY_DEFAULTS:
        value = changes.get(option, _option_value(config, option) if _section_on(config, option) else None)
        if value is not None:
            source = "the model's own" if option in changes else "set"
            used.append(f"{option} {value!r} ({source})")
    if family is not None:
        logger.info("on %s: %s", VARIANT_NAMES.get(variant or "", family), ", ".join(used))
    return changes


def check_model_families(
    config: RerenderConfig, base_path: Path | None, controls: Sequence[Any], family: str | None = None
) -> None:
    """Every ControlNet, LoRA and VAE fits the base model's family (configs and file headers only, no weights):
    `check_families` on SD 1.5/SDXL (also a `model.family` that contradicts the model, a Union condition without
    its mode), `check_transformer_family` on Z-Image/Flux. `base_path`: the local base model, None for a hub id;
    `controls`: the ControlNets the run loads (`config.control`, or none for `generate`); `family`: the base's, when
    the caller has read it already (None = `model_family`)."""
    from rerender.diffusion.loading import TRANSFORMER_FAMILIES, check_families
    from rerender.weights import model_family

    family = family or model_family(config.model)
    if family in TRANSFORMER_FAMILIES:
        check_transformer_family(config, controls, family)
    else:
        check_families(config.model, controls, base_path)


def check_transformer_family(config: RerenderConfig, controls: Sequence[Any], family: str) -> None:
    """On a transformer base (`family` Z-Image or Flux, as `check_model_families` read it): a ControlNet, LoRA or VAE
    that does not fit it is refused now, naming both families (`check_transformer_sources`: configs and file headers
    only), not after the frames are decoded; so is a `constraints.cross_frame_blocks` above the model's block count
    (`transformer_block_count`). `controls`: the ControlNets the run loads."""
    from rerender.config import FAMILY_NAMES
    from rerender.diffusion.loading import check_transformer_sources

    check_transformer_sources(config.model, controls, family)
    blocks = config.constraints.cross_frame_blocks
    count = transformer_block_count(config.model.base_model, family) if blocks is not None else None
    if count is not None and blocks > count:  # the model would quietly use all of them
        raise ConfigError(
            f"`constraints.cross_frame_blocks` is {blocks}, but {config.model.base_model!r} has {count} blocks "
            f"with cross-frame attention ({FAMILY_NAMES[family]}): valid: 1 to {count}, or null for all"
        )


def transformer_block_count(base_model: str, family: str) -> int | None:
    """How many blocks of a Z-Image or Flux base take cross-frame attention (Z-Image's main-stream `n_layers`;
    Flux's `num_layers` double- plus `num_single_layers` single-stream blocks), from its local or cached
    ``transformer/config.json``; None when that is not here."""
    from rerender.weights import component_config

    config = component_config(base_model, "transformer")
    if config is None:
        return None
    if family == "flux":
        return int(config.get("num_layers", 19)) + int(config.get("num_single_layers", 38))
    return int(config["n_layers"]) if "n_layers" in config else None


def check_prompt_inputs(
    config: RerenderConfig,
    *,
    soundtrack: str | os.PathLike | None = None,
    prompt_translator: Any = None,
    video_known: bool = True,
) -> None:
    """What the prompt itself needs, as every run checks it (`check_run`) and `rerender env` reports it: the sound of
    `prompt.audio_prompt` (the file, its audio, not silent, the vocabulary: `rerender.sound.check_audio_prompt`)
    and its CLAP model, here or fetchable; then, for a prompt not in English, its translation model
    (`check_prompt_language`).

    Args:
        config: the resolved config.
        soundtrack: the video whose sound `prompt.audio_prompt: source` means; None for a still or text alone.
        prompt_translator: the caller's translator (a configured translation model is then not needed).
        video_known: False where the input is not known (`rerender env`): 'source' then checks only the vocabulary.

    Raises:
        ConfigError, InputNotFoundError, VideoReadError: a sound the run cannot hear (see `check_audio_prompt`).
        WeightsNotFoundError: the CLAP or translation model is neither here nor downloadable.
    """
    prompt = config.prompt
    if prompt.audio_prompt is not None:
        from rerender.sound import check_audio_model, check_audio_prompt, load_vocabulary

        if prompt.audio_prompt != "source" or video_known:
            check_audio_prompt(prompt.audio_prompt, soundtrack, prompt.audio_vocabulary)
        else:
            load_vocabulary(prompt.audio_vocabulary)
        check_audio_model(prompt.audio_model, prompt.audio_prompt)
    check_prompt_language(config, prompt_translator)


def check_prompt_language(config: RerenderConfig, translator: Any = None) -> None:
    """A prompt that is not English needs a translation model: refuse a missing one now (`WeightsNotFoundError`),
    unless the caller passes its own `translator`."""
    language = config.prompt.prompt_language
    if translator is not None or language == "en" or not config.prompt.prompt.strip():
        return
    from rerender.languages import (
        DEFAULT_TRANSLATOR_LANGUAGES,
        check_translator,
        default_translation_model,
        detect_language,
    )

    if language == "auto":
        language = detect_language(config.prompt.prompt)
    # a script no default translator covers (Thai, Arabic, …) is warned about when translating, not refused here
    if language in DEFAULT_TRANSLATOR_LANGUAGES or (language != "en" and config.prompt.translation_model):
        check_translator(config.prompt.translation_model or default_translation_model(language))


def check_workspace_paths(
    workspace: Path,
    output: Path | None,
    inputs: Sequence[Any],
    *,
    comparison: bool = False,
    overwrite: bool = False,
) -> None:
    """The workspace folder (writable, not an input, not the output) and, with `comparison`, the side-by-side
    video's name beside the output: as every output, never a file rerender did not write unless `overwrite`.

    Raises:
        OutputPathError: naming the path and what to do.
    """
    from rerender.errors import OutputPathError
    from rerender.video import check_output_path
    from rerender.workflow.stages import comparison_path

    if output is not None and comparison:  # a name we chose, not the caller: the remedy says how to avoid it
        check_output_path(
            comparison_path(output),
            list(inputs),
            name="comparison output",
            overwrite=overwrite,
            remedy="move it away, leave out `comparison` (--comparison), or pass `overwrite=True` to replace it",
        )
    check_output_path(workspace, list(inputs), kind="folder", name="workspace")
    if output is not None and Path(workspace).resolve() == output.resolve():
        raise OutputPathError(f"workspace {str(workspace)!r} is the output video's path; choose another folder")


def check_run(
    config: RerenderConfig | str | os.PathLike | None,
    *,
    prompt: str | None = None,
    K: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    stage: str | None = None,
    output: str | os.PathLike | None = None,
    inputs: Sequence[Any] = (),
    renderer: Any = None,
    pipeline: Any = None,
    executor: Any = None,
    prompt_translator: Any = None,
    check_model: bool = True,
    soundtrack: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Preflight:
    """Step 1 of every run: check every argument that needs no decoding, and resolve the config.

    Args:
        config: a `RerenderConfig`, a YAML/JSON file or None (defaults).
        prompt, K, overrides: applied to the config (`rerender.workflow.stages.resolve_config`).
        stage: how far the run goes (`rerender.config.Stage`); None for an entry point without stages (all).
        output: the video the run writes; None is refused for a stage that writes one (`WRITING_STAGES`).
        inputs: the run's input files, which `output` must not be.
        renderer: a renderer name or object (see `translate`).
        pipeline: a loaded pipeline (its weights are then not checked).
        executor: the run's executor, which may refuse the config (e.g. more segments than GPUs).
        prompt_translator: the caller's translator (a configured translation model is then not needed).
        check_model: check the keyframe model's weights and style inputs (`check_model_inputs`).
        soundtrack: the video whose sound `prompt.audio_prompt: source` means; None for a still or text alone.
        overwrite: replace an existing `output` that rerender did not write (otherwise refused).

    Returns:
        A `Preflight` with the resolved config and the checked output.

    Raises:
        ConfigError: a bad stage, option, renderer or K; `output=None` with a stage that writes a video; a propagation
            engine or device that cannot run here.
        OutputPathError: the output cannot be written or is an input, or it exists and rerender did not write it
            (without `overwrite`).
        WeightsNotFoundError: the model, IP-Adapter or translation weights are neither here nor downloadable.
        InputNotFoundError, VideoReadError: a missing or unreadable style image or sound (or one without audio).
    """
    from rerender.video import check_output_path
    from rerender.workflow.stages import resolve_config

    staged, stage = stage is not None, stage or "all"
    check_stage(stage, output, staged)
    if executor is not None and not callable(getattr(executor, "check", None)):  # e.g. executor="ray"
        raise ConfigError(
            f"`executor` must be an executor object (None, LocalExecutor() or RayExecutor(...) from "
            f"rerender.workflow.executors), got {executor!r}"
        )
    if pipeline is not None and (isinstance(pipeline, (str, os.PathLike)) or not callable(pipeline)):
        raise ConfigError(
            f"`pipeline` must be a loaded pipeline (rerender.load_pipeline(...)), got {pipeline!r}; to name a model, "
            "pass base_model=... instead"
        )
    if prompt_translator is not None and not callable(prompt_translator):  # else first called for a foreign prompt
        raise ConfigError(
            f"`prompt_translator` must be a function prompt_translator(text, language) -> str or None, got "
            f"{prompt_translator!r}; to name a translation model, pass translation_model=... instead"
        )
    renderer_object, changes = check_renderer(renderer, overrides or {})
    ignored = ignored_by_pipeline(changes, pipeline) if pipeline is not None else []
    if ignored:  # they choose what is loaded: beside a loaded pipeline they would do nothing
        raise ConfigError(
            f"{', '.join(ignored)}: options of the model that is loaded, but `pipeline` is given, loaded already; "
            "load it with them (rerender.load_pipeline(config.model, config.control) of a config that has them), "
            "or leave them out"
        )
    resolved = resolve_config(config, prompt, K, changes)
    if pipeline is not None:  # the config's model weights beside a loaded pipeline are not read: say so, naming both
        warn_unread_model_options(resolved, pipeline, changes)
    # the size multiple and the negative prompt of this model's family (configs only), before any size is computed
    resolved = resolve_model_defaults(resolved, run_family(resolved, renderer_object, pipeline), pipeline)
    if not isinstance(overwrite, bool):
        raise ConfigError(f"`overwrite` must be True or False, got {overwrite!r}")
    output_path = (  # never overwrite what we did not write; our own earlier output is a rerun's
        check_output_path(
            output,
            list(inputs),
            name="`output`",
            overwrite=overwrite,
            remedy="move it away, choose another `output`, or pass `overwrite=True` to replace it",
        )
        if output is not None and stage in WRITING_STAGES
        else None
    )
    if executor is not None:
        executor.check(resolved)
    if stage in WRITING_STAGES and getattr(executor, "name", None) != "ray":  # Ray's workers check their own device
        from rerender.workflow.stages import propagation_options

        propagation_options(resolved)  # the propagation engine and device can run here (e.g. "cuda" with no GPU)
    if stage in WRITING_STAGES and (resolved.propagation.engine, resolved.propagation.device) == ("numba", "cuda"):
        logger.warning(
            "`propagation.device` is 'cuda', but `propagation.engine` is 'numba', which runs on the CPU: the device "
            "is ignored; set propagation.engine: torch (or auto) to propagate on the GPU"
        )
    # the sound to hear and its CLAP model, a translation model: the prompt is read before the keyframe model loads
    check_prompt_inputs(resolved, soundtrack=soundtrack, prompt_translator=prompt_translator)
    if check_model:
        check_model_inputs(resolved, renderer=renderer_object, pipeline=pipeline)
    return Preflight(config=resolved, stage=stage, output=output_path, renderer=renderer_object)
