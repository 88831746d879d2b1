"""Flow estimators: given two frames, the forward and the backward flow.

Two implementations of the `FlowEstimator` protocol:

* `DISFlowEstimator`: OpenCV's Dense Inverse Search (Kroeger et al., ECCV 2016). No weights, CPU, a few
  milliseconds to a few tens of milliseconds per 512×512 pair.
* `GMFlowEstimator`: our GMFlow (`rerender.flow.gmflow`), which Rerender-A-Video uses; needs the released
  checkpoint, and a GPU to be fast.

`load_flow_estimator` picks one by name; ``"auto"`` takes GMFlow when its weights and a GPU are both there,
DIS otherwise, and logs which and why. Nothing here downloads anything.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rerender.errors import ConfigError, FlowInputError, InputNotFoundError
from rerender.flow.gmflow import OFFICIAL_GMFLOW_FILENAME, GMFlow, load_gmflow
from rerender.weights import GMFLOW_HUB_FILES, rerender_cache_dir

__all__ = [
    "FlowEstimator",
    "DISFlowEstimator",
    "GMFlowEstimator",
    "DIS_PRESETS",
    "ESTIMATOR_NAMES",
    "GMFLOW_HUB_FILES",
    "find_gmflow_checkpoint",
    "load_flow_estimator",
    "estimate_flow_numpy",
]

logger = logging.getLogger(__name__)

DIS_PRESETS = ("ultrafast", "fast", "medium", "fine")
"""DIS presets, fastest first: OpenCV's three, and ``"fine"`` — OpenCV's medium carried down to full
resolution (finest scale 0, 8-px patches every 3 px). On the synthetic known-motion suite at 512² it has 0.14 px
end-point error against medium's 0.23 (occlusion F1 0.72 against 0.61) at about 3× medium's time (0.14 s per
pair, both directions, 1 thread; `benchmarks/flow_benchmark.py`); on the propagation suite it raises the
worst case's SSIM by ≈ 0.001 and PSNR by 0.1–0.4 dB."""

DEFAULT_DIS_PRESET = "fine"

ESTIMATOR_NAMES = ("auto", "gmflow", "dis", *(f"dis-{preset}" for preset in DIS_PRESETS))
"""Names `load_flow_estimator` accepts; ``"dis"`` is ``"dis-fine"`` (`DEFAULT_DIS_PRESET`)."""

# GMFLOW_HUB_FILES: (repository, file) pairs of the Hugging Face Hub where Rerender-A-Video's installer gets the
# GMFlow weights; `find_gmflow_checkpoint` looks for them in the local hub cache (never on the network).


@runtime_checkable
class FlowEstimator(Protocol):
    """Anything that estimates optical flow between two frames.

    ``name`` identifies the estimator *and* every setting that changes its output (preset, weights,
    precision): `rerender.flow.FlowCache` keys cached flows by it.

    Calling it with ``source`` and ``target`` frames returns ``(forward, backward)``: the flow source→target and
    the flow target→source, in pixels, x first, float32, on the frames' device.

    Shape:
        - source, target: (B, 3, H, W) RGB float in [0, 1]
        - Output: (B, 2, H, W), (B, 2, H, W)
    """

    name: str

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def _check_frame_pair(source: object, target: object) -> None:
    """Raise `FlowInputError` unless both frames are (B, 3, H, W) floating tensors in [0, 1] of one shape."""
    for name, frames in (("source", source), ("target", target)):
        if not isinstance(frames, torch.Tensor):
            raise FlowInputError(
                f"`{name}` must be a torch.Tensor of shape (B, 3, H, W), RGB float in [0, 1], got "
                f"{type(frames).__name__}; for HxWx3 uint8 arrays use estimate_flow_numpy"
            )
        if frames.ndim != 4 or frames.shape[1] != 3:
            hint = (
                " (channels last? use frames.permute(0, 3, 1, 2))"
                if frames.ndim == 4 and frames.shape[-1] == 3
                else ""
            )
            raise FlowInputError(
                f"`{name}` must have shape (B, 3, H, W), channels first, got {tuple(frames.shape)}{hint}"
            )
        if not frames.is_floating_point():
            raise FlowInputError(
                f"`{name}` must be float RGB in [0, 1], got dtype {frames.dtype} (for uint8 use frames.float() / 255)"
            )
        if frames.numel() and (frames.min() < 0 or frames.max() > 1):
            raise FlowInputError(
                f"`{name}` values must be in [0, 1], got [{float(frames.min()):.3g}, {float(frames.max()):.3g}]"
                + (" (0–255 values? divide by 255)" if frames.max() > 1.5 else "")
            )
    if source.shape != target.shape:
        raise FlowInputError(
            f"`source` and `target` must have the same shape (B, 3, H, W), got {tuple(source.shape)} and "
            f"{tuple(target.shape)}; resize the frames to one size first"
        )


