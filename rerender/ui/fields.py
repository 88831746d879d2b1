"""The config fields the page shows: which ones, in which group, and the component for each.

Help texts are the fields' own docstrings (`rerender.config.field_help`) and choice lists the config's `Literal`
aliases (`rerender.config.choices`): the page has no copy of either.
"""

import typing
from dataclasses import dataclass
from typing import Any

from rerender.camera import DEFAULT_AMOUNT, MOTIONS
from rerender.config import (
    FAMILY_DEFAULTS,
    RendererName,
    RerenderConfig,
    Stage,
    choices,
    field_default,
    field_help,
    field_type,
)
from rerender.config.fields import _dataclass_of
from rerender.errors import ConfigError

MODEL_FIELDS = ("model.base_model", "model.vae", "control.type", "control.model", "control.strength")
MAIN_FIELDS = (
    "keyframes.keyframe_interval",
    "keyframes.keyframe_mode",
    "keyframes.keyframe_indices",
    "sampling.denoising_strength",
    "sampling.num_inference_steps",
    "sampling.guidance_scale",
    "video.resolution",
)
ADVANCED_GROUPS: dict[str, tuple[str, ...]] = {
    "Cross-frame constraints": (
        "constraints.cross_frame_attention_period",
        "constraints.loose_cross_frame_attention",
        "constraints.reference_storage",
        "constraints.style_update_interval",
        "constraints.shape_fusion_period",
        "constraints.pixel_fusion_period",
        "constraints.adain_period",
        "constraints.mask_strength",
        "constraints.inner_strength",
        "constraints.smooth_boundary",
        "constraints.fidelity_encoding",
        "constraints.fidelity_threshold",
        "constraints.color_preserve",
        "sampling.same_noise_per_keyframe",
    ),
    "FreeU": (
        "constraints.freeu",
        "constraints.freeu.b1",
        "constraints.freeu.b2",
        "constraints.freeu.s1",
        "constraints.freeu.s2",
    ),
    "Transformer bases (Z-Image, Flux)": ("constraints.cross_frame_blocks", "sampling.true_cfg_scale"),
    "Refinement": (
        "sampling.refinement",
        "sampling.refinement.refinement_strength",
        "sampling.refinement.refinement_steps",
    ),
    "Propagation": (
        "propagation.propagation_preset",
        "propagation.blend_mode",
        "propagation.workers",
        "flow.flow_estimator",
        "flow.dis_preset",
    ),
    "Prompt language": ("prompt.prompt_language", "prompt.translation_model"),
    "Frames and output": (
        "video.start_frame",
        "video.end_frame",
        "video.frame_stride",
        "video.resize_side",
        "video.size_multiple",
        "prompt.added_prompt",
        "output.crf",
    ),
}
"""The "Advanced" accordion: the config fields each group shows (a group's optional section first)."""

SLIDERS: dict[str, tuple[float, float, float]] = {
    "keyframes.keyframe_interval": (1, 50, 1),
    "sampling.denoising_strength": (0.0, 1.0, 0.05),
    "video.resolution": (64, 1024, 16),
    "control.strength": (0.0, 2.0, 0.05),
    "prompt.style_image_scale": (0.0, 2.0, 0.05),
}
"""Fields shown as sliders: (minimum, maximum, step) of the slider only; the config still validates the value.
(Steps and guidance are number boxes: left empty, they are the model's own, `rerender.config.FAMILY_DEFAULTS`.)"""

STYLE_FIELDS = ("prompt.style_image_scale", "model.ip_adapter", "model.ip_adapter_weight_name")
"""The reference image's settings, beside its upload."""

STILL_MOTIONS = tuple(motion for motion in MOTIONS if motion not in ("orbit", "path"))
"""The camera moves the "Still image" mode offers (orbit needs a depth map and path a keyframed path: CLI and API)."""

STILL_AMOUNTS = {motion: DEFAULT_AMOUNT[motion] for motion in STILL_MOTIONS}
"""The amount the "Amount" field shows for each move: the library's own default for it."""

RENDERERS = choices(RendererName)
"""The keyframe renderers the page offers: the config's `RendererName`."""

STAGE_LABELS: dict[str, str] = {
    "first": "First keyframe",
    "keyframes": "Keyframes",
    "propagate": "Propagate",
    "all": "Run all",
}
STAGE_BUTTONS = tuple((stage, STAGE_LABELS[stage]) for stage in choices(Stage))
"""One button per stage of the config's `Stage`, in its order (a stage without a label fails at import)."""

