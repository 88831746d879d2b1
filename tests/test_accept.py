"""Acceptance review of issues 22 (SDXL) and 23 (GPU propagation): the gaps the review found, each shown here."""

from __future__ import annotations

import pytest

from rerender.config import RerenderConfig, apply_overrides
from tests import test_weights_download as answers

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SD15_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@pytest.fixture
def connected_hub(monkeypatch, tmp_path):
    """A connected machine whose hub answers from `answers.REPOSITORIES`; nothing cached, nothing downloaded."""
    import huggingface_hub
    from huggingface_hub import constants

    import rerender.weights as weights

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "hub_offline", lambda: False)
    monkeypatch.setattr(weights, "_endpoint_reachable", lambda endpoint, timeout: True)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", answers._model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded"))


def test_a_hub_model_not_cached_yet_is_read_from_its_file_list_not_guessed_from_its_name(connected_hub, monkeypatch):
    # was: an SDXL model without "xl" in its id (RunDiffusion/Juggernaut-X-v10) counted as SD 1.5 until cached:
    # `rerender download` skipped text_encoder_2/tokenizer_2 and fetched the SD 1.5 canny ControlNet, and a run
    # online picked that ControlNet too; an SD 1.5 model with "xl" in its id went the other way
    from rerender.weights import detect_family, download_weights

    monkeypatch.setitem(answers.REPOSITORIES, "RunDiffusion/Juggernaut-X-v10", answers.REPOSITORIES[SDXL_BASE])
    monkeypatch.setitem(answers.REPOSITORIES, "someone/foxlike-v2", answers.REPOSITORIES[SD15_BASE])
    assert detect_family("RunDiffusion/Juggernaut-X-v10") == "sdxl"
    assert detect_family("someone/foxlike-v2") == "sd15"
    assert detect_family("unknown/tiny-xl") == "sdxl"  # not on the hub: the name is the only clue left

    config = apply_overrides(RerenderConfig(), {"base_model": "RunDiffusion/Juggernaut-X-v10"})
    records = download_weights(config, dry_run=True, progress=False, precision="float16")
    plan = {record["location"]: record for record in records}
    assert "text_encoder_2/model.fp16.safetensors" in plan["RunDiffusion/Juggernaut-X-v10"]["fetched"]
    assert "tokenizer_2/vocab.json" in plan["RunDiffusion/Juggernaut-X-v10"]["fetched"]
    assert "diffusers/controlnet-canny-sdxl-1.0" in plan and "lllyasviel/sd-controlnet-canny" not in plan


def test_offline_the_hub_is_not_asked_and_the_name_decides(monkeypatch):
    import huggingface_hub

    from rerender.weights import detect_family

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("the hub was asked"))
    assert detect_family("RunDiffusion/Juggernaut-X-v10") == "sd15"  # HF_HUB_OFFLINE=1 (tests/conftest.py)
    assert detect_family("someone/juggernaut-xl") == "sdxl"


def test_env_says_a_hub_model_s_family_was_read_from_its_file_list(connected_hub, monkeypatch):
    from rerender.environment import family_report

    monkeypatch.setitem(answers.REPOSITORIES, "RunDiffusion/Juggernaut-X-v10", answers.REPOSITORIES[SDXL_BASE])
    report = family_report(apply_overrides(RerenderConfig(), {"base_model": "RunDiffusion/Juggernaut-X-v10"}))
    assert report["family"] == "sdxl" and report["how"].startswith("read from its file list on the hub")
    report = family_report(apply_overrides(RerenderConfig(), {"base_model": "unknown/tiny-xl"}))
    assert report["family"] == "sdxl" and report["how"].startswith("guessed from the hub id's name")


def test_a_controlnet_of_the_other_family_not_cached_before_is_refused_before_the_unet_loads(
    tiny_pipeline_dir, tiny_sdxl_dir, monkeypatch
):
    # was: a hub ControlNet not cached yet (its config unreadable before it is fetched) passed `check_families`;
    # the base model was then fetched and loaded, and only `check_controlnet_fits` refused it, in widths, after the
    # UNet had loaded; now its family is checked as soon as it is here, before the base model
    from diffusers import UNet2DConditionModel

    from rerender.config import ControlConfig, ModelConfig
    from rerender.diffusion import loading
    from rerender.errors import ConfigError

    def refuse(*args, **kwargs):
        raise AssertionError("the UNet was loaded before the mismatch was found")

    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(loading, "_local_config", lambda source: None)  # as for a hub id not in the cache yet
    with pytest.raises(ConfigError, match=r"control\[0\].model.*made for SD 1.5, but the base model is SDXL"):
        loading.load_pipeline(
            ModelConfig(base_model=str(tiny_sdxl_dir)),
            [ControlConfig(model=str(tiny_pipeline_dir / "controlnet"))],
            device="cpu",
        )


def test_a_single_file_controlnet_of_the_other_family_is_refused_from_its_key_widths(tiny_sdxl_dir, tmp_path):
    # was: an A1111 ControlNet file (control_v11p_sd15_canny.safetensors) on an SDXL base passed `check_families`
    # (a single file has no config.json to read): nothing named the two families before loading
    import torch
    from safetensors.torch import save_file

    from rerender.config import ControlConfig, ModelConfig
    from rerender.diffusion.loading import check_families
    from rerender.errors import ConfigError

    key = "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    save_file({key: torch.zeros(320, 768)}, str(tmp_path / "control_v11p_sd15_canny.safetensors"))
    save_file({key: torch.zeros(320, 2048)}, str(tmp_path / "controlnet-canny-sdxl.safetensors"))
    model = ModelConfig(base_model=str(tiny_sdxl_dir))
    with pytest.raises(ConfigError, match=r"control\[1\].model.*made for SD 1.5, but the base model is SDXL"):
        check_families(
            model,
            [
                ControlConfig(model=str(tmp_path / "controlnet-canny-sdxl.safetensors")),
                ControlConfig(model=str(tmp_path / "control_v11p_sd15_canny.safetensors")),
            ],
            tiny_sdxl_dir,
        )
    assert check_families(model, [ControlConfig(model=str(tmp_path / "controlnet-canny-sdxl.safetensors"))]) == "sdxl"
