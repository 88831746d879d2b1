"""The sections of `RerenderConfig`: typed, frozen dataclasses with a docstring under every field, and the
`Literal` aliases that are the single source of every closed set of values.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rerender.errors import ConfigError

__all__ = [
    "Period",
    "ResizeSide",
    "KeyframeMode",
    "PromptLanguage",
    "RendererName",
    "DTypeName",
    "DeviceName",
    "ControlType",
    "FreeUVariant",
    "FlowEstimatorName",
    "DISPreset",
    "PropagationPreset",
    "BlendMode",
    "OutputSize",
    "Stage",
    "ModelFamily",
    "BaseVariant",
    "PropagationEngine",
    "PropagationDevice",
    "ReferenceStorage",
    "InputChange",
    "CHOICES",
    "LANGUAGE_NAMES",
    "CONTROL_TYPES",
    "DEFAULT_CONTROLNETS",
    "DEFAULT_SDXL_CONTROLNETS",
    "SDXL_UNION_MODES",
    "FLUX_UNION_MODES",
    "UNION_MODES",
    "SDXLUnionModeName",
    "FluxUnionModeName",
    "UnionControlModeName",
    "DEFAULT_NEGATIVE_PROMPT",
    "FAMILY_NAMES",
    "FAMILY_SIZE_MULTIPLES",
    "VARIANT_NAMES",
    "GENERATED_SIZE",
    "FAMILY_DEFAULTS",
    "FREEU_FACTORS",
    "BASE_SPECIFIC_OPTIONS",
    "default_negative_prompt",
    "family_default",
    "choices",
    "NAMED_COLORS",
    "parse_color",
    "Crop",
    "VideoConfig",
    "KeyframeConfig",
    "PromptConfig",
    "LoraConfig",
    "ModelConfig",
    "ControlConfig",
    "RefinementConfig",
    "SamplingConfig",
    "FreeUConfig",
    "ConstraintConfig",
    "FlowConfig",
    "PropagationConfig",
    "OutputConfig",
    "RerenderConfig",
]

Period = tuple[float, float]
"""A window of the denoising schedule as fractions `(start, end)` with 0 ≤ start ≤ end ≤ 1.

0 is the noisiest step of the *full* schedule (before SDEdit truncation) and 1 the last one. With the
official 20 steps, step i is active when `start·20 ≤ i ≤ end·20`; pixel-aware fusion uses the strict
`start·20 < i < end·20`, as in the paper's code. `None` in place of a period turns the feature off."""

DEFAULT_NEGATIVE_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality"
)
"""The official Rerender's negative prompt (its `n_prompt`), the default on the Stable Diffusion bases."""


def default_negative_prompt(family: str | None, true_cfg_scale: float = 1.0) -> str:
    """The negative prompt a run uses when `prompt.negative_prompt` is not set, decided here alone, by the base:

    * SD 1.5 and SDXL (and the classic stylizer, `family` None): `DEFAULT_NEGATIVE_PROMPT`, the official Rerender's;
    * Flux: none ("") unless true classifier-free guidance is asked for (``true_cfg_scale`` > 1): Flux is
      guidance-distilled and has no negative branch otherwise (diffusers' `FluxPipeline` uses a negative prompt only
      then); with true guidance, `DEFAULT_NEGATIVE_PROMPT`, as on the bases whose guidance is classifier-free;
    * Z-Image: "" (diffusers' `ZImagePipeline` default): Turbo runs without guidance and reads no negative prompt,
      and the undistilled model guides against the empty prompt.
    """
    if family == "zimage" or (family == "flux" and true_cfg_scale <= 1.0):
        return ""
    return DEFAULT_NEGATIVE_PROMPT


# --------------------------------------------------------------------------------------------------------
# the closed sets of values: one `Literal` each, the only place they are spelled (config checks, CLI choices,
# web UI components and the docs all derive from them with `typing.get_args`)
# --------------------------------------------------------------------------------------------------------

