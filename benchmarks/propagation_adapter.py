"""Adapter between ``../shared/bench/propagation_bench.py`` and :func:`rerender.propagation.propagate_video`.

The harness hands over BGR uint8 frames and ``{index: BGR stylised keyframe}``; ``propagate_video`` works
in RGB, so the channels are flipped on the way in and out. One entry point per quality preset:

    python ../shared/bench/propagation_bench.py --video ... --long-side 512 --step 2 \\
        --propagator warp_blend --propagator py:benchmarks/propagation_adapter.py:run

(``run`` = "balanced"; also ``run_fast``, ``run_best`` and ``run_rerender``; ``run_torch`` = "balanced" on the
torch engine, on CUDA when present, else the CPU). Set ``RERENDER_PROPAGATION`` to a Python dict literal of
:class:`PropagationOptions` overrides to try other settings, e.g. ``RERENDER_PROPAGATION='{"blend_mode":
"histogram"}'`` or ``'{"engine": "torch", "device": "cpu"}'``; ``RERENDER_TORCH_THREADS`` sets torch's CPU
threads (on a loaded machine 1 avoids threads spinning against each other).
"""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np

from rerender.propagation import PropagationOptions, propagate_video, resolve_engine


def _run_preset(
    preset: str,
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    ctx: dict | None,
    engine: dict | None = None,
) -> list[np.ndarray]:
    ctx = ctx or {}
    overrides = ast.literal_eval(os.environ.get("RERENDER_PROPAGATION", "{}"))
    options = PropagationOptions.preset(preset, **{**overrides, **(engine or {})})
    if os.environ.get("RERENDER_TORCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["RERENDER_TORCH_THREADS"]))
    workers = options.workers or int(ctx.get("threads") or os.cpu_count() or 1)
    frames_rgb = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
    keys_rgb = {index: np.ascontiguousarray(key[..., ::-1]) for index, key in keyframes.items()}
    start = time.perf_counter()
    outputs = propagate_video(frames_rgb, keys_rgb, options=options, progress=False, workers=workers)
    if "stats" in ctx:
        ctx["stats"].update(
            preset=preset,
            workers=workers,
            engine=str(resolve_engine(options)),
            propagate_s=round(time.perf_counter() - start, 3),
            **({"overrides": overrides} if overrides else {}),
        )
    return [np.ascontiguousarray(output[..., ::-1]) for output in outputs]


def run(
    frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray], ctx: dict | None = None
) -> list[np.ndarray]:
    """The "balanced" (default) preset."""
    return _run_preset("balanced", frames, keyframes, ctx)


def run_fast(
    frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray], ctx: dict | None = None
) -> list[np.ndarray]:
    """The "fast" preset."""
    return _run_preset("fast", frames, keyframes, ctx)


def run_best(
    frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray], ctx: dict | None = None
) -> list[np.ndarray]:
    """The "best" preset."""
    return _run_preset("best", frames, keyframes, ctx)


def run_rerender(
    frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray], ctx: dict | None = None
) -> list[np.ndarray]:
    """Rerender-A-Video's EbSynth settings and histogram blend, on our engine."""
    return _run_preset("rerender", frames, keyframes, ctx)


def run_torch(
    frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray], ctx: dict | None = None
) -> list[np.ndarray]:
    """The "balanced" preset on the torch engine (CUDA when torch sees a GPU, else the CPU)."""
    return _run_preset("balanced", frames, keyframes, ctx, engine={"engine": "torch"})
