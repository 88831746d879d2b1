"""FreeU: Rerender's variant (stages by channel count, structure-aware scale, residual after the filter) and
diffusers' variant, each checked against its formula on tiny tensors and the tiny UNet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rerender.config import FreeUConfig
from rerender.diffusion.freeu import freeu_installed, freeu_stages, rerender_freeu, structure_aware_scale
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def low_pass(tensor: torch.Tensor, scale: float) -> torch.Tensor:
    """The FreeU Fourier filter written out: the centred 2×2 frequencies times `scale`."""
    spectrum = torch.fft.fftshift(torch.fft.fftn(tensor.double(), dim=(-2, -1)), dim=(-2, -1))
    height, width = tensor.shape[-2:]
    spectrum[..., height // 2 - 1 : height // 2 + 1, width // 2 - 1 : width // 2 + 1] *= scale
    return torch.fft.ifftn(torch.fft.ifftshift(spectrum, dim=(-2, -1)), dim=(-2, -1)).real


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    from tests.tiny_models import make_tiny_components

    return make_tiny_components(tmp_path_factory.mktemp("tok"))["unet"].eval()


def test_structure_aware_scale_is_b_where_the_channel_mean_peaks_and_1_at_its_minimum():
    hidden = torch.zeros(2, 4, 2, 2)
    hidden[0, :, 0, 0], hidden[0, :, 1, 1] = 3.0, -1.0  # sample 0: mean 3 at (0,0), −1 at (1,1), 0 elsewhere
    hidden[1] = 5.0  # sample 1: constant, m = 0
    scale = structure_aware_scale(hidden, 1.5)
    assert scale.shape == (2, 1, 2, 2)
    assert scale[0, 0].flatten().tolist() == pytest.approx([1.5, 1.125, 1.125, 1.0])
    assert torch.equal(scale[1], torch.ones(1, 2, 2))


def test_rerender_freeu_scales_half_the_backbone_and_filters_the_skip_before_the_residual():
    torch.manual_seed(0)
    hidden, skip, residual = torch.randn(2, 6, 8, 8), torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    new_hidden, new_skip = rerender_freeu(hidden, skip, residual, backbone_factor=1.4, skip_factor=0.2)
    scale = structure_aware_scale(hidden, 1.4)
    assert torch.allclose(new_hidden[:, :3], hidden[:, :3] * scale, atol=1e-6)
    assert torch.equal(new_hidden[:, 3:], hidden[:, 3:])
    assert torch.allclose(new_skip.double(), low_pass(skip, 0.2) + residual.double(), atol=1e-5)
    # the residual keeps its low frequencies: filtering the sum would have damped them too
    assert not torch.allclose(new_skip.double(), low_pass(skip + residual, 0.2), atol=1e-3)
    # a constant skip is pure DC: it is multiplied by s
    _, constant = rerender_freeu(hidden, torch.full((1, 3, 8, 8), 2.0), None, 1.0, 0.25)
    assert torch.allclose(constant, torch.full_like(constant, 0.5), atol=1e-6)


def test_stages_are_selected_by_channel_count_on_the_sd15_unet():
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(REPO / "rerender" / "assets" / "sd15-config" / "unet")
    with torch.device("meta"):
        sd_unet = UNet2DConditionModel.from_config(config)
    stages = {stage.name: (stage.stage, stage.backbone_channels) for stage in freeu_stages(sd_unet)}
    wide = [f"up_blocks.{block}.resnets.{resnet}" for block in (0, 1) for resnet in range(3)] + [
        "up_blocks.2.resnets.0"
    ]
    assert stages == {
        **{name: (1, 1280) for name in wide},
        "up_blocks.2.resnets.1": (2, 640),
        "up_blocks.2.resnets.2": (2, 640),
        "up_blocks.3.resnets.0": (2, 640),
    }


def record_resnet_inputs(unet, names):
    """Pre-hooks that record what each named resnet receives; registered before FreeU's, or after them."""
    seen = {}

    def hook(name):
        def remember(module, args):
            seen[name] = args[0].clone()

        return remember

    return seen, [unet.get_submodule(name).register_forward_pre_hook(hook(name)) for name in names]