class DISFlowEstimator:
    """OpenCV's Dense Inverse Search optical flow on grey frames, both directions.

    Args:
        preset: ``"ultrafast"``, ``"fast"``, ``"medium"`` or ``"fine"`` (slower, more accurate; the default;
            see `DIS_PRESETS`).

    Raises:
        ConfigError: unknown preset (a `ValueError`).

    Example:
        >>> estimator = DISFlowEstimator("fast")
        >>> frames = torch.rand(2, 1, 3, 32, 32)
        >>> forward, backward = estimator(frames[0], frames[1])
        >>> forward.shape, estimator.name
        (torch.Size([1, 2, 32, 32]), 'dis-fast')
    """

    def __init__(self, preset: str = DEFAULT_DIS_PRESET) -> None:
        if preset not in DIS_PRESETS:
            raise ConfigError(f"`preset` must be one of {DIS_PRESETS}, got {preset!r}")
        self.preset = preset
        self.name = f"dis-{preset}"

    def __repr__(self) -> str:
        return f"DISFlowEstimator(preset={self.preset!r})"

    def _create(self) -> cv2.DISOpticalFlow:  # one per call: DIS objects keep state and are not thread-safe
        preset_id = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
            "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }[self.preset]
        dis = cv2.DISOpticalFlow_create(preset_id)
        if self.preset == "fine":
            # medium stops one octave above full resolution; thin structures and pencil-scale texture
            # need the last octave (measured on the propagation suite, see DIS_PRESETS)
            dis.setFinestScale(0)
            dis.setPatchSize(8)
            dis.setPatchStride(3)
        return dis

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (source→target) and backward (target→source) flow; see `FlowEstimator`."""
        _check_frame_pair(source, target)
        dis = self._create()
        # ITU-R BT.601 luma, as cv2.cvtColor(RGB2GRAY), in 8 bits: DIS works on uint8 grey images.
        luma_weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=source.device)
        grey_frames = []
        for frames in (source, target):
            luma = torch.einsum("bchw,c->bhw", frames.float(), luma_weights)  # (B, H, W) in [0, 1]
            grey_frames.append((luma * 255).round().to(torch.uint8).cpu().numpy())
        forward, backward = [], []
        for grey_source, grey_target in zip(*grey_frames, strict=True):
            forward.append(dis.calc(grey_source, grey_target, None))  # (H, W, 2) float32, x first
            backward.append(dis.calc(grey_target, grey_source, None))

        def to_tensor(flows: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous().to(source.device)

        return to_tensor(forward), to_tensor(backward)


class GMFlowEstimator:
    """GMFlow as a `FlowEstimator`: scales frames to 0–255, pads, predicts both directions, unpads.

    The constructor takes a built network and leaves it as it is (device, dtype, mode); `from_checkpoint` builds
    one from the released weights. Matching is global at 1/8 resolution, so memory grows with the square of the
    pixel count: about 0.4 GB per 512×512 pair in float32 (measured on the CPU), about 6 GB at 1024×1024.

    Args:
        model: the network; its parameters' device is where the flow is computed.
        half_precision: run under float16 autocast (CUDA or MPS only). Weights stay float32; the softmaxes run
            in float32.
        name: identifies the weights for caching (`from_checkpoint` puts a hash of the file in it).

    Raises:
        ConfigError: `half_precision` with the model on the CPU.

    Example:
        >>> estimator = GMFlowEstimator(GMFlow(num_transformer_layers=1).eval())
        >>> frames = torch.rand(2, 1, 3, 20, 30)
        >>> forward, backward = estimator(frames[0], frames[1])  # padded to 32×32 inside
        >>> forward.shape
        torch.Size([1, 2, 20, 30])
    """

    def __init__(self, model: GMFlow, *, half_precision: bool = False, name: str = "gmflow") -> None:
        device = next(model.parameters()).device
        if half_precision and device.type not in ("cuda", "mps"):
            raise ConfigError(f"`half_precision=True` needs the model on a CUDA or MPS device, got {device}")
        self.model = model
        self.half_precision = half_precision
        self.name = name + ("-fp16" if half_precision else "")

    def __repr__(self) -> str:
        return f"GMFlowEstimator(name={self.name!r}, device={self.device})"

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return next(self.model.parameters()).device

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> GMFlowEstimator:
        """Load the released GMFlow weights (e.g. ``gmflow_sintel-0c07dcb3.pth``) from a local file.

        Args:
            path: the checkpoint; ``{"model": state_dict}`` or a bare state dict.
            device: where to run; None picks CUDA, then MPS, then the CPU.
            dtype: ``torch.float16`` for half-precision autocast (GPU only); None or ``torch.float32`` for full.

        Returns:
            The estimator, named ``gmflow-<first 8 hex of the file's SHA-256>``.

        Raises:
            InputNotFoundError: no file at `path`.
            CheckpointError: unreadable file, or the weights of another model (the message names the keys).
            ConfigError: a dtype other than float16/float32, or float16 on the CPU.
        """
        if dtype not in (None, torch.float32, torch.float16):
            raise ConfigError(f"`dtype` must be None, torch.float32 or torch.float16, got {dtype}")
        device = _resolve_device(device)
        half_precision = dtype == torch.float16
        if half_precision and device.type == "cpu":
            raise ConfigError("`dtype=torch.float16` needs a CUDA or MPS device, got cpu")
        model = load_gmflow(path, device)
        digest = hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()[:8]
        logger.info("Loaded GMFlow weights %s (sha256 %s…) on %s", path, digest, device)
        return cls(model, half_precision=half_precision, name=f"gmflow-{digest}")

    @torch.no_grad()  # not inference_mode: callers may edit the returned flows in place
    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (source→target) and backward (target→source) flow; see `FlowEstimator`."""
        _check_frame_pair(source, target)
        height, width = source.shape[-2:]
        multiple = self.model.padding_multiple
        pad_height, pad_width = -height % multiple, -width % multiple
        # Replicate-pad symmetrically, as the official "sintel" InputPadder.
        padding = (pad_width // 2, pad_width - pad_width // 2, pad_height // 2, pad_height - pad_height // 2)
        device = self.device
        images = [
            F.pad(frames.to(device=device, dtype=torch.float32) * 255.0, padding, mode="replicate")
            for frames in (source, target)
        ]
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.half_precision):
            forward, backward = self.model(images[0], images[1], bidirectional=True)
        top, left = padding[2], padding[0]
        return tuple(
            flow[:, :, top : top + height, left : left + width].float().to(source.device)
            for flow in (forward, backward)
        )


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def find_gmflow_checkpoint(search_dirs: Sequence[str | Path] = ()) -> Path | None:
    """Look for ``gmflow_sintel-0c07dcb3.pth`` on disk; never touches the network.

    Looks, in order, in `search_dirs`, in rerender's own folder (`$RERENDER_HOME`, default
    ``~/.cache/rerender``), in the Hugging Face Hub cache (`GMFLOW_HUB_FILES`, wherever
    ``HF_HUB_CACHE``/``HF_HOME`` point) and in torch hub's ``checkpoints`` folder (``TORCH_HOME``).

    Args:
        search_dirs: extra folders to look in first.

    Returns:
        The first file found, or None.
    """
    for directory in (*search_dirs, rerender_cache_dir()):
        candidate = Path(directory).expanduser() / OFFICIAL_GMFLOW_FILENAME
        if candidate.is_file():
            return candidate
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # the hub client is optional here
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None:
        for repository, filename in GMFLOW_HUB_FILES:
            cached = try_to_load_from_cache(repository, filename)
            if isinstance(cached, str) and Path(cached).is_file():
                return Path(cached)
    candidate = Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_GMFLOW_FILENAME
    return candidate if candidate.is_file() else None


