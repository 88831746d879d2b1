"""GMFlow: the official checkpoint layout, forward passes in both directions, padding, checkpoint errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rerender.errors import ConfigError, InputNotFoundError
from rerender.flow import CheckpointError, FlowInputError, GMFlow, GMFlowEstimator, load_gmflow, read_gmflow_checkpoint

# A few entries of the official layout (haofeixu/gmflow, as in gmflow_sintel-0c07dcb3.pth), written by hand from
# the official module definitions rather than from our model, so that a renamed or reshaped module is caught.
OFFICIAL_KEY_SHAPES = {
    "backbone.conv1.weight": (64, 3, 7, 7),  # stem without bias
    "backbone.layer1.0.conv1.weight": (64, 64, 3, 3),
    "backbone.layer2.0.conv1.weight": (96, 64, 3, 3),
    "backbone.layer2.0.downsample.0.weight": (96, 64, 1, 1),
    "backbone.layer2.0.downsample.0.bias": (96,),
    "backbone.layer3.1.conv2.weight": (128, 128, 3, 3),
    "backbone.conv2.weight": (128, 128, 1, 1),
    "backbone.conv2.bias": (128,),
    "transformer.layers.0.self_attn.q_proj.weight": (128, 128),
    "transformer.layers.0.self_attn.merge.weight": (128, 128),
    "transformer.layers.0.self_attn.norm1.weight": (128,),
    "transformer.layers.0.self_attn.norm1.bias": (128,),
    "transformer.layers.5.cross_attn_ffn.v_proj.weight": (128, 128),
    "transformer.layers.5.cross_attn_ffn.mlp.0.weight": (1024, 256),  # FFN on [input, message]: 2·128 → 2·128·4
    "transformer.layers.5.cross_attn_ffn.mlp.2.weight": (128, 1024),
    "transformer.layers.5.cross_attn_ffn.norm2.bias": (128,),
    "feature_flow_attn.q_proj.weight": (128, 128),
    "feature_flow_attn.q_proj.bias": (128,),
    "feature_flow_attn.k_proj.bias": (128,),
    "upsampler.0.weight": (256, 130, 3, 3),  # [flow, features] = 2 + 128 channels
    "upsampler.0.bias": (256,),
    "upsampler.2.weight": (576, 256, 1, 1),  # 8·8·9 convex weights
    "upsampler.2.bias": (576,),
}
# Names the official layout does not have: non-affine instance norms, bias-free attention, FFN-less self-attention.
OFFICIAL_ABSENT_KEYS = (
    "backbone.norm1.weight",
    "backbone.layer1.0.norm1.weight",
    "backbone.layer1.0.downsample.0.weight",
    "transformer.layers.0.self_attn.q_proj.bias",
    "transformer.layers.0.self_attn.mlp.0.weight",
    "transformer.layers.0.self_attn.norm2.weight",
    "transformer.layers.0.cross_attn_ffn.mlp.0.bias",
)
OFFICIAL_TENSOR_COUNT = 123
OFFICIAL_PARAMETER_COUNT = 4_680_288  # "4.7M" in the GMFlow paper


@pytest.fixture(scope="module")
def model() -> GMFlow:
    torch.manual_seed(0)
    return GMFlow().eval()


@pytest.fixture(scope="module")
def frames() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    source = torch.rand(2, 3, 32, 48, generator=generator)
    return source, torch.roll(source, shifts=(2, 3), dims=(2, 3))


@pytest.fixture(scope="module")
def random_checkpoint(model: GMFlow, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint in the released files' layout ({"model": state_dict}) with our random weights."""
    path = tmp_path_factory.mktemp("gmflow") / "gmflow_sintel-0c07dcb3.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


def test_state_dict_matches_the_official_layout(model):
    state_dict = model.state_dict()
    assert len(state_dict) == OFFICIAL_TENSOR_COUNT
    assert sum(tensor.numel() for tensor in state_dict.values()) == OFFICIAL_PARAMETER_COUNT
    for name, shape in OFFICIAL_KEY_SHAPES.items():
        assert name in state_dict, name
        assert tuple(state_dict[name].shape) == shape, name
    for name in OFFICIAL_ABSENT_KEYS:
        assert name not in state_dict, name


