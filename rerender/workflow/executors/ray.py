"""`RayExecutor`: the stages of one long video on a Ray cluster (see `rerender.workflow.executors`), its Ray tasks
and actors, and the helpers that import Ray and connect to a cluster."""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerender.errors import ConfigError, MissingDependencyError, ServiceUnavailableError
from rerender.workflow.context import FlowSpec, IntervalLedger, StageContext
from rerender.workflow.executors import LocalExecutor

logger = logging.getLogger(__name__)

__all__ = ["RayExecutor", "KeyframeWorker", "keyframe_segments", "import_ray", "check_reachable", "connect_ray"]


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            'running on Ray needs the ray package; install it with: pip install "rerender[distributed]"'
        ) from None
    return ray


def check_reachable(address: str, timeout: float = 5.0, name: str = "ray") -> None:
    """Fail fast, before Ray's long connection retries, when a `host:port` cluster address does not answer;
    `name`: the argument the caller's user typed the address as (`batch`'s `ray`, `RayExecutor`'s `address`)."""
    text = address.split("://", 1)[-1].rstrip("/")
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ConfigError(
            f"`{name}` {address!r} is not 'local', 'auto' or a cluster address host:port (or ray://host:port)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise ServiceUnavailableError(
            f"`{name}`: the cluster address {address!r} is unreachable ({error.strerror or error}); check that "
            "the head node runs (`ray start --head`) and the port is open, or use 'local' to start Ray here"
        ) from None


def connect_ray(ray_address: str, name: str = "ray") -> bool:
    """Connect to Ray: "local" starts an instance here, "auto" joins the running cluster, else an address.

    Returns:
        Whether this call started the connection (and so should shut it down); False when Ray was already
        initialised by the caller (its cluster is used as it is).

    Raises:
        MissingDependencyError: ray is not installed.
        ConfigError: an address that is not "local", "auto" or host:port.
        ServiceUnavailableError: an unreachable address, or "auto" with no running cluster (a run-time failure).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if ray_address == "local":
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        return True
    if ray_address != "auto":
        check_reachable(ray_address, name=name)
    try:
        ray.init(address=ray_address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as error:
        if ray_address == "auto":  # Ray's own message names its `--address` flag, which is not ours
            raise ServiceUnavailableError(
                f"`{name}`: 'auto' found no running Ray cluster on this machine (nor RAY_ADDRESS); start one "
                "with `ray start --head`, name one as host:port, or use 'local' to start one for this run"
            ) from None
        raise ServiceUnavailableError(f"`{name}`: cannot join the cluster {ray_address!r}: {error}") from None
    return True


def _encode_png(image) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - PNG encoding of a checked uint8 image does not fail
        raise RuntimeError("cannot encode a PNG")
    return encoded.tobytes()


def extract_frames(video: str | tuple[str, bytes], info, config, first: int, stop: int, out_dir: str | None):
    """Selected frames `first..stop-1` of a video, as a worker decodes them: the decoder jumps to the key frame
    before the chunk (`read_frames(..., seek=True)`), so a chunk costs about its own frames.

    Args:
        video: the video's path (shared storage), or `(suffix, file bytes)` shipped through the object store.
        info: the video's `VideoInfo` (probed once, on the driver).
        config: the run's `RerenderConfig` (its `video` section: selection, crop, resize).
        first, stop: the chunk, as positions among the selected frames.
        out_dir: the workspace's frames folder (shared storage), or None to return PNG bytes.

    Returns:
        Each position's written path (shared) or PNG bytes; fewer than `stop - first` when the file is truncated.
    """
    import dataclasses

    from rerender.video import read_frames, write_image

    with tempfile.TemporaryDirectory(prefix="rerender-frames-") as scratch:
        if not isinstance(video, str):
            suffix, data = video
            video = str(Path(scratch) / f"video{suffix}")
            Path(video).write_bytes(data)
        settings, crop = config.video, config.video.crop
        begin = settings.start_frame + first * settings.frame_stride
        end = settings.start_frame + (stop - 1) * settings.frame_stride + 1
        frames = read_frames(
            video,
            start=begin,
            end=end,
            stride=settings.frame_stride,
            crop=crop,
            resolution=settings.resolution,
            resize_side=settings.resize_side,
            size_multiple=settings.size_multiple,
            info=dataclasses.replace(info, path=Path(video)),
            seek=True,
            background=settings.background,
            deinterlace=settings.deinterlace,
        )
        written: dict[int, Any] = {}
        for position, frame in enumerate(frames, start=first):
            if out_dir is not None:
                written[position] = str(write_image(frame, Path(out_dir) / f"{position:04d}.png"))
            else:
                written[position] = _encode_png(frame)
        return written


_ESTIMATORS: dict[Any, Any] = {}
"""The estimators this worker process built, by `FlowSpec` and device (a worker runs many tasks)."""


def task_device() -> str:
    """The device Ray gave the running task or actor: "cuda" when it was given a GPU, else "cpu" (a task without
    one sees none: Ray hides them)."""
    import ray

    return "cuda" if ray.get_gpu_ids() else "cpu"


def worker_estimator(flow: Any):
    """The flow estimator a task uses: a `FlowSpec` built here, on `task_device()` (once per worker process), or
    the caller's own estimator object, as it was shipped."""
    if not isinstance(flow, FlowSpec):
        return flow
    key = (flow, task_device())
    if key not in _ESTIMATORS:
        _ESTIMATORS[key] = flow.build(device=key[1])
    return _ESTIMATORS[key]


