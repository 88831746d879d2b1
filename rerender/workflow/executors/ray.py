"""`RayExecutor`: the stages of one long video on a Ray cluster (see `rerender.workflow.executors`), its Ray tasks
and actors, and the helpers that import Ray and connect to a cluster."""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rerender.errors import ConfigError, MissingDependencyError
from rerender.workflow.executors import Executor

logger = logging.getLogger(__name__)

__all__ = ["RayExecutor", "KeyframeWorker", "keyframe_segments", "import_ray", "check_reachable", "connect_ray"]


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "running on Ray needs the `ray` package; install it with: pip install \"rerender[distributed]\""
        ) from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, before Ray's long connection retries, when a `host:port` cluster address does not answer."""
    text = address.split("://", 1)[-1].rstrip("/")
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ConfigError(f"`ray`: {address!r} is not 'local', 'auto' or a cluster address host:port (or ray://host:port)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise ConfigError(
            f"`ray`: the cluster address {address!r} is unreachable ({error.strerror or error}); check that the head "
            "node runs (`ray start --head`) and the port is open, or use 'local' (--ray local) to start Ray here"
        ) from None


def connect_ray(ray_address: str) -> bool:
    """Connect to Ray: "local" starts an instance here, "auto" joins the running cluster, else an address.

    Returns:
        Whether this call started the connection (and so should shut it down); False when Ray was already
        initialised by the caller (its cluster is used as it is).

    Raises:
        MissingDependencyError: ray is not installed.
        ConfigError: an unreachable address, or "auto" with no running cluster.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if ray_address == "local":
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        return True
    if ray_address != "auto":
        check_reachable(ray_address)
    try:
        ray.init(address=ray_address, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as error:
        if ray_address == "auto":  # Ray's own message names its `--address` flag, which is not ours
            raise ConfigError("`ray`: 'auto' found no running Ray cluster on this machine (nor RAY_ADDRESS); start one "
                              "with `ray start --head`, name one as host:port, or use 'local' to start one for this run"
                              ) from None
        raise ConfigError(f"`ray`: cannot join the cluster {ray_address!r}: {error}") from None
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
        frames = read_frames(video, start=begin, end=end, stride=settings.frame_stride,
                             crop=(crop.left, crop.top, crop.right, crop.bottom), resolution=settings.resolution,
                             resize_side=settings.resize_side, size_multiple=settings.size_multiple,
                             info=dataclasses.replace(info, path=Path(video)), seek=True)
        written: dict[int, Any] = {}
        for position, frame in enumerate(frames, start=first):
            if out_dir is not None:
                written[position] = str(write_image(frame, Path(out_dir) / f"{position:04d}.png"))
            else:
                written[position] = _encode_png(frame)
        return written


def compute_flows(frames: Sequence[str | bytes], estimator, config, flows_dir: str | None):
    """The flows of consecutive frames (`frames[i]` → `frames[i + 1]`), as a worker computes a chunk of them; chunks
    overlap by one frame, so together they give every pair propagation asks for.

    Args:
        frames: consecutive frames, as PNG paths or PNG bytes.
        estimator: a flow estimator, or None to load the one `config` names.
        config: the run's `RerenderConfig`.
        flows_dir: the workspace's flow cache (shared storage; pairs already there are not computed again), or
            None to return the entries.

    Returns:
        `(flow_files, entries)`: the files this task added to `flows_dir`, and (without shared storage) the
        `FlowCache` entries `{key: .npz bytes}` for the propagation tasks that need them.
    """
    from rerender.flow import FlowCache
    from rerender.workflow.stages import flow_estimator_from_config
    from rerender.video import read_image

    with tempfile.TemporaryDirectory(prefix="rerender-flows-") as scratch:
        flow_files: list[str] = []
        cache = FlowCache(flows_dir or Path(scratch), on_save=lambda path: flow_files.append(str(path)))
        estimator = estimator or flow_estimator_from_config(config)

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


def _propagate_after_flows(start, end, frames, keys, options, estimator, config, flows_dir, out_dir, skip,
                           *flow_chunks: dict[str, bytes]):
    """`propagate_interval` once the flow chunks it needs are done (Ray passes their entries in, which seed the
    task's own flow cache when there is no shared storage; with shared storage they are empty)."""
    entries = {key: data for chunk_entries in flow_chunks for key, data in chunk_entries.items()}
    return propagate_interval(start, end, frames, keys, options, estimator, config, flows_dir, out_dir, skip, entries)


def propagate_interval(start: int, end: int, frames: Sequence[str | bytes], keys: dict[int, str | bytes], options,
                       estimator, config, flows_dir: str | None, out_dir: str | None, skip: Sequence[int] = (),
                       flow_entries: dict[str, bytes] | None = None):
    """One key interval, as a worker runs it: frames `start..end` (paths or PNG bytes) and the keyframes at its
    ends (offsets into the interval) in, propagated frames out.

    Args:
        start, end: the interval's first and last frame index (keyframes or the video's ends).
        frames: the `end - start + 1` frames, as PNG paths or PNG bytes.
        keys: keyframes by offset from `start`, as PNG paths or PNG bytes.
        options: the `PropagationOptions`.
        estimator: a flow estimator, or None to load the one `config` names.
        config: the run's `RerenderConfig`.
        flows_dir: the workspace's flow cache (shared storage), or None (a temporary cache on the worker).
        out_dir: the workspace's propagated folder (shared storage), or None to return the PNG bytes.
        skip: frame indices not to write (kept frames of a neighbouring interval).
        flow_entries: `FlowCache` entries `{key: .npz bytes}` computed by `compute_flows` tasks (no shared storage).

    Returns:
        `(written, flow_files)`: `written` maps each frame index to the path written (shared) or its PNG bytes;
        `flow_files` lists the flow files this task added to `flows_dir`.
    """
    from rerender.flow import FlowCache
    from rerender.propagation import propagate_video_iter
    from rerender.workflow.frames import FrameRange, LazyImages
    from rerender.workflow.stages import flow_estimator_from_config
    from rerender.video import read_image, write_image

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
        estimator = estimator or flow_estimator_from_config(config)

        class _Paths:  # the frames, read on access (what `FrameRange` expects of a WorkspaceFrames)
            def __len__(self) -> int:
                return len(frame_paths)

            def __getitem__(self, index: int):
                return read_image(frame_paths[index])

        stream = propagate_video_iter(FrameRange(_Paths(), 0, len(frame_paths)), LazyImages(key_paths),
                                      flow=lambda source, target: cache.get_or_compute(estimator, source, target),
                                      options=options, progress=False)
        written: dict[int, Any] = {}
        for offset, image in stream:
            index = start + offset
            if index in skip:
                continue
            if out_dir is not None:
                written[index] = str(write_image(image, Path(out_dir) / f"{index:04d}.png"))
            else:
                written[index] = _encode_png(image)
        return written, (flow_files if flows_dir else [])


class KeyframeWorker:
    """The keyframe renderer inside a Ray actor: the diffusion pipeline is loaded once, at the first `prepare`,
    and reused by every later one with the same model and ControlNet settings."""

    def __init__(self) -> None:
        self.pipeline, self.model_key, self.renderer, self.pipelines_loaded = None, None, None, 0

    def prepare(self, config, estimator, control_maps) -> str:
        """Build the renderer for `config` (reusing the loaded pipeline); returns its name."""
        from rerender.config import config_to_dict
        from rerender.workflow.renderers import DiffusionRenderer, choose_renderer

        data = config_to_dict(config)
        key = repr((data["model"], data["control"]))
        if self.pipeline is not None and key == self.model_key and config.model.renderer != "classic":
            self.renderer = DiffusionRenderer(self.pipeline, config, estimator, control_maps)
        else:
            self.renderer = choose_renderer(config, None, estimator, control_maps)
            if isinstance(self.renderer, DiffusionRenderer):
                self.pipeline, self.model_key = self.renderer.pipeline, key
                self.pipelines_loaded += 1
        return self.renderer.name

    def stats(self) -> dict:
        """Pipelines loaded so far and the GPUs Ray gave this worker."""
        import ray

        return {"pipelines_loaded": self.pipelines_loaded, "gpu_ids": list(ray.get_gpu_ids())}

    def render(self, frames, indices, done, state_dir: str):
        yield from self.renderer.render(frames, indices, done, Path(state_dir))


class _ActorRenderer:
    """A `KeyframeRenderer` whose `render` runs in a `KeyframeWorker` actor; keyframes stream back one by one."""

    def __init__(self, actor, name: str) -> None:
        self.actor, self.name = actor, name

    def render(self, frames, indices, done, state_dir):
        import ray

        stream = self.actor.render.options(num_returns="streaming").remote(list(frames), list(indices), list(done), str(state_dir))
        for reference in stream:
            yield ray.get(reference)


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

    def __init__(self, actors: Sequence, name: str) -> None:
        self.actors, self.name = list(actors), f"{name} ({len(actors)} segments)"

    def render(self, frames, indices, done, state_dir):
        import ray

        from rerender.workflow.renderers import recorded_seed

        state_dir = Path(state_dir)
        seed = recorded_seed(state_dir)  # one seed for every segment (the config's, when it sets one, wins)
        frames, indices, done = list(frames), list(indices), list(done)
        streams = []
        for number, (actor, segment) in enumerate(zip(self.actors, keyframe_segments(len(indices), len(self.actors)))):
            if len(done) >= segment.stop:
                continue
            positions = [0, *segment] if number else list(range(segment.stop))
            kept = [done[position] for position in positions if position < len(done)]
            folder = state_dir / f"segment-{number}"
            folder.mkdir(exist_ok=True)
            (folder / "seed.txt").write_text(str(seed))
            stream = actor.render.options(num_returns="streaming").remote(
                [frames[position] for position in positions], [indices[position] for position in positions], kept,
                str(folder))
            # the anchor a later segment renders again is dropped (it was never `done` on a fresh run)
            streams.append((stream, number > 0 and not kept))
        anchor = None
        for stream, drop_anchor in streams:
            for position, reference in enumerate(stream):
                image = ray.get(reference)
                if drop_anchor and position == 0:
                    if anchor is not None and not np.array_equal(image, anchor):
                        logger.warning("a keyframe segment rendered a different anchor (a non-deterministic "
                                       "renderer); its keyframes follow its own anchor")
                    continue
                if anchor is None and not done:
                    anchor = image
                yield image


class RayExecutor(Executor):
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
            joins (see the README's "Scaling out"); 1 (default) renders the single chain of the method.

    Raises:
        MissingDependencyError: ray is not installed (`pip install "rerender[distributed]"`).
        ConfigError: `address` is unreachable or malformed, a bad `num_cpus`, `chunk_frames` or
            `keyframe_segments`; in `translate`, before any work, more segments than the cluster's GPUs (when
            it has any).

    Example:
        >>> import rerender
        >>> from rerender.workflow.executors import RayExecutor
        >>> rerender.translate("long.mp4", "an oil painting", executor=RayExecutor("auto"))  # doctest: +SKIP
    """

    name = "ray"

    def __init__(self, address: str | None = None, shared_storage: bool = True, num_cpus: float = 1,
                 max_retries: int = 3, chunk_frames: int = 32, keyframe_segments: int = 1) -> None:
        import_ray()
        if address not in (None, "auto", "local"):
            check_reachable(address)
        if num_cpus <= 0:
            raise ConfigError(f"`num_cpus` must be > 0, got {num_cpus!r}")
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 2:
            raise ConfigError(f"`chunk_frames` must be an integer ≥ 2, got {chunk_frames!r}")
        if isinstance(keyframe_segments, bool) or not isinstance(keyframe_segments, int) or keyframe_segments < 1:
            raise ConfigError(f"`keyframe_segments` must be an integer ≥ 1, got {keyframe_segments!r}")
        self.address = address
        self.shared_storage = shared_storage
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self.chunk_frames = chunk_frames
        self.keyframe_segments = keyframe_segments
        self._keyframe_workers: list = []

    def _connect(self):
        ray = import_ray()
        if not ray.is_initialized():
            connect_ray(self.address or "auto")
        return ray

    def check(self, config) -> None:
        """Connect to the cluster, and refuse more keyframe segments than it has GPUs (when it has any and the
        renderer is not "classic"): the extra actors would wait forever."""
        ray = self._connect()
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        if config.model.renderer != "classic" and 1 <= cluster_gpus < self.keyframe_segments:
            raise ConfigError(f"`keyframe_segments` is {self.keyframe_segments} but the cluster has "
                              f"{cluster_gpus:g} GPUs; use at most {int(cluster_gpus)}")

    def keyframe_workers(self, config, count: int | None = None) -> list:
        """The keyframe actors, one per segment (`count` of them, default `keyframe_segments`), started at first use
        (`num_gpus=1` each when the cluster has a GPU and the renderer is not "classic") and kept for later runs.

        Raises:
            ConfigError: the cluster has GPUs, but fewer than `keyframe_segments`.
        """
        ray = self._connect()
        wanted = self.keyframe_segments if count is None else count
        if not self._keyframe_workers:
            self.check(config)
        if len(self._keyframe_workers) < wanted:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and config.model.renderer != "classic" else 0
            # num_cpus=0: a live actor reserves no CPU, so it can never starve the propagation tasks of a
            # small cluster (it works only while the keyframes render, before propagation starts)
            actor = ray.remote(num_cpus=0, num_gpus=gpus, max_restarts=self.max_retries,
                               max_task_retries=self.max_retries)(KeyframeWorker)
            self._keyframe_workers += [actor.remote() for _ in range(wanted - len(self._keyframe_workers))]
        return self._keyframe_workers[:wanted]

    def keyframe_worker(self, config):
        """The (first) keyframe actor (see `keyframe_workers`)."""
        return self.keyframe_workers(config)[0]

    def keyframe_renderer(self, config, estimator, control_maps, keyframe_count: int | None = None):
        """A renderer whose keyframes are rendered by the keyframe actor(s) (see the module docstring): at most one
        segment per keyframe after the anchor (`keyframe_count` − 1), so no actor loads a model for nothing."""
        ray = self._connect()
        segments = self.keyframe_segments
        if keyframe_count is not None:
            segments = max(1, min(segments, keyframe_count - 1))
        actors = self.keyframe_workers(config, segments)
        try:
            shipped = ray.put(estimator)
        except Exception:  # noqa: BLE001 - an estimator that cannot travel: the renderer loads the configured one
            shipped = None
        names = ray.get([actor.prepare.remote(config, shipped, control_maps) for actor in actors])
        if len(actors) == 1:
            return _ActorRenderer(actors[0], names[0])
        return _SegmentedRenderer(actors, names[0])

    def write_frames(self, space, video, info, config, count, progress, notify) -> None:
        """Decode the selected frames in chunks of `chunk_frames`, one Ray task each; the driver records the files
        (or writes the PNG bytes that came back) as chunks finish. An image folder without shared storage is
        decoded here."""
        import dataclasses

        from tqdm import tqdm

        from rerender.errors import RerenderError
        from rerender.video import atomic_output

        if info.is_image_sequence and not self.shared_storage:
            return super().write_frames(space, video, info, config, count, progress, notify)
        ray = self._connect()
        space.frames_dir.mkdir(exist_ok=True)
        path = Path(video).resolve()
        shipped_video = str(path) if self.shared_storage else ray.put((path.suffix, path.read_bytes()))
        shipped_info, shipped_config = ray.put(dataclasses.replace(info, path=path)), ray.put(config)
        out_dir = str(space.frames_dir.resolve()) if self.shared_storage else None
        task = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries)(extract_frames)
        for position in range(count):  # recorded as ours before any worker writes one (as `stages.write_frames` does)
            space.track(space.frame_path(position))
        pending = {task.remote(shipped_video, shipped_info, shipped_config, first, min(first + self.chunk_frames, count),
                               out_dir): first for first in range(0, count, self.chunk_frames)}
        written = 0
        bar = tqdm(total=count, desc="frames", unit="frame", disable=not progress)
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
                notify("frames", written, count)
        finally:
            for reference in pending:
                ray.cancel(reference)
            bar.close()
        if written != count:
            raise RerenderError(f"decoded {written} of {count} frames of {info.path.name}; the file may be truncated")

    def propagate(self, space, frames, keyframe_indices, estimator, config, progress, notify, intervals,
                  key_path=None) -> None:
        from tqdm import tqdm

        from rerender.workflow.stages import interval_digests, propagation_options
        from rerender.video import atomic_output

        from rerender.workflow.frames import FolderFrames, WorkspaceFrames

        ray = self._connect()
        if isinstance(frames, FolderFrames):  # source-size frames (`propagation.output_size = "source"`)
            frame_path = lambda index: frames.folder / f"{index:04d}.png"  # noqa: E731
        elif isinstance(frames, WorkspaceFrames):
            frame_path = space.frame_path
        else:
            raise ConfigError(f"RayExecutor propagates frames stored as files, got {type(frames).__name__}")
        key_path = key_path or space.keyframe_path
        options = propagation_options(config)
        space.propagated_dir.mkdir(exist_ok=True)
        space.flows_dir.mkdir(exist_ok=True)
        count = len(frames)
        wanted = interval_digests(space, keyframe_indices, count)
        todo = wanted if intervals is None else intervals
        finished = space.record("propagation").setdefault("intervals", {})
        for start, end in todo:  # forget them first: an interrupted run must not leave a stale record
            finished.pop(f"{start}-{end}", None)
        space.save()
        reused = {index for (start, end) in wanted if (start, end) not in todo for index in range(start, end + 1)}
        try:
            shipped_estimator = ray.put(estimator)
        except Exception:  # noqa: BLE001 - an estimator that cannot travel is loaded on the worker from the config
            shipped_estimator = None
        shipped_config, shipped_options = ray.put(config), ray.put(options)
        task = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries)(_propagate_after_flows)
        flow_task = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries, num_returns=2)(compute_flows)
        flows_dir = str(space.flows_dir.resolve()) if self.shared_storage else None

        def source(path: Path):
            # Ray ships large arguments via its object store
            return str(Path(path).resolve()) if self.shared_storage else Path(path).read_bytes()

        # The flows first, in chunks of `chunk_frames` frames overlapping by one (chunk c holds the pairs
        # c·n … c·n + n − 1), only those the pending intervals need; each interval task waits for its chunks.
        size = self.chunk_frames
        needed = sorted({pair // size for start, end in todo for pair in range(start, end)})
        flow_chunks = {chunk: flow_task.remote([source(frame_path(index)) for index in
                                                range(chunk * size, min((chunk + 1) * size, count - 1) + 1)],
                                               shipped_estimator, shipped_config, flows_dir)
                       for chunk in needed}
        pending, chunk_files = {}, {}
        for start, end in sorted(todo):
            keys = {index - start: source(key_path(index)) for index in keyframe_indices if start <= index <= end}
            skip = sorted(index for index in range(start, end + 1) if index in reused)
            chunk_results = [flow_chunks[chunk] for chunk in range(start // size, (end - 1) // size + 1)] if end > start else []
            reference = task.remote(
                start, end, [source(frame_path(index)) for index in range(start, end + 1)], keys, shipped_options,
                shipped_estimator, shipped_config, flows_dir,
                str(space.propagated_dir.resolve()) if self.shared_storage else None, skip,
                *[entries for _, entries in chunk_results],
            )
            pending[reference] = (start, end)
            chunk_files[reference] = [files for files, _ in chunk_results]
        done = len(reused | set(keyframe_indices))
        bar = tqdm(total=count, initial=done, desc="propagation", unit="frame", disable=not progress)
        notify("propagation", done, count)
        written_frames: set[int] = set()
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
                finished[f"{start}-{end}"] = todo[(start, end)]
                space.save()
                new = set(written) - written_frames - reused - set(keyframe_indices)
                written_frames |= set(written)
                bar.update(len(new))
                done += len(new)
                notify("propagation", done, count)
        finally:
            for reference in [*pending, *(pair[0] for pair in flow_chunks.values())] if pending else ():
                ray.cancel(reference)
            bar.close()