def load_flow_estimator(
    name: str = "auto",
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    dis_preset: str = DEFAULT_DIS_PRESET,
) -> FlowEstimator:
    """Build a flow estimator by name (the fields of `rerender.config.FlowConfig` map one to one).

    * ``"dis"``: DIS with `dis_preset`; ``"dis-fine"``, ``"dis-medium"``, ``"dis-fast"``, ``"dis-ultrafast"`` name the
      preset.
    * ``"gmflow"``: GMFlow from `checkpoint`, or from `find_gmflow_checkpoint` when `checkpoint` is None.
    * ``"auto"``: GMFlow when its weights are found and the device is a GPU (CUDA or MPS), DIS with `dis_preset`
      otherwise. The choice and its reason are logged at INFO level.

    Args:
        name: one of `ESTIMATOR_NAMES`.
        checkpoint: GMFlow weights file; naming one that does not exist is an error even for ``"auto"``.
        device: where GMFlow runs; None picks CUDA, then MPS, then the CPU. DIS always runs on the CPU.
        dis_preset: one of `DIS_PRESETS`, for ``"dis"`` and for ``"auto"`` without GMFlow. ``"fine"`` (the default)
            is the most accurate, about 0.1 s per 512×512 pair (both directions) on one CPU core; ``"medium"``
            about 45 ms.

    Returns:
        The estimator.

    Raises:
        ConfigError: unknown name (the message suggests the closest) or preset.
        InputNotFoundError: `checkpoint` does not exist, or ``"gmflow"`` with no weights anywhere.
        CheckpointError: the weights are unreadable or belong to another model.

    Example:
        >>> load_flow_estimator("dis-fast").name
        'dis-fast'
    """
    if name not in ESTIMATOR_NAMES:
        close = difflib.get_close_matches(str(name), ESTIMATOR_NAMES, n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"`name` must be one of {ESTIMATOR_NAMES}, got {name!r}{suggestion}")
    if dis_preset not in DIS_PRESETS:
        raise ConfigError(f"`dis_preset` must be one of {DIS_PRESETS}, got {dis_preset!r}")
    if device is not None:  # checked for DIS too, which ignores it: a typo must not pass unseen
        try:
            torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ConfigError(
                f"`device` must be a torch device such as 'cpu', 'cuda', 'cuda:1' or 'mps', got {device!r}"
            ) from None
    if name.startswith("dis"):
        return DISFlowEstimator(name.removeprefix("dis-") if "-" in name else dis_preset)
    if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
        raise InputNotFoundError(
            f"`checkpoint` {str(checkpoint)!r} is not a file; expected the GMFlow weights ({OFFICIAL_GMFLOW_FILENAME})"
        )
    weights = Path(checkpoint).expanduser() if checkpoint is not None else find_gmflow_checkpoint()
    resolved_device = _resolve_device(device)
    if name == "gmflow":
        if weights is None:
            raise InputNotFoundError(
                f"`checkpoint` is None and no {OFFICIAL_GMFLOW_FILENAME} was found in the Hugging Face cache "
                f"({', '.join(repo + '/' + file for repo, file in GMFLOW_HUB_FILES)}) or in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}; pass checkpoint=<path to the GMFlow weights>, "
                "or use name='dis'"
            )
        return GMFlowEstimator.from_checkpoint(weights, resolved_device)
    # name == "auto"
    if weights is not None and resolved_device.type in ("cuda", "mps"):
        logger.info("Flow estimator: GMFlow (weights %s, device %s)", weights, resolved_device)
        return GMFlowEstimator.from_checkpoint(weights, resolved_device)
    reason = "no GMFlow weights found" if weights is None else f"device is {resolved_device}, not a GPU"
    logger.info("Flow estimator: DIS %s (%s)", dis_preset, reason)
    return DISFlowEstimator(dis_preset)