@torch.no_grad()
def test_forward_predicts_both_directions(model, frames):
    source, target = frames
    forward, backward = model(source * 255, target * 255)
    assert forward.shape == backward.shape == (2, 2, 32, 48)
    assert forward.dtype == torch.float32 and bool(torch.isfinite(forward).all() and torch.isfinite(backward).all())
    # the architecture is symmetric: swapping the frames swaps the directions
    swapped_forward, swapped_backward = model(target * 255, source * 255)
    torch.testing.assert_close(swapped_forward, backward, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(swapped_backward, forward, atol=1e-4, rtol=1e-4)
    only_forward, no_backward = model(source * 255, target * 255, bidirectional=False)
    assert no_backward is None
    torch.testing.assert_close(only_forward, forward, atol=1e-4, rtol=1e-4)


def test_network_rejects_sizes_it_cannot_split(model):
    with pytest.raises(FlowInputError, match="multiples of 16, got 24×48"):
        model(torch.zeros(1, 3, 24, 48), torch.zeros(1, 3, 24, 48))


def test_estimator_pads_and_unpads_odd_sizes(model):
    generator = torch.Generator().manual_seed(2)
    source, target = torch.rand(2, 1, 3, 21, 35, generator=generator)
    estimator = GMFlowEstimator(model)
    forward, backward = estimator(source, target)
    assert forward.shape == backward.shape == (1, 2, 21, 35) and forward.dtype == torch.float32
    # the same as replicate-padding to 32×48 symmetrically (the official "sintel" padder) and cropping
    padding = (6, 7, 5, 6)
    with torch.no_grad():
        padded_forward, _ = model(
            F.pad(source * 255, padding, mode="replicate"), F.pad(target * 255, padding, mode="replicate")
        )
    torch.testing.assert_close(forward, padded_forward[..., 5:26, 6:41])


@pytest.mark.parametrize("layout", ["wrapped", "bare", "module-prefixed", "safetensors"])
def test_checkpoint_loads_strictly(model, frames, tmp_path, layout):
    state_dict = model.state_dict()
    path = tmp_path / "weights.pth"
    if layout == "wrapped":
        torch.save({"model": state_dict, "step": 1}, path)
    elif layout == "bare":
        torch.save(state_dict, path)
    elif layout == "module-prefixed":
        torch.save({"model": {f"module.{name}": value for name, value in state_dict.items()}}, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "weights.safetensors"
        save_file({name: value.contiguous() for name, value in state_dict.items()}, str(path))
    estimator = GMFlowEstimator.from_checkpoint(path, device="cpu")
    assert estimator.name.startswith("gmflow-") and len(estimator.name) == len("gmflow-") + 8
    assert not estimator.model.training
    source, target = frames
    with torch.no_grad():
        expected_forward, expected_backward = model(source * 255, target * 255)
    forward, backward = estimator(source, target)
    torch.testing.assert_close(forward, expected_forward)
    torch.testing.assert_close(backward, expected_backward)


def test_wrong_layout_names_the_mismatched_keys(model, tmp_path):
    state_dict = dict(model.state_dict())
    del state_dict["upsampler.2.bias"]
    state_dict["transformer.layers.6.self_attn.q_proj.weight"] = torch.zeros(128, 128)
    state_dict["feature_flow_attn.q_proj.weight"] = torch.zeros(64, 64)
    path = tmp_path / "edited.pth"
    torch.save({"model": state_dict}, path)
    with pytest.raises(CheckpointError) as error:
        load_gmflow(path)
    message = str(error.value)
    assert "1 missing keys (upsampler.2.bias)" in message
    assert "1 unexpected keys (transformer.layers.6.self_attn.q_proj.weight)" in message
    assert "feature_flow_attn.q_proj.weight: got (64, 64), expected (128, 128)" in message
    assert isinstance(error.value, ValueError)


def test_checkpoint_of_another_model_is_named(tmp_path):
    raft = {
        "fnet.conv1.weight": torch.zeros(64, 3, 7, 7),
        "update_block.gru.convz1.weight": torch.zeros(128, 384, 1, 5),
    }
    path = tmp_path / "raft-things.pth"
    torch.save(raft, path)
    with pytest.raises(CheckpointError, match="123 missing keys.*RAFT checkpoint"):
        load_gmflow(path)
    refine = dict(GMFlow().state_dict(), **{"backbone.trident_conv.weight": torch.zeros(128, 128, 3, 3)})
    torch.save({"model": refine}, path)
    with pytest.raises(CheckpointError, match="GMFlow with refinement"):
        load_gmflow(path)


def test_missing_and_unreadable_checkpoints(random_checkpoint, tmp_path):
    with pytest.raises(InputNotFoundError, match="is not a file; expected the GMFlow weights") as error:
        read_gmflow_checkpoint(tmp_path / "nowhere.pth")
    assert isinstance(error.value, FileNotFoundError)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_gmflow_checkpoint(garbage)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(random_checkpoint.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="cannot be read.*truncated"):
        GMFlowEstimator.from_checkpoint(truncated, device="cpu")

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state_dict)
    with pytest.raises(CheckpointError, match="holds list, not a state dict"):
        read_gmflow_checkpoint(not_a_state_dict)


def test_half_precision_needs_a_gpu(model, random_checkpoint):
    with pytest.raises(ConfigError, match="needs the model on a CUDA or MPS device, got cpu"):
        GMFlowEstimator(model, half_precision=True)
    with pytest.raises(ConfigError, match="float16` needs a CUDA or MPS device"):
        GMFlowEstimator.from_checkpoint(random_checkpoint, device="cpu", dtype=torch.float16)
    with pytest.raises(ConfigError, match="`dtype` must be None, torch.float32 or torch.float16"):
        GMFlowEstimator.from_checkpoint(random_checkpoint, device="cpu", dtype=torch.bfloat16)


@pytest.mark.gpu
def test_cuda_half_precision_matches_full_precision(random_checkpoint, frames):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    full = GMFlowEstimator.from_checkpoint(random_checkpoint, device="cuda")
    half = GMFlowEstimator.from_checkpoint(random_checkpoint, device="cuda", dtype=torch.float16)
    source, target = (frame.cuda() for frame in frames)
    forward_full, _ = full(source, target)
    forward_half, _ = half(source, target)
    assert forward_half.dtype == torch.float32 and half.name.endswith("-fp16")
    assert float((forward_full - forward_half).abs().mean()) < 0.05
