"""Running propagation over a video: the public entry points, the pass scheduling, the flows and the checks."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

import ebsynth_bridge
from ebsynth_bridge.patchmatch import serial_kernels
from rerender.config.arguments import check_flags, check_progress_arguments, plain_number
from rerender.errors import ConfigError, FlowInputError
from rerender.propagation.blend import _merge_segment
from rerender.propagation.chain import ChainResult, _Chain, _plan_segments, _Segment, propagate_chain
from rerender.propagation.engine import EngineChoice, resolve_engine, warn_unused_options
from rerender.propagation.options import PropagationOptions

logger = logging.getLogger(__name__)

#: ``flow(source_rgb, target_rgb) -> (forward, backward)``: forward maps source pixels into the target
#: (``source(p) ≈ target(p + forward(p))``), backward the other way; both (H, W, 2) float32.
FlowFunction = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]

#: Changes whenever the same options would propagate different frames (an algorithm or a default changed);
#: a workspace's propagated frames from another engine version are redone, not reused.
ENGINE_VERSION = "3"  # 3: the numba sweep propagates at jumps 8, 4, 2, 1

# --------------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------------


def propagate_video(
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    flow: FlowFunction | None = None,
    options: PropagationOptions | None = None,
    progress: bool = True,
    workers: int | None = None,
    callback: ProgressCallback | None = None,
) -> list[np.ndarray]:
    """Stylise every frame of a video from a few stylised keyframes.

    Holds every output frame; for long videos use :func:`propagate_video_iter`, which streams them.

    Args:
        frames: the source video, a sequence (list, ``(T, H, W, 3)`` array or any object with ``len`` and
            integer indexing) of RGB uint8 ``(H, W, 3)`` frames.
        keyframes: ``{frame index: stylised RGB uint8 (H, W, 3)}``, one or more, at any indices.
        flow: optical flow ``flow(source, target) -> (forward, backward)`` (see :data:`FlowFunction`), e.g.
            ``functools.partial(rerender.flow.estimate_flow_numpy, estimator)``; ``None`` = DIS (the
            ``"fine"`` preset) through :mod:`rerender.flow`. It is called in the calling thread, one frame
            pair at a time.
        options: :class:`PropagationOptions`; ``None`` = defaults.
        progress: show a tqdm progress bar (on stderr), one step per propagated frame.
        workers: passes run at once (threads); overrides ``options.workers`` when given.
        callback: ``callback("propagation", done, total)``, called in the calling thread as propagated
            frames finish (``total`` = frames that are not keyframes), whatever ``progress`` is.

    Returns:
        ``len(frames)`` RGB uint8 frames; keyframes are returned as given.

    Raises:
        FlowInputError: no keyframes, a key index outside the video, or frames/keyframes of the wrong shape or
            dtype (all checked before any flow or synthesis work); a flow of the wrong shape from ``flow``.
        ConfigError: bad options, or an engine or device that cannot run here (:func:`resolve_engine`; named as
            the ``options`` argument's fields, e.g. ``options.device``).

    Shape:
        frames (T, H, W, 3) uint8, keyframes {t: (H, W, 3) uint8} -> T × (H, W, 3) uint8.

    Example:
        >>> import numpy as np
        >>> frames = [np.full((32, 32, 3), 10 * t, np.uint8) for t in range(3)]
        >>> out = propagate_video(frames, {0: np.full((32, 32, 3), 200, np.uint8)}, progress=False, workers=1)
        >>> len(out), out[2].dtype
        (3, dtype('uint8'))
    """
    output: list[np.ndarray | None] = [None] * len(frames)
    for index, image in propagate_video_iter(frames, keyframes, flow, options, progress, workers, callback):
        output[index] = image
    return output  # type: ignore[return-value]


def propagate_video_iter(
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    flow: FlowFunction | None = None,
    options: PropagationOptions | None = None,
    progress: bool = True,
    workers: int | None = None,
    callback: ProgressCallback | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """The streaming form of :func:`propagate_video`: yield ``(index, frame)`` for every frame, in order.

    Memory stays bounded whatever the video's length: frames are read from ``frames`` (and keyframes from
    ``keyframes``) when their key interval is due and dropped once yielded, and only
    ``max(1, workers // 2)`` key intervals (both passes of each) are in flight, plus the next one, whose
    frames are read and flows estimated meanwhile; with ``workers ≤ 3`` that is two intervals. ``frames`` and ``keyframes`` may therefore be lazy (read from disk on access). Closing
    the iterator early (``break``, an exception) stops the passes after their current frame.

    Args:
        frames, keyframes, flow, options, progress, workers, callback: as :func:`propagate_video`.

    Yields:
        ``(index, frame)``: each frame index once, ascending, with its RGB uint8 ``(H, W, 3)`` frame;
        keyframes as given. All frames of a key interval are yielded once the interval is finished.

    Raises:
        FlowInputError, ConfigError: as :func:`propagate_video`, when iteration starts.

    Example:
        >>> import numpy as np
        >>> frames = [np.full((32, 32, 3), 10 * t, np.uint8) for t in range(4)]
        >>> keys = {0: np.full((32, 32, 3), 200, np.uint8), 3: np.full((32, 32, 3), 50, np.uint8)}
        >>> [index for index, frame in propagate_video_iter(frames, keys, progress=False, workers=1)]
        [0, 1, 2, 3]
    """
    workers = plain_number(workers)
    _check_arguments(frames, flow, options, progress, workers, callback)
    options = options or PropagationOptions()
    if workers is not None:
        options = dataclasses.replace(options, workers=workers)
    engine = resolve_engine(options, name="options")  # e.g. device "cuda" without a GPU: refused before any work
    warn_unused_options(options, engine)
    key_indices = _check_video(frames, keyframes)
    segments = _plan_segments(key_indices, len(frames))
    chain_count = sum(chain is not None for segment in segments for chain in segment)
    logger.info(
        "propagating %d keyframe(s) over %d frames: %d segment(s), %d pass(es), engine %s",
        len(key_indices),
        len(frames),
        len(segments),
        chain_count,
        engine,
    )
    pending_keys = collections.deque(key_indices)
    with _Progress(len(frames) - len(key_indices), progress, callback) as report:
        for segment, results, step_flows in _run_segments(frames, keyframes, segments, flow, options, report, engine):
            # one segment at a time: its flows and syntheses are dropped once its frames are yielded
            for index, image in _merge_segment(segment, results, step_flows, options, engine):
                while pending_keys and pending_keys[0] < index:
                    key = pending_keys.popleft()
                    yield key, np.array(keyframes[key], copy=True)
                yield index, image
            # the segment's closing key too, so that a consumer sees each interval complete at once
            last = max(
                chain.indices[0] if chain.direction < 0 else chain.indices[-1]
                for chain in segment
                if chain is not None
            )
            while pending_keys and pending_keys[0] <= last:
                key = pending_keys.popleft()
                yield key, np.array(keyframes[key], copy=True)
        while pending_keys:
            key = pending_keys.popleft()
            yield key, np.array(keyframes[key], copy=True)


#: ``callback(stage, done, total)``, the progress callback of :func:`rerender.translate`.
ProgressCallback = Callable[[str, int, int], None]


class _Progress:
    """Per-frame progress of the calling thread: a tqdm bar (when enabled) and the callback.

    Counted in half frames: a synthesis of a one-sided pass finishes a frame, one of an interval's two
    passes half a frame.
    """

    def __init__(self, total: int, progress: bool, callback: ProgressCallback | None) -> None:
        self.total, self.callback, self.halves, self.done = total, callback, 0, 0
        self.bar = tqdm(total=total, desc="propagating", unit="frame", disable=not progress)

    def __call__(self, halves: int) -> None:
        self.halves += halves
        done = min(self.total, self.halves // 2)
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done
            if self.callback is not None:
                self.callback("propagation", done, self.total)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.bar.close()
        if exc_type is None and self.total == 0 and self.callback is not None:
            self.callback("propagation", 0, 0)  # nothing to propagate (every frame a keyframe): done


def _run_segments(
    frames: Sequence[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    segments: list[_Segment],
    flow: FlowFunction | None,
    options: PropagationOptions,
    report: Callable[[int], None],
    engine: EngineChoice = EngineChoice("numba", None),
) -> Iterator[tuple[_Segment, list[ChainResult | None], dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]]]:
    """Yield every segment with its pass results, in order, running the passes in a thread pool.

    Frames are read and flow is estimated here, in the calling thread (the flow function may hold a model
    on a GPU and need not be thread-safe), while the pool runs the earlier segments' passes. At most
    ``max(1, workers // 2) + 1`` segments are in flight (one of them being prepared or handed to the caller), so
    memory stays bounded. ``report(halves)`` (progress, in half frames) is only ever called in this thread.
    With one worker, one pool thread runs the passes on numba's parallel kernels; with several, each pool
    thread runs the serial ``nogil`` kernels, since numba's default threading layer aborts when several
    threads launch parallel kernels at once. Both give identical results. The torch engine runs its passes
    one after the other in one pool thread (each batches its frames on the device).
    """
    cpu_count = os.cpu_count() or 1
    chain_count = sum(chain is not None for segment in segments for chain in segment)
    worker_count = max(1, min(options.workers or cpu_count, chain_count))
    run_chain: Callable[..., ChainResult] = propagate_chain
    if engine.name == "torch":
        from rerender.propagation.torch_engine import propagate_chain_torch

        worker_count = 1
        run_chain = functools.partial(propagate_chain_torch, device=engine.device)

    def prepare(segment: _Segment) -> tuple[dict[int, np.ndarray], dict]:
        # read each frame once (a frame provider may decode on access)
        segment_frames = {
            index: _checked_frame(frames, index, keyframes)
            for chain in segment
            if chain is not None
            for index in chain.indices
        }
        return segment_frames, _segment_flows(segment_frames, segment, flow)

    def chain_inputs(chain: _Chain, segment_frames: dict, step_flows: dict) -> tuple:
        return (
            [segment_frames[index] for index in chain.indices],
            keyframes[chain.key],
            [step_flows[(a, b)] for a, b in zip(chain.indices, chain.indices[1:])],
            options,
        )

    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    in_flight: collections.deque = collections.deque()
    max_in_flight = max(1, worker_count // 2)
    # one worker: its passes run on numba's parallel kernels (or the torch engine's device), in a pool thread so
    # that this thread can prepare the next segment meanwhile
    job = functools.partial(_run_chain_job, run_chain, serial=worker_count > 1)
    pool = concurrent.futures.ThreadPoolExecutor(worker_count, thread_name_prefix="rerender-propagation")
    try:
        for segment in segments:
            # this segment's frames and flows are made while the earlier segments' passes run, and its passes
            # queue behind theirs, so the pool never waits for the flow nor for the caller's use of a segment
            try:
                segment_frames, step_flows = prepare(segment)
            except Exception:
                # a bad frame or flow here still lets the caller keep every interval before it
                while in_flight:
                    yield _collect(in_flight.popleft(), events, report)
                raise
            halves = 2 if None in segment else 1
            futures = [
                None
                if chain is None
                else pool.submit(job, chain_inputs(chain, segment_frames, step_flows), events, halves, stop)
                for chain in segment
            ]
            del segment_frames
            in_flight.append((segment, futures, step_flows))
            if len(in_flight) > max_in_flight:
                yield _collect(in_flight.popleft(), events, report)
        while in_flight:
            yield _collect(in_flight.popleft(), events, report)
    finally:
        # on early exit (the consumer stopped, an error, Ctrl-C) running passes stop after their frame
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class _Stopped(Exception):
    """Raised inside a pass whose results are no longer wanted."""


def _run_chain_job(
    run_chain: Callable[..., ChainResult],
    inputs: tuple,
    events: queue.SimpleQueue,
    halves: int,
    stop: threading.Event,
    serial: bool,
) -> ChainResult:
    """A pool thread's job: one pass (on the serial kernels if ``serial``), reporting each synthesis through ``events``."""

    def step() -> None:
        if stop.is_set():
            raise _Stopped
        events.put(halves)

    with serial_kernels() if serial else contextlib.nullcontext():
        return run_chain(*inputs, step_callback=step)


def _collect(entry: tuple, events: queue.SimpleQueue, report: Callable[[int], None]) -> tuple:
    """Wait for a segment's passes, reporting everyone's progress meanwhile (in the calling thread)."""
    segment, futures, step_flows = entry
    waiting = [future for future in futures if future is not None]
    while waiting:
        try:
            report(events.get(timeout=0.1))
        except queue.Empty:
            pass
        waiting = [future for future in waiting if not future.done()]
    while True:
        try:
            report(events.get_nowait())
        except queue.Empty:
            break
    return segment, [None if future is None else future.result() for future in futures], step_flows


# --------------------------------------------------------------------------------------------------
# flow
# --------------------------------------------------------------------------------------------------


def _segment_flows(
    frames: Mapping[int, np.ndarray], segment: _Segment, flow: FlowFunction | None
) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """``{(previous, current): (flow, occlusion)}`` for every step of the segment's passes.

    ``frame[current](p) ≈ frame[previous](p + flow(p))``; both directions of a frame pair come from one
    call of the flow function and serve both passes (and the occlusion check).
    """
    pairs = sorted(
        {
            (min(a, b), max(a, b))
            for chain in segment
            if chain is not None
            for a, b in zip(chain.indices, chain.indices[1:])
        }
    )

    def estimate(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        fields = (flow or _default_flow)(frames[pair[0]], frames[pair[1]])
        if not isinstance(fields, (tuple, list)) or len(fields) != 2:
            raise FlowInputError(
                f"the flow function must return a pair (forward, backward) of (H, W, 2) arrays; it returned a "
                f"{type(fields).__name__} for frames {pair}"
            )
        return _checked_flow_pair(*fields, frames[pair[0]].shape[:2], pair)

    if flow is None:  # the default is thread-safe (one DIS object per call) and releases the GIL: overlap
        with concurrent.futures.ThreadPoolExecutor(max(1, min(len(pairs), os.cpu_count() or 1))) as pool:
            pair_flows = list(pool.map(estimate, pairs))
    else:  # a caller's estimator may not be thread-safe
        pair_flows = [estimate(pair) for pair in pairs]
    steps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for (earlier, later), (forward, backward) in zip(pairs, pair_flows):
        steps[(earlier, later)] = (backward, ebsynth_bridge.occlusion_mask(backward, forward))
        steps[(later, earlier)] = (forward, ebsynth_bridge.occlusion_mask(forward, backward))
    return steps


def _checked_flow_pair(
    forward: object, backward: object, shape: tuple[int, int], pair: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The flow function's two fields as contiguous float32 ``(H, W, 2)`` arrays, or `FlowInputError` naming the
    one that is not a flow of the frames' ``shape`` (None, ragged or of another shape)."""
    fields = []
    for name, field_ in (("forward", forward), ("backward", backward)):
        if np.asarray(field_).dtype == object:  # None or ragged: not a flow (as an array it has shape (1,))
            raise FlowInputError(
                f"the flow function returned a {name} flow of {type(field_).__name__} for frames {pair}; "
                "expected an (H, W, 2) array of pixel displacements, x first"
            )
        field_ = np.ascontiguousarray(field_, np.float32)
        if field_.shape != tuple(shape) + (2,):
            raise FlowInputError(
                f"the flow function returned a {name} flow of shape {field_.shape} for frames {pair}; "
                f"expected {tuple(shape) + (2,)} (H, W, 2) pixel displacements, x first"
            )
        fields.append(field_)
    return fields[0], fields[1]


def _default_flow(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DIS (the "fine" preset, `rerender.flow.DIS_PRESETS`) both ways, through :mod:`rerender.flow`.

    Imported here, not at module level, so that ``import rerender.propagation`` does not import torch.
    """
    from rerender.flow import DISFlowEstimator, estimate_flow_numpy

    return estimate_flow_numpy(DISFlowEstimator("fine"), source, target)


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------


def _checked_frame(frames: Sequence[np.ndarray], index: int, keyframes: Mapping[int, np.ndarray]) -> np.ndarray:
    """``frames[index]`` as a contiguous array, checked against the keyframes' shape."""
    frame = np.ascontiguousarray(frames[index])
    expected = next(iter(keyframes.values())).shape
    if frame.dtype != np.uint8 or frame.shape != expected:
        raise FlowInputError(
            f"`frames[{index}]` must be RGB uint8 of shape {expected} like the others, got {frame.dtype} {frame.shape}"
        )
    return frame


def _check_arguments(
    frames: object, flow: object, options: object, progress: object, workers: object, callback: object
) -> None:
    """Refuse arguments of the wrong kind before any work, naming them (they are first used deep in a pass).

    Raises:
        ConfigError: naming the argument, its value and what is valid.
    """
    if not (hasattr(frames, "__len__") and hasattr(frames, "__getitem__")):
        raise ConfigError(
            f"`frames` must be a sequence with len() and indexing (a list, a (T, H, W, 3) array), got "
            f"{type(frames).__name__}; pass list(frames) for an iterator"
        )
    if options is not None and not isinstance(options, PropagationOptions):
        hint = "; pass PropagationOptions(**options)" if isinstance(options, Mapping) else ""
        raise ConfigError(f"`options` must be a PropagationOptions or None, got {type(options).__name__}{hint}")
    if flow is not None and not callable(flow):
        raise ConfigError(
            f"`flow` must be a function flow(source, target) -> (forward, backward) or None, got {flow!r}"
        )
    check_progress_arguments(callback, None)
    check_flags(progress=progress)  # "no" is truthy: it would draw the bar
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ConfigError(f"`workers` must be a whole number of passes at once or None, got {workers!r}")


def _check_video(frames: Sequence[np.ndarray], keyframes: Mapping[int, np.ndarray]) -> list[int]:
    frame_count = len(frames)
    if frame_count == 0:
        raise FlowInputError("`frames` is empty; give at least one RGB uint8 (H, W, 3) frame")
    if not keyframes:
        raise FlowInputError("`keyframes` is empty; give at least one {frame index: stylised RGB uint8 frame}")
    first = np.asarray(frames[0])
    if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
        raise FlowInputError(f"`frames` must hold RGB uint8 (H, W, 3) frames, got {first.dtype} {first.shape}")
    key_indices = sorted(keyframes)
    for index in key_indices:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < frame_count:
            raise FlowInputError(
                f"keyframe index {index!r} is outside the video; valid indices: 0 … {frame_count - 1}"
            )
        key = keyframes[index]
        if not isinstance(key, np.ndarray) or key.dtype != np.uint8 or key.shape != first.shape:
            raise FlowInputError(
                f"`keyframes[{index}]` must be RGB uint8 of the frames' shape {first.shape}, got "
                f"{getattr(key, 'dtype', type(key).__name__)} {getattr(key, 'shape', '')}"
            )
    return [int(index) for index in key_indices]
