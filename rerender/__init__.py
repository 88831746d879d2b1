"""rerender: zero-shot text-guided video-to-video translation (Rerender A Video, SIGGRAPH Asia 2023).

Heavy modules (torch, diffusers) load on first use, so `import rerender` and the CLI start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

_LAZY = {
    "translate": "rerender.api",
    "animate": "rerender.still",
    "generate": "rerender.text_video",
    "BackgroundSmoothing": "rerender.text_video",
    "GenerationResult": "rerender.text_video",
    "AnimationResult": "rerender.still",
    "propagate_keyframes": "rerender.keyframe_folder",
    "batch": "rerender.batching",
    "format_summary": "rerender.batching",
    "BatchResult": "rerender.batching",
    "TranslationResult": "rerender.api",
    "RerenderConfig": "rerender.config",
    "load_config": "rerender.config",
    "save_config": "rerender.config",
    "apply_overrides": "rerender.config",
    "probe_video": "rerender.video",
    "read_frames": "rerender.video",
    "write_video": "rerender.video",
    "VideoInfo": "rerender.video",
    "RerenderPipeline": "rerender.pipeline",
    "RerenderPipelineOutput": "rerender.pipeline",
    "load_pipeline": "rerender.models",
    "KeyframeRenderer": "rerender.renderers",
    "ClassicRenderer": "rerender.renderers",
    "DiffusionRenderer": "rerender.renderers",
    "ClassicStylizer": "rerender.stylizer",
    "load_flow_estimator": "rerender.flow",
    "download_weights": "rerender.weights",
    "RerenderError": "rerender.errors",
    "ConfigError": "rerender.errors",
    "InputNotFoundError": "rerender.errors",
    "WeightsNotFoundError": "rerender.errors",
}
"""Public names, imported on first use (`from rerender import RerenderPipeline`, as `from diffusers import …`)."""

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if _LAZY[name] in ("rerender.pipeline", "rerender.models"):
            from rerender.models import quiet_loading  # importing diffusers' pipelines logs known noise

            with quiet_loading():
                return getattr(importlib.import_module(_LAZY[name]), name)
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rerender' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
