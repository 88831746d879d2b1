"""What every stage works with: `StageContext` (the workspace, the video, the config, the sizes), `Progress` (the
tqdm bar, the caller's callback and the cancel event), `FlowSpec` (a flow estimator described, to be built where it
runs) and `IntervalLedger` (which key intervals are propagated, in the manifest).

`translate` and `propagate_keyframes` build one `StageContext` per run and pass it to the stage functions of
`rerender.workflow.stages` and to the executors (`rerender.workflow.executors`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rerender.config import RerenderConfig
from rerender.config.arguments import check_flags, check_progress_arguments
from rerender.errors import CancelledError, ConfigError
from rerender.video import VideoInfo
from rerender.workflow.workspace import Workspace, file_digest, intact_png

logger = logging.getLogger(__name__)

__all__ = [
    "check_flags",
    "check_optical_flow",
    "check_progress_arguments",
    "ProgressCallback",
    "Progress",
    "FlowSpec",
    "StageContext",
    "Interval",
    "IntervalLedger",
    "key_intervals",
]

ProgressCallback = Callable[[str, int, int], None]
"""`callback(stage, done, total)`, called as each stage advances ("frames", "keyframes", "propagation", "writing")."""

Interval = tuple[int, int]
"""A key interval `(start, end)`: frames `start..end` (both included) between two keyframes, or a keyframe
and an end of the clip."""


def check_optical_flow(optical_flow: Any) -> None:
    """Refuse an `optical_flow` that is no estimator (`rerender.flow.FlowEstimator`: callable, with a `name`)
    before any work: it is first called in propagation, after the frames and keyframes are made.

    Raises:
        ConfigError: naming `optical_flow`, the value and what is valid.
    """
    if optical_flow is not None and not (
        callable(optical_flow) and isinstance(getattr(optical_flow, "name", None), str)
    ):
        raise ConfigError(
            "`optical_flow` must be a flow estimator object (rerender.load_flow_estimator(...): callable, with a "
            f"`name`) or None, got {optical_flow!r}; to choose one by name, pass flow_estimator=... instead"
        )


class Progress:
    """A run's progress: tqdm bars (off with `show=False`), the caller's `callback(stage, done, total)` and the
    `cancel` event, checked at every progress point.

    Stages report progress only after a unit of work is on disk or before the next one starts (a frame, a keyframe,
    a propagated frame, a denoising step), so stopping there leaves the workspace resumable.

    Args:
        show: draw tqdm bars.
        callback: called as work advances; None = nothing.
        cancel: set it (from another thread) to stop at the next progress point with `CancelledError`.
        workspace: names the workspace in the cancel message (called then: the workspace may open later).

    `callback` and `cancel` are the caller's as its entry point checked them (`check_progress_arguments`, before
    any work): they are not checked again here.
    """

    def __init__(
        self,
        show: bool = True,
        callback: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        workspace: Callable[[], Any] = lambda: None,
    ) -> None:
        self.show, self.callback, self.cancel, self.workspace = show, callback, cancel, workspace

    @property
    def cancelled(self) -> bool:
        """Whether the caller asked to stop."""
        return self.cancel is not None and self.cancel.is_set()

    def notify(self, stage: str, done: int, total: int) -> None:
        """Report `done` of `total` units of `stage`, then raise `CancelledError` if the caller asked to stop."""
        if self.callback is not None:
            self.callback(stage, done, total)
        self.check(f"during the {stage} stage ({done}/{total})")

    def check(self, where: str = "") -> None:
        """Raise `CancelledError` (naming `where` and the workspace to resume from) if the caller asked to stop."""
        if self.cancelled:
            raise CancelledError(
                f"cancelled {where}; finished work is kept in {str(self.workspace())!r}, run again "
                "with the same workspace to resume"
            )

    def bar(self, total: int, desc: str, unit: str = "frame", initial: int = 0) -> tqdm:
        """A tqdm bar for a stage (disabled when `show` is False)."""
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not self.show)

    def quiet(self) -> Progress:
        """The same callback and cancel, without bars."""
        return Progress(False, self.callback, self.cancel, self.workspace)


@dataclass(frozen=True)
class FlowSpec:
    """A flow estimator described by the fields of `rerender.config.FlowConfig`, built where it runs: a worker
    builds it on the device its task was given (a CUDA estimator cannot travel to a task that sees no GPU)."""

    name: str
    """`flow.flow_estimator`."""
    checkpoint: str | None = None
    """`flow.flow_checkpoint`."""
    dis_preset: str = "fine"
    """`flow.dis_preset`."""

    @classmethod
    def from_config(cls, config: RerenderConfig) -> FlowSpec:
        """The estimator `config.flow` names."""
        return cls(config.flow.flow_estimator, config.flow.flow_checkpoint, config.flow.dis_preset)

    def build(self, device: str | None = None):
        """Load the estimator (`rerender.flow.load_flow_estimator`) on `device` (None: CUDA, MPS, then the CPU)."""
        from rerender.flow import load_flow_estimator

        return load_flow_estimator(self.name, checkpoint=self.checkpoint, device=device, dis_preset=self.dis_preset)


@dataclass
class StageContext:
    """One run's shared state, handed to every stage and executor."""

    workspace: Workspace
    """The run's workspace (frames, flows, keyframes, propagated frames, manifest)."""
    video: Path
    """The source video (or folder of frames)."""
    info: VideoInfo
    """The source's probed header."""
    config: RerenderConfig
    """The resolved config."""
    count: int
    """Selected frames (the output's frame count)."""
    size: tuple[int, int]
    """`(width, height)` the frames are processed at."""
    progress: Progress = field(default_factory=Progress)
    """Bars, callback and cancel."""
    optical_flow: Any | None = None
    """The caller's flow estimator object; None = the one `config.flow` names (`flow_spec`)."""
    _estimator: Any | None = field(default=None, repr=False)

    def with_progress(self, progress: Progress) -> StageContext:
        """The same context reporting to `progress` (e.g. `progress.quiet()`)."""
        return dataclasses.replace(self, progress=progress)

    @property
    def flow_spec(self) -> FlowSpec:
        """The configured estimator, described (what executors ship to workers when the caller gave none)."""
        return FlowSpec.from_config(self.config)

    @property
    def estimator(self):
        """The caller's estimator, or the configured one, loaded here at first use."""
        if self.optical_flow is not None:
            return self.optical_flow
        if self._estimator is None:
            device = self.config.model.device  # one GPU named ("cuda:1"): the flow runs there too, not on cuda:0
            self._estimator = self.flow_spec.build(device if str(device).startswith("cuda:") else None)
        return self._estimator