def compute_flows(frames: Sequence[str | bytes], flow, flows_dir: str | None):
    """The flows of consecutive frames (`frames[i]` → `frames[i + 1]`), as a worker computes a chunk of them; chunks
    overlap by one frame, so together they give every pair propagation asks for.

    Args:
        frames: consecutive frames, as PNG paths or PNG bytes.
        flow: a `FlowSpec` (the estimator is built here, on this task's device: `worker_estimator`) or the
            caller's estimator object.
        flows_dir: the workspace's flow cache (shared storage; pairs already there are not computed again), or
            None to return the entries.

    Returns:
        `(flow_files, entries)`: the files this task added to `flows_dir`, and (without shared storage) the
        `FlowCache` entries `{key: .npz bytes}` for the propagation tasks that need them.
    """
    from rerender.flow import FlowCache
    from rerender.video import read_image

    with tempfile.TemporaryDirectory(prefix="rerender-flows-") as scratch:
        flow_files: list[str] = []
        cache = FlowCache(flows_dir or Path(scratch), on_save=lambda path: flow_files.append(str(path)))
        estimator = worker_estimator(flow)

        def image(item: str | bytes):
            if isinstance(item, str):
                return read_image(item)
            path = Path(scratch) / "frame.png"
            path.write_bytes(item)
            return read_image(path)

        previous = image(frames[0])
        for item in frames[1:]:
            current = image(item)
            cache.get_or_compute(estimator, previous, current)
            previous = current
        if flows_dir is not None:
            return flow_files, {}
        return [], {Path(name).stem: Path(name).read_bytes() for name in flow_files}


def _propagate_after_flows(
    start, end, frames, keys, options, flow, flows_dir, out_dir, skip, *flow_chunks: dict[str, bytes]
):
    """`propagate_interval` once the flow chunks it needs are done (Ray passes their entries in, which seed the
    task's own flow cache when there is no shared storage; with shared storage they are empty)."""
    entries = {key: data for chunk_entries in flow_chunks for key, data in chunk_entries.items()}
    return propagate_interval(start, end, frames, keys, options, flow, flows_dir, out_dir, skip, entries)


def propagate_interval(
    start: int,
    end: int,
    frames: Sequence[str | bytes],
    keys: dict[int, str | bytes],
    options,
    flow,
    flows_dir: str | None,
    out_dir: str | None,
    skip: Sequence[int] = (),
    flow_entries: dict[str, bytes] | None = None,
):
    """One key interval, as a worker runs it: frames `start..end` (paths or PNG bytes) and the keyframes at its
    ends (offsets into the interval) in, propagated frames out.

    Args:
        start, end: the interval's first and last frame index (keyframes or the video's ends).
        frames: the `end - start + 1` frames, as PNG paths or PNG bytes.
        keys: keyframes by offset from `start`, as PNG paths or PNG bytes.
        options: the `PropagationOptions`.
        flow: a `FlowSpec` (built here, on this task's device) or the caller's estimator object.
        flows_dir: the workspace's flow cache (shared storage), or None (a temporary cache on the worker).
        out_dir: the workspace's propagated folder (shared storage), or None to return the PNG bytes.
        skip: frame indices not to write (kept frames of a neighbouring interval).
        flow_entries: `FlowCache` entries `{key: .npz bytes}` computed by `compute_flows` tasks (no shared storage).

    Returns:
        `(written, flow_files)`: `written` maps each frame index to the path written (shared) or its PNG bytes;
        `flow_files` lists the flow files this task added to `flows_dir`.
    """
    from rerender.flow import FlowCache
    from rerender.propagation import propagate_video_iter, resolve_engine
    from rerender.video import read_image, write_image
    from rerender.workflow.frames import FrameRange, LazyImages

    resolve_engine(options)  # on this worker, named as the config's `propagation.device` (the driver did not check)
    with tempfile.TemporaryDirectory(prefix="rerender-interval-") as scratch:

        def local_path(item: str | bytes, name: str) -> Path:
            if isinstance(item, str):
                return Path(item)
            path = Path(scratch) / name
            path.write_bytes(item)
            return path

        frame_paths = [local_path(item, f"frame{offset:05d}.png") for offset, item in enumerate(frames)]
        key_paths = {offset: local_path(item, f"key{offset:05d}.png") for offset, item in keys.items()}
        flow_files: list[str] = []
        cache = FlowCache(flows_dir or Path(scratch) / "flows", on_save=lambda path: flow_files.append(str(path)))
        if flow_entries:
            cache.directory.mkdir(parents=True, exist_ok=True)
            for key, data in flow_entries.items():
                cache.path(key).write_bytes(data)
        estimator = worker_estimator(flow)

        class _Paths:  # the frames, read on access (what `FrameRange` expects of a WorkspaceFrames)
            def __len__(self) -> int:
                return len(frame_paths)

            def __getitem__(self, index: int):
                return read_image(frame_paths[index])

        stream = propagate_video_iter(
            FrameRange(_Paths(), 0, len(frame_paths)),
            LazyImages(key_paths),
            flow=lambda source, target: cache.get_or_compute(estimator, source, target),
            options=options,
            progress=False,
        )
        written: dict[int, Any] = {}
        with contextlib.closing(stream):  # a write error stops the propagation threads at once
            for offset, image in stream:
                index = start + offset
                if index in skip:
                    continue
                if out_dir is not None:
                    written[index] = str(write_image(image, Path(out_dir) / f"{index:04d}.png"))
                else:
                    written[index] = _encode_png(image)
        return written, (flow_files if flows_dir else [])


