"""The config fields the page shows: which ones, in which group, and the component for each (help texts are the
fields' own docstrings)."""

import dataclasses
import functools
import typing
import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

import rerender.config as config_module
from rerender.config import RerenderConfig
from rerender.errors import ConfigError

MODEL_FIELDS = ("model.base_model", "model.vae", "control.type", "control.model", "control.strength")
MAIN_FIELDS = (
    "keyframes.keyframe_interval", "keyframes.keyframe_mode", "keyframes.keyframe_indices",
    "sampling.denoising_strength", "sampling.num_inference_steps", "sampling.guidance_scale", "video.resolution",
)
ADVANCED_GROUPS: dict[str, tuple[str, ...]] = {
    "Cross-frame constraints": (
        "constraints.cross_frame_attention_period", "constraints.loose_cross_frame_attention",
        "constraints.style_update_interval", "constraints.shape_fusion_period", "constraints.pixel_fusion_period",
        "constraints.adain_period", "constraints.mask_strength", "constraints.inner_strength",
        "constraints.smooth_boundary", "constraints.fidelity_encoding", "constraints.fidelity_threshold",
        "constraints.color_preserve", "sampling.same_noise_per_keyframe",
    ),
    "FreeU": ("constraints.freeu", "constraints.freeu.b1", "constraints.freeu.b2", "constraints.freeu.s1", "constraints.freeu.s2"),
    "Refinement": ("sampling.refinement", "sampling.refinement.refinement_strength", "sampling.refinement.refinement_steps"),
    "Propagation": ("propagation.propagation_preset", "propagation.blend_mode", "propagation.workers", "flow.flow_estimator", "flow.dis_preset"),
    "Prompt language": ("prompt.prompt_language", "prompt.translation_model"),
    "Frames and output": ("video.start_frame", "video.end_frame", "video.frame_stride", "video.resize_side", "video.size_multiple", "prompt.added_prompt", "output.crf"),
}
"""The "Advanced" accordion: the config fields each group shows (a group's optional section first)."""

SLIDERS: dict[str, tuple[float, float, float]] = {
    "keyframes.keyframe_interval": (1, 50, 1),
    "sampling.denoising_strength": (0.0, 1.0, 0.05),
    "sampling.num_inference_steps": (1, 100, 1),
    "sampling.guidance_scale": (1.0, 20.0, 0.5),
    "video.resolution": (64, 1024, 16),
    "control.strength": (0.0, 2.0, 0.05),
    "prompt.style_image_scale": (0.0, 2.0, 0.05),
}
"""Fields shown as sliders: (minimum, maximum, step) of the slider only; the config still validates the value."""

STYLE_FIELDS = ("prompt.style_image_scale", "model.ip_adapter", "model.ip_adapter_weight_name")
"""The reference image's settings, beside its upload."""

STILL_MOTIONS = ("zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down")
"""The camera moves the "Still image" mode offers (orbit needs a depth map and path a keyframed path: CLI and API)."""

RENDERERS = ("auto", "diffusion", "classic")
STAGE_BUTTONS = (("first", "First keyframe"), ("keyframes", "Keyframes"), ("propagate", "Propagate"), ("all", "Run all"))


# --------------------------------------------------------------------------------------------------------
# config fields: types, defaults and docstrings (one source of truth: rerender/config.py)
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass, read from its source (the string literal after the field).

    Returns:
        field name → its docstring with whitespace collapsed.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the page shows it."""

    path: str
    """Dotted path (`sampling.denoising_strength`); `control.x` sets every ControlNet."""
    owner: type
    """The dataclass that declares the field."""
    name: str
    """The field's name."""
    annotation: Any
    """Its resolved type."""
    default: Any
    """Its default value (for `control.x`, that of the first default ControlNet)."""
    doc: str
    """Its docstring."""

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
    def label(self) -> str:
        words = self.name.replace("_", " ").capitalize().replace("Vae", "VAE").replace("Dis ", "DIS ").replace("Cfg", "CFG")
        return f"ControlNet {words.lower()}" if self.owner is config_module.ControlConfig else words


def field_spec(path: str) -> FieldSpec:
    """Resolve a dotted config path to its declaring dataclass, type, default and docstring.

    Raises:
        ConfigError: `path` names no config field.
    """
    owner, default_node = RerenderConfig, RerenderConfig()
    parts = path.split(".")
    for depth, part in enumerate(parts):
        hints = typing.get_type_hints(owner)
        if part not in hints:
            raise ConfigError(f"unknown option `{path}`")
        annotation = hints[part]
        value = getattr(default_node, part) if default_node is not None else None
        if depth == len(parts) - 1:
            return FieldSpec(path, owner, part, annotation, value, field_docstrings(owner).get(part, ""))
        if part == "control":  # a tuple of ControlConfig: `control.x` addresses every ControlNet
            owner, default_node = config_module.ControlConfig, (value[0] if value else config_module.ControlConfig())
            continue
        nested = config_module._dataclass_of(annotation)
        if nested is None:
            raise ConfigError(f"unknown option `{path}`")
        owner, default_node = nested, value if value is not None else nested()
    raise ConfigError(f"unknown option `{path}`")


def _text_of(value: Any) -> str:
    """A field value as the text box shows it: tuples as `0.5, 0.8`, `None` as empty."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(item) for item in value)
    return str(value)


def _value_of(spec: FieldSpec, raw: Any) -> Any:
    """A component's value as the config expects it (the config itself validates it)."""
    import yaml

    if isinstance(raw, str):
        text = raw.strip()
        if text == "" or text.lower() in ("none", "off", "null"):
            return None if spec.optional else text
        if typing.get_origin(spec.base) is tuple:
            try:
                return yaml.safe_load(f"[{text}]")
            except yaml.YAMLError:
                raise ConfigError(f"`{spec.path}` must be numbers separated by commas, got {raw!r}") from None
        return text
    if raw is None:
        return None
    if spec.base is int and isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw

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


def _component_for(spec: FieldSpec, gr: Any, default: Any) -> Any:
    """A Gradio component for a config field, labelled by its name, with its docstring as help text."""
    info = spec.doc or None
    if dataclasses.is_dataclass(config_module._dataclass_of(spec.annotation)):  # an optional section: a switch
        return gr.Checkbox(label=f"Use {spec.label.lower()}", value=default is not None, info=info)
    base = spec.base
    if base is bool:
        return gr.Checkbox(label=spec.label, value=bool(default), info=info)
    if typing.get_origin(base) is typing.Literal:
        choices = [str(choice) for choice in typing.get_args(base)]
        if spec.optional:
            choices = ["(default)"] + choices
        return gr.Dropdown(choices=choices, value=default if default is not None else "(default)", label=spec.label, info=info)
    if spec.path in SLIDERS:
        low, high, step = SLIDERS[spec.path]
        return gr.Slider(low, high, value=default, step=step, label=spec.label, info=info)
    if base in (int, float):
        return gr.Number(value=default, label=spec.label, info=info, precision=0 if base is int else None)
    return gr.Textbox(value=_text_of(default), label=spec.label, info=info, placeholder="empty = off" if spec.optional else None)


def _raw_setting(spec: FieldSpec, value: Any) -> Any:
    return None if value == "(default)" else value

