"""`translate(..., executor=RayExecutor())`: key intervals propagated as Ray tasks give the bytes of a local run,
through a shared workspace or through the object store, and a worker killed mid-propagation is retried."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError
from rerender.video import read_frames
from rerender.workflow.stages import flow_estimator_from_config
from rerender.workflow.translation import translate
from rerender.workflow.workspace import LEDGER_NAME

ray = pytest.importorskip("ray")

from rerender.workflow.executors.ray import RayExecutor, keyframe_segments  # noqa: E402

FAST = dict(
    resolution=64,
    size_multiple=16,
    propagation_preset="fast",
    workers=1,
    flow_estimator="dis",
    dis_preset="fast",
    keyframe_interval=4,
)


class KillsItsWorkerOnce:
    """A flow estimator that ends its worker process the first time any worker calls it (a marker file says
    whether it happened), then behaves as the estimator it wraps."""

    def __init__(self, inner, marker: Path) -> None:
        self.inner, self.marker, self.name = inner, marker, inner.name

    def __call__(self, *args, **kwargs):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # as a lost node or an OOM kill: no exception, the process is gone
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):
        if name == "inner":  # while unpickling, before __dict__ is filled
            raise AttributeError(name)
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import the tests package
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def _propagated(result) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((result.workspace / "propagated").glob("*.png"))}


def test_unreachable_address_fails_at_construction():
    from rerender.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError, match="unreachable"):
        RayExecutor("127.0.0.1:9")


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*")) if path.is_file()}


@pytest.mark.ray
@pytest.mark.slow  # three translate runs on Ray (~40 s); the batch and segment tests keep Ray in the default run
def test_frames_and_flows_in_chunks_on_ray_equal_a_local_run(synthetic_clip, tmp_path, cluster):
    # Chunks of 6 frames (flow chunks 0–6, 6–12, …) cut across the key intervals of K=4 (0–4, 4–8, …).
    local = translate(
        synthetic_clip, "a cartoon", output=tmp_path / "local.mp4", renderer="classic", progress=False, **FAST
    )
    steps = []
    shared = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "shared.mp4",
        renderer="classic",
        progress=False,
        executor=RayExecutor(chunk_frames=6),
        callback=lambda *step: steps.append(step),
        **FAST,
    )
    # and the keyframe chain in 2 segments (the classic stylizer is per frame, so the keyframes stay the same:
    # what this checks is that the segments' keyframes come back in chain order, the re-rendered anchor dropped)
    store = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "store.mp4",
        renderer="classic",
        progress=False,
        executor=RayExecutor(shared_storage=False, chunk_frames=6, keyframe_segments=2),
        **FAST,
    )
    assert store.renderer == "classic (2 segments)" and store.keyframe_indices == local.keyframe_indices
    assert _files(store.workspace / "keyframes") == _files(local.workspace / "keyframes")
    frames = _files(local.workspace / "frames")
    assert len(frames) == 20
    for result in (shared, store):
        assert _files(result.workspace / "frames") == frames
        assert _propagated(result) == _propagated(local)
        assert result.output.read_bytes() == local.output.read_bytes()
    # every consecutive pair's flow, computed by the chunk tasks, is the local run's file, byte for byte
    flows = _files(local.workspace / "flows")
    assert len(flows) == 19 and _files(shared.workspace / "flows") == flows
    assert not list((store.workspace / "flows").iterdir())  # without shared storage they stayed in the object store
    # progress arrives chunk by chunk, in the order the chunks finish (three of 6 frames and one of 2)
    counts = [0] + [done for stage, done, total in steps if stage == "frames"]
    assert counts[-1] == 20 and sorted(b - a for a, b in zip(counts, counts[1:])) == [2, 6, 6, 6]
    # and the workspace records every file the workers wrote as its own
    ledger = set((shared.workspace / LEDGER_NAME).read_text().split())
    assert {f"flows/{name}" for name in flows} | {f"frames/{name}" for name in frames} <= ledger


def test_chunk_size_and_segments_are_checked():
    with pytest.raises(ConfigError, match="chunk_frames"):
        RayExecutor(chunk_frames=1)
    with pytest.raises(ConfigError, match="keyframe_segments"):
        RayExecutor(keyframe_segments=0)


@pytest.mark.parametrize(
    "count, segments, expected",
    [
        (5, 2, [[1, 2], [3, 4]]),
        (6, 2, [[1, 2], [3, 4, 5]]),
        (4, 5, [[1], [2], [3]]),
        (2, 3, [[1]]),
        (7, 1, [[1, 2, 3, 4, 5, 6]]),
    ],
)
def test_keyframe_segments_split_the_chain_after_the_anchor(count, segments, expected):
    parts = [list(part) for part in keyframe_segments(count, segments)]
    assert parts == expected and sum(parts, []) == list(range(1, count))


@pytest.mark.ray
@pytest.mark.slow
def test_ray_propagation_equals_local_and_survives_a_killed_worker(synthetic_clip, tmp_path, cluster):
    local = translate(
        synthetic_clip, "a cartoon", output=tmp_path / "local.mp4", renderer="classic", progress=False, **FAST
    )
    runs = {
        "shared": translate(
            synthetic_clip,
            "a cartoon",
            output=tmp_path / "shared.mp4",
            renderer="classic",
            progress=False,
            executor=RayExecutor(),
            **FAST,
        ),
        "object store": translate(
            synthetic_clip,
            "a cartoon",
            output=tmp_path / "store.mp4",
            renderer="classic",
            progress=False,
            executor=RayExecutor(shared_storage=False),
            **FAST,
        ),
    }
    marker = tmp_path / "killed"
    estimator = KillsItsWorkerOnce(flow_estimator_from_config(apply_overrides(RerenderConfig(), FAST)), marker)
    runs["killed"] = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "killed.mp4",
        renderer="classic",
        progress=False,
        optical_flow=estimator,
        executor=RayExecutor(max_retries=2),
        **FAST,
    )
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker did die
    reference = np.stack(list(read_frames(local.output)))
    assert reference.shape[0] == 20 and len(_propagated(local)) == 20
    for name, result in runs.items():
        assert np.array_equal(np.stack(list(read_frames(result.output))), reference), name
        assert _propagated(result) == _propagated(local), name
        assert result.output.read_bytes() == local.output.read_bytes(), name
    # At the source's size (`output_size="source"`) the tasks read the source-size frames and upscaled keyframes.
    big = {"output_size": "source", **FAST}
    local_big = translate(
        synthetic_clip, "a cartoon", output=tmp_path / "big.mp4", renderer="classic", progress=False, **big
    )
    ray_big = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "big_ray.mp4",
        renderer="classic",
        progress=False,
        executor=RayExecutor(shared_storage=False),
        **big,
    )
    assert np.stack(list(read_frames(ray_big.output))).shape == (20, 64, 96, 3)
    assert (
        _propagated(ray_big) == _propagated(local_big) and ray_big.output.read_bytes() == local_big.output.read_bytes()
    )
    # The object-store run kept no flows (they stay on the workers); the shared run cached them in its workspace.
    assert not list((runs["object store"].workspace / "flows").iterdir())
    assert list((runs["shared"].workspace / "flows").iterdir())


@pytest.mark.ray
def test_segmented_keyframes_resume_after_a_cancel(synthetic_clip, tmp_path, cluster):
    # Cancelled after the anchor and keyframe 4; the rerun keeps them and renders 8 (segment 1) and 12, 16
    # and 19 (segment 2, whose actor renders the anchor again but must not hand it back as a keyframe).
    import threading

    from rerender.errors import CancelledError

    local = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "local.mp4",
        renderer="classic",
        progress=False,
        stage="keyframes",
        **FAST,
    )
    cancel = threading.Event()

    def stop_after_two(stage, done, total):
        if stage == "keyframes" and done == 2:
            cancel.set()

    executor = RayExecutor(keyframe_segments=2)
    output = tmp_path / "segmented.mp4"
    with pytest.raises(CancelledError):
        translate(
            synthetic_clip,
            "a cartoon",
            output=output,
            renderer="classic",
            progress=False,
            stage="keyframes",
            executor=executor,
            cancel=cancel,
            callback=stop_after_two,
            **FAST,
        )
    workspace = tmp_path / "segmented.mp4.work"
    assert sorted(path.name for path in (workspace / "keyframes").glob("*.png")) == ["0000.png", "0004.png"]
    resumed = translate(
        synthetic_clip,
        "a cartoon",
        output=output,
        renderer="classic",
        progress=False,
        stage="keyframes",
        executor=executor,
        **FAST,
    )
    assert resumed.keyframe_indices == local.keyframe_indices == [0, 4, 8, 12, 16, 19]
    assert _files(resumed.workspace / "keyframes") == _files(local.workspace / "keyframes")


@pytest.mark.ray
def test_more_segments_than_keyframes_start_one_actor_per_keyframe(synthetic_clip, tmp_path, cluster):
    # 6 keyframes (K=4 on 20 frames, the last frame included): 5 after the anchor, so 50 segments are 5, not 50
    # actors each loading a model
    executor = RayExecutor(keyframe_segments=50)
    result = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "many.mp4",
        renderer="classic",
        progress=False,
        stage="keyframes",
        executor=executor,
        **FAST,
    )
    assert result.keyframe_indices == [0, 4, 8, 12, 16, 19] and result.renderer == "classic (5 segments)"
    assert len(executor._keyframe_workers) == 5


# --------------------------------------------------------------------------------------------------------
# issue 21: actors whole from their constructor, flow built on the worker, cancel reaches the actor
# --------------------------------------------------------------------------------------------------------

DIFFUSION = dict(
    resolution=64,
    size_multiple=16,
    num_inference_steps=4,
    denoising_strength=0.75,
    vae=None,
    device="cpu",
    dtype="float32",
    added_prompt="",
    negative_prompt="",
    propagation_preset="fast",
    workers=1,
    flow_estimator="dis",
    dis_preset="fast",
    keyframe_interval=4,
    renderer="diffusion",
    seed=0,
)


def _tiny(tiny_pipeline_dir) -> dict:
    return {
        **DIFFUSION,
        "base_model": str(tiny_pipeline_dir),
        "control.0.model": str(tiny_pipeline_dir / "controlnet"),
    }


def _restore_cuda_only(inner):
    import torch

    if not torch.cuda.is_available():  # what torch.load says for a CUDA tensor where no GPU is seen
        raise RuntimeError("Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False")
    return CudaOnlyEstimator(inner)


class CudaOnlyEstimator:
    """A flow estimator living on a GPU: it pickles, but unpickling fails wherever no GPU is seen (the shape of a
    GMFlow estimator loaded on CUDA and shipped by value to a CPU-only task)."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name

    def __call__(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def __reduce__(self):
        return _restore_cuda_only, (self.inner,)


@pytest.mark.ray
def test_the_configured_flow_estimator_is_built_on_each_worker_not_shipped(
    synthetic_clip, tmp_path, cluster, monkeypatch
):
    import rerender.flow

    # on the driver, the configured estimator loads onto "the GPU" (before: it was loaded here and shipped by value;
    # the workers import rerender afresh, so there it is the real one)
    built_here = []
    real_load = rerender.flow.load_flow_estimator

    def on_the_gpu(*args, **kwargs):
        built_here.append(kwargs.get("device"))
        return CudaOnlyEstimator(real_load(*args, **{**kwargs, "device": "cpu"}))

    monkeypatch.setattr(rerender.flow, "load_flow_estimator", on_the_gpu)
    local = translate(
        synthetic_clip, "a cartoon", output=tmp_path / "local.mp4", renderer="classic", progress=False, **FAST
    )
    assert built_here  # the local run does use it
    built_here.clear()
    result = translate(
        synthetic_clip,
        "a cartoon",
        output=tmp_path / "ray.mp4",
        renderer="classic",
        progress=False,
        executor=RayExecutor(shared_storage=False, chunk_frames=8),
        **FAST,
    )
    assert built_here == []  # nothing loaded on the driver for the workers: each built its own, on its device
    assert _propagated(result) == _propagated(local)
    assert result.output.read_bytes() == local.output.read_bytes()


@pytest.mark.ray
@pytest.mark.slow
def test_a_keyframe_actor_killed_mid_chain_restarts_whole_and_renders_the_same(
    synthetic_clip, tmp_path, cluster, tiny_pipeline_dir
):
    # The actor dies (os._exit) at the first flow it computes: during the fusion of the second keyframe. Ray
    # restarts it from its constructor arguments and retries the render (before: its renderer was None).
    settings = _tiny(tiny_pipeline_dir)
    dis = flow_estimator_from_config(apply_overrides(RerenderConfig(), FAST))
    local = translate(
        synthetic_clip,
        "a cat",
        output=None,
        stage="keyframes",
        progress=False,
        optical_flow=dis,
        workspace=tmp_path / "local",
        **settings,
    )
    marker = tmp_path / "killed"
    killed = translate(
        synthetic_clip,
        "a cat",
        output=None,
        stage="keyframes",
        progress=False,
        optical_flow=KillsItsWorkerOnce(dis, marker),
        workspace=tmp_path / "killed-ws",
        executor=RayExecutor(max_retries=2),
        **settings,
    )
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # the actor did die
    assert killed.renderer == "diffusion" and killed.keyframe_indices == local.keyframe_indices == [
        0,
        4,
        8,
        12,
        16,
        19,
    ]
    assert _files(killed.workspace / "keyframes") == _files(local.workspace / "keyframes")


@pytest.mark.ray
@pytest.mark.slow
def test_cancel_stops_the_keyframe_actor_between_keyframes(synthetic_clip, tmp_path, cluster, tiny_pipeline_dir):
    import threading

    from rerender.errors import CancelledError

    settings = _tiny(tiny_pipeline_dir)
    reference = translate(
        synthetic_clip,
        "a cat",
        output=None,
        stage="keyframes",
        progress=False,
        workspace=tmp_path / "reference",
        **settings,
    )
    cancel = threading.Event()

    def stop_after_two(stage, done, total):
        if stage == "keyframes" and done == 2:
            cancel.set()

    executor = RayExecutor()
    workspace = tmp_path / "ws"
    with pytest.raises(CancelledError):
        translate(
            synthetic_clip,
            "a cat",
            output=None,
            stage="keyframes",
            progress=False,
            workspace=workspace,
            executor=executor,
            cancel=cancel,
            callback=stop_after_two,
            **settings,
        )
    config = apply_overrides(RerenderConfig(), settings)
    stats = ray.get(executor.keyframe_worker(config).stats.remote())
    # before: the actor rendered the whole chain (6 keyframes) after the cancel, overwriting the resume state
    assert stats["last_render"]["cancelled"] and stats["last_render"]["rendered"] < 6, stats
    assert sorted(path.name for path in (workspace / "keyframes").glob("*.png")) == ["0000.png", "0004.png"]
    resumed = translate(
        synthetic_clip,
        "a cat",
        output=None,
        stage="keyframes",
        progress=False,
        workspace=workspace,
        executor=executor,
        **settings,
    )
    assert _files(resumed.workspace / "keyframes") == _files(reference.workspace / "keyframes")


def test_only_the_number_of_finished_keyframes_travels_to_the_actor(monkeypatch):
    # before: the finished keyframe images were shipped to the actor, which only counted them
    from rerender.workflow.executors.ray import _ActorRenderer

    sent = []

    class Method:
        def options(self, **options):
            assert options == {"num_returns": "streaming"}
            return self

        def remote(self, *arguments):
            sent.append(arguments)
            return iter(["image"])

    class Actor:
        render = Method()

    monkeypatch.setattr(ray, "get", lambda reference: reference)
    monkeypatch.setattr(ray, "cancel", lambda reference: None)
    done = [np.zeros((48, 64, 3), np.uint8)] * 3
    renderer = _ActorRenderer(Actor(), "classic", "config", "maps")
    assert list(renderer.render(["f"] * 5, [0, 4, 8, 12, 16], done, "state")) == ["image"]
    assert sent == [("config", "maps", ["f"] * 5, [0, 4, 8, 12, 16], 3, "state")]
