"""rerender: zero-shot text-guided video-to-video translation (Rerender A Video, SIGGRAPH Asia 2023).

Heavy modules (torch, diffusers) load on first use, so `import rerender` and the CLI start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

_LAZY = {
    # run the method
    "translate": "rerender.workflow.translation",
    "TranslationResult": "rerender.workflow.translation",
    "propagate_keyframes": "rerender.workflow.keyframe_folder",
    "animate": "rerender.workflow.animation",
    "AnimationResult": "rerender.workflow.animation",
    "generate": "rerender.workflow.generation",
    "GenerationResult": "rerender.workflow.generation",
    "batch": "rerender.workflow.batching",
    "BatchResult": "rerender.workflow.batching",
    # configure
    "RerenderConfig": "rerender.config",
    "load_config": "rerender.config",
    "save_config": "rerender.config",
    "apply_overrides": "rerender.config",
    # compose your own (each piece can be given to `translate`)
    "RerenderPipeline": "rerender.diffusion.pipeline",
    "RerenderPipelineOutput": "rerender.diffusion.pipeline",
    "load_pipeline": "rerender.diffusion.loading",
    "load_flow_estimator": "rerender.flow",
    "PropagationOptions": "rerender.propagation",
    "propagate_video": "rerender.propagation",
    # video I/O
    "VideoInfo": "rerender.video",
    "probe_video": "rerender.video",
    "read_frames": "rerender.video",
    "write_video": "rerender.video",
    # the base error (its subclasses are in `rerender.errors`)
    "RerenderError": "rerender.errors",
}
"""The front door, imported on first use (`from rerender import RerenderPipeline`, as `from diffusers import …`).

Expert names stay importable from their modules: `rerender.workflow.renderers.ClassicRenderer`,
`rerender.weights.download_weights`, `rerender.errors.ConfigError`, `rerender.workflow.batching.format_summary`."""

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if _LAZY[name].startswith("rerender.diffusion"):
            from rerender.diffusion import __getattr__ as diffusion_getattr  # it quiets diffusers' import noise

            return diffusion_getattr(name)
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rerender' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