def model_key(config, flow: Any) -> str:
    """What a keyframe actor loads, as a key: the model and ControlNet sections, the renderer choice and the flow
    estimator (an actor is reused by a later run with the same key)."""
    from rerender.config import config_to_dict

    data = config_to_dict(config)
    return repr((data["model"], data["control"], flow if isinstance(flow, FlowSpec) else id(flow)))


class _Placeholders(Sequence[Any]):
    """`done` as the built-in renderers use it: only its length (how many keyframes are finished) travels."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        raise TypeError("a keyframe actor receives the number of finished keyframes, not their images")


def on_assigned_gpu(config, gpu_ids: Sequence[Any]):
    """The config a keyframe actor loads its model with: a `model.device` naming one GPU ("cuda:N", chosen on the
    driver's machine) becomes "cuda", the GPU Ray gave the actor, which it sees alone as cuda:0 (Ray sets
    CUDA_VISIBLE_DEVICES); without a GPU from Ray, or with any other device, the config as it is."""
    import dataclasses

    device = config.model.device
    if not gpu_ids or not isinstance(device, str) or not device.startswith("cuda:"):
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, device="cuda"))


class KeyframeWorker:
    """The keyframe renderer inside a Ray actor, whole from its constructor arguments: Ray replays only the
    constructor when it restarts a dead actor, so everything a render needs is built here (the diffusion pipeline,
    loaded once) or passed with each `render` call (the run's config, control maps, frames).

    Args:
        config: the config whose model, ControlNets and renderer choice the actor loads (`model_key`).
        flow: a `FlowSpec`, built here on the actor's device when a fusion first needs it, or the caller's
            estimator object.
    """

    def __init__(self, config, flow: Any) -> None:
        import ray

        from rerender.workflow.renderers import DiffusionRenderer, choose_renderer

        config = on_assigned_gpu(config, ray.get_gpu_ids())
        self.flow, self._estimator = flow, None
        renderer = choose_renderer(config, None, None, None)  # "auto" falls back to classic here, as locally
        self.pipeline = renderer.pipeline if isinstance(renderer, DiffusionRenderer) else None
        self.name = renderer.name
        self.pipelines_loaded = int(self.pipeline is not None)
        self.last_render = {"rendered": 0, "cancelled": False}

    def renderer_name(self) -> str:
        """The renderer this actor runs ("diffusion" or "classic")."""
        return self.name

    def stats(self) -> dict:
        """Pipelines loaded so far, the GPUs Ray gave this worker, and what the last `render` did."""
        import ray

        return {
            "pipelines_loaded": self.pipelines_loaded,
            "gpu_ids": list(ray.get_gpu_ids()),
            "last_render": dict(self.last_render),
        }

    @property
    def estimator(self):
        if self._estimator is None:
            self._estimator = worker_estimator(self.flow)
        return self._estimator

    def render(self, config, control_maps, frames, indices, done: int, state_dir: str):
        """Yield the keyframes after the `done` finished ones (`KeyframeRenderer.render`), stopping between
        keyframes, or between denoising steps, once the driver cancels the stream (`ray.cancel`): a cancelled run
        writes no later resume state."""
        import ray

        from rerender.workflow.renderers import ClassicRenderer, DiffusionRenderer

        context = ray.get_runtime_context()
        self.last_render = {"rendered": 0, "cancelled": False}
        if self.pipeline is not None:
            renderer = DiffusionRenderer(self.pipeline, config, self.estimator, control_maps)
        else:
            renderer = ClassicRenderer(config.prompt.prompt)

        def stop_if_cancelled(done_units: int = 0, total_units: int = 0) -> None:
            if context.is_canceled():
                self.last_render["cancelled"] = True
                raise _Cancelled

        try:
            for image in renderer.render(
                frames, indices, _Placeholders(done), Path(state_dir), on_progress=stop_if_cancelled
            ):
                stop_if_cancelled()
                self.last_render["rendered"] += 1
                yield image
                stop_if_cancelled()
        except _Cancelled:
            return


class _Cancelled(Exception):
    """Raised inside a keyframe actor to leave the renderer at once when the driver cancelled the stream."""


def _start(actor, *arguments):
    """Start an actor's `render` now (segments render at once) and return its stream of keyframe references."""
    return actor.render.options(num_returns="streaming").remote(*arguments)


def _fetch(stream):
    """The keyframes of a `_start`ed stream, one by one; the stream is cancelled when the caller stops early
    (cancel, an error), so the actor stops between keyframes."""
    import ray

    try:
        for reference in stream:
            yield ray.get(reference)
    finally:
        ray.cancel(stream)  # nothing happens when it has finished


class _ActorRenderer:
    """A `KeyframeRenderer` whose `render` runs in a `KeyframeWorker` actor; keyframes stream back one by one
    (progress counts whole keyframes: `on_progress` is not called)."""

    def __init__(self, actor, name: str, config, control_maps) -> None:
        self.actor, self.name, self.config, self.control_maps = actor, name, config, control_maps

    def render(self, frames, indices, done, state_dir, on_progress=None):
        yield from _fetch(
            _start(self.actor, self.config, self.control_maps, list(frames), list(indices), len(done), str(state_dir))
        )


def keyframe_segments(count: int, segments: int) -> list[range]:
    """The keyframes (positions in the chain, the anchor at 0) that each segment renders after the anchor: the
    `count - 1` keyframes after it, split into at most `segments` contiguous runs as even as possible."""
    rest = count - 1
    segments = max(1, min(segments, rest))
    bounds = [1 + rest * part // segments for part in range(segments + 1)]
    return [range(start, stop) for start, stop in zip(bounds, bounds[1:])]


class _SegmentedRenderer:
    """A `KeyframeRenderer` that renders the chain as segments, one per `KeyframeWorker` actor, all at once.

    Segment `j` renders `[anchor] + its keyframes` as a chain of its own: the anchor again (same seed, so the
    same image; a different one is logged), then each keyframe constrained by the anchor and its previous
    keyframe *within the segment*, so a segment's first keyframe follows the anchor alone. Keyframes come back in
    chain order. Each segment keeps its resume state in `state_dir/segment-j`; the seed is the workspace's.
    """

    def __init__(self, actors: Sequence, name: str, config, control_maps) -> None:
        self.actors, self.name = list(actors), f"{name} ({len(actors)} segments)"
        self.config, self.control_maps = config, control_maps

    def render(self, frames, indices, done, state_dir, on_progress=None):
        import ray

        from rerender.workflow.renderers import recorded_seed

        state_dir = Path(state_dir)
        seed = recorded_seed(state_dir)  # one seed for every segment (the config's, when it sets one, wins)
        frames, indices, done = list(frames), list(indices), list(done)
        streams, started = [], []
        for number, (actor, segment) in enumerate(zip(self.actors, keyframe_segments(len(indices), len(self.actors)))):
            if len(done) >= segment.stop:
                continue
            positions = [0, *segment] if number else list(range(segment.stop))
            kept = sum(position < len(done) for position in positions)
            folder = state_dir / f"segment-{number}"
            folder.mkdir(exist_ok=True)
            (folder / "seed.txt").write_text(str(seed))
            started.append(
                _start(
                    actor,
                    self.config,
                    self.control_maps,
                    [frames[position] for position in positions],
                    [indices[position] for position in positions],
                    kept,
                    str(folder),
                )
            )
            # the anchor a later segment renders again is dropped (it was never `done` on a fresh run)
            streams.append((_fetch(started[-1]), number > 0 and not kept))
        try:
            yield from _chain_order(streams, bool(done))
        finally:
            for stream in started:  # every segment stops between keyframes, fetched from or not
                ray.cancel(stream)


def _chain_order(streams, resumed: bool):
    """The segments' keyframes in chain order, each later segment's re-rendered anchor dropped (compared with the
    first segment's: a different one is logged)."""
    anchor = None
    for stream, drop_anchor in streams:
        for position, image in enumerate(stream):
            if drop_anchor and position == 0:
                if anchor is not None and not np.array_equal(image, anchor):
                    logger.warning(
                        "a keyframe segment rendered a different anchor (a non-deterministic "
                        "renderer); its keyframes follow its own anchor"
                    )
                continue
            if anchor is None and not resumed:
                anchor = image
            yield image


class RayExecutor(LocalExecutor):
    """The stages of one video on Ray: frames and flows in chunks and propagation per key interval as tasks on CPU
    workers anywhere in the cluster, keyframes in (GPU) actors (see the module docstring).

    Args:
        address: None or "auto" joins the running cluster (or the Ray instance this process already
            initialised), "local" starts one here, "host:port" names one (checked now: unreachable fails at once).
        shared_storage: the workspace is on a path every node reads (True), or results travel through the
            object store (False).
        num_cpus: CPUs each task asks for.
        max_retries: Ray retries of a task whose worker died.
        chunk_frames: frames per decoding task, and frames per flow task (flow chunks overlap by one frame).
        keyframe_segments: split the keyframe chain into this many segments, each rendered by its own keyframe
            actor (its own GPU): every segment renders the anchor again from the same seed and starts its own
            previous-keyframe chain from it. Faster by up to this factor, at a cost in consistency at the
            joins (see docs/guides/scaling-out.md); 1 (default) renders the single chain of the method.
        propagation_gpus: GPUs each propagation task asks for. None (default): one when the run asks for the
            torch engine on CUDA (`propagation.device: cuda`, or `propagation.engine: torch` with device "auto")
            and the cluster has GPUs, else none (the default engine "auto" then runs numba on CPU workers,
            leaving the GPUs to the keyframe actors); a number asks for that many (a fraction shares a GPU
            between tasks, 0 keeps them on CPUs). Keyframe actors that hold the GPUs the tasks need are
            released first (the next run reloads their model).

    Raises:
        MissingDependencyError: ray is not installed (`pip install "rerender[distributed]"`).
        ConfigError: `address` is malformed (ServiceUnavailableError: unreachable), a bad `num_cpus`, `chunk_frames`,
            `keyframe_segments` or `propagation_gpus`; in `translate`, before any work, more segments than the
            cluster's GPUs (when it has any), or propagation on CUDA (or `propagation_gpus` > 0) on a cluster
            without GPUs.

    Example:
        >>> import rerender
        >>> from rerender.workflow.executors import RayExecutor
        >>> rerender.translate("long.mp4", "an oil painting", executor=RayExecutor("auto"))  # doctest: +SKIP
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        shared_storage: bool = True,
        num_cpus: float = 1,
        max_retries: int = 3,
        chunk_frames: int = 32,
        keyframe_segments: int = 1,
        propagation_gpus: float | None = None,
    ) -> None:
        import_ray()
        if address not in (None, "auto", "local"):
            check_reachable(address, name="address")
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or not 0 < num_cpus < float("inf"):
            raise ConfigError(f"`num_cpus` must be a number > 0, got {num_cpus!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < -1:
            raise ConfigError(f"`max_retries` must be an integer ≥ -1 (-1: retry without end), got {max_retries!r}")
        if not isinstance(shared_storage, bool):
            raise ConfigError(f"`shared_storage` must be True or False, got {shared_storage!r}")
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 2:
            raise ConfigError(f"`chunk_frames` must be an integer ≥ 2, got {chunk_frames!r}")
        if isinstance(keyframe_segments, bool) or not isinstance(keyframe_segments, int) or keyframe_segments < 1:
            raise ConfigError(f"`keyframe_segments` must be an integer ≥ 1, got {keyframe_segments!r}")
        if propagation_gpus is not None and (
            isinstance(propagation_gpus, bool)
            or not isinstance(propagation_gpus, (int, float))
            or not 0 <= propagation_gpus < float("inf")  # NaN and inf too (int(inf) would raise below)
            or (propagation_gpus > 1 and propagation_gpus != int(propagation_gpus))
        ):
            raise ConfigError(
                "`propagation_gpus` must be None (automatic), 0, a fraction of one GPU or a whole number of GPUs, "
                f"got {propagation_gpus!r}"
            )
        self.address = address
        self.shared_storage = shared_storage
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.chunk_frames = chunk_frames
        self.keyframe_segments = keyframe_segments
        self.propagation_gpus = propagation_gpus
        self._keyframe_workers: list = []
        self._keyframe_key: str | None = None
        self._keyframe_flow: Any = None

    def _connect(self):
        ray = import_ray()
        if not ray.is_initialized():
            connect_ray(self.address or "auto", name="address")
        return ray

    def check(self, config) -> None:
        """Connect to the cluster, and refuse more keyframe segments than it has GPUs (when it has any and the
        renderer is not "classic"): the extra actors would wait forever; and propagation on CUDA
        (`propagation.device: cuda`, or `propagation_gpus` above the cluster's GPUs) on a cluster without them."""
        ray = self._connect()
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        if config.model.renderer != "classic" and 1 <= cluster_gpus < self.keyframe_segments:
            raise ConfigError(
                f"`keyframe_segments` is {self.keyframe_segments} but the cluster has "
                f"{cluster_gpus:g} GPUs; use at most {int(cluster_gpus)}"
            )
        settings = config.propagation
        if self.propagation_gpus is not None and self.propagation_gpus > cluster_gpus:
            asked = f"`propagation_gpus` is {self.propagation_gpus:g}"
        elif self.propagation_gpus is None and settings.device == "cuda" and settings.engine != "numba":
            asked = "`propagation.device` is 'cuda'" if cluster_gpus < 1 else ""
        else:
            asked = ""
        if asked:
            raise ConfigError(
                f"{asked} but the Ray cluster has {cluster_gpus:g} GPUs; add GPU nodes, or propagate on CPUs "
                "(`propagation.device: cpu`, `propagation.engine: numba` or `propagation_gpus=0`)"
            )

    def propagation_task_gpus(self, config, cluster_gpus: float | None = None) -> float:
        """The GPUs each propagation task asks for (see `propagation_gpus`): the option when set, else 1 when
        `config.propagation` asks for the torch engine on CUDA and the cluster (`cluster_gpus`, default: asked
        now) has a GPU, else 0."""
        if self.propagation_gpus is not None:
            return float(self.propagation_gpus)
        settings = config.propagation
        on_cuda = settings.device == "cuda" or (settings.engine == "torch" and settings.device == "auto")
        if not on_cuda or settings.engine == "numba":
            return 0.0
        if cluster_gpus is None:
            cluster_gpus = self._connect().cluster_resources().get("GPU", 0)
        return 1.0 if cluster_gpus >= 1 else 0.0

    def _free_gpus_for_propagation(self, ray, gpus: float) -> None:
        """Release the keyframe actors when they hold the GPUs a propagation task needs (they would wait forever)."""
        if gpus and self._keyframe_workers and ray.available_resources().get("GPU", 0) < gpus:
            logger.info(
                "releasing the keyframe actors' GPUs for the propagation tasks; the next run reloads the model"
            )
            for actor in self._keyframe_workers:
                ray.kill(actor)
            self._keyframe_workers, self._keyframe_key = [], None

    def keyframe_workers(self, config, count: int | None = None, flow: Any = None) -> list:
        """The keyframe actors, one per segment (`count` of them, default `keyframe_segments`), started at first use
        (`num_gpus=1` each when the cluster has a GPU and the renderer is not "classic") and kept for later runs that
        load the same model (`model_key`); a run with another model replaces them.

        Args:
            config: the run's config (its model, ControlNets and renderer choice).
            count: how many actors.
            flow: the flow estimator the actors use (`FlowSpec`; None = the one `config.flow` names).

        Raises:
            ConfigError: the cluster has GPUs, but fewer than `keyframe_segments`.
        """
        ray = self._connect()
        wanted = self.keyframe_segments if count is None else count
        flow = FlowSpec.from_config(config) if flow is None else flow
        key = model_key(config, flow)
        if self._keyframe_workers and key != self._keyframe_key:
            for actor in self._keyframe_workers:  # another model: free the GPUs for the new actors
                ray.kill(actor)
            self._keyframe_workers = []
        if not self._keyframe_workers:
            self.check(config)
        self._keyframe_key = key
        if len(self._keyframe_workers) < wanted:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and config.model.renderer != "classic" else 0
            # num_cpus=0: a live actor reserves no CPU, so it can never starve the propagation tasks of a
            # small cluster (it works only while the keyframes render, before propagation starts). The actor is
            # whole from its constructor arguments, which Ray replays when it restarts one (max_restarts).
            actor = ray.remote(
                num_cpus=0, num_gpus=gpus, max_restarts=self.max_retries, max_task_retries=self.max_retries
            )(KeyframeWorker)
            # by value, not `ray.put`: a restart replays the constructor with its arguments, which must outlive
            # this call (Ray inlines small arguments in the actor's creation task)
            self._keyframe_workers += [actor.remote(config, flow) for _ in range(wanted - len(self._keyframe_workers))]
        return self._keyframe_workers[:wanted]

    def keyframe_worker(self, config):
        """The (first) keyframe actor (see `keyframe_workers`)."""
        return self.keyframe_workers(config, flow=self._keyframe_flow)[0]

    def shipped_flow(self, ctx: StageContext) -> Any:
        """What travels to workers for optical flow: the configured estimator as a `FlowSpec` (each worker builds it
        on its own device), or the caller's estimator object when it can travel (else the spec, with a warning)."""
        if ctx.optical_flow is None:
            return ctx.flow_spec
        import ray

        try:
            ray.cloudpickle.dumps(ctx.optical_flow)
        except Exception as error:  # noqa: BLE001 - any pickling failure: the workers build the configured one
            logger.warning(
                "the flow estimator %s cannot travel to Ray workers (%s); they build the configured one (%s)",
                type(ctx.optical_flow).__name__,
                error,
                ctx.flow_spec.name,
            )
            return ctx.flow_spec
        return ctx.optical_flow

    def keyframe_renderer(self, ctx: StageContext, control_maps: Any, keyframe_count: int | None = None):
        """A renderer whose keyframes are rendered by the keyframe actor(s) (see the module docstring): at most one
        segment per keyframe after the anchor (`keyframe_count` − 1), so no actor loads a model for nothing."""
        ray = self._connect()
        segments = self.keyframe_segments
        if keyframe_count is not None:
            segments = max(1, min(segments, keyframe_count - 1))
        self._keyframe_flow = self.shipped_flow(ctx)
        actors = self.keyframe_workers(ctx.config, segments, self._keyframe_flow)
        name = ray.get(actors[0].renderer_name.remote())
        if len(actors) == 1:
            return _ActorRenderer(actors[0], name, ctx.config, control_maps)
        return _SegmentedRenderer(actors, name, ctx.config, control_maps)

    def write_frames(self, ctx: StageContext) -> None:
        """Decode the selected frames in chunks of `chunk_frames`, one Ray task each; the driver records the files
        (or writes the PNG bytes that came back) as chunks finish. An image folder without shared storage is
        decoded here."""
        import dataclasses

        from rerender.errors import RerenderError
        from rerender.video import atomic_output

        space, info, count = ctx.workspace, ctx.info, ctx.count
        if info.is_image_sequence and not self.shared_storage:
            return super().write_frames(ctx)
        ray = self._connect()
        space.frames_dir.mkdir(exist_ok=True)
        path = Path(ctx.video).resolve()
        shipped_video = str(path) if self.shared_storage else ray.put((path.suffix, path.read_bytes()))
        shipped_info, shipped_config = ray.put(dataclasses.replace(info, path=path)), ray.put(ctx.config)
        out_dir = str(space.frames_dir.resolve()) if self.shared_storage else None
        task = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries)(extract_frames)
        for position in range(count):  # recorded as ours before any worker writes one (as `stages.write_frames` does)
            space.track(space.frame_path(position))
        pending = {
            task.remote(
                shipped_video, shipped_info, shipped_config, first, min(first + self.chunk_frames, count), out_dir
            ): first
            for first in range(0, count, self.chunk_frames)
        }
        written = 0
        bar = ctx.progress.bar(count, "frames")
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                pending.pop(ready[0])
                for position, item in sorted(ray.get(ready[0]).items()):
                    target = space.track(space.frame_path(position))
                    if isinstance(item, bytes):
                        with atomic_output(target) as temporary:
                            temporary.write_bytes(item)
                    written += 1
                bar.update(written - bar.n)
                ctx.progress.notify("frames", written, count)
        finally:
            for reference in pending:
                ray.cancel(reference)
            bar.close()
        if written != count:
            raise RerenderError(f"decoded {written} of {count} frames of {info.path.name}; the file may be truncated")

    def propagate(self, ctx: StageContext, frames, keyframe_indices, intervals, key_path=None) -> None:
        """Propagate the key `intervals` as Ray tasks, one per interval, each started when the flow chunks it needs
        are done (see the module docstring); the driver records each finished interval in the `IntervalLedger`."""
        from rerender.workflow.frames import FolderFrames, WorkspaceFrames
        from rerender.workflow.stages import propagation_options

        space, count = ctx.workspace, len(frames)
        ray = self._connect()
        if isinstance(frames, FolderFrames) and not isinstance(frames, WorkspaceFrames):
            frame_path = lambda index: frames.folder / f"{index:04d}.png"  # noqa: E731 - source-size frames
        elif isinstance(frames, WorkspaceFrames):
            frame_path = space.frame_path
        else:
            raise ConfigError(f"RayExecutor propagates frames stored as files, got {type(frames).__name__}")
        key_path = key_path or space.keyframe_path
        space.propagated_dir.mkdir(exist_ok=True)
        space.flows_dir.mkdir(exist_ok=True)
        ledger = IntervalLedger(space)
        todo = ledger.digests(keyframe_indices, count) if intervals is None else intervals
        ledger.forget(list(todo))  # first: an interrupted run must not leave a stale record
        reused = ledger.kept(keyframe_indices, count, list(todo))
        # the workers check the engine on their own device (this driver may have no GPU)
        gpus = self.propagation_task_gpus(ctx.config)
        self._free_gpus_for_propagation(ray, gpus)
        shipped = _Shipped(ray, self, ctx, propagation_options(ctx.config, check_engine=False), gpus)
        flow_chunks = self._flow_tasks(shipped, frame_path, todo, count)
        pending, chunk_files = {}, {}
        size = self.chunk_frames
        for start, end in sorted(todo):
            keys = {
                index - start: shipped.source(key_path(index)) for index in keyframe_indices if start <= index <= end
            }
            skip = sorted(index for index in range(start, end + 1) if index in reused)
            chunk_results = (
                [flow_chunks[chunk] for chunk in range(start // size, (end - 1) // size + 1)] if end > start else []
            )
            reference = shipped.interval_task.remote(
                start,
                end,
                [shipped.source(frame_path(index)) for index in range(start, end + 1)],
                keys,
                shipped.options,
                shipped.flow,
                shipped.flows_dir,
                str(space.propagated_dir.resolve()) if self.shared_storage else None,
                skip,
                *[entries for _, entries in chunk_results],
            )
            pending[reference] = (start, end)
            chunk_files[reference] = [files for files, _ in chunk_results]
        try:
            self._collect(
                ctx,
                ledger,
                todo,
                pending,
                chunk_files,
                count,
                len(reused | set(keyframe_indices)),
                reused | set(keyframe_indices),
            )
        finally:
            for reference in [*pending, *(pair[0] for pair in flow_chunks.values())] if pending else ():
                ray.cancel(reference)

    def _flow_tasks(self, shipped: _Shipped, frame_path, todo, count: int) -> dict:
        """The flows first, in chunks of `chunk_frames` frames overlapping by one (chunk c holds the pairs
        c·n … c·n + n − 1), only those the pending intervals need; each interval task waits for its chunks."""
        size = self.chunk_frames
        needed = sorted({pair // size for start, end in todo for pair in range(start, end)})
        return {
            chunk: shipped.flow_task.remote(
                [
                    shipped.source(frame_path(index))
                    for index in range(chunk * size, min((chunk + 1) * size, count - 1) + 1)
                ],
                shipped.flow,
                shipped.flows_dir,
            )
            for chunk in needed
        }

    def _collect(
        self,
        ctx: StageContext,
        ledger: IntervalLedger,
        todo,
        pending: dict,
        chunk_files: dict,
        count: int,
        done: int,
        counted: set[int],
    ) -> None:
        """Write (or record) each interval's frames and flow files as its task finishes, and record the interval."""
        from rerender.video import atomic_output

        ray, space = import_ray(), ctx.workspace
        bar = ctx.progress.bar(count, "propagation", initial=done)
        ctx.progress.notify("propagation", done, count)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                start, end = pending.pop(ready[0])
                written, flow_files = ray.get(ready[0])
                flow_files = [*flow_files, *(name for files in ray.get(chunk_files.pop(ready[0])) for name in files)]
                for index, item in sorted(written.items()):
                    path = space.track(space.propagated_path(index))
                    if isinstance(item, bytes):
                        with atomic_output(path) as temporary:
                            temporary.write_bytes(item)
                for name in flow_files:
                    space.track(space.flows_dir / Path(name).name)
                ledger.record((start, end), todo[(start, end)])
                new = set(written) - counted
                counted |= set(written)
                bar.update(len(new))
                done += len(new)
                ctx.progress.notify("propagation", done, count)
        finally:
            bar.close()


class _Shipped:
    """What the propagation tasks of one run share, put in the object store once."""

    def __init__(self, ray, executor: RayExecutor, ctx: StageContext, options, gpus: float = 0.0) -> None:
        self.shared_storage = executor.shared_storage
        self.flow = ray.put(executor.shipped_flow(ctx))
        self.options = ray.put(options)
        self.flows_dir = str(ctx.workspace.flows_dir.resolve()) if executor.shared_storage else None
        # a task given a GPU sees it (Ray sets CUDA_VISIBLE_DEVICES), so "auto" resolves to torch on CUDA there
        self.interval_task = ray.remote(num_cpus=executor.num_cpus, num_gpus=gpus, max_retries=executor.max_retries)(
            _propagate_after_flows
        )
        self.flow_task = ray.remote(num_cpus=executor.num_cpus, max_retries=executor.max_retries, num_returns=2)(
            compute_flows
        )

    def source(self, path: Path):
        """A file as a task reads it: its path (shared storage) or its bytes (through the object store)."""
        return str(Path(path).resolve()) if self.shared_storage else Path(path).read_bytes()
