"""Keyframe propagation: carry the look of stylised keyframes to every other frame of a video.

The video glue around :mod:`ebsynth_bridge` (Rerender-A-Video §3.3 / ebsynth.md §3):

1. optical flow between consecutive frames, both directions, and its occlusion mask;
2. for every interval between consecutive keyframes, a *forward* pass from the left key and a
   *backward* pass from the right key. Each step synthesises the next frame with guides — colour (the
   source frames), edges, position (keyframe coordinates carried along the flow, occluded pixels
   filled) and temporal coherence (the previous output warped) — starting PatchMatch from the keyframe
   coordinates carried along the flow, so most pixels start at their answer;
3. temporal-aware blending of the two passes: error-guided selection with temporally coherent masks,
   then an agreement-aware cross-fade (default), Rerender's histogram-preserving blend, or that plus a
   gradient-domain (Poisson) blend.

Frames before the first key (after the last key) get only a backward (forward) pass. Passes are
independent, so they run in a thread pool in the calling process (no process start-up, no
``if __name__ == "__main__"`` guard needed), a few key intervals at a time: with one worker the pass runs
in the calling thread on numba's parallel kernels over all cores; with several, each thread runs the
serial ``nogil`` kernels (:func:`ebsynth_bridge.patchmatch.serial_kernels`), which give identical results.
:func:`propagate_video_iter` streams the frames out in order, holding a few intervals at a time.

Frames are RGB uint8 ``(H, W, 3)`` at this API. Flows follow :mod:`ebsynth_bridge.guides`: ``(H, W, 2)``
float32 pixel displacements, x first.

Two engines run the passes: numba (:mod:`ebsynth_bridge`, the CPU) and torch (:mod:`.torch_engine`, a GPU),
chosen by ``PropagationOptions.engine`` / ``.device`` (:func:`resolve_engine`).

Modules: :mod:`.options` (the options and presets), :mod:`.chain` (one pass), :mod:`.blend` (merging the
two passes of an interval), :mod:`.runner` (the entry points, scheduling, flows, checks), :mod:`.engine`
(which engine runs), :mod:`.torch_engine` and :mod:`.torch_ops` (the torch engine; they import torch).
"""

from rerender.propagation.chain import ChainResult, propagate_chain
from rerender.propagation.engine import EngineChoice, resolve_engine
from rerender.propagation.options import BLEND_MODES, QUALITY_PRESETS, RENAMED_FIELDS, PropagationOptions
from rerender.propagation.runner import (
    ENGINE_VERSION,
    FlowFunction,
    ProgressCallback,
    propagate_video,
    propagate_video_iter,
)

__all__ = [
    "PropagationOptions",
    "BLEND_MODES",
    "QUALITY_PRESETS",
    "propagate_video",
    "propagate_video_iter",
    "propagate_chain",
    "ChainResult",
    "FlowFunction",
    "ProgressCallback",
    "ENGINE_VERSION",
    "EngineChoice",
    "resolve_engine",
    "RENAMED_FIELDS",
]