def test_rerender_variant_in_the_tiny_unet_matches_its_formula_at_every_decoder_resnet(unet):
    # tiny UNet: block widths (32, 64); h is 64 wide for up_blocks.0.* and up_blocks.1.resnets.0 (stage 1), 32
    # wide for up_blocks.1.resnets.1–2 (stage 2)
    names = [f"up_blocks.{block}.resnets.{resnet}" for block in range(2) for resnet in range(3)]
    stages = {stage.name: stage for stage in freeu_stages(unet)}
    assert {name: stage.stage for name, stage in stages.items()} == {
        "up_blocks.0.resnets.0": 1,
        "up_blocks.0.resnets.1": 1,
        "up_blocks.0.resnets.2": 1,
        "up_blocks.1.resnets.0": 1,
        "up_blocks.1.resnets.1": 2,
        "up_blocks.1.resnets.2": 2,
    }
    torch.manual_seed(0)
    sample, text = torch.randn(2, 4, 16, 16), torch.randn(2, 7, 32)
    # ControlNet-shaped residuals for the 6 skips (conv_in, 2 + downsample, 2) and the mid block
    residual_shapes = [(2, 32, 16, 16)] * 3 + [(2, 32, 8, 8)] + [(2, 64, 8, 8)] * 2
    residuals = [torch.randn(shape) for shape in residual_shapes]
    before, before_handles = record_resnet_inputs(unet, names)
    freeu = FreeUConfig(b1=1.3, b2=1.6, s1=0.5, s2=0.2)
    try:
        with torch.no_grad(), freeu_installed(unet, freeu):
            after, after_handles = record_resnet_inputs(unet, names)
            unet(
                sample,
                10,
                encoder_hidden_states=text,
                down_block_additional_residuals=residuals,
                mid_block_additional_residual=torch.randn(2, 64, 8, 8),
            )
            for handle in after_handles:
                handle.remove()
    finally:
        for handle in before_handles:
            handle.remove()
    for order, name in enumerate(names):
        stage = stages[name]
        width = stage.backbone_channels
        residual = residuals[len(residuals) - 1 - order]
        hidden, skip = before[name][:, :width], before[name][:, width:] - residual
        b, s = (freeu.b1, freeu.s1) if stage.stage == 1 else (freeu.b2, freeu.s2)
        expected_hidden = torch.cat(
            [hidden[:, : width // 2] * structure_aware_scale(hidden, b), hidden[:, width // 2 :]], 1
        )
        expected_skip = low_pass(skip, s).float() + residual
        assert torch.allclose(after[name][:, :width], expected_hidden, atol=1e-5), name
        assert torch.allclose(after[name][:, width:], expected_skip, atol=1e-4), name
    # restored: no hook left, and the output is the plain UNet's again
    assert all(not unet.get_submodule(name)._forward_pre_hooks for name in names) and not unet._forward_pre_hooks


def test_diffusers_variant_scales_up_blocks_0_and_1_with_a_constant_factor(unet):
    torch.manual_seed(0)
    sample, text = torch.randn(1, 4, 16, 16), torch.randn(1, 7, 32)
    inputs = {}

    def remember_block_input(index):
        def hook(module, args, kwargs):
            inputs[index] = (kwargs["hidden_states"].clone(), kwargs["res_hidden_states_tuple"][-1].clone())

        return hook

    names = ["up_blocks.0.resnets.0", "up_blocks.1.resnets.0"]
    handles = [
        unet.up_blocks[i].register_forward_pre_hook(remember_block_input(i), with_kwargs=True) for i in range(2)
    ]
    freeu = FreeUConfig(b1=1.3, b2=1.6, s1=0.5, s2=0.2, variant="diffusers")
    try:
        with torch.no_grad(), freeu_installed(unet, freeu):
            seen, seen_handles = record_resnet_inputs(unet, names)
            unet(sample, 10, encoder_hidden_states=text)
            for handle in seen_handles:
                handle.remove()
    finally:
        for handle in handles:
            handle.remove()
    for index, (b, s) in enumerate([(freeu.b1, freeu.s1), (freeu.b2, freeu.s2)]):
        hidden, skip = inputs[index]
        width = hidden.shape[1]
        joined = seen[names[index]]
        assert torch.allclose(joined[:, : width // 2], hidden[:, : width // 2] * b, atol=1e-6)
        assert torch.allclose(joined[:, width // 2 : width], hidden[:, width // 2 :])
        assert torch.allclose(joined[:, width:].double(), low_pass(skip, s), atol=1e-5)
    assert all(getattr(block, "b1", None) is None for block in unet.up_blocks)


def test_freeu_variant_must_be_known():
    with pytest.raises(ConfigError, match=r"constraints.freeu.variant.*'rerender', 'diffusers'.*'official'"):
        FreeUConfig(variant="official")
