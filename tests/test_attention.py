"""Cross-frame attention against its definition (paper Eq. 6), layer selection by structure, restoring."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from rerender.diffusion.attention import (
    CrossFrameAttentionStore,
    CrossFrameAttnProcessor,
    attend_to_references,
    cross_frame_attention,
    decoder_self_attention_layers,
)


@pytest.fixture
def attention() -> Attention:
    torch.manual_seed(0)
    module = Attention(query_dim=16, heads=2, dim_head=8)
    module.set_processor(AttnProcessor2_0())
    return module.eval()


def _sd15_shaped_unet(**overrides) -> UNet2DConditionModel:
    torch.manual_seed(0)
    config = dict(
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        sample_size=16,
        cross_attention_dim=16,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        norm_num_groups=8,
        attention_head_dim=4,
    )
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


def _hand_attention(attn: Attention, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ / √d) V per head, written out, then the output projection."""
    query, key, value = attn.to_q(hidden), attn.to_k(context), attn.to_v(context)
    heads, dim = attn.heads, query.shape[-1] // attn.heads
    split = lambda t: t.view(t.shape[0], t.shape[1], heads, dim).transpose(1, 2)  # noqa: E731
    query, key, value = split(query), split(key), split(value)
    weights = torch.softmax(query @ key.transpose(-1, -2) / dim**0.5, dim=-1)
    output = (weights @ value).transpose(1, 2).reshape(hidden.shape[0], hidden.shape[1], heads * dim)
    return attn.to_out[0](output)


def test_equals_self_attention_when_the_references_are_the_current_frame(attention):
    torch.manual_seed(1)
    hidden = torch.randn(2, 12, 16)
    store = CrossFrameAttentionStore()
    processor = CrossFrameAttnProcessor("layer", store, attention.processor)
    store.anchor[(7, "layer")] = hidden
    store.previous = {(7, "layer"): hidden.clone()}  # [current; current]
    store.set_step(7, attend=True)
    with torch.no_grad():
        cross = processor(attention, hidden)
        plain = AttnProcessor2_0()(attention, hidden)
    assert torch.allclose(cross, plain, atol=1e-5)


def test_matches_hand_computed_attention_over_anchor_and_previous(attention):
    torch.manual_seed(2)
    hidden, anchor, previous = torch.randn(2, 12, 16), torch.randn(2, 12, 16), torch.randn(2, 12, 16)
    store = CrossFrameAttentionStore()
    store.anchor[(3, "layer")] = anchor
    store.previous = {(3, "layer"): previous}
    store.set_step(3, attend=True)
    with torch.no_grad():
        cross = CrossFrameAttnProcessor("layer", store, attention.processor)(attention, hidden)
        expected = _hand_attention(attention, hidden, torch.cat([anchor, previous], dim=1))
        anchor_only = _hand_attention(attention, hidden, anchor)
    assert torch.allclose(cross, expected, atol=1e-5)
    assert not torch.allclose(cross, anchor_only, atol=1e-3)
    # while "previous" is the anchor itself, attention over [anchor; anchor] = attention over anchor
    store.previous = None
    with torch.no_grad():
        assert torch.allclose(
            CrossFrameAttnProcessor("layer", store, attention.processor)(attention, hidden), anchor_only, atol=1e-5
        )


def test_inactive_processor_hands_over_to_the_original(attention):
    torch.manual_seed(3)
    hidden = torch.randn(1, 6, 16)
    store = CrossFrameAttentionStore()
    store.anchor[(5, "layer")] = torch.randn(1, 6, 16)
    processor = CrossFrameAttnProcessor("layer", store, AttnProcessor())  # the classic (non-SDPA) processor
    with torch.no_grad():
        expected = AttnProcessor()(attention, hidden)
        store.set_step(5, attend=False)
        assert torch.equal(processor(attention, hidden), expected)
        store.set_step(6, attend=True)  # nothing recorded at this timestep
        assert torch.equal(processor(attention, hidden), expected)


def test_recording_keeps_the_compute_dtype_and_only_the_asked_steps(attention):
    hidden = torch.randn(1, 6, 16).to(torch.bfloat16)
    store = CrossFrameAttentionStore()
    processor = CrossFrameAttnProcessor("layer", store, attention.processor)
    attention.to(torch.bfloat16)
    with torch.no_grad():
        store.set_step(11, record="anchor")
        processor(attention, hidden)
        store.set_step(12)  # not recorded
        processor(attention, hidden)
    assert list(store.anchor) == [(11, "layer")] and store.anchor[(11, "layer")].dtype == torch.bfloat16
    assert store.nbytes == 6 * 16 * 2


