"""Cross-frame attention in the blocks of a diffusion transformer: Z-Image's single-stream blocks, Flux's
double- and single-stream blocks (`flux_cross_frame_attention`, below: the same rule, with Flux's joint sequence
``[text; image]`` and its separate text projections in the double-stream blocks).

Rerender's Eq. 6 makes a keyframe's decoder self-attention take its keys and values from the anchor and the
previous keyframe, ``K′ = W_K·[v_anchor; v_previous]``, ``V′ = W_V·[v_anchor; v_previous]``. A single-stream
transformer attends over one joint sequence ``[image tokens; text tokens]`` in every main block; the same rule
becomes, for each chosen block:

* image-token queries of the current frame attend to ``[anchor image tokens; previous image tokens; own text
  tokens]`` (the references' block inputs, recorded while they were rendered at the same step, projected with this
  block's ``W_K``/``W_V``, q/k-normed and rotated with the *same* positions as the current image tokens, so a token
  and the reference token at the same place have relative position 0);
* text-token queries are untouched: they attend to the current sequence as before.

With the anchor equal to the current frame (and no separate previous keyframe), image queries attend to exactly
their own ``[image; text]`` keys, so the block's output is unchanged: the test of this module checks it.

Which blocks: all blocks of the main stream (``transformer.layers``), where image and text tokens are joined;
the refiners before it see one modality each. ``last_blocks=N`` keeps the last N of them (the ones nearest the
output, like the UNet decoder that Rerender chooses), for when memory is short: each reference stores one
``(B, tokens, dim)`` input per block and attention step (`reference_bytes`). The store keeps them on the GPU or in
host memory (``constraints.reference_storage``; "auto" puts Flux and Z-Image at 1024² on the host), with the same
processors either way.

Example:
    >>> store = CrossFrameAttentionStore()                                          # doctest: +SKIP
    >>> with token_cross_frame_attention(transformer, store, image_tokens=1024):    # doctest: +SKIP
    ...     store.set_step(step, record="anchor")                                   # doctest: +SKIP
    ...     transformer(latents, t, prompt_embeds)                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from rerender.diffusion.attention import CrossFrameAttentionStore

logger = logging.getLogger(__name__)

__all__ = [
    "main_stream_blocks",
    "TokenCrossFrameAttnProcessor",
    "token_cross_frame_attention",
    "reference_bytes",
    "REFERENCE_FRAMES",
    "blocks_within",
    "flux_blocks",
    "FluxCrossFrameAttnProcessor",
    "flux_cross_frame_attention",
]


def main_stream_blocks(transformer: torch.nn.Module, last_blocks: int | None = None) -> list[str]:
    """Names of the main-stream self-attention modules cross-frame attention uses (``layers.<i>.attention``).

    The rule is structural: the ``attention`` module of each block in ``transformer.layers`` (the joint
    image + text stream), never a class name.

    Args:
        transformer: a diffusers `ZImageTransformer2DModel` (or any model with a ``layers`` ModuleList of blocks
            with an ``attention`` module).
        last_blocks: keep only the last N blocks; None = all.

    Returns:
        Module names in the model's order.
    """
    names = [
        f"layers.{index}.attention" for index, block in enumerate(transformer.layers) if hasattr(block, "attention")
    ]
    if last_blocks is not None:
        names = names[max(0, len(names) - last_blocks) :]
    return names


def _rotate(tokens: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Z-Image's rotary embedding: complex multiplication of channel pairs by ``freqs_cis`` (as its processor does).

    Shape:
        - tokens: (B, N, heads, head_dim)
        - freqs_cis: (B, N, head_dim / 2), complex
        - Output: (B, N, heads, head_dim)
    """
    complex_tokens = torch.view_as_complex(tokens.float().reshape(*tokens.shape[:-1], -1, 2))
    return torch.view_as_real(complex_tokens * freqs_cis.unsqueeze(2)).flatten(3).type_as(tokens)


