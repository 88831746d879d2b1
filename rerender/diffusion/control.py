"""Control maps for the ControlNets: canny built in, other annotators through controlnet-aux, or precomputed.

Every annotator is a callable ``frame → map`` on RGB ``uint8`` ``(H, W, 3)`` arrays and returns a map of the
same size, RGB ``uint8``. The pipeline turns maps into ``(B, 3, H, W)`` tensors in [0, 1].

* ``"canny"``: OpenCV's Canny edge detector with configurable thresholds (no weights, no extra).
* ``"hed"``, ``"lineart"``, ``"depth"``, ``"openpose"``: the `controlnet-aux` detectors, installed with the
  ``annotators`` extra (``pip install "rerender[annotators]"``); their weights come from a local folder or the
  Hugging Face hub (``lllyasviel/Annotators``).
* ``"precomputed"``: maps read from a folder of images or a video, one per frame (`load_control_maps`), for
  any ControlNet.

Example:
    >>> import numpy as np
    >>> frame = np.zeros((64, 64, 3), np.uint8); frame[16:48, 16:48] = 255
    >>> canny(frame).shape
    (64, 64, 3)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rerender.config import CONTROL_TYPES, FAMILY_NAMES, UNION_MODES, ControlConfig
from rerender.errors import ConfigError, InputNotFoundError, MissingDependencyError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "ANNOTATOR_TYPES",
    "MissingDependencyError",
    "Annotator",
    "canny",
    "check_annotators",
    "load_annotator",
    "make_annotator",
    "load_control_maps",
    "union_control_mode",
    "union_modes_text",
]

Annotator = Callable[[np.ndarray], np.ndarray]
"""A control-map maker: RGB uint8 ``(H, W, 3)`` frame → RGB uint8 ``(H, W, 3)`` map."""

ANNOTATOR_TYPES = ("hed", "lineart", "depth", "openpose")
"""Control types served by controlnet-aux (the ``annotators`` extra)."""

DEFAULT_ANNOTATOR_WEIGHTS = "lllyasviel/Annotators"

_CONTROLNET_AUX_CLASSES = {
    "hed": "HEDdetector",
    "lineart": "LineartDetector",
    "depth": "MidasDetector",
    "openpose": "OpenposeDetector",
}


def _check_frame(frame: object, name: str = "frame") -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        described = (
            f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        )
        raise ConfigError(f"`{name}` must be an RGB uint8 array of shape (H, W, 3), got {described}")
    return frame


def canny(frame: np.ndarray, low_threshold: int = 100, high_threshold: int = 200) -> np.ndarray:
    """Canny edges of a frame as a white-on-black RGB map (the SD 1.5 canny ControlNet's input).

    Args:
        frame: RGB uint8.
        low_threshold: hysteresis low threshold, 0–255 (official default 100; example configs 50).
        high_threshold: hysteresis high threshold, ≥ `low_threshold` (official default 200; examples 100).

    Returns:
        RGB uint8 map, 255 on edges.

    Raises:
        ConfigError: a frame that is not RGB uint8, or thresholds outside 0 ≤ low ≤ high ≤ 255.

    Shape:
        - frame: (H, W, 3)
        - Output: (H, W, 3)
    """
    frame = _check_frame(frame)
    if not 0 <= low_threshold <= high_threshold <= 255:
        raise ConfigError(
            f"canny thresholds must satisfy 0 ≤ low ≤ high ≤ 255, got low={low_threshold}, high={high_threshold}"
        )
    edges = cv2.Canny(frame, low_threshold, high_threshold)  # (H, W) uint8 in {0, 255}
    return np.repeat(edges[..., None], 3, axis=2)


def check_annotators(controls: Sequence[ControlConfig]) -> None:
    """Refuse, before any frame is decoded or model loaded, a control type whose annotator cannot import here.

    Raises:
        MissingDependencyError: naming `control[i].type`, its value and the ``annotators`` extra.
    """
    for index, control in enumerate(controls):
        if control.type not in ANNOTATOR_TYPES:
            continue
        try:
            import controlnet_aux  # noqa: F401 - imported again where the annotator loads
        except ImportError as error:
            raise MissingDependencyError(
                f"`control[{index}].type` {control.type!r} needs controlnet-aux, which is not importable ({error}); "
                'install the `annotators` extra with: pip install "rerender[annotators]" (it needs torchvision), '
                "or use control type 'canny' (built in) or 'precomputed' maps"
            ) from error


def load_annotator(
    control_type: str, weights: str | os.PathLike = DEFAULT_ANNOTATOR_WEIGHTS, device: str | torch.device | None = None
) -> Annotator:
    """A controlnet-aux annotator (``"hed"``, ``"lineart"``, ``"depth"``, ``"openpose"``) as an `Annotator`.

    Args:
        control_type: one of `ANNOTATOR_TYPES`.
        weights: a local folder with the annotator weights, or a hub id (``lllyasviel/Annotators``).
        device: where its network runs (the diffusion model's device, so that a GPU run does not wait for the
            CPU at every keyframe); None leaves it on the CPU.

    Returns:
        A callable that maps a frame to a control map of the frame's size.

    Raises:
        ConfigError: an unknown type.
        MissingDependencyError: controlnet-aux is not installed (the message names the ``annotators`` extra).
        InputNotFoundError: the weights cannot be found (offline and not cached, or a missing folder).
    """
    if control_type not in ANNOTATOR_TYPES:
        raise ConfigError(f"`control_type` must be one of {ANNOTATOR_TYPES} for controlnet-aux, got {control_type!r}")
    try:
        import controlnet_aux
    except ImportError as error:
        raise MissingDependencyError(
            f"the {control_type!r} annotator needs controlnet-aux, which is not importable ({error}); install the "
            '`annotators` extra with: pip install "rerender[annotators]" (it needs torchvision), or use '
            "control type 'canny' (built in) or 'precomputed' maps"
        ) from error
    detector_class = getattr(controlnet_aux, _CONTROLNET_AUX_CLASSES[control_type])
    try:
        detector = detector_class.from_pretrained(str(weights))
    except (OSError, ValueError) as error:
        raise InputNotFoundError(
            f"could not load the {control_type!r} annotator weights from {str(weights)!r} ({error}); download "
            f"{DEFAULT_ANNOTATOR_WEIGHTS} on a connected machine and pass its local folder"
        ) from error
    if device is not None:
        detector.to(device)  # controlnet-aux detectors move their network(s) in place; frames follow them

    def annotate(frame: np.ndarray) -> np.ndarray:
        frame = _check_frame(frame)
        height, width = frame.shape[:2]
        result = detector(
            frame, detect_resolution=min(height, width), image_resolution=min(height, width), output_type="np"
        )
        result = np.asarray(result)
        if result.ndim == 2:
            result = np.repeat(result[..., None], 3, axis=2)
        if result.shape[:2] != (height, width):
            result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR)
        return result.astype(np.uint8)

    return annotate


def make_annotator(
    config: ControlConfig,
    weights: str | os.PathLike = DEFAULT_ANNOTATOR_WEIGHTS,
    device: str | torch.device | None = None,
) -> Annotator | None:
    """The annotator a `ControlConfig` asks for, its network on `device` (`load_annotator`); None for
    ``"precomputed"`` (maps come from `config.maps`).

    Raises:
        MissingDependencyError, InputNotFoundError: as `load_annotator`.
    """
    if config.type == "canny":
        low, high = config.canny_low_threshold, config.canny_high_threshold
        return lambda frame: canny(frame, low, high)
    if config.type == "precomputed":
        return None
    return load_annotator(config.type, weights, device)


def load_control_maps(
    source: str | os.PathLike,
    count: int | None = None,
    size: tuple[int, int] | None = None,
    indices: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Read precomputed control maps from a folder of images (natural order) or a video, and check them.

    Args:
        source: a folder of images or a video file, one map per frame.
        count: the number of maps required (the frames rendered); None accepts any number.
        size: the required ``(width, height)``; None accepts any size (all maps must still agree).
        indices: read only these maps (e.g. the keyframes' frame indices), in this order.

    Returns:
        RGB uint8 maps ``(H, W, 3)``.

    Raises:
        InputNotFoundError: `source` does not exist or holds no images.
        ConfigError: wrong count, an index out of range, or a map of the wrong size.
    """
    from rerender.video import list_image_files, probe_video, read_frames, read_image

    path = Path(source)
    if not path.exists():
        raise InputNotFoundError(
            f"`control.maps` {str(path)!r} does not exist; expected a folder of images or a video"
        )
    if path.is_dir():
        files = list_image_files(path)
        available = len(files)
        load_one = lambda index: read_image(files[index])  # noqa: E731
    else:
        info = probe_video(path)
        available = info.frame_count
        frames: list[np.ndarray] | None = None

        def load_one(index: int) -> np.ndarray:
            nonlocal frames
            if frames is None:
                frames = list(read_frames(path, info=info))
            return frames[index]

    wanted = list(range(available)) if indices is None else list(indices)
    bad = [index for index in wanted if not 0 <= index < available]
    if bad:
        raise ConfigError(
            f"`control.maps` {str(path)!r} has {available} maps, index {bad[0]} is out of range [0, {available})"
        )
    if count is not None and len(wanted) != count:
        raise ConfigError(
            f"`control.maps` {str(path)!r} must hold one map per frame: {count} needed, got {len(wanted)}"
        )
    maps = [load_one(index) for index in wanted]
    expected = size if size is not None else (maps[0].shape[1], maps[0].shape[0]) if maps else None
    for index, control_map in zip(wanted, maps):
        if (control_map.shape[1], control_map.shape[0]) != expected:
            raise ConfigError(
                f"`control.maps` map {index} of {str(path)!r} is {control_map.shape[1]}×{control_map.shape[0]}, "
                f"expected {expected[0]}×{expected[1]} (the frame size)"
            )
    logger.debug("read %d control maps from %s", len(maps), path)
    return maps


def union_modes_text(family: str, num_modes: int | None = None) -> str:
    """The Union mode names of `family`'s Union ControlNet by number (`rerender.config.UNION_MODES`), as messages and
    the docs give them: "0 openpose, 1 depth, 2 hed/pidi/scribble/ted, …"; `num_modes`: only the modes below it."""
    numbers: dict[int, list[str]] = {}
    for name, number in UNION_MODES[family].items():
        if num_modes is None or number < num_modes:
            numbers.setdefault(number, []).append(name)
    return ", ".join(f"{number} {'/'.join(names)}" for number, names in sorted(numbers.items()))


def union_control_mode(
    control: ControlConfig, num_control_type: int = 8, family: str = "sdxl", position: int | None = None
) -> int:
    """The mode number of one condition on the Union ControlNet of a `family` base: `control.control_mode` (a number,
    or a name resolved with the base's table, `rerender.config.UNION_MODES`: SDXL's `SDXL_UNION_MODES`, Flux's
    `FLUX_UNION_MODES`), else the mode its `type` names in that table (SDXL: openpose 0, depth 1, hed 2, canny and
    lineart 3; Flux: canny 0, depth 2, openpose 4).

    Args:
        control: the condition.
        num_control_type: how many modes the model has (`ControlNetUnionModel`'s ``num_control_type``,
            `FluxControlNetModel`'s ``num_mode``); a mode must be below it.
        family: the base's `ModelFamily` ("sd15" and "sdxl" take `ControlNetUnionModel`'s numbering, "flux" the Flux
            Union's).
        position: the condition's index in the `control` list, for the messages (``control[i].control_mode``,
            ``--set control.i.control_mode=…``); None says ``control.control_mode``.

    Raises:
        ConfigError: a name the base's Union model does not have (listing those it has), a precomputed map (or a type
            without a mode of its own) without `control_mode`, or a mode the model does not have.
    """
    table = UNION_MODES[family]
    where = "control" if position is None else f"control[{position}]"
    cli = f"--set control.{position or 0}.control_mode=NAME"
    model = f"the {FAMILY_NAMES.get(family, family)} ControlNet Union"
    mode = control.control_mode
    if isinstance(mode, str):
        if mode not in table:
            raise ConfigError(
                f"`{where}.control_mode` {mode!r} is not a mode of {model}; its modes: {union_modes_text(family)} "
                f"(a name or its number; CLI: {cli})"
            )
        mode = table[mode]
    elif mode is None:
        mode = table.get(control.type)
        if mode is None:
            typed = [kind for kind in table if kind in CONTROL_TYPES]
            raise ConfigError(
                f"`{where}.control_mode` must be set for a {control.type!r} condition: `{where}.type` "
                f"{control.type!r} has no mode in {model} (the types with one: {', '.join(map(repr, typed))}); "
                f"its modes: {union_modes_text(family)} (CLI: {cli})"
            )
    if not 0 <= mode < num_control_type:
        given = "" if mode == control.control_mode else f" ({control.control_mode!r})"
        raise ConfigError(
            f"`{where}.control_mode` is {mode}{given}, but this ControlNet Union has modes 0-{num_control_type - 1} "
            f"({union_modes_text(family, num_control_type)})"
        )
    return mode
