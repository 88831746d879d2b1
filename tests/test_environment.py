"""`rerender env`: the model's family read without loading weights, the propagation engine and device that "auto"
resolves to here, whether the torch engine can run on CUDA; and the run's log saying the family and the engine."""

from __future__ import annotations

import json
import logging

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.environment import collect_environment, family_report, propagation_report
from tests.test_weights import _cache_file


@pytest.fixture
def no_weights_load(monkeypatch):
    """Reading the family must never load a model or read a tensor."""
    import diffusers
    import safetensors.torch

    def loaded(*args, **kwargs):
        raise AssertionError("weights were loaded")

    for owner in (diffusers.UNet2DConditionModel, diffusers.AutoencoderKL, diffusers.ControlNetModel):
        monkeypatch.setattr(owner, "from_pretrained", classmethod(loaded))
    monkeypatch.setattr(safetensors.torch, "load_file", loaded)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def _family(base_model: str, **more) -> dict:
    return family_report(apply_overrides(RerenderConfig(), {"base_model": base_model, **more}))


def test_the_family_of_local_folders_is_read_from_their_configs(tiny_pipeline_dir, tiny_sdxl_dir, no_weights_load):
    sd = _family(str(tiny_pipeline_dir))
    assert (sd["family"], sd["label"], sd["error"]) == ("sd15", "SD 1.5", None)
    assert "configs or checkpoint keys" in sd["how"]
    assert _family(str(tiny_sdxl_dir))["family"] == "sdxl"


def test_a_cached_hub_model_is_read_from_its_config_not_its_name(empty_cache, no_weights_load):
    # a name that suggests nothing; its cached UNet config has SDXL's added conditioning
    _cache_file(empty_cache, "someone/my-model", "unet/config.json", b'{"addition_embed_type": "text_time"}')
    cached = _family("someone/my-model")
    assert cached["family"] == "sdxl" and "cached model's configs" in cached["how"]
    guessed = _family("stabilityai/stable-diffusion-xl-base-1.0")  # not cached: its name is the only clue
    assert guessed["family"] == "sdxl" and "guessed from the hub id's name" in guessed["how"]
    assert _family("Tongyi-MAI/Z-Image-Turbo")["label"] == "Z-Image"
    assert _family("black-forest-labs/FLUX.1-dev")["label"] == "Flux"
    stated = _family("someone/my-model", family="sdxl")
    assert stated["family"] == "sdxl" and stated["how"] == "set by `model.family`"


def test_an_unreadable_model_says_why(tmp_path, no_weights_load):
    (tmp_path / "not-a-model").mkdir()
    report = _family(str(tmp_path / "not-a-model"))
    assert report["family"] is None and "without unet/config.json" in report["error"]


def test_auto_resolves_to_numba_on_a_machine_without_cuda():
    import torch

    assert not torch.cuda.is_available()  # this test machine
    report = propagation_report(RerenderConfig())
    assert report["engine"] == report["device"] == "auto"
    assert (report["resolved_engine"], report["resolved_device"], report["error"]) == ("numba", "cpu", None)
    assert report["torch_on_cuda"] is False and "sees no CUDA GPU" in report["cuda_reason"]
    torch_cpu = propagation_report(apply_overrides(RerenderConfig(), {"propagation.engine": "torch"}))
    assert (torch_cpu["resolved_engine"], torch_cpu["resolved_device"]) == ("torch", "cpu")
    cuda = propagation_report(apply_overrides(RerenderConfig(), {"propagation.device": "cuda"}))
    assert cuda["resolved_engine"] is None and "`propagation.device` is 'cuda'" in cuda["error"]


def test_auto_resolves_to_torch_on_cuda_where_torch_sees_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100 80GB HBM3")
    report = propagation_report(RerenderConfig())
    assert (report["resolved_engine"], report["resolved_device"]) == ("torch", "cuda")
    assert report["torch_on_cuda"] is True and "NVIDIA H100" in report["cuda_reason"]
    numba = propagation_report(apply_overrides(RerenderConfig(), {"propagation.engine": "numba"}))
    assert numba["resolved_engine"] == "numba"


def test_cli_env_prints_the_family_and_the_engine(tiny_sdxl_dir, capsys, empty_cache):
    from rerender.cli import main

    assert main(["env", "--model", str(tiny_sdxl_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"model     {tiny_sdxl_dir}: SDXL; read from") for line in lines)
    assert "propagation  engine auto, device auto -> numba" in lines
    assert any(line.startswith("  torch engine on CUDA: no (torch ") for line in lines)
    assert main(["env", "--json", "--set", "propagation.engine=torch"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["family"] == "sd15" and report["model"]["base_model"].endswith("stable-diffusion-v1-5")
    assert report["propagation"]["resolved_engine"] == "torch" and report["propagation"]["resolved_device"] == "cpu"
    assert set(collect_environment()) >= {"model", "propagation", "models", "devices"}


def test_the_run_log_says_the_family_and_the_engine_once(tiny_pipeline_dir, synthetic_clip, tmp_path, caplog):
    import rerender

    with caplog.at_level(logging.INFO, logger="rerender"):
        rerender.translate(
            synthetic_clip,
            "a cat",
            K=10,
            output=tmp_path / "o.mp4",
            renderer="diffusion",
            progress=False,
            base_model=str(tiny_pipeline_dir),
            num_inference_steps=2,
            device="cpu",
            resolution=64,
            size_multiple=16,
            propagation_preset="fast",
            workers=1,
            flow_estimator="dis",
            dis_preset="fast",
        )
    messages = [record.getMessage() for record in caplog.records]
    family = [message for message in messages if message == f"base model {tiny_pipeline_dir}: SD 1.5"]
    engine = [message for message in messages if message.startswith("propagating") and "engine numba" in message]
    assert len(family) == 1 and len(engine) == 1, messages
