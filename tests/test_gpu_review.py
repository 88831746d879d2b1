"""GPU-only defects found by reading and reproduced on the CPU: half-precision dtypes (bfloat16 stands in for
float16 where the CPU computes it far faster), tensors on the wrong device, state left behind by a GPU code path."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check_review", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # builds the tiny SDXL components (~3 s)
def test_gpu_check_sdxl_plain_run_leaves_the_shared_vae_in_float32(gpu_check):
    # was: on the GPU the SDXL row runs the UNet in float16 and the shared VAE in float32; diffusers' plain SDXL
    # img2img casts a force_upcast VAE to the pipeline's dtype after encoding, so every later variant (ours, device
    # and host storage) ran its VAE in float16: a different VAE than the row says, and timings not comparable.
    arguments = argparse.Namespace(tiny=True, size=32, steps=2, keyframes=1, strength=0.75)
    setup = gpu_check._sdxl_setup(arguments)
    half = torch.bfloat16  # float16 as on the GPU; the CPU runs bfloat16 far faster
    for name in ("unet", "controlnet", "text_encoder", "text_encoder_2"):
        getattr(setup["plain"], name).to(half)
    setup["dtype"] = half
    assert setup["plain"].vae.config.force_upcast and setup["plain"].vae.dtype == torch.float32
    with torch.no_grad():
        gpu_check._sdxl_run_plain(setup, 1)
    assert setup["plain"].vae.dtype == torch.float32
    assert setup["ours"].vae is setup["plain"].vae


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_pipeline_dir) -> Path:
    from diffusers import UNet2DConditionModel

    from tests.tiny_models import save_tiny_ip_adapter

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    return save_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-ip-adapter"), unet)


def test_an_ip_adapter_installed_on_an_offloaded_pipeline_is_offloaded_too(tiny_pipeline_dir, adapter_dir):
    # was: with `model.cpu_offload` (CUDA) and a style image, the IP-Adapter's image encoder arrived after the
    # offload hooks: it stayed on the CPU while `encode_image` sent the pixels to the GPU (a device-mismatch crash).
    # The CPU stands in for the GPU here: the hooks are the same, only the devices coincide.
    from rerender.diffusion.ip_adapter import install_ip_adapter
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.enable_model_cpu_offload(device="cpu")
    install_ip_adapter(pipeline, str(adapter_dir), "models/ip-adapter_sd15.safetensors", 0.6)
    modules = {name: module for name, module in pipeline.components.items() if isinstance(module, torch.nn.Module)}
    assert "image_encoder" in modules
    assert {name for name, module in modules.items() if not hasattr(module, "_hf_hook")} == set()
    assert pipeline._execution_device.type == "cpu"
    style = np.full((32, 32, 3), 200, np.uint8)
    embeds = pipeline.encode_style_image(style, pipeline._execution_device, True)["image_embeds"]
    assert embeds[0].shape[0] == 2 and torch.isfinite(embeds[0]).all()


def test_attention_references_are_freed_when_rendering_fails(tiny_pipeline_dir, monkeypatch):
    # was: an error inside `render_keyframes` (a CUDA out-of-memory at keyframe k) left the store full: the
    # generator's frame, kept alive by the traceback (a notebook keeps the last one in `sys.last_traceback`), held
    # every recorded reference on the GPU, so the retry with smaller settings ran out of memory again.
    from rerender.config import ConstraintConfig
    from rerender.diffusion import pipeline as pipeline_module

    stores = []

    class Recording(pipeline_module.CrossFrameAttentionStore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(pipeline_module, "CrossFrameAttentionStore", Recording)
    pipeline = pipeline_module.RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)

    def out_of_memory(pipe, step, timestep, outputs):
        if outputs["frame_index"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return outputs

    frames = [np.full((32, 32, 3), value, np.uint8) for value in (60, 120)]
    constraints = ConstraintConfig(shape_fusion_period=None, pixel_fusion_period=None)
    with pytest.raises(RuntimeError, match="simulated") as caught:
        pipeline(
            frames,
            "a cat",
            num_inference_steps=2,
            strength=1.0,
            constraints=constraints,
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=out_of_memory,
        )
    assert caught.value.__traceback__ is not None  # the traceback (and the frames it holds) is still alive
    assert len(stores) == 1
    assert stores[0].nbytes == 0 and not stores[0].anchor and not stores[0].pending
    assert stores[0].peak_nbytes > 0  # there were references (the anchor's) to free


def test_gpu_check_row_without_cuda_says_so_instead_of_a_traceback(gpu_check, capsys):
    # was: `--row flux` (or any row) without --tiny on a machine without CUDA died in a diffusers import made under
    # `torch.device("cuda")` ("Torch not compiled with CUDA enabled", three chained tracebacks)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main(["--row", "flux"]) == 2
    assert "no CUDA device for --row flux: run with --tiny" in capsys.readouterr().err


@pytest.mark.parametrize(("device", "gpu_ids", "loaded"), [("cuda:1", [1], "cuda"), ("cuda:1", [], "cuda:1")])
def test_a_keyframe_actor_loads_the_model_on_the_gpu_ray_gave_it(monkeypatch, device, gpu_ids, loaded):
    # was: `model.device: cuda:1` (the second GPU of the driver's machine) went unchanged to the Ray keyframe actors,
    # which see only the GPU Ray gave them (CUDA_VISIBLE_DEVICES), as cuda:0: loading failed in every actor with
    # "`model.device` is 'cuda:1' but this machine has 1 CUDA device(s)".
    import ray

    from rerender.config import ModelConfig, RerenderConfig
    from rerender.diffusion.loading import resolve_device
    from rerender.workflow import renderers
    from rerender.workflow.executors.ray import KeyframeWorker

    seen = []

    def choose_renderer(config, *rest):
        seen.append(config)
        return renderers.ClassicRenderer(config.prompt.prompt)

    monkeypatch.setattr(ray, "get_gpu_ids", lambda: list(gpu_ids))
    monkeypatch.setattr(renderers, "choose_renderer", choose_renderer)
    config = RerenderConfig(model=ModelConfig(device=device))
    KeyframeWorker(config, None)
    assert seen[0].model.device == loaded
    assert seen[0].model.base_model == config.model.base_model and seen[0].prompt == config.prompt
    if gpu_ids:  # inside the actor: one visible CUDA device
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        assert resolve_device(seen[0].model.device) == torch.device("cuda")


@pytest.mark.parametrize(("model_device", "flow_device"), [("cuda:1", "cuda:1"), ("auto", None), ("cpu", None)])
def test_the_flow_estimator_runs_on_the_gpu_the_model_names(monkeypatch, model_device, flow_device):
    # was: with `model.device: cuda:1` the configured flow estimator (GMFlow on a GPU) was built with no device,
    # that is on cuda:0: the GPU the user kept the run off (busy or too small) held the flow network and its
    # activations (about 6 GB per 1024² pair).
    from rerender.config import ModelConfig, RerenderConfig
    from rerender.workflow import context as context_module

    built = []
    monkeypatch.setattr(context_module.FlowSpec, "build", lambda spec, device=None: built.append(device) or spec)
    ctx = context_module.StageContext(
        workspace=None,
        video=Path("clip.mp4"),
        info=None,
        config=RerenderConfig(model=ModelConfig(device=model_device)),
        count=2,
        size=(64, 64),
    )
    assert ctx.estimator is ctx.estimator  # built once
    assert built == [flow_device]


def test_the_pipelines_own_flow_estimator_follows_its_execution_device(tiny_pipeline_dir, monkeypatch):
    # was: `RerenderPipeline` called without a `flow_estimator` loaded "auto" with no device, that is GMFlow on
    # cuda:0, for a pipeline on cuda:1. The CUDA device is faked: only the estimator's placement is checked.
    from rerender.diffusion import pipeline as pipeline_module

    asked = []

    def load_flow_estimator(name, checkpoint=None, device=None, dis_preset="fine"):
        asked.append((name, device))
        return object()

    monkeypatch.setattr(pipeline_module, "load_flow_estimator", load_flow_estimator)
    pipeline = pipeline_module.RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.default_flow_estimator()
    cuda = torch.device("cuda", 1)
    monkeypatch.setattr(type(pipeline), "_execution_device", property(lambda self: cuda))
    pipeline.default_flow_estimator()
    assert asked == [("auto", None), ("auto", cuda)]


class _Detector:
    """controlnet-aux's detector interface (`from_pretrained`, `to`, ``__call__`` with resolutions and
    ``output_type="np"``), recording where it was moved."""

    moved_to: list = []

    @classmethod
    def from_pretrained(cls, path):
        return cls()

    def to(self, device):
        type(self).moved_to.append(device)
        return self

    def __call__(self, frame, detect_resolution, image_resolution, output_type):
        return np.asarray(frame).mean(axis=2).astype(np.uint8)


@pytest.fixture
def fake_controlnet_aux(monkeypatch):
    import types

    module = types.ModuleType("controlnet_aux")
    module.HEDdetector = type("HEDdetector", (_Detector,), {"moved_to": []})
    monkeypatch.setitem(sys.modules, "controlnet_aux", module)
    return module


def test_an_annotator_network_runs_on_the_pipelines_device(tiny_pipeline_dir, fake_controlnet_aux, monkeypatch):
    # was: the controlnet-aux annotators (HED, lineart, MiDaS depth, openpose) stayed on the CPU next to a GPU
    # pipeline: every keyframe's control map ran its network on the CPU while the GPU waited.
    from rerender.config import ConstraintConfig, ControlConfig
    from rerender.diffusion import control
    from rerender.diffusion import pipeline as pipeline_module

    annotate = control.make_annotator(ControlConfig(type="hed"), "weights", device="cuda:1")
    assert fake_controlnet_aux.HEDdetector.moved_to == ["cuda:1"]
    assert annotate(np.zeros((8, 8, 3), np.uint8)).shape == (8, 8, 3)

    devices = []

    def make_annotator(config, weights=control.DEFAULT_ANNOTATOR_WEIGHTS, device=None):
        devices.append(device)
        return control.make_annotator(config, weights, device)

    monkeypatch.setattr(pipeline_module, "make_annotator", make_annotator)
    pipeline = pipeline_module.RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipeline.set_progress_bar_config(disable=True)
    frames = [np.full((32, 32, 3), 90, np.uint8)]
    off = ConstraintConfig(cross_frame_attention_period=None, shape_fusion_period=None, pixel_fusion_period=None)
    pipeline(
        frames,
        "a cat",
        controls=[ControlConfig(type="hed")],
        num_inference_steps=1,
        strength=1.0,
        constraints=off,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert devices == [pipeline._execution_device]
    assert fake_controlnet_aux.HEDdetector.moved_to[-1] == pipeline._execution_device
