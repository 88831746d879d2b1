"""Cross-frame attention: decoder self-attention that attends to the anchor and the previous keyframe.

Paper Eq. 6 (Rerender-A-Video §4.1.1): in the UNet decoder's self-attention layers, the queries come from the
current frame while keys and values come from the anchor (first keyframe) and the previous keyframe,
``K′ = W_K·[v_anchor; v_previous]``, ``V′ = W_V·[v_anchor; v_previous]``, which carries their style over.
The reference features ``v`` are the inputs of those layers, recorded while the references were rendered.

Three pieces, each replaceable:

* `CrossFrameAttentionStore` holds the recorded features per ``(timestep, layer)`` in the compute dtype, only
  for the timesteps and layers that use them, on the GPU or in (pinned) host memory with asynchronous copies
  both ways (``constraints.reference_storage``), and says which timestep the UNet is at.
* `CrossFrameAttnProcessor` is a diffusers attention processor. It records features, or attends to the stored
  ones with `torch.nn.functional.scaled_dot_product_attention` (xformers' memory-efficient attention when the
  processor it replaces is an xformers one), and hands over to the replaced processor whenever it is inactive.
* `cross_frame_attention` installs the processors on the decoder self-attention layers for one block of code
  and restores the original processors afterwards, also when the block raises.

How much the references take is known before rendering (`reference_bytes_estimate`: sets held at once × steps ×
batch × bytes per value × Σ tokens·channels of the layers, `decoder_layer_shapes`), and `choose_reference_storage`
decides from it where "auto" keeps them.

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

import collections
import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
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
    "decoder_layer_shapes",
    "references_held",
    "reference_bytes_estimate",
    "choose_reference_storage",
    "AUTO_HOST_BYTES",
    "PREFETCH_BYTES",
]

RecordTarget = Literal["anchor", "pending"]

_DECODER_SELF_ATTENTION = re.compile(r"^up_blocks\.(\d+)\..*\.attn1\.processor$")

PREFETCH_BYTES = 256 * 2**20
"""Host storage: at most this many bytes of references are on the GPU at once (on their way, waiting, or used by
layers the GPU has not run yet: the CPU waits for the GPU before going further), and always the next layer's: a
whole SDXL step at 1024² (about 440 MB for anchor + previous) comes in two windows, a Flux step in five blocks."""

HOST_CHUNK_BYTES = 64 * 2**20
"""Host storage: pinned memory is taken in chunks of this size (a power of two) and cut into one piece per
feature: PyTorch's pinned allocator rounds every allocation up to a power of two, which would make a 5.2 MB SDXL
feature hold 8 MB."""

_ALIGNMENT = 1024  # bytes between pieces of a chunk: aligned for DMA and for every dtype's view


class _HostArena:
    """CPU memory for one reference set (anchor or pending keyframe), handed out as contiguous tensors cut from
    `HOST_CHUNK_BYTES` chunks. A chunk lives as long as a tensor cut from it (the tensors are views of it), so a
    set's memory returns to PyTorch's caching allocator when the set is dropped."""

    def __init__(self, pin: bool) -> None:
        self.pin = pin
        self.chunk: torch.Tensor | None = None
        self.offset = 0

    def empty(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised contiguous CPU tensor (pinned when the arena pins)."""
        nbytes = shape.numel() * dtype.itemsize
        if self.chunk is None or self.offset + nbytes > self.chunk.numel():
            size = max(HOST_CHUNK_BYTES, 1 << max(nbytes - 1, 0).bit_length())  # a power of two: nothing rounded up
            self.chunk = torch.empty(size, dtype=torch.uint8, pin_memory=self.pin)
            self.offset = 0
        piece = self.chunk[self.offset : self.offset + nbytes]
        self.offset += -(-nbytes // _ALIGNMENT) * _ALIGNMENT
        return piece.view(dtype).view(shape)


class CrossFrameAttentionStore:
    """Reference features for cross-frame attention, and the switch the processors read at every call.

    Three sets of features, each a mapping ``(timestep, layer name) → (B, tokens, channels)`` tensor:

    * ``anchor``: recorded while the anchor is rendered;
    * ``previous``: the previous keyframe's, or None while it is the anchor itself (the first keyframe, or when
      the style is never updated); attending to ``[anchor; anchor]`` equals attending to ``anchor``, so no copy
      and no doubled keys are needed then;
    * ``pending``: the keyframe being rendered; `commit_pending` turns it into ``previous`` (style update).

    Features are kept in the compute dtype, only for the layers the processors are installed on and only for the
    timesteps the pipeline asks to record. Where they are kept is `place`'s choice:

    * on the device (``storage=None``, the default): as the layers produce them, no copy;
    * on the host (``storage="cpu"``): each recorded feature is copied to CPU memory (pinned, asynchronously on a
      side CUDA stream, when computing on CUDA), and the references a UNet call attends to are copied back to
      ``compute`` as soon as `set_step` says the call attends: on a second side stream, at most `PREFETCH_BYTES`
      ahead, so the copies overlap with the ControlNet and the blocks before the decoder. A layer waits on its
      own copy's CUDA event, never on a full synchronisation. The values the attention sees are the same in both
      places (copies in the same dtype), so the outputs are too. On the CPU the same code runs with plain copies.

    Attributes:
        timestep: the timestep of the UNet call in progress, or None outside sampling.
        record: where the current call's features go ("anchor", "pending") or None.
        attend: whether the current call attends to the references.
        storage: where features are kept: None = where the layers produce them, else that (CPU) device.
        compute: where the attention runs (the references are brought there from `storage`).
        peak_nbytes: the most bytes held at once, checked whenever a keyframe's features are committed or
            discarded and when the store is cleared (where the three sets are fullest).
        fetches: host storage: how many layer calls found their references prefetched (``"ahead"``) or had to
            fetch them when asked (``"on_demand"``).
    """

    def __init__(
        self,
        storage: torch.device | str | None = None,
        compute: torch.device | str | None = None,
        prefetch_bytes: int = PREFETCH_BYTES,
    ) -> None:
        self.anchor: dict[tuple[int, str], torch.Tensor] = {}
        self.previous: dict[tuple[int, str], torch.Tensor] | None = None
        self.pending: dict[tuple[int, str], torch.Tensor] = {}
        self.timestep: int | None = None
        self.record: RecordTarget | None = None
        self.attend: bool = False
        self.peak_nbytes = 0
        self.fetches = {"ahead": 0, "on_demand": 0}
        self.prefetch_bytes = prefetch_bytes
        self.storage: torch.device | None = None
        self.compute: torch.device | None = None
        self._arenas: dict[str, _HostArena] = {}
        self._copied: dict[str, torch.cuda.Event] = {}  # set → event after its last host copy (CUDA)
        self._offload_stream = self._prefetch_stream = None
        self._queue: collections.deque[str] = collections.deque()  # layers of this step still to prefetch
        self._prefetched: dict[str, tuple[torch.Tensor, torch.cuda.Event | None]] = {}
        self._in_flight = 0  # bytes prefetched and not yet handed to a layer
        # CUDA: references handed to layers stay allocated until the GPU has run those layers (the CPU may be ahead):
        # compute-stream events, each after the layers that used `bytes`, and the bytes handed over since the last
        self._used: collections.deque[tuple[torch.cuda.Event, int]] = collections.deque()
        self._unmarked = 0
        self.place(storage, compute)

    def __repr__(self) -> str:
        return (
            f"CrossFrameAttentionStore(anchor={len(self.anchor)}, previous="
            f"{'anchor' if self.previous is None else len(self.previous)}, pending={len(self.pending)}, "
            f"{self.nbytes / 2**20:.1f} MiB on {'the device' if self.storage is None else self.storage})"
        )

    # ------------------------------------------------------------------------------------------------
    # where the features live
    # ------------------------------------------------------------------------------------------------

    def place(self, storage: torch.device | str | None, compute: torch.device | str | None = None) -> None:
        """Choose where features are kept (None: where the layers produce them; "cpu": host memory) and where the
        attention runs (`compute`, needed with host storage). Only while the store is empty.

        Raises:
            RuntimeError: features are already stored.
        """
        if self.anchor or self.pending or self.previous:
            raise RuntimeError("the reference storage can only change while the store is empty (call clear first)")
        self.storage = None if storage is None else torch.device(storage)
        self.compute = None if compute is None else torch.device(compute)
        if self.storage is not None and self.storage.type != "cpu":
            raise ValueError(f"features are stored where the layers produce them (None) or on the CPU, not {storage}")
        if self.storage is not None and self.compute is None:
            raise ValueError("host storage needs the compute device the references are brought back to")
        cuda = self.on_host and self.compute.type == "cuda"
        self._arenas = {}
        self._copied = {}
        if cuda:
            self._offload_stream = torch.cuda.Stream(self.compute)
            self._prefetch_stream = torch.cuda.Stream(self.compute)
        else:
            self._offload_stream = self._prefetch_stream = None
        self._drop_prefetched()
        self._used.clear()
        self._unmarked = 0

    @property
    def on_host(self) -> bool:
        """Whether recorded features are copied to `storage` (host memory)."""
        return self.storage is not None

    @property
    def _cuda(self) -> bool:
        return self._offload_stream is not None

    def _arena(self, target: str) -> _HostArena:
        if target not in self._arenas:  # pinned for asynchronous copies to and from a CUDA device
            self._arenas[target] = _HostArena(pin=self.compute is not None and self.compute.type == "cuda")
        return self._arenas[target]

    def _to_host(self, features: torch.Tensor, target: RecordTarget) -> torch.Tensor:
        """A host copy of `features` (asynchronous on CUDA: the set's event marks when it is done)."""
        host = self._arena(target).empty(features.shape, features.dtype)
        if not self._cuda:
            host.copy_(features)
            return host
        stream = self._offload_stream
        stream.wait_stream(torch.cuda.current_stream(features.device))  # after the layer has produced them
        with torch.cuda.stream(stream):
            host.copy_(features, non_blocking=True)
        features.record_stream(stream)  # their memory is not reused before the copy has read it
        event = torch.cuda.Event()
        event.record(stream)
        self._copied[target] = event
        return host

    def _host_ready(self, target: str) -> None:
        """Block the CPU until the host copies of a set are done (before the CPU reads them)."""
        if target in self._copied:
            self._copied[target].synchronize()

    # ------------------------------------------------------------------------------------------------
    # the per-call switch
    # ------------------------------------------------------------------------------------------------

    def set_step(self, timestep: int | None, record: RecordTarget | None = None, attend: bool = False) -> None:
        """Say what the next UNet call does: record into `record`, attend to the references, or neither.

        With host storage and `attend`, the references of this timestep start coming back to the compute device.
        """
        self._drop_prefetched()
        self.timestep = None if timestep is None else int(timestep)
        self.record = record
        self.attend = attend
        if attend and self.on_host and self.timestep is not None:
            self._queue.extend(layer for step, layer in self.anchor if step == self.timestep)
            if self._cuda:
                for target in ("anchor", "previous"):  # the host copies these references come from
                    if target in self._copied:
                        self._prefetch_stream.wait_event(self._copied[target])
            self._prefetch()

    def idle(self) -> None:
        """No recording, no attending: every processor hands over to the original one."""
        self.set_step(None)

    def save(self, layer: str, features: torch.Tensor) -> None:
        """Record a layer's input features for the current timestep (on the device no copy is made: the layer does
        not reuse them; on the host a copy)."""
        if self.record is None or self.timestep is None:
            return
        target = self.anchor if self.record == "anchor" else self.pending
        features = features.detach()
        target[(self.timestep, layer)] = self._to_host(features, self.record) if self.on_host else features

    def references(self, layer: str) -> torch.Tensor | None:
        """``[anchor; previous]`` features of a layer at the current timestep, concatenated over tokens, on the
        compute device.

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
        if not self.on_host:
            return anchor if previous is None else torch.cat((anchor, previous), dim=1)
        fetched = self._prefetched.pop(layer, None)
        self.fetches["on_demand" if fetched is None else "ahead"] += 1
        if fetched is None:  # a call the prefetch did not foresee (e.g. a second one at this step): fetch it now
            if self._cuda:
                stream = torch.cuda.current_stream(self.compute)
                for event in self._copied.values():  # after the host copies it reads
                    stream.wait_event(event)
            return self._fetch(anchor, previous)
        references, event = fetched
        nbytes = references.numel() * references.element_size()
        self._in_flight -= nbytes
        if event is not None:
            self._mark_used()  # the layers before this one have been enqueued: mark where the GPU is done with them
            stream = torch.cuda.current_stream(references.device)
            stream.wait_event(event)
            references.record_stream(stream)  # made on the prefetch stream, used on this one
            self._unmarked += nbytes
        self._prefetch()
        return references

    def _mark_used(self) -> None:
        """Record a compute-stream event after the layers handed references since the last mark (CUDA)."""
        if self._unmarked:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.compute))
            self._used.append((event, self._unmarked))
            self._unmarked = 0

    def _ahead(self) -> int:
        """Bytes of references on the compute device that no layer has finished with (prefetched or in use)."""
        return self._in_flight + self._unmarked + sum(nbytes for _, nbytes in self._used)

    def _fetch(self, anchor: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """``[anchor; previous]`` copied to the compute device in one new tensor (on the current stream).

        Shape:
            - anchor: (B, N_anchor, C), previous: (B, N_previous, C) or None
            - Output: (B, N_anchor + N_previous, C)
        """
        tokens = anchor.shape[1] + (0 if previous is None else previous.shape[1])
        references = torch.empty((anchor.shape[0], tokens, anchor.shape[2]), dtype=anchor.dtype, device=self.compute)
        references[:, : anchor.shape[1]].copy_(anchor, non_blocking=self._cuda)
        if previous is not None:
            references[:, anchor.shape[1] :].copy_(previous, non_blocking=self._cuda)
        return references

    def _prefetch(self) -> None:
        """Start bringing the next layers' references to the compute device, up to `prefetch_bytes` ahead."""
        while self._queue:
            layer = self._queue[0]
            key = (self.timestep, layer)
            anchor = self.anchor[key]
            previous = None if self.previous is None else self.previous.get(key)
            nbytes = (anchor.numel() + (0 if previous is None else previous.numel())) * anchor.element_size()
            while self._used and self._ahead() + nbytes > self.prefetch_bytes:
                event, _ = self._used.popleft()
                event.synchronize()  # the CPU is ahead of the GPU: wait until it has run those layers
            if self._in_flight and self._ahead() + nbytes > self.prefetch_bytes:
                return  # the window holds references no layer has used yet: later calls bring the rest
            self._queue.popleft()
            if self._cuda:
                with torch.cuda.stream(self._prefetch_stream):
                    references = self._fetch(anchor, previous)
                event = torch.cuda.Event()
                event.record(self._prefetch_stream)
            else:
                references, event = self._fetch(anchor, previous), None
            self._prefetched[layer] = (references, event)
            self._in_flight += nbytes

    def _drop_prefetched(self) -> None:
        """Forget references prefetched for a call that did not use them (made and never read on the prefetch
        stream: their memory may be reused at once)."""
        if self._cuda:
            self._mark_used()
        self._queue.clear()
        self._prefetched.clear()
        self._in_flight = 0

    # ------------------------------------------------------------------------------------------------
    # the reference sets
    # ------------------------------------------------------------------------------------------------

    def commit_pending(self) -> None:
        """Make the pending keyframe's features the new "previous" references (style update)."""
        self._update_peak()
        self.previous, self.pending = self.pending, {}
        self._arenas.pop("pending", None)  # the next keyframe's features go to new chunks
        event = self._copied.pop("pending", None)
        self._copied.pop("previous", None)
        if event is not None:
            self._copied["previous"] = event

    def discard_pending(self) -> None:
        self._update_peak()
        self.pending = {}
        self._arenas.pop("pending", None)
        self._copied.pop("pending", None)

    def clear(self) -> None:
        """Forget every reference."""
        self._update_peak()
        self.anchor, self.previous, self.pending = {}, None, {}
        self._arenas, self._copied = {}, {}
        self.idle()

    def previous_on_host(self) -> dict[tuple[int, str], torch.Tensor] | None:
        """The "previous" features as CPU tensors, to save (`RerenderPipeline`'s resume state), or None while the
        previous keyframe is the anchor. With host storage these are the stored tensors themselves (they are never
        written again), after their copies have finished; on the device, copies."""
        if self.previous is None:
            return None
        if self.on_host:
            self._host_ready("previous")
            return dict(self.previous)
        return {key: value.cpu() for key, value in self.previous.items()}

    def load_previous(
        self, features: dict[tuple[int, str], torch.Tensor] | None, dtype: torch.dtype | None = None
    ) -> None:
        """Put saved "previous" features back (the inverse of `previous_on_host`), in `dtype`, where this store
        keeps features (host memory, or the compute device)."""
        if features is None:
            self.previous = None
            return
        self._arenas.pop("previous", None)
        self._copied.pop("previous", None)
        previous = {}
        for key, value in features.items():
            value = value.to(dtype=dtype or value.dtype)
            if self.on_host:
                host = self._arena("previous").empty(value.shape, value.dtype)
                previous[key] = host.copy_(value)
            else:
                previous[key] = value.to(self.compute) if self.compute is not None else value
        self._arenas.pop("previous", None)
        self.previous = previous

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored features."""
        stores = [self.anchor, self.pending] + ([self.previous] if self.previous is not None else [])
        return sum(tensor.numel() * tensor.element_size() for store in stores for tensor in store.values())

    def _update_peak(self) -> None:
        self.peak_nbytes = max(self.peak_nbytes, self.nbytes)


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


# --------------------------------------------------------------------------------------------------------
# how many bytes the references take, and where to keep them
# --------------------------------------------------------------------------------------------------------

AUTO_HOST_BYTES = 2 * 2**30
"""``reference_storage: auto`` keeps the references in host memory on CUDA above this estimate (2 GiB): SDXL at
1024² (9.9 GB) and Flux at 1024² go to the host, SD 1.5 at 512² (1.2 GB) stays on the GPU."""


def decoder_layer_shapes(
    unet: torch.nn.Module, layers: Sequence[str], latent_size: tuple[int, int]
) -> list[tuple[int, int]]:
    """``(tokens, channels)`` of the input of each decoder self-attention layer at a latent size, from the UNet's
    structure alone (nothing runs).

    Channels are the layer's query width; tokens are its decoder stage's grid: the latent halved once per
    downsampling encoder block (rounding up, as a stride-2 convolution with padding 1), doubled back once per
    upsampling decoder block before the stage. SD 1.5 at a 64² latent: 16² for ``up_blocks.1`` (1280 channels),
    32² (640), 64² (320); SDXL at 128²: 32² for ``up_blocks.0`` (1280), 64² for ``up_blocks.1`` (640).

    Args:
        unet: a diffusers `UNet2DConditionModel`.
        layers: processor names from `decoder_self_attention_layers`.
        latent_size: ``(h, w)`` of the latent.
    """
    downsampling = sum(1 for block in unet.down_blocks if getattr(block, "downsamplers", None))
    shapes = []
    for name in layers:
        stage = int(_DECODER_SELF_ATTENTION.match(name).group(1))
        halvings = downsampling - sum(1 for block in unet.up_blocks[:stage] if getattr(block, "upsamplers", None))
        height, width = latent_size
        for _ in range(halvings):
            height, width = -(-height // 2), -(-width // 2)
        attention = unet.get_submodule(name.removesuffix(".processor"))
        shapes.append((height * width, int(getattr(attention, "query_dim", None) or attention.to_q.in_features)))
    return shapes


def references_held(frames: int, style_update_interval: int | None) -> int:
    """How many reference sets are held at once while `frames` frames (the anchor first) are rendered.

    The anchor's always; the keyframe being rendered records its own ("pending") when the style is updated at it
    (keyframe number n, counted from 0, when n mod interval = 0); a previous keyframe's set is held beside both from
    the first update after keyframe 0 on (``frames − 2 ≥ interval``). So 1 for a single frame or without style
    updates, 2 while no second update comes, else 3.
    """
    if frames <= 1 or style_update_interval is None:
        return 1
    return 2 if frames - 2 < style_update_interval else 3


def reference_bytes_estimate(
    layer_shapes: Sequence[tuple[int, int]], steps: int, batch: int, element_size: int, references: int
) -> int:
    """Bytes of cross-frame attention references held at once:
    ``references · steps · batch · element_size · Σ_layers tokens · channels``.

    Every reference set keeps one ``(batch, tokens, channels)`` input per layer and per step cross-frame attention
    acts at. SD 1.5 at 512² (20 steps, strength 0.75: 15 steps; guidance: batch 2; float16; 9 layers, 6.88 M values
    a step): 413 MB per set, 1.24 GB for 3. SDXL at 1024² (36 layers, 55.05 M values a step): 3.30 GB per set,
    9.91 GB for 3. Flux at 1024² (57 blocks of 4,096 tokens × 3,072, batch 1, bfloat16, 3 steps): 4.30 GB per set,
    12.9 GB for 3.

    Args:
        layer_shapes: ``(tokens, channels)`` of each layer's recorded input (`decoder_layer_shapes`).
        steps: the steps cross-frame attention acts (and records) at.
        batch: 2 when guidance runs in the batch, else 1.
        element_size: bytes per value of the compute dtype.
        references: reference sets held at once (`references_held`).
    """
    values = sum(tokens * channels for tokens, channels in layer_shapes)
    return references * steps * batch * element_size * values


def choose_reference_storage(
    storage: str, estimate: int, device: torch.device, offloaded: bool = False
) -> Literal["device", "host"]:
    """Where ``constraints.reference_storage`` puts the references: "device" or "host".

    "device" and "host" are taken as given. "auto" is "device" off CUDA (nothing to save: the CPU's memory is the
    host's, and MPS memory is unified), and on CUDA "host" when the references would crowd the GPU: an `estimate`
    above `AUTO_HOST_BYTES`, or model CPU offload on (`offloaded`: the user keeps the GPU for the running model).

    Args:
        storage: "auto", "device" or "host" (`rerender.config.ReferenceStorage`).
        estimate: bytes of the references held at once (`reference_bytes_estimate`).
        device: where the model runs.
        offloaded: whether model CPU offload is on.
    """
    if storage in ("device", "host"):
        return storage
    if storage != "auto":
        raise ValueError(f"reference storage must be 'auto', 'device' or 'host', got {storage!r}")
    if torch.device(device).type != "cuda":
        return "device"
    return "host" if offloaded or estimate > AUTO_HOST_BYTES else "device"