DEFAULT_CHOICE = "(default)"
"""The dropdown entry of an optional closed-set field that means "None" (the library decides)."""


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the page shows it."""

    path: str
    """Dotted path (`sampling.denoising_strength`); `control.x` sets every ControlNet."""
    annotation: Any
    """Its resolved type (`rerender.config.field_type`)."""
    default: Any
    """Its default value (for `control.x`, that of the default ControlNet)."""
    doc: str
    """Its docstring (`rerender.config.field_help`)."""

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.annotation)

    @property
    def base(self) -> Any:
        """The annotation without `None`."""
        arguments = [argument for argument in typing.get_args(self.annotation) if argument is not type(None)]
        if self.optional and len(arguments) == 1:
            return arguments[0]
        return self.annotation

    @property
    def section(self) -> bool:
        """Whether the field is an optional section (`constraints.freeu`), shown as a switch."""
        return _dataclass_of(self.annotation) is not None

    @property
    def label(self) -> str:
        words = (
            self.name.replace("_", " ")
            .capitalize()
            .replace("Vae", "VAE")
            .replace("Dis ", "DIS ")
            .replace("Cfg", "CFG")
        )
        return f"ControlNet {words.lower()}" if self.path.startswith("control.") else words


def field_spec(path: str) -> FieldSpec:
    """The page's view of the option at dotted `path`: type, default and docstring, all from `rerender.config`.

    Raises:
        ConfigError: `path` names no config field.
    """
    return FieldSpec(path, field_type(path), field_default(path), field_help(path))


def config_value(config: RerenderConfig, path: str) -> Any:
    """The value at a dotted path of `config` (`control.x`: the first ControlNet's)."""
    node: Any = config
    for part in path.split("."):
        if node is None:
            return None
        node = getattr(node, part)
        if part == "control":
            node = node[0] if node else None
    return node


def text_of(value: Any) -> str:
    """A field value as the text box shows it: tuples as `0.5, 0.8`, `None` as empty."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(item) for item in value)
    return str(value)


def value_of(spec: FieldSpec, raw: Any) -> Any:
    """A component's value as the config expects it (the config itself validates it)."""
    import yaml

    if raw == DEFAULT_CHOICE:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if text == "" or text.lower() in ("none", "off", "null"):
            return None if spec.optional else text
        if typing.get_origin(spec.base) is tuple:
            # "0, 4, 8" as the box shows it, and what people type too: "0 4 8", "0; 4", "(0.8, 1)", "[0.8, 1]"
            items = text.strip("()[] ").replace(";", ",")
            if "," not in items:
                items = ", ".join(items.split())
            try:
                return yaml.safe_load(f"[{items}]")
            except yaml.YAMLError:
                raise ConfigError(f"`{spec.path}` must be numbers separated by commas, got {raw!r}") from None
        return text
    if raw is None:
        return None
    if spec.base is int and isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw


def component_for(spec: FieldSpec, default: Any) -> Any:
    """A Gradio component for a config field, labelled by its name, with its docstring as help text and, for a
    closed set of values, the config's `Literal` as its choices."""
    import gradio as gr

    info = spec.doc or None
    if spec.section:  # an optional section: a switch
        return gr.Checkbox(label=f"Use {spec.label.lower()}", value=default is not None, info=info)
    base = spec.base
    if base is bool:
        return gr.Checkbox(label=spec.label, value=bool(default), info=info)
    if typing.get_origin(base) is typing.Literal:
        options = [str(choice) for choice in choices(base)]
        if spec.optional:
            options = [DEFAULT_CHOICE] + options
        return gr.Dropdown(
            choices=options, value=default if default is not None else DEFAULT_CHOICE, label=spec.label, info=info
        )
    if spec.path in SLIDERS:
        low, high, step = SLIDERS[spec.path]
        return gr.Slider(low, high, value=default, step=step, label=spec.label, info=info)
    if base in (int, float):
        return gr.Number(value=default, label=spec.label, info=info, precision=0 if base is int else None)
    unset = "empty = the model's own" if spec.path in FAMILY_DEFAULTS else "empty = off"
    return gr.Textbox(
        value=text_of(default), label=spec.label, info=info, placeholder=unset if spec.optional else None
    )
