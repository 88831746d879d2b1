"""The keyframe half of the method: the only package that imports diffusers.

`RerenderPipeline` (the keyframe pipeline with the hierarchical cross-frame constraints) and the pieces it is made
of: cross-frame attention (`attention`), the latent maths of the fusions (`fusion`), FreeU (`freeu`), control
annotators (`control`), the IP-Adapter (`ip_adapter`) and model loading (`loading`). Names load on first use, so
`import rerender.diffusion.fusion` does not import diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RerenderPipeline": "rerender.diffusion.pipeline",
    "RerenderPipelineOutput": "rerender.diffusion.pipeline",
    "load_pipeline": "rerender.diffusion.loading",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from rerender.diffusion.loading import quiet_loading  # importing diffusers' pipelines logs known noise

        with quiet_loading():
            return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rerender.diffusion' has no attribute {name!r}")
