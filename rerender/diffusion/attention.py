"""Cross-frame attention: decoder self-attention that attends to the anchor and the previous keyframe.

Paper Eq. 6 (Rerender-A-Video §4.1.1): in the UNet decoder's self-attention layers, the queries come from the
current frame while keys and values come from the anchor (first keyframe) and the previous keyframe,
``K′ = W_K·[v_anchor; v_previous]``, ``V′ = W_V·[v_anchor; v_previous]``, which carries their style over.
The reference features ``v`` are the inputs of those layers, recorded while the references were rendered.

Three pieces, each replaceable:

* `CrossFrameAttentionStore` holds the recorded features per ``(timestep, layer)`` in the compute dtype, only
  for the timesteps and layers that use them, and says which timestep the UNet is at.
* `CrossFrameAttnProcessor` is a diffusers attention processor. It records features, or attends to the stored
  ones with `torch.nn.functional.scaled_dot_product_attention` (xformers' memory-efficient attention when the
  processor it replaces is an xformers one), and hands over to the replaced processor whenever it is inactive.
* `cross_frame_attention` installs the processors on the decoder self-attention layers for one block of code
  and restores the original processors afterwards, also when the block raises.

Layers are found by *structure* (``attn1`` of a transformer block in ``up_blocks``), never by class name: the
official code matched the class ``CrossAttention`` and silently lost cross-frame attention when xformers
replaced that class.

Example:
    >>> store = CrossFrameAttentionStore()                                   # doctest: +SKIP
    >>> with cross_frame_attention(unet, store):                             # doctest: +SKIP
    ...     store.set_step(timestep, record="anchor", attend=False)          # doctest: +SKIP
    ...     unet(latents, timestep, encoder_hidden_states=text)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = [
    "CrossFrameAttentionStore",
    "CrossFrameAttnProcessor",
    "decoder_self_attention_layers",
    "cross_frame_attention",
    "attend_to_references",
]

RecordTarget = Literal["anchor", "pending"]

_DECODER_SELF_ATTENTION = re.compile(r"^up_blocks\.(\d+)\..*\.attn1\.processor$")


class CrossFrameAttentionStore:
    """Reference features for cross-frame attention, and the switch the processors read at every call.

    Three sets of features, each a mapping ``(timestep, layer name) → (B, tokens, channels)`` tensor:

    * ``anchor``: recorded while the anchor is rendered;
    * ``previous``: the previous keyframe's, or None while it is the anchor itself (the first keyframe, or when
      the style is never updated); attending to ``[anchor; anchor]`` equals attending to ``anchor``, so no copy
      and no doubled keys are needed then;
    * ``pending``: the keyframe being rendered; `commit_pending` turns it into ``previous`` (style update).

    Features are kept as the layers produce them (the compute dtype), only for the layers the processors are
    installed on and only for the timesteps the pipeline asks to record.

    Attributes:
        timestep: the timestep of the UNet call in progress, or None outside sampling.
        record: where the current call's features go ("anchor", "pending") or None.
        attend: whether the current call attends to the references.
    """

    def __init__(self) -> None:
        self.anchor: dict[tuple[int, str], torch.Tensor] = {}
        self.previous: dict[tuple[int, str], torch.Tensor] | None = None
        self.pending: dict[tuple[int, str], torch.Tensor] = {}
        self.timestep: int | None = None
        self.record: RecordTarget | None = None
        self.attend: bool = False

    def __repr__(self) -> str:
        return (
            f"CrossFrameAttentionStore(anchor={len(self.anchor)}, previous="
            f"{'anchor' if self.previous is None else len(self.previous)}, pending={len(self.pending)}, "
            f"{self.nbytes / 2**20:.1f} MiB)"
        )

    def set_step(self, timestep: int | None, record: RecordTarget | None = None, attend: bool = False) -> None:
        """Say what the next UNet call does: record into `record`, attend to the references, or neither."""
        self.timestep = None if timestep is None else int(timestep)
        self.record = record
        self.attend = attend

    def idle(self) -> None:
        """No recording, no attending: every processor hands over to the original one."""
        self.set_step(None)

    def save(self, layer: str, features: torch.Tensor) -> None:
        """Record a layer's input features for the current timestep (no copy: the layer does not reuse them)."""
        if self.record is None or self.timestep is None:
            return
        target = self.anchor if self.record == "anchor" else self.pending
        target[(self.timestep, layer)] = features.detach()

    def references(self, layer: str) -> torch.Tensor | None:
        """``[anchor; previous]`` features of a layer at the current timestep, concatenated over tokens.

        Returns None when nothing was recorded for this timestep and layer (the processor then falls back to
        ordinary self-attention).

        Shape:
            - Output: (B, N_anchor + N_previous, C), or (B, N_anchor, C) while previous is the anchor
        """
        key = (self.timestep, layer)
        anchor = self.anchor.get(key)
        if anchor is None:
            return None
        previous = None if self.previous is None else self.previous.get(key)
        if previous is None:
            return anchor
        return torch.cat((anchor, previous), dim=1)

    def commit_pending(self) -> None:
        """Make the pending keyframe's features the new "previous" references (style update)."""
        self.previous, self.pending = self.pending, {}

    def discard_pending(self) -> None:
        self.pending = {}

    def clear(self) -> None:
        """Forget every reference."""
        self.anchor, self.previous, self.pending = {}, None, {}
        self.idle()

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored features."""
        stores = [self.anchor, self.pending] + ([self.previous] if self.previous is not None else [])
        return sum(tensor.numel() * tensor.element_size() for store in stores for tensor in store.values())


def _is_xformers_processor(processor: object) -> bool:
    try:
        from diffusers.models.attention_processor import XFormersAttnProcessor
    except ImportError:  # pragma: no cover - diffusers without xformers support
        return False
    return isinstance(processor, XFormersAttnProcessor)


def attend_to_references(
    attn: torch.nn.Module,
    hidden_states: torch.Tensor,
    references: torch.Tensor,
    temb: torch.Tensor | None = None,
    use_xformers: bool = False,
) -> torch.Tensor:
    """Attention of a diffusers `Attention` module with queries from `hidden_states`, keys/values from `references`.

    Paper Eq. 6: ``softmax(Q·K′ᵀ/√d)·V′`` with ``Q = W_Q·v_current``, ``K′ = W_K·references``,
    ``V′ = W_V·references``. Everything else the module does around its attention (spatial and group norm,
    output projection, residual connection, output rescale) is applied as diffusers' processors apply it.
    The attention itself runs through `scaled_dot_product_attention` (flash / memory-efficient kernels; never
    a full score matrix on GPU) or xformers' `memory_efficient_attention`.

    Args:
        attn: the `diffusers.models.attention_processor.Attention` module.
        hidden_states: the layer's input for the current frame.
        references: the reference features (the same layer's inputs for the reference frames).
        temb: time embedding, used only by modules with a spatial norm.
        use_xformers: use xformers instead of PyTorch's SDPA.

    Returns:
        The layer's output.

    Shape:
        - hidden_states: (B, N, C) or (B, C, H, W)
        - references: (B, M, C), recorded layer inputs (before any spatial or group norm)
        - Output: the shape of `hidden_states`
    """
    residual = hidden_states
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    input_ndim = hidden_states.ndim
    if input_ndim == 4:
        batch, channels, height, width = hidden_states.shape
        hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)  # (B, N, C)
    references = references.to(hidden_states.dtype)
    if attn.group_norm is not None:  # self-attention takes its keys after the group norm: so do the references
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        references = attn.group_norm(references.transpose(1, 2)).transpose(1, 2)
    if references.shape[0] != hidden_states.shape[0]:
        raise RuntimeError(
            f"cross-frame references have batch {references.shape[0]} but the layer input has batch "
            f"{hidden_states.shape[0]}; the references were recorded with another guidance setting"
        )

    batch = hidden_states.shape[0]
    query = attn.to_q(hidden_states)
    key = attn.to_k(references)
    value = attn.to_v(references)
    head_dim = key.shape[-1] // attn.heads
    if use_xformers:
        import xformers.ops

        query, key, value = (
            tensor.view(batch, -1, attn.heads, head_dim) for tensor in (query, key, value)
        )  # (B, tokens, heads, head_dim)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        output = xformers.ops.memory_efficient_attention(query, key, value, scale=attn.scale)
        output = output.reshape(batch, -1, attn.heads * head_dim)
    else:
        query, key, value = (
            tensor.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for tensor in (query, key, value)
        )  # (B, heads, tokens, head_dim)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        output = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        output = output.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)  # (B, N, C)
    output = attn.to_out[0](output.to(query.dtype))
    output = attn.to_out[1](output)  # dropout
    if input_ndim == 4:
        output = output.transpose(-1, -2).reshape(batch, channels, height, width)
    if attn.residual_connection:
        output = output + residual
    return output / attn.rescale_output_factor


class CrossFrameAttnProcessor:
    """Attention processor of one decoder self-attention layer with cross-frame attention.

    At every call it reads the store: it records the layer's input when asked to, and attends to the stored
    ``[anchor; previous]`` features when asked to and when features exist for this timestep. Otherwise it
    hands over to the processor it replaced, so outside the cross-frame window the layer behaves exactly as
    before (same kernel, same numerics).

    Args:
        layer: the layer's name in `unet.attn_processors` (the store's key).
        store: the shared `CrossFrameAttentionStore`.
        original: the processor this one replaces.
    """

    def __init__(self, layer: str, store: CrossFrameAttentionStore, original: object) -> None:
        self.layer = layer
        self.store = store
        self.original = original
        self.use_xformers = _is_xformers_processor(original)

    def __repr__(self) -> str:
        return f"CrossFrameAttnProcessor({self.layer!r}, original={type(self.original).__name__})"

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        store = self.store
        is_self_attention = encoder_hidden_states is None and attention_mask is None
        if is_self_attention and store.record is not None:
            tokens = hidden_states.flatten(2).transpose(1, 2) if hidden_states.ndim == 4 else hidden_states
            store.save(self.layer, tokens)  # (B, N, C)
        references = store.references(self.layer) if (is_self_attention and store.attend) else None
        if references is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        return attend_to_references(attn, hidden_states, references, temb, self.use_xformers)


def decoder_self_attention_layers(unet: torch.nn.Module, loose: bool = False) -> list[str]:
    """Names (keys of `unet.attn_processors`) of the decoder self-attention layers cross-frame attention uses.

    These are the ``attn1`` layers of the transformer blocks in ``up_blocks``. The *loose* variant (official
    ``loose_cfattn``) leaves out the lowest-resolution decoder stage that has attention (in SD 1.5 the three
    1280-wide layers of ``up_blocks.1``), which follows the input video more closely and reduces ghosting.

    Args:
        unet: a diffusers `UNet2DConditionModel`.
        loose: leave out the lowest-resolution attention stage of the decoder.

    Returns:
        Processor names in the UNet's order.
    """
    layers = [name for name in unet.attn_processors if _DECODER_SELF_ATTENTION.match(name)]
    if loose and layers:
        lowest_resolution_stage = min(int(_DECODER_SELF_ATTENTION.match(name).group(1)) for name in layers)
        layers = [
            name for name in layers if int(_DECODER_SELF_ATTENTION.match(name).group(1)) != lowest_resolution_stage
        ]
    return layers


@contextlib.contextmanager
def cross_frame_attention(
    unet: torch.nn.Module, store: CrossFrameAttentionStore, loose: bool = False
) -> Iterator[list[str]]:
    """Install `CrossFrameAttnProcessor` on the decoder self-attention layers; restore the originals on exit.

    Only the selected layers change; every other layer keeps its processor object. The originals are put back
    in a ``finally`` clause, so an exception inside the block (or a generator closed early) leaves the UNet as
    it was. The store is set idle on entry and on exit.

    Args:
        unet: a diffusers `UNet2DConditionModel` (it is modified only inside the block).
        store: the references and the per-call switch.
        loose: the loose variant (see `decoder_self_attention_layers`).

    Yields:
        The names of the layers that got a cross-frame processor.
    """
    original = dict(unet.attn_processors)  # set_attn_processor pops from the dict it is given: keep a copy
    layers = decoder_self_attention_layers(unet, loose)
    if not layers:
        logger.warning(
            "the UNet has no decoder self-attention layer%s: cross-frame attention is off",
            " left by loose" if loose else "",
        )
    replaced = dict(original)
    for layer in layers:
        replaced[layer] = CrossFrameAttnProcessor(layer, store, original[layer])
    store.idle()
    unet.set_attn_processor(replaced)
    try:
        yield layers
    finally:
        store.idle()
        unet.set_attn_processor(dict(original))