ResizeSide = Literal["long", "short"]
"""Which side of the frame becomes `video.resolution` px."""
KeyframeMode = Literal["uniform", "explicit", "adaptive"]
"""How keyframes are chosen: every K frames, the listed indices, or by motion."""
PromptLanguage = Literal["auto", "en", "vi", "ko", "ja", "zh", "ru", "fr", "de", "es", "th", "ar", "hi", "he", "el"]
"""Language codes `prompt.prompt_language` accepts ("auto" detects by script). th, ar, hi, he and el have no default
translator: they are translated when `prompt.translation_model` (or a translator function) is set."""
RendererName = Literal["auto", "diffusion", "classic"]
"""The keyframe renderer."""
DTypeName = Literal["auto", "float16", "bfloat16", "float32"]
"""Compute precision of the diffusion models."""
DeviceName = Literal["auto", "cpu", "mps", "cuda"]
"""Devices by name; `model.device` also takes "cuda:N"."""
ControlType = Literal["canny", "hed", "lineart", "depth", "openpose", "precomputed"]
"""The annotator that makes a ControlNet's control map ("precomputed": maps read from files)."""
SDXLUnionModeName = Literal[
    "openpose", "depth", "hed", "pidi", "scribble", "ted", "canny", "lineart", "anime_lineart", "mlsd",
    "normal", "segment", "tile", "repaint",
]  # fmt: skip
"""The control modes of the SDXL ControlNet Union (xinsir/controlnet-union-sdxl-1.0 and its ProMax; diffusers'
`ControlNetUnionModel`) by name; several names share a mode (`SDXL_UNION_MODES`)."""
SDXL_UNION_MODES: dict[str, int] = {
    "openpose": 0, "depth": 1, "hed": 2, "pidi": 2, "scribble": 2, "ted": 2, "canny": 3, "lineart": 3,
    "anime_lineart": 3, "mlsd": 3, "normal": 4, "segment": 5, "tile": 6, "repaint": 7,
}  # fmt: skip
"""The mode number of each `SDXLUnionModeName`, from the model card of xinsir/controlnet-union-sdxl-1.0
(https://huggingface.co/xinsir/controlnet-union-sdxl-1.0): 0 openpose, 1 depth, 2 hed/pidi/scribble/ted,
3 canny/lineart/anime_lineart/mlsd, 4 normal, 5 segment, 6 tile, 7 repaint (ProMax only; the first release has
6 modes, its `num_control_type`)."""
FluxUnionModeName = Literal["canny", "tile", "depth", "blur", "openpose", "gray", "low_quality"]
"""The control modes of the Flux ControlNet Unions (InstantX/FLUX.1-dev-Controlnet-Union,
Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro; diffusers' `FluxControlNetModel` with `num_mode`) by name
(`FLUX_UNION_MODES`): the model cards' "pose" is "openpose" and "low quality" "low_quality" here, one name per
concept on every base."""
FLUX_UNION_MODES: dict[str, int] = {
    "canny": 0, "tile": 1, "depth": 2, "blur": 3, "openpose": 4, "gray": 5, "low_quality": 6,
}  # fmt: skip
"""The mode number of each `FluxUnionModeName`, from the model cards of InstantX/FLUX.1-dev-Controlnet-Union
(https://huggingface.co/InstantX/FLUX.1-dev-Controlnet-Union) and Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro
(https://huggingface.co/Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro), which share it: canny 0, tile 1, depth 2,
blur 3, pose 4, gray 5, low quality 6."""
UnionControlModeName = Literal[SDXLUnionModeName, FluxUnionModeName]
"""Every ControlNet Union mode name (`control.control_mode`): those of the SDXL and of the Flux ControlNet Unions; a
run takes those of its base's Union model only (`UNION_MODES`)."""
UNION_MODES: dict[str, dict[str, int]] = {
    "sd15": SDXL_UNION_MODES,
    "sdxl": SDXL_UNION_MODES,
    "flux": FLUX_UNION_MODES,
    "zimage": {},
}
"""The Union ControlNet's mode names and numbers on each `ModelFamily`: a UNet base's is diffusers'
`ControlNetUnionModel` (xinsir's numbering, `SDXL_UNION_MODES`; published for SDXL), Flux's a `FluxControlNetModel`
with modes (`FLUX_UNION_MODES`); Z-Image's Union ControlNet (alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union,
diffusers' `ZImageControlNetModel`) takes no mode: it reads the kind of control from the map itself."""
FreeUVariant = Literal["rerender", "diffusers"]
"""Which FreeU: the paper's (Rerender) or `unet.enable_freeu` (diffusers)."""
FlowEstimatorName = Literal["auto", "dis", "gmflow"]
"""The optical flow estimator."""
DISPreset = Literal["ultrafast", "fast", "medium", "fine"]
"""OpenCV DIS presets (and "fine", medium carried to full resolution)."""
PropagationPreset = Literal["fast", "balanced", "best", "rerender"]
"""Speed/quality presets of the patch synthesis ("rerender": the official EbSynth settings)."""
BlendMode = Literal["reconstruction", "agreement", "histogram", "poisson", "select", "linear"]
"""How the forward and backward propagation passes are merged."""
OutputSize = Literal["processing", "source"]
"""Size of the propagated frames: the keyframes' size or the cropped source's."""
Stage = Literal["first", "keyframes", "propagate", "all"]
"""How far a run goes: the anchor keyframe only, all keyframes, propagation of finished keyframes, or everything."""
ModelFamily = Literal["auto", "sd15", "sdxl", "zimage", "flux"]
"""The base model's family: Stable Diffusion 1.5, SDXL, Z-Image or Flux ("auto": detected from the model itself)."""
FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL", "zimage": "Z-Image", "flux": "Flux"}
"""How messages and the docs name each `ModelFamily` but "auto"."""
FAMILY_SIZE_MULTIPLES = {"sd15": 8, "sdxl": 8, "zimage": 16, "flux": 16}
"""What frame sides must be multiples of on each `ModelFamily` (the pipelines' ``size_multiple``): the VAE's
factor (8) on the UNet bases, times the 2×2 patches the transformer bases cut the latent into (16)."""
GENERATED_SIZE = (512, 512)
"""The frame size ``(width, height)`` of `rerender.generate` when `size` is not given (each side the CLI's
`--width`/`--height` leaves out), on every base model: `video.resolution` does not apply, there is no source."""
BaseVariant = Literal["sd15", "sdxl", "flux-dev", "flux-schnell", "zimage", "zimage-turbo"]
"""A base model as its sampling defaults tell it apart: its `ModelFamily`, with FLUX.1 [schnell] (no guidance
embedding) apart from [dev] and its kin (a guidance embedding), and Z-Image-Turbo (guidance-distilled) apart from the
undistilled Z-Image. `rerender.weights.base_variant` reads it from the model's configs (and its name) before anything
loads; a loaded pipeline says its own (`variant`)."""
VARIANT_NAMES = {
    "sd15": "SD 1.5",
    "sdxl": "SDXL",
    "flux-dev": "FLUX.1 [dev]",
    "flux-schnell": "FLUX.1 [schnell]",
    "zimage": "Z-Image",
    "zimage-turbo": "Z-Image-Turbo",
}
"""How messages and the docs name each `BaseVariant`."""
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "sampling.num_inference_steps": {
        "sd15": 20,
        "sdxl": 20,
        "flux-dev": 28,
        "flux-schnell": 4,
        "zimage": 50,
        "zimage-turbo": 9,
    },
    "sampling.guidance_scale": {
        "sd15": 7.5,
        "sdxl": 7.5,
        "flux-dev": 3.5,
        "flux-schnell": 0.0,
        "zimage": 6.0,
        "zimage-turbo": 1.0,
    },
    "prompt.added_prompt": {
        "sd15": "best quality, extremely detailed",
        "sdxl": "best quality, extremely detailed",
        "flux-dev": "",
        "flux-schnell": "",
        "zimage": "",
        "zimage-turbo": "",
    },
    "constraints.freeu.b1": {
        "sd15": 1.1,
        "sdxl": 1.3,
        "flux-dev": None,
        "flux-schnell": None,
        "zimage": None,
        "zimage-turbo": None,
    },
    "constraints.freeu.b2": {
        "sd15": 1.2,
        "sdxl": 1.4,
        "flux-dev": None,
        "flux-schnell": None,
        "zimage": None,
        "zimage-turbo": None,
    },
    "constraints.freeu.s1": {
        "sd15": 1.0,
        "sdxl": 0.9,
        "flux-dev": None,
        "flux-schnell": None,
        "zimage": None,
        "zimage-turbo": None,
    },
    "constraints.freeu.s2": {
        "sd15": 0.2,
        "sdxl": 0.2,
        "flux-dev": None,
        "flux-schnell": None,
        "zimage": None,
        "zimage-turbo": None,
    },
}
"""The value each option left unset (`None`) takes on each base (`BaseVariant`); a value set always wins. The one
table of these defaults: runs (`rerender.workflow.preflight.resolve_model_defaults`), the CLI's help, the web page
and the docs read it. Sources:

* SD 1.5, SDXL: the official Rerender's 20 steps, guidance 7.5 and ``a_prompt`` (SD's quality tags);
* FLUX.1 [dev] (and other Flux models with a guidance embedding): diffusers' `FluxPipeline` defaults, 28 steps and
  embedded guidance 3.5 (one model call per step);
* FLUX.1 [schnell]: its model card's 4 steps and guidance 0 (it has no guidance input);
* Z-Image: diffusers' `ZImagePipeline` defaults, 50 steps and guidance 5, which in its convention
  (``v_pos + s·(v_pos − v_neg)``) is 6 in ours (``v_neg + g·(v_pos − v_neg)``, g ≤ 1 off; the model card: 3–5, i.e.
  4–6 here);
* Z-Image-Turbo: its model card's 9 steps (8 model calls) without guidance (diffusers' 0, our 1);
* `prompt.added_prompt` is empty on Flux and Z-Image: their T5/Qwen text encoders read natural-language
  descriptions (Black Forest Labs' prompting guide: descriptions beat keyword lists; Z-Image-Turbo's card: long,
  detailed prompts), and SD's quality tags are no part of how they were taught to read prompts;
* `constraints.freeu` (b1, b2, s1, s2), when FreeU is on: on SD 1.5 Rerender-A-Video's choice 1.1, 1.2, 1, 0.2
  (its ``configs/*_freeu.json``); on SDXL FreeU's published SDXL factors 1.3, 1.4, 0.9, 0.2 (FreeU's README,
  `FreeUConfig.published`). FreeU acts on UNet skip connections (`BASE_SPECIFIC_OPTIONS`): on the transformer
  bases the entry is None, "not used" (the option is ignored there, with a warning), never a number.
"""


