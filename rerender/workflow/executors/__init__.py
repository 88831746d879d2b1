"""Executors: where `translate`'s stages run, for one long video.

`translate(..., executor=None)` runs everything here, in this process (`LocalExecutor`, the default: frames
decoded in one pass, the key intervals streamed through `propagation.propagate_video_iter`, whose passes run in
threads). `RayExecutor` places the stages on a Ray cluster:

* frames: the selected frames are decoded in chunks of `chunk_frames`, one Ray task each; a task's reader jumps
  to the key frame before its chunk (`video.read_frames(..., seek=True)`, which checks every frame's timestamp
  and falls back to decoding from the start where they disagree), so the frames are those of a local run;
* flows: the flows of consecutive frames in chunks of `chunk_frames` frames that overlap by one (chunk c holds
  the pairs c·n … c·n + n − 1), one Ray task each, into the flow cache (`flow.FlowCache`, keyed by content);
* keyframes: in a Ray actor (`KeyframeWorker`) that loads the models once and keeps them for every later
  `translate` with the same model and ControlNets, asking for `num_gpus=1` only when the cluster has a GPU (else
  it would never be scheduled). The actor is whole from its constructor arguments (Ray replays only those when it
  restarts a dead actor); each render call carries the run's config, control maps, frames and the *number* of
  finished keyframes. The chain is sequential, so one actor renders it, unless `keyframe_segments` splits it (one
  actor per segment; see `_SegmentedRenderer`); keyframes stream back and the driver writes them; a cancel
  cancels the actor's stream, which it checks between keyframes and denoising steps;
* optical flow: the configured estimator travels as a `context.FlowSpec` and every task or actor builds it on
  the device Ray gave it (an estimator on the driver's GPU cannot be unpickled where no GPU is seen);
* propagation: one Ray task per key interval (an interval's frames depend only on the keyframes at its two
  ends, `context.key_intervals`), each started when the flow chunks it needs are done; both executors record
  finished intervals in the same `context.IntervalLedger`. A task asks for a GPU when the run asks for the torch
  engine on CUDA, or as `RayExecutor(propagation_gpus=...)` says (`RayExecutor.propagation_task_gpus`);
* the manifest, the tracking of files, and the video: the driver alone (one writer).

Storage: with `shared_storage=True` (default) the workspace is on a path every node can read (a shared file
system): tasks read the video, frames and keyframes there and write frames, flows and propagated frames there.
With `shared_storage=False` the video, frames and keyframes travel to the tasks, and the decoded and propagated
frames back, through Ray's object store (PNG bytes; the driver writes them); the flows go from the flow tasks to
the propagation tasks through the object store and are not kept.

Faults: a task whose worker dies is retried by Ray (`max_retries`); an interval is recorded as done only when its
task returned, and every task is a pure function of its inputs, so the output is byte-identical to an
uninterrupted local run.

Resume: the renderer's resume state is written to the workspace's `state/` folder by the actor, so keyframe
resume across machines needs shared storage. Adaptive keyframe selection (`keyframe_mode="adaptive"`) computes
its flows on the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from rerender.config import RerenderConfig
from rerender.workflow.context import Interval, StageContext

if TYPE_CHECKING:
    from rerender.workflow.renderers import KeyframeRenderer

logger = logging.getLogger(__name__)

__all__ = ["Executor", "LocalExecutor", "RayExecutor"]


@runtime_checkable
class Executor(Protocol):
    """Where `translate` runs its stages (`LocalExecutor`: here; `RayExecutor`: on a Ray cluster)."""

    name: str

    def check(self, config: RerenderConfig) -> None:
        """Refuse, before any work, a `config` this executor cannot run (`ConfigError`)."""

    def keyframe_renderer(
        self, ctx: StageContext, control_maps: Any, keyframe_count: int | None = None
    ) -> KeyframeRenderer:
        """The keyframe renderer `config.model.renderer` asks for (`renderers.choose_renderer`), placed where
        this executor renders keyframes (`keyframe_count`: how many keyframes it will render, anchor included)."""

    def write_frames(self, ctx: StageContext) -> None:
        """Decode the `ctx.count` selected frames into the workspace's frames folder (`stages.write_frames`)."""

    def propagate(
        self,
        ctx: StageContext,
        frames: Sequence[np.ndarray],
        keyframe_indices: Sequence[int],
        intervals: dict[Interval, str] | None,
        key_path: Callable[[int], Path] | None = None,
    ) -> None:
        """Propagate the key `intervals` into the workspace's propagated folder, recording each finished one in the
        `IntervalLedger` (the contract of `stages.propagate_intervals`; `key_path(index)` names each keyframe's
        file)."""


class LocalExecutor:
    """Everything in this process (the default)."""

    name = "local"

    def check(self, config: RerenderConfig) -> None:
        """Nothing to refuse: a local run takes any config."""

    def keyframe_renderer(
        self, ctx: StageContext, control_maps: Any, keyframe_count: int | None = None
    ) -> KeyframeRenderer:
        from rerender.workflow.renderers import choose_renderer

        return choose_renderer(ctx.config, None, ctx.estimator, control_maps)

    def write_frames(self, ctx: StageContext) -> None:
        from rerender.workflow.stages import write_frames

        write_frames(ctx)

    def propagate(
        self,
        ctx: StageContext,
        frames: Sequence[np.ndarray],
        keyframe_indices: Sequence[int],
        intervals: dict[Interval, str] | None,
        key_path: Callable[[int], Path] | None = None,
    ) -> None:
        from rerender.workflow.stages import propagate_intervals

        propagate_intervals(ctx, frames, keyframe_indices, intervals, key_path)


from rerender.workflow.executors.ray import RayExecutor  # noqa: E402 - ray.py builds on Executor above