def _check_uint8_image_pair(source: object, target: object) -> None:
    """Raise `FlowInputError` unless both images are (H, W, 3) uint8 arrays of one size."""
    for label, image in (("source", source), ("target", target)):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            description = (
                f"{image.dtype} array of shape {image.shape}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise FlowInputError(f"`{label}` must be an (H, W, 3) uint8 RGB array, got {description}")
    if source.shape != target.shape:
        raise FlowInputError(
            f"`source` and `target` must have the same size, got {source.shape} and {target.shape}; resize first"
        )


def estimate_flow_numpy(
    estimator: FlowEstimator, source: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flow between two RGB uint8 images as arrays, for numpy code such as the propagation engine.

    Args:
        estimator: any `FlowEstimator`.
        source: the source image, RGB.
        target: the target image, RGB, same size.

    Returns:
        ``(forward, backward)`` float32 arrays, x first: source→target and target→source.

    Raises:
        FlowInputError: not HxWx3 uint8, or of different sizes.

    Shape:
        - source, target: (H, W, 3) uint8
        - Output: (H, W, 2), (H, W, 2)
    """
    _check_uint8_image_pair(source, target)
    source_tensor, target_tensor = (
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        for image in (source, target)
    )  # (1, 3, H, W)
    forward, backward = estimator(source_tensor, target_tensor)
    return tuple(flow[0].permute(1, 2, 0).cpu().numpy().astype(np.float32, copy=False) for flow in (forward, backward))