def family_default(option: str, variant: str | None) -> Any:
    """The value `option` (a dotted path of `FAMILY_DEFAULTS`) takes when left unset on the base `variant` (a
    `BaseVariant`); `variant` None (the classic stylizer, a caller's renderer object) takes SD 1.5's.

    Raises:
        KeyError: an option without a family default.
    """
    return FAMILY_DEFAULTS[option][variant or "sd15"]


BASE_SPECIFIC_OPTIONS = {
    "sampling.true_cfg_scale": ("flux",),
    "constraints.cross_frame_blocks": ("zimage", "flux"),
    "constraints.freeu": ("sd15", "sdxl"),
    "constraints.loose_cross_frame_attention": ("sd15", "sdxl"),
    "control.control_mode": ("sd15", "sdxl", "flux"),
}
"""Options that act on some bases only (the families each acts on); set on another base they do nothing, and a
run says so (a warning naming the option and the bases that use it). `control.control_mode`: Z-Image's Union
ControlNet takes no mode (`UNION_MODES`)."""
PropagationEngine = Literal["auto", "numba", "torch"]
"""The propagation engine: the CPU numba engine, the torch engine (GPU or CPU), or "auto" (torch when torch sees a GPU)."""
PropagationDevice = Literal["auto", "cpu", "cuda"]
"""Where the torch propagation engine runs."""
ReferenceStorage = Literal["auto", "device", "host"]
"""Where cross-frame attention keeps its reference features: on the GPU ("device"), in (pinned) CPU memory, brought
back to the GPU ahead of each model call ("host"), or "host" when they would crowd the GPU ("auto")."""
InputChange = Literal["refuse", "restart"]
"""What opening a workspace does when it holds work for an earlier version of the same input (the same name, other
content: an edited video, `animate`'s clip made again from another still or move): "refuse" (`force` starts it
over) or "restart" (start it over, saying why)."""

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "vi": "Vietnamese",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "ru": "Russian",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "th": "Thai",
    "ar": "Arabic",
    "hi": "Hindi",
    "he": "Hebrew",
    "el": "Greek",
}
"""The English name of each language code of `PromptLanguage` but "auto"."""

CHOICES: dict[str, Any] = {
    "ResizeSide": ResizeSide,
    "KeyframeMode": KeyframeMode,
    "PromptLanguage": PromptLanguage,
    "RendererName": RendererName,
    "DTypeName": DTypeName,
    "DeviceName": DeviceName,
    "ControlType": ControlType,
    "UnionControlModeName": UnionControlModeName,
    "SDXLUnionModeName": SDXLUnionModeName,
    "FluxUnionModeName": FluxUnionModeName,
    "FreeUVariant": FreeUVariant,
    "FlowEstimatorName": FlowEstimatorName,
    "DISPreset": DISPreset,
    "PropagationPreset": PropagationPreset,
    "BlendMode": BlendMode,
    "OutputSize": OutputSize,
    "Stage": Stage,
    "ModelFamily": ModelFamily,
    "BaseVariant": BaseVariant,
    "PropagationEngine": PropagationEngine,
    "PropagationDevice": PropagationDevice,
    "ReferenceStorage": ReferenceStorage,
    "InputChange": InputChange,
}
"""Every closed set of values by its alias name (for the docs and the consistency test)."""


def choices(alias: Any) -> tuple[str, ...]:
    """The values of a `Literal` alias (`choices(BlendMode)` → `("reconstruction", …)`), in their declared order."""
    return tuple(typing.get_args(alias))


# --------------------------------------------------------------------------------------------------------
# validation primitives (each message: key, value, valid range)
# --------------------------------------------------------------------------------------------------------


def _check_range(key: str, value: float | int, low: float | None = None, high: float | None = None) -> None:
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)  # a dataclass built in Python: any type
    if not number or value != value or (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            valid = f"in [{low}, {high}]"
        elif low is not None:
            valid = f"≥ {low}"
        else:
            valid = f"≤ {high}"
        raise ConfigError(f"`{key}` must be {valid if number else 'a number ' + valid}, got {value!r}")  # NaN too


def _check_choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"`{key}` must be one of {', '.join(map(repr, valid))}, got {value!r}")


def _check_period(key: str, period: Period | None) -> None:
    if period is None:
        return
    if (
        not isinstance(period, (tuple, list))
        or len(period) != 2
        or not all(isinstance(v, numbers.Real) for v in period)
    ):
        raise ConfigError(f"`{key}` must be a pair (start, end) or null, got {period!r}")
    start, end = period
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise ConfigError(f"`{key}` must lie in [0, 1] (fractions of the denoising schedule), got {period!r}")
    if start > end:
        raise ConfigError(f"`{key}` must have start ≤ end (use null to turn it off), got {period!r}")


NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
}
"""The colour names `video.background` accepts besides "#rrggbb"."""