class TokenCrossFrameAttnProcessor:
    """Attention processor of one main-stream block with cross-frame attention on its image tokens.

    It reads the shared `CrossFrameAttentionStore` at every call: it records the block's image-token inputs when
    asked to, and attends to the stored ``[anchor; previous]`` inputs when asked to and when they exist for this
    step; otherwise it hands over to the processor it replaced (same numerics as before).

    Args:
        layer: the attention module's name (the store's key).
        store: the shared store; its ``image_tokens`` attribute gives how many leading tokens are image tokens.
        original: the processor this one replaces.
    """

    def __init__(self, layer: str, store: CrossFrameAttentionStore, original: Any) -> None:
        self.layer = layer
        self.store = store
        self.original = original

    def __repr__(self) -> str:
        return f"TokenCrossFrameAttnProcessor({self.layer!r})"

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        freqs_cis: torch.Tensor | None = None,
    ) -> torch.Tensor:
        store = self.store
        image_tokens = getattr(store, "image_tokens", None)
        if image_tokens is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, freqs_cis)
        if store.record is not None:
            store.save(self.layer, hidden_states[:, :image_tokens])  # (B, N_image, dim)
        references = store.references(self.layer) if store.attend else None
        if references is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, freqs_cis)
        return self.attend(attn, hidden_states, references, image_tokens, attention_mask, freqs_cis)

    @staticmethod
    def attend(
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        references: torch.Tensor,
        image_tokens: int,
        attention_mask: torch.Tensor | None,
        freqs_cis: torch.Tensor | None,
    ) -> torch.Tensor:
        """The block's attention with image queries over ``[references; own text]`` and text queries over their own sequence.

        Shape:
            - hidden_states: (B, L, dim), the first `image_tokens` tokens are the image's
            - references: (B, r·image_tokens, dim), r = 1 or 2 references recorded at the same positions
            - attention_mask: (B, L) bool or None
            - freqs_cis: (B, L, head_dim / 2) complex or None
            - Output: (B, L, dim)
        """
        references = references.to(hidden_states.dtype)
        if references.shape[0] != hidden_states.shape[0]:
            raise RuntimeError(
                f"cross-frame references have batch {references.shape[0]} but the block input has batch "
                f"{hidden_states.shape[0]}; the references were recorded with another guidance setting"
            )
        copies = references.shape[1] // image_tokens

        def project(tokens: torch.Tensor, layer: torch.nn.Module, norm: torch.nn.Module | None) -> torch.Tensor:
            projected = layer(tokens).unflatten(-1, (attn.heads, -1))  # (B, N, heads, head_dim)
            return norm(projected) if norm is not None else projected

        query = project(hidden_states, attn.to_q, attn.norm_q)
        key = project(hidden_states, attn.to_k, attn.norm_k)
        value = project(hidden_states, attn.to_v, None)
        reference_key = project(references, attn.to_k, attn.norm_k)
        reference_value = project(references, attn.to_v, None)
        if freqs_cis is not None:
            query, key = _rotate(query, freqs_cis), _rotate(key, freqs_cis)
            reference_key = _rotate(reference_key, freqs_cis[:, :image_tokens].repeat(1, copies, 1))

        # image queries: keys = references' image tokens + own text tokens; text queries: their own sequence
        image_key = torch.cat((reference_key, key[:, image_tokens:]), dim=1)
        image_value = torch.cat((reference_value, value[:, image_tokens:]), dim=1)
        own_mask = image_mask = None
        if attention_mask is not None:
            own_mask = attention_mask[:, None, None, :].bool()
            reference_mask = torch.ones(
                attention_mask.shape[0], references.shape[1], dtype=torch.bool, device=attention_mask.device
            )
            image_mask = torch.cat((reference_mask, attention_mask[:, image_tokens:].bool()), dim=1)[:, None, None, :]

        def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
            )
            return out.transpose(1, 2).flatten(2)  # (B, N, dim)

        image_out = sdpa(query[:, :image_tokens], image_key, image_value, image_mask)
        text_out = sdpa(query[:, image_tokens:], key, value, own_mask)
        output = torch.cat((image_out, text_out), dim=1).to(hidden_states.dtype)
        output = attn.to_out[0](output)
        if len(attn.to_out) > 1:  # dropout
            output = attn.to_out[1](output)
        return output