def key_intervals(keyframe_indices: Sequence[int], count: int) -> list[Interval]:
    """The intervals propagation works in: between consecutive keyframes, plus the first and the last frame.

    Each interval's frames depend only on the keyframes at its two ends (see `propagation._plan_segments`).
    """
    bounds = sorted(set([0] + list(keyframe_indices) + [count - 1]))
    return list(zip(bounds, bounds[1:])) or [(0, count - 1)]


class IntervalLedger:
    """The manifest's record of propagated key intervals: which are done, made from which keyframe files.

    Every executor uses it the same way: `digests` (what each interval depends on), `stale` (what to redo),
    `forget` (before any work, so an interrupted run leaves no stale record), `record` (each interval as soon as
    its frames are written).
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @property
    def finished(self) -> dict[str, str]:
        """`{"start-end": digest}` of the recorded intervals (the manifest's own dict)."""
        return self.workspace.record("propagation").setdefault("intervals", {})

    def digests(
        self, keyframe_indices: Sequence[int], count: int, key_path: Callable[[int], Path] | None = None
    ) -> dict[Interval, str]:
        """What each key interval's propagated frames depend on beyond the config: its bounds and the digests of
        the keyframe files at its ends (a frame that is no keyframe has none)."""
        path = key_path or self.workspace.keyframe_path
        digests = {index: file_digest(path(index)) for index in set(keyframe_indices)}
        return {
            (start, end): hashlib.sha1(
                json.dumps([start, end, digests.get(start), digests.get(end)]).encode()
            ).hexdigest()[:16]
            for start, end in key_intervals(keyframe_indices, count)
        }

    def stale(self, wanted: dict[Interval, str]) -> dict[Interval, str]:
        """The intervals of `wanted` whose recorded propagation is missing, made from other keyframes, or whose
        frames are missing or damaged; one log line says which are redone and why."""
        space, recorded = self.workspace, self.finished
        stale: dict[Interval, str] = {}
        reasons: dict[str, list[int]] = {}
        for (start, end), digest in wanted.items():
            before = recorded.get(f"{start}-{end}")
            if before is None:
                stale[(start, end)] = digest
            elif before != digest:
                stale[(start, end)] = digest
                reasons.setdefault("keyframe files changed", []).append(start)
            elif not all(intact_png(space.propagated_path(index)) for index in range(start, end + 1)):
                stale[(start, end)] = digest
                reasons.setdefault("propagated frames missing or damaged", []).append(start)
        if reasons:
            named = "; ".join(
                f"{reason} ({', '.join(f'{start}–{end}' for start, end in stale if start in starts)})"
                for reason, starts in reasons.items()
            )
            line = f"redoing propagation of {len(stale)} of {len(wanted)} key intervals: {named}"
            logger.warning("%s (workspace %s)", line, space.root)
            space.redone.append(line)
        return stale

    def forget(self, todo: Sequence[Interval]) -> None:
        """Drop the records of the intervals about to be redone, and of every recorded interval whose frames they
        overwrite (0–8 when 0–4 and 4–8 are propagated after a keyframe at 4 was added), and save (before any of
        them is touched): a record must never outlive its frames."""
        finished = self.finished
        for name in list(finished):
            start, end = (int(part) for part in name.split("-"))
            if any(start < other_end and other_start < end for other_start, other_end in todo):
                del finished[name]
        self.workspace.save()

    def record(self, interval: Interval, digest: str) -> None:
        """Record `interval` as propagated from keyframes with `digest`, and save."""
        self.finished[f"{interval[0]}-{interval[1]}"] = digest
        self.workspace.save()

    @staticmethod
    def kept(keyframe_indices: Sequence[int], count: int, todo: Sequence[Interval]) -> set[int]:
        """The frames of the intervals that are not redone (their files stay as they are)."""
        return {
            index
            for interval in key_intervals(keyframe_indices, count)
            if interval not in todo
            for index in range(interval[0], interval[1] + 1)
        }
