"""`RayExecutor`'s propagation tasks on GPUs (issue 23: "a GPU per propagation task when asked"): what each task
asks Ray for, and the refusals before any work. Clusters of its own (logical GPUs), apart from test_executors.py's."""

from __future__ import annotations

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError

ray = pytest.importorskip("ray")

from rerender.workflow.executors.ray import RayExecutor  # noqa: E402


def _propagation_config(**settings):
    return apply_overrides(RerenderConfig(), {f"propagation.{key}": value for key, value in settings.items()})


@pytest.mark.ray
def test_propagation_tasks_ask_for_a_gpu_when_the_torch_engine_runs_on_cuda(tmp_path):
    """A propagation task asks Ray for a GPU when the run asks for the torch engine on CUDA (issue 23: "a GPU per
    propagation task when asked"), or for what `propagation_gpus` says; the default engine "auto" stays on CPUs."""
    from types import SimpleNamespace

    from rerender.workflow.executors.ray import _Shipped

    ray.init(num_cpus=1, num_gpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        executor = RayExecutor()
        assert executor.propagation_task_gpus(_propagation_config()) == 0  # auto/auto: numba on CPU workers
        assert executor.propagation_task_gpus(_propagation_config(engine="numba")) == 0
        assert executor.propagation_task_gpus(_propagation_config(device="cpu", engine="torch")) == 0
        assert executor.propagation_task_gpus(_propagation_config(device="cuda")) == 1
        assert executor.propagation_task_gpus(_propagation_config(engine="torch")) == 1
        assert RayExecutor(propagation_gpus=0.5).propagation_task_gpus(_propagation_config()) == 0.5
        assert RayExecutor(propagation_gpus=0).propagation_task_gpus(_propagation_config(device="cuda")) == 0
        # what the interval tasks are submitted with
        ctx = SimpleNamespace(
            optical_flow=None, flow_spec="dis", workspace=SimpleNamespace(flows_dir=tmp_path / "flows")
        )
        shipped = _Shipped(
            ray, executor, ctx, options={}, gpus=executor.propagation_task_gpus(_propagation_config(device="cuda"))
        )
        assert shipped.interval_task._default_options["num_gpus"] == 1
        assert _Shipped(ray, executor, ctx, options={}).interval_task._default_options["num_gpus"] == 0
        executor.check(_propagation_config(device="cuda"))  # two GPUs: fine
    finally:
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:  # a cluster without GPUs refuses CUDA propagation before any work, naming the option
        with pytest.raises(ConfigError, match=r"`propagation.device` is 'cuda' but the Ray cluster has 0 GPUs"):
            RayExecutor().check(_propagation_config(device="cuda"))
        with pytest.raises(ConfigError, match=r"`propagation_gpus` is 1 but the Ray cluster has 0 GPUs"):
            RayExecutor(propagation_gpus=1).check(_propagation_config())
        RayExecutor().check(_propagation_config(engine="torch", device="auto"))  # auto: no GPU, none asked
    finally:
        ray.shutdown()
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ConfigError, match="`propagation_gpus` must be"):
            RayExecutor(propagation_gpus=bad)
