"""The keyframe actor of `RayExecutor` on a cluster that declares one logical GPU: it is placed there, loads the
tiny diffusion pipeline once for two runs, and gives the keyframes and video of a local run. With two logical
GPUs, the chain split in two segments: one actor per GPU, each segment a chain of its own from the shared anchor."""

from __future__ import annotations

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError
from rerender.workflow.translation import translate

ray = pytest.importorskip("ray")

from rerender.workflow.executors import RayExecutor  # noqa: E402

SETTINGS = dict(
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
    keyframe_interval=8,
    renderer="diffusion",
)


@pytest.mark.ray
@pytest.mark.slow
def test_keyframe_actor_on_a_logical_gpu_loads_once_and_matches_local(synthetic_clip, tmp_path, tiny_pipeline_dir):
    config = apply_overrides(
        RerenderConfig(),
        {**SETTINGS, "base_model": str(tiny_pipeline_dir), "control.0.model": str(tiny_pipeline_dir / "controlnet")},
    )
    local = translate(synthetic_clip, "a cat", output=tmp_path / "local.mp4", config=config, progress=False)
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}},
    )
    try:
        executor = RayExecutor()
        first = translate(
            synthetic_clip, "a cat", output=tmp_path / "ray.mp4", config=config, progress=False, executor=executor
        )
        second = translate(
            synthetic_clip, "a dog", output=tmp_path / "dog.mp4", config=config, progress=False, executor=executor
        )
        stats = ray.get(executor.keyframe_worker(config).stats.remote())
    finally:
        ray.shutdown()
    # on the (logical) GPU, loaded once for both runs
    assert (stats["pipelines_loaded"], stats["gpu_ids"]) == (1, [0]) and stats["last_render"]["rendered"] == 3
    assert first.renderer == second.renderer == "diffusion" and first.keyframe_indices == [0, 8, 19]
    for index in first.keyframe_indices:
        assert (first.workspace / "keyframes" / f"{index:04d}.png").read_bytes() == (
            local.workspace / "keyframes" / f"{index:04d}.png"
        ).read_bytes()
    assert first.output.read_bytes() == local.output.read_bytes()
    assert (second.workspace / "keyframes" / "0008.png").read_bytes() != (
        first.workspace / "keyframes" / "0008.png"
    ).read_bytes()


@pytest.mark.ray
@pytest.mark.slow
def test_two_keyframe_segments_on_two_logical_gpus_restart_the_chain_from_the_anchor(
    synthetic_clip, tmp_path, tiny_pipeline_dir
):
    # the plain 0, K, 2K, … chain (last_frame_keyframe=False): segments 4, 8 | 12, 16
    config = apply_overrides(
        RerenderConfig(),
        {
            **SETTINGS,
            "keyframe_interval": 4,
            "last_frame_keyframe": False,
            "base_model": str(tiny_pipeline_dir),
            "control.0.model": str(tiny_pipeline_dir / "controlnet"),
        },
    )
    single = translate(
        synthetic_clip, "a cat", output=tmp_path / "single.mp4", config=config, stage="keyframes", progress=False
    )
    assert single.keyframe_indices == [0, 4, 8, 12, 16]  # segments: 4, 8 | 12, 16
    # what the second segment must be: a chain of its own, [anchor, 12, 16]
    second_chain = translate(
        synthetic_clip,
        "a cat",
        output=tmp_path / "second.mp4",
        config=config,
        stage="keyframes",
        progress=False,
        keyframe_mode="explicit",
        keyframe_indices=[0, 12, 16],
    )
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}},
    )
    try:
        one = translate(
            synthetic_clip,
            "a cat",
            output=tmp_path / "one.mp4",
            config=config,
            stage="keyframes",
            progress=False,
            executor=RayExecutor(keyframe_segments=1),
        )
        executor = RayExecutor(keyframe_segments=2)
        segmented = translate(
            synthetic_clip,
            "a cat",
            output=tmp_path / "segmented.mp4",
            config=config,
            stage="keyframes",
            progress=False,
            executor=executor,
        )
        stats = ray.get([actor.stats.remote() for actor in executor.keyframe_workers(config)])
        with pytest.raises(ConfigError, match="keyframe_segments"):  # 3 segments cannot get a GPU each
            translate(
                synthetic_clip,
                "a cat",
                output=tmp_path / "three.mp4",
                config=config,
                stage="keyframes",
                progress=False,
                executor=RayExecutor(keyframe_segments=3),
            )
        assert not (tmp_path / "three.mp4.work").exists()  # refused before any work
    finally:
        ray.shutdown()
    assert sorted(gpu for item in stats for gpu in item["gpu_ids"]) == [0, 1]  # one GPU per segment
    assert segmented.renderer == "diffusion (2 segments)" and segmented.keyframe_indices == single.keyframe_indices

    def key(result, index):
        return (result.workspace / "keyframes" / f"{index:04d}.png").read_bytes()

    assert one.renderer == "diffusion"  # one segment is the single chain
    for index in single.keyframe_indices:
        assert key(one, index) == key(single, index), index
    # the first segment is the single chain's beginning; the second restarts from the same anchor
    for index in (0, 4, 8):
        assert key(segmented, index) == key(single, index), index
    for index in (12, 16):
        assert key(segmented, index) == key(second_chain, index), index
    assert key(segmented, 12) != key(single, 12)  # its previous keyframe is the anchor, not keyframe 8