@contextlib.contextmanager
def token_cross_frame_attention(
    transformer: torch.nn.Module, store: CrossFrameAttentionStore, image_tokens: int, last_blocks: int | None = None
) -> Iterator[list[str]]:
    """Install `TokenCrossFrameAttnProcessor` on the main-stream blocks for one block of code; restore on exit.

    Args:
        transformer: the diffusion transformer (modified only inside the block; originals restored in ``finally``).
        store: the references and the per-call switch; its ``image_tokens`` is set for the block.
        image_tokens: how many leading tokens of the joint sequence are image tokens (after the model's padding).
        last_blocks: use only the last N main blocks (`main_stream_blocks`).

    Yields:
        The names of the layers that got a cross-frame processor.
    """
    layers = main_stream_blocks(transformer, last_blocks)
    modules = {layer: transformer.get_submodule(layer) for layer in layers}
    original = {layer: module.processor for layer, module in modules.items()}
    store.idle()
    store.image_tokens = image_tokens
    for layer, module in modules.items():
        module.set_processor(TokenCrossFrameAttnProcessor(layer, store, original[layer]))
    try:
        yield layers
    finally:
        store.idle()
        store.image_tokens = None
        for layer, module in modules.items():
            module.set_processor(original[layer])


def reference_bytes(
    image_tokens: int, dim: int, blocks: int, steps: int, batch: int = 1, element_size: int = 2
) -> int:
    """Bytes one reference frame (anchor, previous or pending keyframe) holds: one block input per block and step.

    At 1024² on Z-Image (4,096 image tokens, dim 3,840, 30 blocks) in bf16: 31.5 MB per block and step, 7.5 GB for
    8 steps in all blocks; ``last_blocks=10`` needs a third of that.
    """
    return batch * image_tokens * dim * blocks * steps * element_size


REFERENCE_FRAMES = 3
"""Reference frames whose block inputs are held at once while a keyframe renders: the anchor, the previous
keyframe and the keyframe being rendered (kept as the next one's "previous")."""


