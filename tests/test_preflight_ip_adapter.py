"""An IP-Adapter of another family is refused before the UNet or transformer loads, naming both families.

The adapter's family comes from its file header (the input width of its ``to_k_ip`` projections) or, for a hub id
that is not here, from ``h94/IP-Adapter``'s path convention (``models/`` SD 1.5, ``sdxl_models/`` SDXL).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import rerender
from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import ConfigError

FAST = dict(
    resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast"
)
NEUTRAL_NAME = "adapters/my-style.safetensors"  # a name that says nothing: only the header can tell


@pytest.fixture(scope="module")
def sd15_adapter(tiny_pipeline_dir, tmp_path_factory) -> Path:
    """A tiny IP-Adapter made for the tiny SD 1.5 UNet, saved under a name that does not say its family."""
    from diffusers import UNet2DConditionModel

    from tests.tiny_models import save_tiny_ip_adapter

    folder = save_tiny_ip_adapter(
        tmp_path_factory.mktemp("sd15-adapter"), UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    )
    (folder / "adapters").mkdir()
    shutil.move(folder / "models" / "ip-adapter_sd15.safetensors", folder / NEUTRAL_NAME)
    shutil.move(folder / "models" / "image_encoder", folder / "adapters" / "image_encoder")
    return folder


@pytest.fixture
def style_png(tmp_path) -> Path:
    from rerender.video import write_image

    path = tmp_path / "style.png"
    write_image(np.full((32, 32, 3), 200, np.uint8), path)
    return path


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any UNet, pipeline or transformer load fails the test: the refusal must come first."""
    import diffusers

    from rerender.diffusion.pipeline import RerenderPipeline

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the IP-Adapter was checked")

    for owner in (diffusers.UNet2DConditionModel, RerenderPipeline, diffusers.ControlNetModel):
        monkeypatch.setattr(owner, "from_pretrained", classmethod(loaded))
    monkeypatch.setattr(RerenderPipeline, "from_single_file", classmethod(loaded))
    import rerender.diffusion.loading as loading

    monkeypatch.setattr(loading, "load_pipeline", loaded)
    import rerender.workflow.renderers as renderers

    if hasattr(renderers, "load_pipeline"):
        monkeypatch.setattr(renderers, "load_pipeline", loaded)


def test_an_sd15_adapter_on_an_sdxl_base_is_refused_before_the_unet_loads(
    tiny_sdxl_dir, sd15_adapter, style_png, synthetic_clip, tmp_path, no_model_loads
):
    with pytest.raises(ConfigError) as raised:
        rerender.translate(
            synthetic_clip,
            "a cat",
            output=tmp_path / "o.mp4",
            renderer="diffusion",
            progress=False,
            workspace=tmp_path / "w",
            base_model=str(tiny_sdxl_dir),
            vae=None,
            style_image=str(style_png),
            ip_adapter=str(sd15_adapter),
            ip_adapter_weight_name=NEUTRAL_NAME,
            device="cpu",
            **FAST,
        )
    message = str(raised.value)
    assert "made for SD 1.5" in message and "is SDXL" in message and NEUTRAL_NAME in message
    assert "`model.ip_adapter`" in message
    assert not (tmp_path / "w").exists()  # nothing decoded, nothing written


def test_the_same_adapter_on_its_own_family_passes(tiny_pipeline_dir, sd15_adapter, style_png):
    from rerender.weights import check_ip_adapter_family, ip_adapter_family

    config = apply_overrides(
        RerenderConfig(),
        {
            "base_model": str(tiny_pipeline_dir),
            "style_image": str(style_png),
            "ip_adapter": str(sd15_adapter),
            "ip_adapter_weight_name": NEUTRAL_NAME,
        },
    )
    check_ip_adapter_family(config)  # no error
    assert ip_adapter_family(str(sd15_adapter), NEUTRAL_NAME, 32, "sd15") == "sd15"