def parse_color(value: str | tuple[int, int, int], key: str = "video.background") -> tuple[int, int, int]:
    """An RGB `uint8` triple from a colour name of `NAMED_COLORS`, "#rrggbb", or a triple (returned checked).

    Raises:
        ConfigError: naming `key`, the value and what is valid.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in NAMED_COLORS:
            return NAMED_COLORS[text]
        if re.fullmatch(r"#[0-9a-f]{6}", text):
            return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(isinstance(c, int) and 0 <= c <= 255 for c in value)
    ):
        return int(value[0]), int(value[1]), int(value[2])
    raise ConfigError(f"`{key}` must be one of {', '.join(NAMED_COLORS)} or '#rrggbb', got {value!r}")


# --------------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    """Pixels removed from each border of the source frame before resizing."""

    left: int = 0
    """Pixels cut from the left edge."""
    top: int = 0
    """Pixels cut from the top edge."""
    right: int = 0
    """Pixels cut from the right edge."""
    bottom: int = 0
    """Pixels cut from the bottom edge."""

    def __post_init__(self) -> None:
        for name in ("left", "top", "right", "bottom"):
            _check_range(f"crop.{name}", getattr(self, name), 0)

    @property
    def is_empty(self) -> bool:
        return self.left == self.top == self.right == self.bottom == 0


@dataclass(frozen=True)
class VideoConfig:
    """Which frames are read and how they are cropped and resized."""

    start_frame: int = 0
    """Index of the first frame used (0-based, in source frames)."""
    end_frame: int | None = None
    """Index one past the last frame used; `None` reads to the end of the video."""
    frame_stride: int = 1
    """Use every n-th frame of the range (1 = every frame); the output fps is divided accordingly."""
    crop: Crop | None = field(default_factory=Crop)
    """Borders removed before resizing, in source pixels; `None` (`crop: null`) = no crop, as `{}` (read back as
    `Crop()`: the field always holds a `Crop`)."""
    resolution: int = 512
    """Length in pixels that the side chosen by `resize_side` is resized to (before rounding)."""
    resize_side: ResizeSide = "long"
    """Which side becomes `resolution` px: "long" (official code since 2023-10) or "short" (paper, FRESCO)."""
    size_multiple: int | None = None
    """Both output sides are rounded to a multiple of this many pixels; the frame keeps its aspect within 1 %
    (`rerender.video.fit_frame`). `None` = what the base model needs (`FAMILY_SIZE_MULTIPLES`: 8, its VAE's factor,
    on SD 1.5/SDXL; 16 on Z-Image/Flux, VAE factor × 2×2 patches; 8 for the classic stylizer); a value the model
    cannot take is refused before any work."""
    background: str = "white"
    """Colour that transparent pixels of every image read (stills, keyframes, image-folder frames, style images,
    control maps) are composited over: "white", "black", "grey" or "#rrggbb". A keyframe with transparent areas
    is warned about: propagation carries this colour into the video."""
    deinterlace: bool = True
    """Deinterlace frames the decoder flags as interlaced (FFmpeg's bwdif, one frame per frame) as they are read;
    `false` reads the fields woven together, as stored (combing on motion)."""

    def __post_init__(self) -> None:
        if self.crop is None:  # the one place `None` becomes no crop: Python, YAML `crop: null` and --set alike
            object.__setattr__(self, "crop", Crop())
        parse_color(self.background, "video.background")
        _check_range("video.start_frame", self.start_frame, 0)
        if self.end_frame is not None:
            _check_range("video.end_frame", self.end_frame, self.start_frame + 1)
        _check_range("video.frame_stride", self.frame_stride, 1)
        _check_range("video.resolution", self.resolution, 64, 4096)
        _check_choice("video.resize_side", self.resize_side, choices(ResizeSide))
        if self.size_multiple is not None:  # None: the model's own, set when a run starts
            _check_range("video.size_multiple", self.size_multiple, 1, 512)
            if self.resolution < self.size_multiple:
                raise ConfigError(
                    f"`video.resolution` must be ≥ `video.size_multiple` ({self.size_multiple}), got {self.resolution}"
                )


@dataclass(frozen=True)
class KeyframeConfig:
    """How keyframes are chosen among the selected frames (indices count selected frames, from 0)."""

    keyframe_interval: int = 10
    """K: one keyframe every K frames in "uniform" mode (the paper recommends 5–20)."""
    keyframe_mode: KeyframeMode = "uniform"
    """"uniform" every K frames, "explicit" the listed indices, "adaptive" more keyframes where motion is large."""
    keyframe_indices: tuple[int, ...] | None = None
    """Frame indices for "explicit" mode, sorted and unique; `None` otherwise."""
    min_keyframe_interval: int = 4
    """Smallest gap between keyframes in "adaptive" mode, in frames."""
    max_keyframe_interval: int = 20
    """Largest gap between keyframes in "adaptive" mode, in frames."""
    last_frame_keyframe: bool = True
    """In "uniform" and "adaptive" mode, make the clip's last frame a keyframe too, so every frame lies between two
    keyframes and is propagated from both sides (frames after the last keyframe would be propagated one way, and drift).
    Costs one more keyframe, unless the last frame already is one; a keyframe closer than K/2 before it is dropped
    (its interval joins the last one). False keeps the paper's plain 0, K, 2K, …"""

    def __post_init__(self) -> None:
        _check_range("keyframes.keyframe_interval", self.keyframe_interval, 1)
        _check_choice("keyframes.keyframe_mode", self.keyframe_mode, choices(KeyframeMode))
        _check_range("keyframes.min_keyframe_interval", self.min_keyframe_interval, 1)
        _check_range("keyframes.max_keyframe_interval", self.max_keyframe_interval, self.min_keyframe_interval)
        if self.keyframe_mode == "explicit" and not self.keyframe_indices:
            raise ConfigError(
                "`keyframes.keyframe_indices` must list at least one index when keyframe_mode is 'explicit'"
            )
        if self.keyframe_indices is not None:
            indices = list(self.keyframe_indices)
            if any(index < 0 for index in indices):
                raise ConfigError(f"`keyframes.keyframe_indices` must be ≥ 0, got {indices}")
            if indices != sorted(set(indices)):
                raise ConfigError(f"`keyframes.keyframe_indices` must be sorted and unique, got {indices}")


@dataclass(frozen=True)
class PromptConfig:
    """Text prompts. The positive prompt sent to the model is `prompt + ", " + added_prompt`."""

    prompt: str = ""
    """What the video should look like."""
    added_prompt: str | None = None
    """Appended to every prompt; "" adds nothing; `None` = the base model's own (`FAMILY_DEFAULTS`: the official
    Rerender's `a_prompt` quality tags on SD 1.5/SDXL, nothing on Flux and Z-Image, whose text encoders read
    natural-language descriptions), set when a run starts."""
    negative_prompt: str | None = None
    """What to steer away from (classifier-free guidance's unconditional branch); `None` = the base model's own
    default (`default_negative_prompt`: the official Rerender's on SD 1.5/SDXL, none on Flux without true guidance
    and on Z-Image); "" = none."""
    prompt_language: PromptLanguage = "en"
    """Language of `prompt` and `negative_prompt`: "auto" (detected by the share of each script), or a code of
    `PromptLanguage`; text not in English is translated to English (th, ar, hi, he, el need `translation_model`)."""
    translation_model: str | None = None
    """Translation model (hub id or folder; MarianMT/NLLB/M2M100); `None` = Helsinki-NLP/opus-mt-<language>-en."""
    style_image: str | None = None
    """A reference image used as a prompt through an IP-Adapter (`model.ip_adapter`); `None` = off."""
    style_image_scale: float = 0.6
    """Weight of the reference image against the text (IP-Adapter scale; 0 = no effect)."""
    audio_prompt: str | None = None
    """A sound file whose events (rain, birds, traffic …) add their visual phrases to the prompt, or form it when
    there is none; "source" = the video's own soundtrack; `None` = off (`rerender.sound`)."""
    audio_model: str = "laion/clap-htsat-unfused"
    """The CLAP model (hub id or folder) that scores the sound against `audio_vocabulary`'s events."""
    audio_vocabulary: str | None = None
    """A YAML file of sound events (``name: {sound: ..., phrase: ...}``) added to the shipped ones, replacing
    those of the same name; `None` = the shipped vocabulary alone."""
    audio_threshold: float = 0.2
    """An event is heard when its share of CLAP's probability, averaged over the sound's 10-second windows, is
    at least this (0–1)."""
    audio_max_events: int = 3
    """At most this many heard events (the most probable first) add their phrases."""

    def __post_init__(self) -> None:
        _check_range("prompt.audio_threshold", self.audio_threshold, 0.0, 1.0)
        if isinstance(self.audio_max_events, bool) or not isinstance(self.audio_max_events, int):
            raise ConfigError(
                f"`prompt.audio_max_events` must be an integer in [1, 10], got {self.audio_max_events!r}"
            )
        _check_range("prompt.audio_max_events", self.audio_max_events, 1, 10)
        if self.prompt_language not in choices(PromptLanguage):
            valid = ", ".join(f"{code} ({LANGUAGE_NAMES.get(code, 'detect')})" for code in choices(PromptLanguage))
            raise ConfigError(f"`prompt.prompt_language` must be one of {valid}, got {self.prompt_language!r}")
        _check_range("prompt.style_image_scale", self.style_image_scale, 0.0, 2.0)

    @property
    def uses_style_image(self) -> bool:
        """Whether the reference image steers the keyframes: `style_image` is set and `style_image_scale` > 0 (at
        scale 0 it has no effect, so its IP-Adapter is neither needed nor loaded)."""
        return self.style_image is not None and self.style_image_scale > 0

    @property
    def full_prompt(self) -> str:
        """`prompt`, then `added_prompt` (unset: SD 1.5's, as a run on no diffusion model resolves it)."""
        added = self.added_prompt if self.added_prompt is not None else family_default("prompt.added_prompt", None)
        parts = [part for part in (self.prompt.strip(), added.strip()) if part]
        return ", ".join(parts)


@dataclass(frozen=True)
class LoraConfig:
    """One LoRA adapter applied on top of the base model, without merging it into the weights."""

    path: str
    """A `.safetensors` file (diffusers or kohya format), a folder, or a hub id."""
    scale: float = 1.0
    """Adapter weight (0 = no effect)."""
    weight_name: str | None = None
    """File name inside `path` when it is a folder or hub id holding several files."""

    SHORTHAND: ClassVar[str] = "path"
    """A LoRA may be given as its path alone (YAML `loras: [style.safetensors]`, `loras=["style.safetensors"]`):
    scale 1."""

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("`model.loras[].path` must name a LoRA file, folder or hub id, got ''")
        _check_range("model.loras[].scale", self.scale, -4.0, 4.0)


IP_ADAPTER = "h94/IP-Adapter"
"""The default IP-Adapter repository (`model.ip_adapter`)."""


def _check_not_blank(name: str, value: str | None, default: str) -> None:
    """Refuse an empty or blank string for an option naming weights: it would be read as a path ("." or "")."""
    if isinstance(value, str) and not value.strip():
        raise ConfigError(f"`{name}` must name a hub id, folder or file, got {value!r}; {default}")


@dataclass(frozen=True)
class ModelConfig:
    """Which weights are loaded and how."""

    base_model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    """Hub id, local diffusers folder, or single `.safetensors`/`.ckpt` file (DreamBooth, civitai)."""
    renderer: RendererName = "diffusion"
    """Keyframe renderer: "diffusion" (SD + ControlNet; an error when the weights cannot be loaded), "classic"
    (the built-in stylizer, no weights) or "auto" (diffusion when possible, else classic with a warning; the CLI's default)."""
    vae: str | None = None
    """A separate VAE (hub id, folder or file), e.g. "stabilityai/sd-vae-ft-mse" as the official code uses; `None`
    = the base model's own VAE."""
    loras: tuple[LoraConfig, ...] = ()
    """LoRA adapters, applied together with their scales."""
    dtype: DTypeName = "auto"
    """Compute dtype; "auto" is float16 on CUDA and float32 elsewhere."""
    device: str = "auto"
    """"auto", "cuda", "cuda:1", "mps" or "cpu"."""
    cpu_offload: bool = False
    """Keep only the running model on the GPU (slower, for small GPUs)."""
    vae_tiling: bool = False
    """Decode and encode large frames tile by tile to save memory."""
    ip_adapter: str = IP_ADAPTER
    """IP-Adapter repository (hub id or folder) used when `prompt.style_image` is set."""
    ip_adapter_weight_name: str = "models/ip-adapter_sd15.safetensors"
    """Adapter file inside `ip_adapter` (e.g. models/ip-adapter-plus_sd15.safetensors); its image encoder sits beside it.
    On SDXL the SD 1.5 default becomes "sdxl_models/ip-adapter_sdxl_vit-h.safetensors" (`resolved_ip_adapter_weight_name`)."""
    family: ModelFamily = "auto"
    """Model family of `base_model`: "auto" detects it from the model itself (UNet config or checkpoint keys);
    "sd15" or "sdxl" states it (a mismatch with the model is an error). "zimage"/"flux" are transformer families."""

    def __post_init__(self) -> None:
        _check_not_blank(
            "model.base_model",
            self.base_model,
            "leaving it out means the default SD 1.5 model (a checkpoint file works too)",
        )
        _check_not_blank("model.vae", self.vae, "null (or leaving it out) means the base model's own VAE")
        _check_not_blank("model.ip_adapter", self.ip_adapter, f"leaving it out means the default {IP_ADAPTER!r}")
        _check_choice("model.dtype", self.dtype, choices(DTypeName))
        _check_choice("model.renderer", self.renderer, choices(RendererName))
        if not isinstance(self.device, str) or not (
            self.device in choices(DeviceName) or re.fullmatch(r"cuda:\d+", self.device)
        ):
            valid = ", ".join(map(repr, choices(DeviceName)))
            raise ConfigError(f"`model.device` must be {valid} or 'cuda:N', got {self.device!r}")
        _check_choice("model.family", self.family, choices(ModelFamily))

    def resolved_ip_adapter_weight_name(self, family: str) -> str:
        """The IP-Adapter file for `family`: the SD 1.5 default swapped for the SDXL one on SDXL."""
        if family == "sdxl" and self.ip_adapter_weight_name == "models/ip-adapter_sd15.safetensors":
            return "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"
        return self.ip_adapter_weight_name


CONTROL_TYPES = choices(ControlType)

DEFAULT_CONTROLNETS = {
    "canny": "lllyasviel/sd-controlnet-canny",
    "hed": "lllyasviel/sd-controlnet-hed",
    "lineart": "lllyasviel/control_v11p_sd15_lineart",
    "depth": "lllyasviel/sd-controlnet-depth",
    "openpose": "lllyasviel/sd-controlnet-openpose",
}

DEFAULT_SDXL_CONTROLNETS = {
    "canny": "diffusers/controlnet-canny-sdxl-1.0",
    "depth": "diffusers/controlnet-depth-sdxl-1.0",
    "openpose": "thibaud/controlnet-openpose-sdxl-1.0",
    "hed": "xinsir/controlnet-union-sdxl-1.0",
    "lineart": "xinsir/controlnet-union-sdxl-1.0",
}
"""SDXL ControlNets per control type; HED and lineart have no well-kept single SDXL ControlNet, so the Union
ControlNet serves them (mode 2 and 3)."""

_HIGHEST_UNION_MODE = max(max(table.values()) for table in UNION_MODES.values() if table)


@dataclass(frozen=True)
class ControlConfig:
    """One ControlNet and how its control map is made."""

    type: ControlType = "canny"
    """Annotator for the control map. "canny" is built in; hed/lineart/depth/openpose need the `annotators`
    extra; "precomputed" reads maps from `maps`. (The official default is HED, which needs extra weights.)"""
    model: str | None = None
    """ControlNet weights (hub id, folder or file); `None` picks the ControlNet matching `type` for the base
    model's family (`DEFAULT_CONTROLNETS` for SD 1.5, `DEFAULT_SDXL_CONTROLNETS` for SDXL)."""
    strength: float = 1.0
    """Conditioning scale of this ControlNet's residuals (official example configs use 0.7)."""
    canny_low_threshold: int = 100
    """Canny hysteresis low threshold (0–255)."""
    canny_high_threshold: int = 200
    """Canny hysteresis high threshold (0–255)."""
    maps: str | None = None
    """Folder of images or a video with one control map per frame (needed for "precomputed")."""
    control_mode: int | UnionControlModeName | None = None
    """ControlNet Union only: the condition's mode, a number or a name of the base's Union model (`UNION_MODES`;
    SDXL: 0 openpose, 1 depth, 2 hed/pidi/scribble/ted, 3 canny/lineart/anime_lineart/mlsd, 4 normal, 5 segment,
    6 tile, 7 repaint; Flux: 0 canny, 1 tile, 2 depth, 3 blur, 4 openpose, 5 gray, 6 low_quality), resolved to its
    number when the model is known; `None` = the mode of `type` (needed for "precomputed"). Z-Image's Union
    ControlNet takes no mode (ignored, with a warning)."""

    def __post_init__(self) -> None:
        _check_choice("control.type", self.type, CONTROL_TYPES)
        _check_not_blank("control.model", self.model, "null (or leaving it out) means the ControlNet matching `type`")
        _check_range("control.strength", self.strength, 0.0, 2.0)
        _check_range("control.canny_low_threshold", self.canny_low_threshold, 0, 255)
        _check_range("control.canny_high_threshold", self.canny_high_threshold, self.canny_low_threshold, 255)
        if self.type == "precomputed":
            if not self.maps:
                raise ConfigError(
                    "`control.maps` must name a folder or video of control maps when type is 'precomputed'"
                )
            if not self.model:
                raise ConfigError("`control.model` must name the ControlNet to use when type is 'precomputed'")

        if isinstance(self.control_mode, str):  # a name: its number depends on the base's Union model (`UNION_MODES`)
            _check_choice("control.control_mode", self.control_mode, choices(UnionControlModeName))
        elif self.control_mode is not None:
            _check_range("control.control_mode", self.control_mode, 0, _HIGHEST_UNION_MODE)

    @property
    def resolved_model(self) -> str:
        return self.model or DEFAULT_CONTROLNETS[self.type]

    def model_for(self, family: str) -> str:
        """`model`, else the default ControlNet of `type` for the base model's family ("sd15" or "sdxl")."""
        if self.model or family != "sdxl":
            return self.resolved_model
        return DEFAULT_SDXL_CONTROLNETS[self.type]


@dataclass(frozen=True)
class RefinementConfig:
    """Optional DDIM refinement of each rendered keyframe: re-noise to an intermediate step, denoise back."""

    refinement_strength: float = 0.3
    """Fraction of the schedule re-noised (DDPM forward) before denoising again with DDIM."""
    refinement_steps: int | None = None
    """DDIM steps of the full schedule used for refinement; `None` reuses `num_inference_steps`."""

    def __post_init__(self) -> None:
        _check_range("sampling.refinement.refinement_strength", self.refinement_strength, 0.0, 1.0)
        if self.refinement_steps is not None:
            _check_range("sampling.refinement.refinement_steps", self.refinement_steps, 1, 1000)


@dataclass(frozen=True)
class SamplingConfig:
    """The DDIM sampler."""

    num_inference_steps: int | None = None
    """Denoising steps of the full schedule (the official code uses 20 on SD 1.5); `None` = the base model's own
    (`FAMILY_DEFAULTS`), set when a run starts."""
    guidance_scale: float | None = None
    """Classifier-free guidance scale (1 = no guidance). On Flux dev: the embedded guidance value (one model call
    per step); Flux schnell has no guidance input and ignores it (a value above 1 warns). `None` = the base model's
    own (`FAMILY_DEFAULTS`), set when a run starts."""
    true_cfg_scale: float = 1.0
    """Flux only: true classifier-free guidance (diffusers' `FluxPipeline` ``true_cfg_scale``); above 1, with a
    negative prompt, every model call also runs on the negative prompt (twice the compute); 1 = off. Other bases
    ignore it, with a warning (their `guidance_scale` is classifier-free guidance)."""
    denoising_strength: float = 0.75
    """SDEdit strength: the fraction of the schedule run from the noised input; 1 = from pure noise
    (the official CLI default `x0_strength=-1`), 0.75 = the official WebUI default."""
    seed: int | None = 0
    """Random seed; `None` draws one (recorded in the run's manifest)."""
    same_noise_per_keyframe: bool = True
    """Start every keyframe from the same initial noise, as the official code does (a consistency aid)."""
    refinement: RefinementConfig | None = None
    """DDIM refinement pass for each keyframe; `None` = off."""

    def __post_init__(self) -> None:
        if self.num_inference_steps is not None:  # None: the base model's own, set when a run starts
            _check_range("sampling.num_inference_steps", self.num_inference_steps, 1, 1000)
        if self.guidance_scale is not None:
            _check_range("sampling.guidance_scale", self.guidance_scale, 0.0, 50.0)
        _check_range("sampling.true_cfg_scale", self.true_cfg_scale, 1.0, 50.0)
        _check_range("sampling.denoising_strength", self.denoising_strength, 0.0, 1.0)
        if self.seed is not None:
            _check_range("sampling.seed", self.seed, 0, 2**63 - 1)


@dataclass(frozen=True)
class FreeUConfig:
    """FreeU factors (Si et al. 2024): backbone scales b1, b2 and skip low-frequency scales s1, s2. A factor left
    unset (None) is the base model's own (`FAMILY_DEFAULTS`: Rerender's on SD 1.5, FreeU's published on SDXL),
    set when a run starts (`resolved`)."""

    b1: float | None = None
    """Backbone scale of the widest decoder stage (1280 channels); `None` = the base model's own."""
    b2: float | None = None
    """Backbone scale of the next decoder stage (640 channels); `None` = the base model's own."""
    s1: float | None = None
    """Skip low-frequency scale of the widest decoder stage; `None` = the base model's own."""
    s2: float | None = None
    """Skip low-frequency scale of the next decoder stage; `None` = the base model's own."""
    variant: FreeUVariant = "rerender"
    """"rerender": the paper's FreeU (stages by channel count, structure-aware scale, ControlNet residual after
    the filter); "diffusers": `unet.enable_freeu` (up_blocks.0 and .1, constant scale). See rerender.diffusion.freeu."""

    @classmethod
    def published(cls, family: str) -> FreeUConfig:
        """FreeU's published factors for a model family: SD 1.5 b1 1.5, b2 1.6, s1 0.9, s2 0.2; SDXL b1 1.3,
        b2 1.4, s1 0.9, s2 0.2 (FreeU's README). (SD 1.5's default is Rerender-A-Video's choice, `FAMILY_DEFAULTS`.)"""
        factors = {"sd15": (1.5, 1.6, 0.9, 0.2), "sdxl": (1.3, 1.4, 0.9, 0.2)}
        if family not in factors:
            raise ConfigError(f"FreeU factors are published for 'sd15' and 'sdxl', got {family!r}")
        return cls(*factors[family])

    def resolved(self, variant: str | None) -> FreeUConfig:
        """These factors, each left unset (None) set to the base `variant`'s (a `BaseVariant`; None = SD 1.5's,
        `family_default`); on a base FreeU does not act on (Z-Image, Flux) they stay None."""
        changes = {
            name: family_default(f"constraints.freeu.{name}", variant)
            for name in FREEU_FACTORS
            if getattr(self, name) is None
        }
        return dataclasses.replace(self, **changes) if changes else self

    def __post_init__(self) -> None:
        for name in FREEU_FACTORS:
            if getattr(self, name) is not None:  # None: the base model's own, set when a run starts
                _check_range(f"constraints.freeu.{name}", getattr(self, name), 0.0, 3.0)
        _check_choice("constraints.freeu.variant", self.variant, choices(FreeUVariant))


FREEU_FACTORS = ("b1", "b2", "s1", "s2")
"""The factors of `FreeUConfig`, each a row of `FAMILY_DEFAULTS` (``constraints.freeu.<name>``)."""


@dataclass(frozen=True)
class ConstraintConfig:
    """The hierarchical cross-frame constraints of keyframe rendering (paper §4.1)."""

    cross_frame_attention_period: Period | None = (0.0, 1.0)
    """Steps at which decoder self-attention attends to the anchor and previous keyframe."""
    loose_cross_frame_attention: bool = False
    """Skip the three lowest-resolution (1280-wide) decoder layers: less ghosting, looser style (UNet bases only;
    Z-Image and Flux ignore it, with a warning)."""
    cross_frame_blocks: int | None = None
    """Transformer bases (Z-Image, Flux): cross-frame attention in the last N blocks only (Z-Image's main-stream
    blocks; Flux's double- then single-stream blocks), to save memory: each of the 3 references held at once keeps
    one block input per block and step (`rerender.diffusion.transformer_attention.blocks_within` gives the N that
    fits a budget); `None` = all blocks. UNet bases ignore it, with a warning."""
    reference_storage: ReferenceStorage = "auto"
    """Where the cross-frame attention references (the anchor's, the previous and the pending keyframe's layer
    inputs, per step) are kept: "device" (GPU memory), "host" (pinned CPU memory, copied back to the GPU ahead of each
    model call on a side stream: same results, less GPU memory), or "auto": "host" on CUDA when their estimated size
    exceeds 2 GiB or model CPU offload is on, else "device" (`rerender.diffusion.attention.choose_reference_storage`;
    the run's log gives the estimate and the choice)."""
    style_update_interval: int | None = 1
    """Refresh the "previous keyframe" attention features every n keyframes; `None` = keep the anchor's."""
    shape_fusion_period: Period | None = (0.0, 0.1)
    """Steps at which the predicted x0 is replaced by the flow-warped anchor's (shape-aware fusion)."""
    pixel_fusion_period: Period | None = (0.5, 0.8)
    """Steps at which latents are blended toward the warped previous output (pixel-aware fusion)."""
    adain_period: Period | None = None
    """Steps at which x0's channel statistics are matched to the anchor's (colour AdaIN); paper: (0.8, 1)."""
    mask_strength: float = 0.5
    """Weight of the warped reference in pixel-aware fusion."""
    inner_strength: float = 0.9
    """Noise-rescale factor of pixel-aware fusion ("detail level"); 1 preserves the noise variance."""
    smooth_boundary: bool = True
    """Rescale noise linearly at fusion-mask boundaries to avoid seams."""
    fidelity_encoding: bool = True
    """Compensate the VAE's round-trip loss when encoding the fusion target (paper Eq. 8–9)."""
    fidelity_threshold: float = 0.25
    """Mean |error| on the [-1, 1] scale above which a pixel is left uncompensated."""
    color_preserve: bool = True
    """Use input frames as they are; False matches their colour histogram to the rendered anchor first."""
    freeu: FreeUConfig | None = None
    """FreeU factors; `None` = off (the official default (1, 1, 1, 1) is a no-op); ``{}`` = on with the base model's
    own factors (`FAMILY_DEFAULTS`). UNet bases only (it acts on their skip connections): Z-Image and Flux ignore
    it, with a warning."""

    def __post_init__(self) -> None:
        _check_period("constraints.cross_frame_attention_period", self.cross_frame_attention_period)
        _check_period("constraints.shape_fusion_period", self.shape_fusion_period)
        _check_period("constraints.pixel_fusion_period", self.pixel_fusion_period)
        _check_period("constraints.adain_period", self.adain_period)
        if self.style_update_interval is not None:
            _check_range("constraints.style_update_interval", self.style_update_interval, 1)
        if self.cross_frame_blocks is not None:
            _check_range("constraints.cross_frame_blocks", self.cross_frame_blocks, 1)
        _check_choice("constraints.reference_storage", self.reference_storage, choices(ReferenceStorage))
        _check_range("constraints.mask_strength", self.mask_strength, 0.0, 1.0)
        _check_range("constraints.inner_strength", self.inner_strength, 0.0, 1.0)
        _check_range("constraints.fidelity_threshold", self.fidelity_threshold, 0.0, 2.0)


@dataclass(frozen=True)
class FlowConfig:
    """Optical flow used by fusion and propagation."""

    flow_estimator: FlowEstimatorName = "auto"
    """"gmflow" (needs `flow_checkpoint`), "dis" (OpenCV, no weights) or "auto" (GMFlow when weights and a GPU exist)."""
    flow_checkpoint: str | None = None
    """Path to `gmflow_sintel-0c07dcb3.pth` (or a hub-cache path); `None` = look in the usual places."""
    dis_preset: DISPreset = "fine"
    """DIS preset when DIS is used: OpenCV's "ultrafast", "fast", "medium", or "fine" (medium carried to full
    resolution; the most accurate, ≈ 3× medium's time; see `rerender.flow.DIS_PRESETS`)."""

    def __post_init__(self) -> None:
        _check_choice("flow.flow_estimator", self.flow_estimator, choices(FlowEstimatorName))
        _check_choice("flow.dis_preset", self.dis_preset, choices(DISPreset))


@dataclass(frozen=True)
class PropagationConfig:
    """EbSynth-style propagation of keyframes to all frames (`rerender.propagation`, `ebsynth_bridge`).

    Options left `None` take the preset's value. The "balanced" preset uses colour 6, edge 0.5, position
    0.05, temporal 0 and the "reconstruction" blend, measured best on the propagation suite; "rerender"
    reproduces the official settings (colour 6, edge 0.5, temporal 0.5, position 2, histogram blend).
    """

    propagation_preset: PropagationPreset = "balanced"
    """Speed/quality trade-off of the patch synthesis, or "rerender" for the official EbSynth settings."""
    blend_mode: BlendMode | None = None
    """How the forward and backward passes merge: "reconstruction" (per pixel, weighted by how well each pass
    and each flow-warped keyframe reconstructs the source frame, detail restored to the keyframes'
    sharpness), "agreement" (cross-fade where their structure agrees, error-selected side elsewhere), "histogram" (the paper's histogram-preserving blend), "poisson" (that,
    then a gradient-domain blend), "select" (error-guided selection only), "linear"; `None` = the preset's."""
    color_guide_weight: float | None = None
    """Weight of the source-colour guide; `None` = the preset's (6)."""
    edge_guide_weight: float | None = None
    """Weight of the edge (Laplacian) guide; `None` = the preset's (0.5)."""
    position_guide_weight: float | None = None
    """Weight of the flow-advected position guide; `None` = the preset's (0.05; official 2)."""
    temporal_guide_weight: float | None = None
    """Weight of the temporal guide (previous output, warped); `None` = the preset's (0; official 0.5)."""
    workers: int | None = None
    """Propagation passes run at once, in threads of this process (numba engine; the output does not depend
    on it); `None` = number of CPU cores."""
    engine: PropagationEngine = "auto"
    """Which implementation runs the patch synthesis: "numba" (compiled CPU kernels), "torch" (the same maths,
    data-parallel, on `propagation.device`) or "auto" (torch on CUDA when torch sees a GPU and `device` is not
    "cpu", otherwise numba)."""
    device: PropagationDevice = "auto"
    """Where the torch engine runs: "cuda", "cpu" or "auto" (CUDA when present). "cuda" without a GPU is
    refused before any work."""
    chunk_pixels: int | None = None
    """Torch engine: the most pixels (over the frames of a batch) searched at once; lower it on a small GPU
    (its largest temporary ≈ chunk_pixels × 600 bytes with 5×5 patches); `None` = the default (1 Mi pixels).
    The output does not depend on it."""
    output_size: OutputSize = "processing"
    """Size of the propagated frames and the output: "processing" (the keyframes' size, `video.resolution`) or
    "source" (the cropped source's own size: keyframes are upscaled and propagation runs at full size, as
    EbSynth users work; slower and more memory, see the README)."""

    def __post_init__(self) -> None:
        _check_choice("propagation.propagation_preset", self.propagation_preset, choices(PropagationPreset))
        _check_choice("propagation.output_size", self.output_size, choices(OutputSize))
        if self.blend_mode is not None:
            _check_choice("propagation.blend_mode", self.blend_mode, choices(BlendMode))
        for name in ("color_guide_weight", "edge_guide_weight", "position_guide_weight", "temporal_guide_weight"):
            if getattr(self, name) is not None:
                _check_range(f"propagation.{name}", getattr(self, name), 0.0, 100.0)
        if self.workers is not None:
            _check_range("propagation.workers", self.workers, 1, 256)
        _check_choice("propagation.engine", self.engine, choices(PropagationEngine))
        _check_choice("propagation.device", self.device, choices(PropagationDevice))
        if self.chunk_pixels is not None:
            _check_range("propagation.chunk_pixels", self.chunk_pixels, 256)


@dataclass(frozen=True)
class OutputConfig:
    """How the result video is written."""

    fps: float | None = None
    """Output frame rate; `None` = the source's rate divided by `video.frame_stride`."""
    crf: int = 18
    """H.264 constant rate factor (0 = lossless, 18 ≈ visually lossless, 51 = worst)."""
    keep_audio: bool = True
    """Copy the source's audio, trimmed to the output's time span (`false`: a silent output)."""
    audio_track: int | None = None
    """Which of the source's audio tracks the output carries (0 = the first audio track, as `rerender info` lists
    them); `None` = the one a player picks: the track flagged default, else the first. No audio: `keep_audio: false`."""

    def __post_init__(self) -> None:
        if self.fps is not None:
            _check_range("output.fps", self.fps, 0.1, 1000.0)
        _check_range("output.crf", self.crf, 0, 51)
        if self.audio_track is not None:
            _check_range("output.audio_track", self.audio_track, 0)


@dataclass(frozen=True)
class RerenderConfig:
    """Every option of the method. Construct with keywords, load with `load_config`, override with `apply_overrides`."""

    video: VideoConfig = field(default_factory=VideoConfig)
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    control: tuple[ControlConfig, ...] = (ControlConfig(),)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    constraints: ConstraintConfig = field(default_factory=ConstraintConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if not self.control:
            raise ConfigError("`control` must list at least one ControlNet, got an empty list")