def blocks_within(
    budget_bytes: float,
    image_tokens: int,
    dim: int,
    steps: int,
    total_blocks: int,
    batch: int = 1,
    element_size: int = 2,
) -> int:
    """How many blocks cross-frame attention can use within a memory budget for the stored references: the
    structural rule behind ``constraints.cross_frame_blocks`` when memory is short.

    All `REFERENCE_FRAMES` references keep one ``(batch, image_tokens, dim)`` input per chosen block and attention
    step (`reference_bytes`), so ``N = ⌊budget / (3·batch·tokens·dim·steps·element_size)⌋`` blocks fit, capped
    at `total_blocks`; the chosen ones are the last N (nearest the output, as Rerender picks the UNet decoder).
    0 means not even one block fits: turn cross-frame attention off or lower the resolution.

    Args:
        budget_bytes: memory set aside for the references.
        image_tokens: image tokens per frame ((H/16)·(W/16) for Z-Image and Flux).
        dim: the transformer width (Z-Image 3,840, Flux 3,072).
        steps: steps at which cross-frame attention acts (the schedule's ``cross_attention`` steps).
        total_blocks: the blocks the family's rule offers (Z-Image 30 main-stream, Flux 19 + 38).
        batch: 2 with classifier-free guidance in the batch (Flux's true guidance), else 1.
        element_size: bytes per value (2 in bf16/fp16).

    Example:
        >>> blocks_within(4 * 2**30, 4096, 3072, 3, 57)  # Flux at 1024², 3 steps, 4 GiB
        18
    """
    per_block = REFERENCE_FRAMES * reference_bytes(image_tokens, dim, 1, steps, batch, element_size)
    return int(min(total_blocks, budget_bytes // per_block))


# --------------------------------------------------------------------------------------------------------
# Flux: double-stream blocks (image and text apart, joined in attention) and single-stream blocks ([text; image])
# --------------------------------------------------------------------------------------------------------


def flux_blocks(transformer: torch.nn.Module, last_blocks: int | None = None) -> list[str]:
    """Names of the attention modules of a Flux transformer that cross-frame attention uses, in the model's order.

    The rule is structural: the ``attn`` of every double-stream block (``transformer_blocks.<i>.attn``: image and
    text tokens in separate streams, joined in attention) then of every single-stream block
    (``single_transformer_blocks.<i>.attn``: one joint sequence, text tokens first). All of them mix image and text.

    Args:
        transformer: a diffusers `FluxTransformer2DModel` (or a model with those two ModuleLists).
        last_blocks: keep only the last N blocks (those nearest the output); None = all.
    """
    names = [f"transformer_blocks.{index}.attn" for index in range(len(transformer.transformer_blocks))]
    names += [f"single_transformer_blocks.{index}.attn" for index in range(len(transformer.single_transformer_blocks))]
    if last_blocks is not None:
        names = names[max(0, len(names) - last_blocks) :]
    return names


def _flux_rotate(
    tokens: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None, start: int, stop: int, copies: int = 1
) -> torch.Tensor:
    """Flux's rotary embedding (diffusers' `apply_rotary_emb`, channel pairs) with the positions ``[start, stop)``,
    repeated `copies` times along the sequence (references recorded at the same positions).

    Shape:
        - tokens: (B, copies·(stop − start), heads, head_dim)
        - rotary: ``(cos, sin)``, each (L, head_dim) for the whole joint sequence
        - Output: like tokens
    """
    if rotary is None:
        return tokens
    from diffusers.models.embeddings import apply_rotary_emb

    cos, sin = (part[start:stop].repeat(copies, 1) for part in rotary)
    return apply_rotary_emb(tokens, (cos, sin), sequence_dim=1)


class FluxCrossFrameAttnProcessor:
    """Attention processor of one Flux block (double- or single-stream) with cross-frame attention on its image tokens.

    Records the block's image-token input (the image stream of a double-stream block, the last ``image_tokens``
    tokens of a single-stream block's joint sequence) when the store asks, and, when asked to attend and references
    exist for this step, lets the image queries attend to ``[references' image tokens; own text tokens]``: the
    references projected with this block's ``to_k``/``to_v``, normed with ``norm_k`` and rotated with the current
    image tokens' positions. Text queries attend to their own joint sequence as before. Otherwise it hands over to
    the processor it replaced.

    Args:
        layer: the attention module's name (the store's key).
        store: the shared store; its ``image_tokens`` gives how many tokens are image tokens.
        original: the processor this one replaces.
    """

    def __init__(self, layer: str, store: CrossFrameAttentionStore, original: Any) -> None:
        self.layer = layer
        self.store = store
        self.original = original

    def __repr__(self) -> str:
        return f"FluxCrossFrameAttnProcessor({self.layer!r})"

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Any:
        store = self.store
        image_tokens = getattr(store, "image_tokens", None)
        if image_tokens is None or attention_mask is not None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        image = hidden_states if encoder_hidden_states is not None else hidden_states[:, -image_tokens:]
        if store.record is not None:
            store.save(self.layer, image)  # (B, N_image, dim)
        references = store.references(self.layer) if store.attend else None
        if references is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        return self.attend(attn, hidden_states, encoder_hidden_states, references, image_tokens, image_rotary_emb)

    @staticmethod
    def attend(
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        references: torch.Tensor,
        image_tokens: int,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> Any:
        """The block's attention: image queries over ``[references; own text]``, text queries over their own sequence.

        Double-stream (`encoder_hidden_states` given): returns ``(image output, text output)`` after ``to_out`` and
        ``to_add_out``, as `FluxAttnProcessor`. Single-stream: returns the joint ``[text; image]`` output (no
        output projection: the block applies it).

        Shape:
            - hidden_states: (B, N_image, dim) (double-stream) or (B, T + N_image, dim) (single-stream)
            - encoder_hidden_states: (B, T, dim) or None
            - references: (B, r·N_image, dim), r = 1 or 2 references recorded at the same positions
            - rotary: ``(cos, sin)`` of the joint ``[text; image]`` sequence, each (T + N_image, head_dim)
        """
        if references.shape[0] != hidden_states.shape[0]:
            raise RuntimeError(
                f"cross-frame references have batch {references.shape[0]} but the block input has batch "
                f"{hidden_states.shape[0]}; the references were recorded with another guidance setting"
            )
        references = references.to(hidden_states.dtype)
        copies = references.shape[1] // image_tokens

        def project(tokens: torch.Tensor, layer: torch.nn.Module, norm: torch.nn.Module | None) -> torch.Tensor:
            projected = layer(tokens).unflatten(-1, (-1, attn.head_dim))  # (B, N, heads, head_dim)
            return norm(projected) if norm is not None else projected

        double = encoder_hidden_states is not None
        if double:  # the joint sequence is [text; image], text through the block's own added projections
            query = torch.cat(
                (
                    project(encoder_hidden_states, attn.add_q_proj, attn.norm_added_q),
                    project(hidden_states, attn.to_q, attn.norm_q),
                ),
                dim=1,
            )
            key = torch.cat(
                (
                    project(encoder_hidden_states, attn.add_k_proj, attn.norm_added_k),
                    project(hidden_states, attn.to_k, attn.norm_k),
                ),
                dim=1,
            )
            value = torch.cat(
                (project(encoder_hidden_states, attn.add_v_proj, None), project(hidden_states, attn.to_v, None)), dim=1
            )
        else:
            query = project(hidden_states, attn.to_q, attn.norm_q)
            key = project(hidden_states, attn.to_k, attn.norm_k)
            value = project(hidden_states, attn.to_v, None)
        length = query.shape[1]
        text = length - image_tokens
        query, key = _flux_rotate(query, rotary, 0, length), _flux_rotate(key, rotary, 0, length)
        reference_key = _flux_rotate(project(references, attn.to_k, attn.norm_k), rotary, text, length, copies)
        reference_value = project(references, attn.to_v, None)

        def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            return out.transpose(1, 2).flatten(2)  # (B, N, dim)

        # image queries: keys = references' image tokens + own text tokens; text queries: their own sequence
        image_out = sdpa(
            query[:, text:],
            torch.cat((reference_key, key[:, :text]), dim=1),
            torch.cat((reference_value, value[:, :text]), dim=1),
        )
        text_out = sdpa(query[:, :text], key, value)
        dtype = hidden_states.dtype
        if not double:
            return torch.cat((text_out, image_out), dim=1).to(dtype)
        image_out = attn.to_out[1](attn.to_out[0](image_out.to(dtype)))
        return image_out, attn.to_add_out(text_out.to(dtype))


@contextlib.contextmanager
def flux_cross_frame_attention(
    transformer: torch.nn.Module, store: CrossFrameAttentionStore, image_tokens: int, last_blocks: int | None = None
) -> Iterator[list[str]]:
    """Install `FluxCrossFrameAttnProcessor` on a Flux transformer's blocks for one block of code; restore on exit.

    Args:
        transformer: a `FluxTransformer2DModel` (modified only inside the block; originals restored in ``finally``).
        store: the references and the per-call switch; its ``image_tokens`` is set for the block.
        image_tokens: how many packed image tokens the transformer sees ((H/16)·(W/16)).
        last_blocks: use only the last N blocks (`flux_blocks`).

    Yields:
        The names of the layers that got a cross-frame processor.
    """
    layers = flux_blocks(transformer, last_blocks)
    modules = {layer: transformer.get_submodule(layer) for layer in layers}
    original = {layer: module.processor for layer, module in modules.items()}
    store.idle()
    store.image_tokens = image_tokens
    for layer, module in modules.items():
        module.set_processor(FluxCrossFrameAttnProcessor(layer, store, original[layer]))
    try:
        yield layers
    finally:
        store.idle()
        store.image_tokens = None
        for layer, module in modules.items():
            module.set_processor(original[layer])