def test_the_family_from_real_widths_in_the_header(tmp_path):
    from rerender.weights import ip_adapter_family, safetensors_shapes

    """Headers shaped like h94's files: ``to_k_ip`` takes 768 on SD 1.5 and 2048 on SDXL (their cross-attention)."""
    import torch
    from safetensors.torch import save_file

    for width, family in ((768, "sd15"), (2048, "sdxl")):
        folder = tmp_path / family
        folder.mkdir()
        save_file(
            {
                "image_proj.proj.weight": torch.zeros(4 * width, 8, dtype=torch.float16),
                "ip_adapter.1.to_k_ip.weight": torch.zeros(320, width, dtype=torch.float16),
                "ip_adapter.1.to_v_ip.weight": torch.zeros(320, width, dtype=torch.float16),
            },
            str(folder / "adapter.safetensors"),
        )
        assert safetensors_shapes(folder / "adapter.safetensors")["ip_adapter.1.to_k_ip.weight"] == [320, width]
        assert ip_adapter_family(str(folder), "adapter.safetensors") == family
    (tmp_path / "x.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="not a .safetensors file"):
        safetensors_shapes(tmp_path / "x.safetensors")


def test_a_hub_adapter_by_its_path_convention(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from rerender.weights import check_ip_adapter_family, ip_adapter_family

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))  # nothing cached: the path decides
    assert ip_adapter_family("h94/IP-Adapter", "models/ip-adapter-plus_sd15.safetensors") == "sd15"
    assert ip_adapter_family("h94/IP-Adapter", "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors") == "sdxl"
    assert ip_adapter_family("XLabs-AI/flux-ip-adapter", "ip_adapter.safetensors") == "flux"
    sdxl = apply_overrides(
        RerenderConfig(),
        {
            "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
            "style_image": "s.png",
            "ip_adapter_weight_name": "models/ip-adapter-plus_sd15.safetensors",
        },
    )
    with pytest.raises(ConfigError, match=r"made for SD 1\.5, but the base model .* is SDXL"):
        check_ip_adapter_family(sdxl)
    # the SD 1.5 default becomes the SDXL adapter on SDXL: accepted
    check_ip_adapter_family(apply_overrides(sdxl, {"ip_adapter_weight_name": "models/ip-adapter_sd15.safetensors"}))


@pytest.mark.parametrize(
    ("base", "label"), [("Tongyi-MAI/Z-Image-Turbo", "Z-Image"), ("black-forest-labs/FLUX.1-schnell", "Flux")]
)
def test_any_adapter_on_a_transformer_base_is_refused_naming_both(base, label, monkeypatch, tmp_path):
    from huggingface_hub import constants

    from rerender.weights import check_ip_adapter_family

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    config = apply_overrides(RerenderConfig(), {"base_model": base, "style_image": "s.png"})
    with pytest.raises(ConfigError) as raised:
        check_ip_adapter_family(config)
    message = str(raised.value)
    assert f"is {label}" in message and "made for SD 1.5" in message and "--style-image" in message


def test_a_transformer_base_refuses_the_adapter_before_its_loader_runs(
    style_png, synthetic_clip, tmp_path, monkeypatch, no_model_loads
):
    from huggingface_hub import constants

    import rerender.diffusion.loading as loading

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(
        loading, "load_transformer_pipeline", lambda *a, **k: pytest.fail("the transformer was loaded")
    )
    with pytest.raises(ConfigError, match="no reference-image adapter"):
        rerender.translate(
            synthetic_clip,
            "a cat",
            output=tmp_path / "o.mp4",
            renderer="diffusion",
            progress=False,
            base_model="Tongyi-MAI/Z-Image-Turbo",
            vae=None,
            style_image=str(style_png),
            **{**FAST, "size_multiple": 16},
        )


def test_the_sdxl_vit_h_adapter_missing_offline_names_the_encoder_it_uses(style_png, monkeypatch, tmp_path):
    from huggingface_hub import constants

    from rerender.diffusion.ip_adapter import check_style_inputs
    from rerender.errors import WeightsNotFoundError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as raised:
        check_style_inputs(str(style_png), "h94/IP-Adapter", "sdxl_models/ip-adapter_sdxl_vit-h.safetensors")
    assert "'models/image_encoder/*'" in str(raised.value)  # the ViT-H encoder, not sdxl_models/image_encoder