def test_cross_attention_layers_are_never_touched(attention):
    store = CrossFrameAttentionStore()
    store.set_step(1, record="anchor", attend=True)
    hidden, context = torch.randn(1, 6, 16), torch.randn(1, 4, 16)
    with torch.no_grad():
        out = CrossFrameAttnProcessor("layer", store, attention.processor)(attention, hidden, context)
        assert torch.equal(out, AttnProcessor2_0()(attention, hidden, context))
    assert store.anchor == {}


def test_layers_are_selected_by_structure_and_loose_drops_the_lowest_resolution_stage():
    unet = _sd15_shaped_unet()
    layers = decoder_self_attention_layers(unet)
    assert len(layers) == 3 * 2  # up_blocks 1–3 × (layers_per_block + 1) transformer blocks
    assert all(name.startswith("up_blocks.") and ".attn1." in name for name in layers)
    loose = decoder_self_attention_layers(unet, loose=True)
    assert loose == [name for name in layers if not name.startswith("up_blocks.1.")]


def test_selection_does_not_depend_on_the_processor_class():
    unet = _sd15_shaped_unet()
    before = decoder_self_attention_layers(unet)
    unet.set_attn_processor(AttnProcessor())  # e.g. what xformers or a user would swap in
    assert decoder_self_attention_layers(unet) == before
    store = CrossFrameAttentionStore()
    with cross_frame_attention(unet, store) as installed:
        assert installed == before
        processors = unet.attn_processors
        assert all(isinstance(processors[name], CrossFrameAttnProcessor) for name in installed)
        assert all(isinstance(processors[name].original, AttnProcessor) for name in installed)


def test_processors_are_restored_after_the_block_and_when_it_raises():
    unet = _sd15_shaped_unet()
    original = dict(unet.attn_processors)
    store = CrossFrameAttentionStore()
    with cross_frame_attention(unet, store):
        assert any(isinstance(p, CrossFrameAttnProcessor) for p in unet.attn_processors.values())
    assert all(unet.attn_processors[name] is processor for name, processor in original.items())
    with pytest.raises(RuntimeError, match="boom"):
        with cross_frame_attention(unet, store):
            raise RuntimeError("boom")
    assert all(unet.attn_processors[name] is processor for name, processor in original.items())
    assert store.record is None and not store.attend


def test_unet_output_is_unchanged_when_references_equal_the_current_frame():
    unet = _sd15_shaped_unet()
    sample, text = torch.randn(1, 4, 16, 16), torch.randn(1, 5, 16)
    with torch.no_grad():
        plain = unet(sample, 10, text).sample
        store = CrossFrameAttentionStore()
        with cross_frame_attention(unet, store):
            store.set_step(10, record="anchor")
            recorded = unet(sample, 10, text).sample
            store.set_step(10, attend=True)
            attended = unet(sample, 10, text).sample
    assert torch.equal(recorded, plain)
    assert torch.allclose(attended, plain, atol=1e-5)
    assert {layer for _, layer in store.anchor} == set(decoder_self_attention_layers(unet))


def test_attend_to_references_runs_group_norm_on_both_sides():
    torch.manual_seed(4)
    attn = Attention(query_dim=8, heads=1, dim_head=8, norm_num_groups=2).eval()
    hidden = torch.randn(1, 8, 3, 3)
    with torch.no_grad():
        tokens = hidden.flatten(2).transpose(1, 2)
        assert torch.allclose(attend_to_references(attn, hidden, tokens), AttnProcessor2_0()(attn, hidden), atol=1e-5)


def test_xformers_original_selects_the_xformers_kernel(attention, monkeypatch):
    """With an xformers processor replaced, attention runs through xformers' (B, tokens, heads, dim) kernel."""
    import sys
    import types

    from diffusers.models.attention_processor import XFormersAttnProcessor

    calls = []

    def memory_efficient_attention(query, key, value, scale=None):
        calls.append(query.shape)
        output = torch.nn.functional.scaled_dot_product_attention(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), scale=scale
        )
        return output.transpose(1, 2)

    fake = types.ModuleType("xformers")
    fake.ops = types.SimpleNamespace(memory_efficient_attention=memory_efficient_attention)
    monkeypatch.setitem(sys.modules, "xformers", fake)
    monkeypatch.setitem(sys.modules, "xformers.ops", fake.ops)
    torch.manual_seed(5)
    hidden, anchor = torch.randn(2, 12, 16), torch.randn(2, 10, 16)
    store = CrossFrameAttentionStore()
    store.anchor[(1, "layer")] = anchor
    store.set_step(1, attend=True)
    processor = CrossFrameAttnProcessor("layer", store, XFormersAttnProcessor())
    assert processor.use_xformers
    with torch.no_grad():
        output = processor(attention, hidden)
        expected = _hand_attention(attention, hidden, anchor)
    assert calls == [(2, 12, 2, 8)]
    assert torch.allclose(output, expected, atol=1e-5)
