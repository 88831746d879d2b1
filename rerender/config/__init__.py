"""Typed configuration of the whole method, with YAML/JSON load and save.

`RerenderConfig` groups every option in sections (`video`, `keyframes`, `prompt`, `model`, `control`,
`sampling`, `constraints`, `flow`, `propagation`, `output`). Defaults follow the official Rerender-A-Video
configuration, with its known bugs fixed rather than copied:

* `color_preserve` is read from its correctly spelled key (the official JSON loader read `color_perserve`,
  so JSON configs could never turn it off);
* `num_inference_steps` and `guidance_scale` are honoured (the official CLI hard-coded 20 and 7.5);
* `style_update_interval` counts keyframes, not frames;
* periods are fractions of the *full* denoising schedule, and `denoising_strength` truncates the schedule
  without cancelling the constraints that act before the SDEdit start;
* a disabled feature is `None`, never a sentinel such as `-1` or an empty period `(1, 0)`.

Every closed set of values is one `Literal` alias in `rerender.config.sections` (`BlendMode`, `RendererName`, …);
the CLI's choices, the web page's components and the docs are derived from them.

Leaf option names are unique across sections, so an override may name just the leaf
(`denoising_strength=0.6`) or the dotted path (`sampling.denoising_strength=0.6`).

Example:
    >>> from rerender.config import RerenderConfig, apply_overrides
    >>> config = apply_overrides(RerenderConfig(), {"keyframe_interval": 5, "video.resolution": 256})
    >>> config.keyframes.keyframe_interval, config.video.resolution
    (5, 256)
"""

from rerender.config.convert import (
    config_from_dict,
    config_hash,
    config_to_dict,
    dump_yaml,
    load_config,
    save_config,
)
from rerender.config.fields import (
    _dataclass_of,  # noqa: F401 (used by the web page's form builder)
    apply_overrides,
    family_defaults_text,
    field_default,
    field_docstrings,
    field_help,
    field_type,
    option_paths,
    parse_override,
)
from rerender.config.sections import *  # noqa: F403 (the sections and the Literal aliases)
from rerender.config.sections import __all__ as _sections_all

__all__ = [
    *_sections_all,
    "load_config",
    "save_config",
    "dump_yaml",
    "config_from_dict",
    "config_to_dict",
    "config_hash",
    "apply_overrides",
    "parse_override",
    "field_help",
    "family_defaults_text",
    "field_type",
    "field_default",
    "field_docstrings",
    "option_paths",
]
