"""Where cross-frame attention keeps its references (`constraints.reference_storage`): the store's host path (copies
into chunked host memory, prefetch within a window), the estimate of the bytes held at once against what a run
holds, the `auto` rule, and outputs with host storage equal to those with device storage on both UNet families,
the transformer bases, Text2Video-Zero and resume. On the CPU the host path runs with plain copies (storage "cpu",
compute "cpu"); the CUDA test (marked ``gpu``) compares the two storages bitwise with pinned memory and streams."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from rerender.config import ConstraintConfig, ReferenceStorage, choices
from rerender.diffusion import attention as attention_module
from rerender.diffusion.attention import (
    AUTO_HOST_BYTES,
    CrossFrameAttentionStore,
    choose_reference_storage,
    decoder_layer_shapes,
    decoder_self_attention_layers,
    reference_bytes_estimate,
    references_held,
)
from tests.test_pipeline import ZeroFlow, make_frames

REPO = Path(__file__).resolve().parents[1]
STEPS, STRENGTH = 5, 0.8  # strength 0.8 of 5 steps: steps 1–4 run, cross-frame attention at all 4


def host_store(**kwargs) -> CrossFrameAttentionStore:
    return CrossFrameAttentionStore(storage="cpu", compute="cpu", **kwargs)


def record(store, target, timestep, features):
    """Record `features` (layer → tensor) at `timestep` into `target` as the processors do."""
    store.set_step(timestep, record=target)
    for layer, tensor in features.items():
        store.save(layer, tensor)
    store.idle()


def attended(store, timestep, layers):
    store.set_step(timestep, attend=True)
    out = {layer: store.references(layer) for layer in layers}
    store.idle()
    return out


# --------------------------------------------------------------------------------------------------------
# the store's host path
# --------------------------------------------------------------------------------------------------------


def test_host_storage_copies_every_feature_into_its_own_piece_of_host_memory():
    store = host_store()
    features = {f"layer{i}": torch.full((2, 5 + i, 3), float(i)) for i in range(6)}
    record(store, "anchor", 7, features)
    for i, (layer, tensor) in enumerate(features.items()):
        tensor.add_(100)  # the layer's buffer changes later: the store kept a copy
        stored = store.anchor[(7, layer)]
        assert stored.device.type == "cpu" and stored.is_contiguous() and stored.shape == tensor.shape
        assert torch.equal(stored, torch.full_like(stored, float(i)))  # no piece overlaps another
    chunks = {tensor.untyped_storage().data_ptr() for tensor in store.anchor.values()}
    assert len(chunks) == 1  # one chunk for the small pieces, not one allocation each
    assert store.nbytes == sum(t.numel() * 4 for t in features.values())


def test_a_feature_larger_than_a_chunk_gets_a_power_of_two_chunk_of_its_own(monkeypatch):
    monkeypatch.setattr(attention_module, "HOST_CHUNK_BYTES", 1024)
    store = host_store()
    big, small = torch.arange(600.0).reshape(1, 200, 3), torch.ones(1, 2, 3)
    record(store, "anchor", 1, {"big": big, "small": small})
    stored = store.anchor[(1, "big")]
    assert torch.equal(stored, big) and stored.untyped_storage().nbytes() == 4096  # 2400 bytes → 4096
    assert torch.equal(store.anchor[(1, "small")], small)


def test_host_and_device_storage_serve_the_same_references_through_updates():
    """Record an anchor, two keyframes (one committed, one discarded); every step's references are equal."""
    generator = torch.Generator().manual_seed(0)

    def features():
        return {f"l{i}": torch.randn(2, 4 * (i + 1), 8, generator=generator) for i in range(3)}

    frames = [{t: features() for t in (10, 20)} for _ in range(3)]
    stores = {"device": CrossFrameAttentionStore(), "host": host_store(prefetch_bytes=0)}
    for store in stores.values():
        for timestep, layers in frames[0].items():
            record(store, "anchor", timestep, layers)
    seen = {name: [] for name in stores}
    for commit, frame in zip((True, False), frames[1:]):
        for name, store in stores.items():
            for timestep, layers in frame.items():
                seen[name].append(attended(store, timestep, layers))
                record(store, "pending", timestep, layers)
            store.commit_pending() if commit else store.discard_pending()
            seen[name].append(attended(store, 10, frame[10]))
    for device_step, host_step in zip(seen["device"], seen["host"], strict=True):
        for layer in device_step:
            assert torch.equal(device_step[layer], host_step[layer])
    assert seen["host"][-1]["l0"].shape == (2, 8, 8)  # [anchor; previous] after the commit
    assert stores["host"].fetches == {"ahead": 3 * 6, "on_demand": 0}
    assert stores["host"].peak_nbytes == stores["device"].peak_nbytes == 3 * 2 * (4 + 8 + 12) * 8 * 4 * 2


def test_prefetch_stays_within_its_window_and_a_second_call_fetches_on_demand():
    store = host_store(prefetch_bytes=2 * 16 * 4)  # two layers of (1, 4, 4) float32 ahead
    layers = {f"l{i}": torch.full((1, 4, 4), float(i)) for i in range(5)}
    record(store, "anchor", 3, layers)
    store.set_step(3, attend=True)
    assert list(store._prefetched) == ["l0", "l1"] and store._in_flight == 128
    for i in range(5):
        assert torch.equal(store.references(f"l{i}"), layers[f"l{i}"])
        assert store._in_flight <= store.prefetch_bytes
    assert store.fetches == {"ahead": 5, "on_demand": 0}
    assert torch.equal(store.references("l2"), layers["l2"])  # asked again in the same step
    assert store.fetches["on_demand"] == 1
    store.idle()
    assert not store._prefetched and store._in_flight == 0 and store.references("l0") is None


def test_storage_is_chosen_while_the_store_is_empty_and_previous_round_trips():
    store = host_store()
    record(store, "anchor", 1, {"l": torch.ones(1, 2, 2)})
    with pytest.raises(RuntimeError, match="only change while the store is empty"):
        store.place(None, "cpu")
    with pytest.raises(ValueError, match="compute device"):
        CrossFrameAttentionStore(storage="cpu")
    with pytest.raises(ValueError, match="or on the CPU, not meta"):
        CrossFrameAttentionStore(storage="meta", compute="cpu")
    saved = {(1, "l"): torch.arange(4.0).reshape(1, 2, 2)}
    for store in (host_store(), CrossFrameAttentionStore(compute="cpu")):
        store.load_previous(saved, torch.bfloat16)
        back = store.previous_on_host()
        assert back[(1, "l")].dtype == torch.bfloat16 and torch.equal(back[(1, "l")].float(), saved[(1, "l")])
        store.load_previous(None)
        assert store.previous_on_host() is None


# --------------------------------------------------------------------------------------------------------
# the estimate and the auto rule
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "interval", "held"),
    [(1, 1, 1), (5, None, 1), (2, 1, 2), (3, 1, 3), (3, 2, 2), (4, 2, 3), (10, 9, 2), (11, 9, 3)],
)
def test_references_held_at_once(frames, interval, held):
    assert references_held(frames, interval) == held


def _meta_unet(folder: str):
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # the structure only: no memory, no initialisation
        return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(REPO / "rerender/assets" / folder))


def test_the_documented_estimates_and_where_auto_puts_them():
    """SD 1.5 512² and SDXL 1024², 20 steps at strength 0.75 (15 steps), guidance, float16; Flux at 1024²."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    sd15, sdxl = _meta_unet("sd15-config/unet"), _meta_unet("sdxl-config/unet")
    sd15_shapes = decoder_layer_shapes(sd15, decoder_self_attention_layers(sd15), (64, 64))
    sdxl_shapes = decoder_layer_shapes(sdxl, decoder_self_attention_layers(sdxl), (128, 128))
    assert sd15_shapes == [(256, 1280)] * 3 + [(1024, 640)] * 3 + [(4096, 320)] * 3
    assert sdxl_shapes == [(1024, 1280)] * 30 + [(4096, 640)] * 6
    loose = decoder_layer_shapes(sdxl, decoder_self_attention_layers(sdxl, loose=True), (128, 128))
    assert loose == [(4096, 640)] * 6
    sd15_bytes = reference_bytes_estimate(sd15_shapes, 15, 2, 2, 3)
    sdxl_bytes = reference_bytes_estimate(sdxl_shapes, 15, 2, 2, 3)
    flux_bytes = reference_bytes_estimate([(4096, 3072)] * 57, 3, 1, 2, 3)
    assert (sd15_bytes, sdxl_bytes, flux_bytes) == (1_238_630_400, 9_909_043_200, 12_910_067_712)
    assert reference_bytes_estimate(sdxl_shapes, 15, 2, 2, 1) == 3_303_014_400  # one set: 3.3 GB
    assert [choose_reference_storage("auto", n, cuda) for n in (sd15_bytes, sdxl_bytes, flux_bytes)] == [
        "device",
        "host",
        "host",
    ]
    assert choose_reference_storage("auto", AUTO_HOST_BYTES, cuda) == "device"
    assert choose_reference_storage("auto", AUTO_HOST_BYTES + 1, cuda) == "host"
    assert choose_reference_storage("auto", sd15_bytes, cuda, offloaded=True) == "host"
    assert choose_reference_storage("auto", sdxl_bytes, cpu) == "device"  # nothing to save off CUDA
    assert choose_reference_storage("auto", sdxl_bytes, torch.device("mps"), offloaded=True) == "device"
    assert choose_reference_storage("host", 0, cpu) == "host" and choose_reference_storage("device", 10**12, cuda)
    assert set(choices(ReferenceStorage)) == {"auto", "device", "host"}
    with pytest.raises(ValueError, match="'auto', 'device' or 'host'"):
        choose_reference_storage("gpu", 0, cuda)


def test_the_config_field_is_checked_and_exposed():
    from rerender.config import field_help
    from rerender.errors import ConfigError
    from rerender.ui.fields import ADVANCED_GROUPS

    assert ConstraintConfig().reference_storage == "auto"
    with pytest.raises(ConfigError, match="constraints.reference_storage.*'auto', 'device', 'host'.*'gpu'"):
        ConstraintConfig(reference_storage="gpu")
    assert "pinned CPU memory" in field_help("constraints.reference_storage")
    assert "constraints.reference_storage" in ADVANCED_GROUPS["Cross-frame constraints"]


def test_the_cli_sets_the_storage_and_names_a_bad_value(capsys):
    from tests.test_cli import run_cli

    code, out, _ = run_cli(capsys, "config", "show", "--set", "reference_storage=host")
    assert code == 0 and "reference_storage: host" in out
    code, _, err = run_cli(capsys, "config", "show", "--set", "constraints.reference_storage=gpu")
    assert code == 2 and "`constraints.reference_storage` must be one of 'auto', 'device', 'host', got 'gpu'" in err


# --------------------------------------------------------------------------------------------------------
# the pipelines: the estimate against what a run holds, host outputs equal to device outputs
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def unet_pipe(request, tiny_pipeline_dir, tiny_sdxl_dir):
    from rerender.diffusion.pipeline import RerenderPipeline

    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir if request.param == "sd15" else tiny_sdxl_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def stores(monkeypatch):
    """Every store the pipelines create during the test."""
    from rerender.diffusion import pipeline as pipeline_module

    created = []

    class Recording(CrossFrameAttentionStore):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(pipeline_module, "CrossFrameAttentionStore", Recording)
    return created


def render(pipe, frames, storage, **kwargs):
    kwargs.setdefault("constraints", ConstraintConfig(reference_storage=storage, adain_period=(0.8, 1.0)))
    return list(
        pipe.render_keyframes(
            frames,
            "a red square",
            num_inference_steps=STEPS,
            strength=STRENGTH,
            flow_estimator=ZeroFlow(),
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        )
    )


@pytest.mark.parametrize("unet_pipe", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)], indirect=True)
def test_host_storage_renders_exactly_what_device_storage_renders(unet_pipe, stores):
    frames = make_frames(3)
    device = render(unet_pipe, frames, "device")
    host = render(unet_pipe, frames, "host")
    for ours, theirs in zip(host, device, strict=True):
        assert torch.equal(ours.image, theirs.image) and torch.equal(ours.latents, theirs.latents)
    on_device, on_host = stores
    assert not on_device.on_host and on_host.on_host and on_host.storage == torch.device("cpu")
    layers = len(decoder_self_attention_layers(unet_pipe.unet))
    # every attending call (2 keyframes × pass A's 4 steps + pass B's steps) found its references prefetched
    assert on_host.fetches["on_demand"] == 0 and on_host.fetches["ahead"] % layers == 0
    assert on_host.fetches["ahead"] >= 2 * 4 * layers
    assert on_host.peak_nbytes == on_device.peak_nbytes > 0
    # the resume state's features are the host copies themselves: CPU tensors equal to the device run's
    host_state, device_state = host[-1].resume_state["previous_features"], device[-1].resume_state["previous_features"]
    assert host_state.keys() == device_state.keys()
    assert all(torch.equal(host_state[key], device_state[key]) for key in host_state)


@pytest.mark.parametrize(
    ("count", "size", "constraints"),
    [
        (3, (64, 64), {}),
        (2, (54, 46), {"loose_cross_frame_attention": True}),  # an odd latent (27×23): the stages round up
        (3, (64, 48), {"style_update_interval": None}),
    ],
)
def test_the_estimate_is_what_a_run_holds_and_is_logged(unet_pipe, stores, caplog, count, size, constraints):
    frames = [frame[: size[1], : size[0]] for frame in make_frames(count)]
    config = ConstraintConfig(**constraints)
    with caplog.at_level(logging.INFO, logger="rerender.diffusion.pipeline"):
        render(unet_pipe, frames, "auto", constraints=config)
    (store,) = stores
    factor = unet_pipe.vae_scale_factor
    layers = decoder_self_attention_layers(unet_pipe.unet, loose=config.loose_cross_frame_attention)
    shapes = decoder_layer_shapes(unet_pipe.unet, layers, (size[1] // factor, size[0] // factor))
    held = references_held(count, config.style_update_interval)
    estimate = reference_bytes_estimate(shapes, 4, 2, 4, held)  # 4 steps, guidance, float32
    assert store.peak_nbytes == estimate and not store.on_host  # auto on the CPU: the device
    (line,) = [r.getMessage() for r in caplog.records if "cross-frame attention references" in r.getMessage()]
    assert f"about {estimate / 2**30:.2f} GiB held at once ({held} sets × 4 steps × {len(layers)} layers)" in line
    assert line.endswith("kept in device memory (reference_storage: auto)")


@pytest.mark.slow  # a fresh process / several renders: run with -m slow
def test_resume_works_with_host_storage_and_across_storages(tiny_pipeline_dir, stores):
    from rerender.diffusion.pipeline import RerenderPipeline

    pipe = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    pipe.set_progress_bar_config(disable=True)
    frames = make_frames(3)
    full = render(pipe, frames, "host")
    for storage in ("host", "device"):
        saved = dict(full[1].resume_state, next_index=2)
        resumed = render(pipe, frames, storage, resume=saved)
        assert [frame.index for frame in resumed] == [2]
        for original, again in zip(full[2:], resumed, strict=True):
            assert torch.equal(original.image, again.image)
    device_saved = dict(render(pipe, frames[:2], "device")[1].resume_state, next_index=2)
    resumed = render(pipe, frames, "host", resume=device_saved)
    assert torch.equal(resumed[0].image, full[2].image)


def test_text2video_keyframes_are_the_same_with_host_storage(unet_pipe, monkeypatch):
    from rerender.diffusion.text2video import render_text_keyframes

    def generate():
        return render_text_keyframes(
            unet_pipe,
            "a cube",
            [0, 4],
            (2.0, 0.0),
            (64, 64),
            num_inference_steps=4,
            generator=torch.Generator().manual_seed(0),
        )

    device = generate()
    placed = []
    real_place = CrossFrameAttentionStore.place
    monkeypatch.setattr(CrossFrameAttentionStore, "place", lambda s, *a: placed.append(a) or real_place(s, *a))
    monkeypatch.setattr(attention_module, "choose_reference_storage", lambda *args: "host")
    host = generate()
    assert placed[-1] == ("cpu", torch.device("cpu"))  # after the constructor's (None, None)
    for ours, theirs in zip(host, device, strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("family", ["zimage", "flux"])
def test_transformer_references_on_the_host_give_the_same_keyframes(family, tmp_path, stores):
    from tests.test_flow_transformers import FAMILIES

    spec = FAMILIES[family]
    components = getattr(spec.builders(), f"make_tiny_{family}_components")(tmp_path)
    components.pop("controlnet", None)
    pipe = spec.pipeline_class()(**components)
    pipe.set_progress_bar_config(disable=True)
    frames = make_frames(3)
    settings = dict(num_inference_steps=3, guidance_scale=spec.guidance_scale, strength=1.0, flow_estimator=ZeroFlow())
    outputs = {}
    for storage in ("device", "host"):
        outputs[storage] = list(
            pipe.render_keyframes(
                frames,
                "a cube",
                constraints=ConstraintConfig(reference_storage=storage, pixel_fusion_period=None),
                generator=torch.Generator().manual_seed(0),
                **settings,
            )
        )
    for ours, theirs in zip(outputs["host"], outputs["device"], strict=True):
        assert torch.equal(ours.image, theirs.image)
    on_device, on_host = stores[-2:]
    with type(pipe).cross_frame_attention(pipe, CrossFrameAttentionStore(), None) as names:
        blocks = len(names)  # every block the family's structural rule picks
    assert on_host.fetches == {"ahead": 2 * 3 * blocks, "on_demand": 0}  # 2 keyframes × 3 steps, all prefetched
    # 3 references × 3 steps × one (1, image tokens, width) input per block, as the estimate says
    estimate = reference_bytes_estimate([(spec.image_tokens, pipe.model_width)] * blocks, 3, 1, 4, 3)
    assert on_host.peak_nbytes == on_device.peak_nbytes == estimate


# --------------------------------------------------------------------------------------------------------
# CUDA: pinned memory, side streams, events
# --------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_on_cuda_host_storage_renders_bitwise_what_device_storage_renders(unet_pipe, stores, dtype):
    pipe = unet_pipe.to("cuda", dtype)
    try:
        frames = make_frames(3)
        device = render(pipe, frames, "device")
        host = render(pipe, frames, "host")
        for ours, theirs in zip(host, device, strict=True):
            assert torch.equal(ours.image, theirs.image) and torch.equal(ours.latents, theirs.latents)
        on_host = stores[-1]
        assert on_host.on_host and on_host.fetches["on_demand"] == 0
        assert all(tensor.is_pinned() for tensor in host[-1].resume_state["previous_features"].values())
    finally:
        unet_pipe.to("cpu", torch.float32)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Stand-ins for CUDA streams and events that log what CUDA would be asked, and a host store whose streams
    are theirs (as `place` makes them on CUDA); copies are plain CPU copies. Returns ``(store, log)``."""
    import contextlib

    log, current = [], []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_stream(self, other):
            log.append((self.name, "waits for", other.name))

        def wait_event(self, event):
            log.append((self.name, "waits on", event.name))

    class Event:
        made = 0

        def __init__(self):
            Event.made += 1
            self.name = f"e{Event.made}"

        def record(self, stream):
            log.append((stream.name, "records", self.name))

        def synchronize(self):
            log.append(("cpu", "waits on", self.name))

    compute = Stream("compute")

    @contextlib.contextmanager
    def on(stream):
        current.append(stream)
        yield
        current.pop()

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: compute)
    monkeypatch.setattr(torch.cuda, "stream", on)
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, stream: log.append((stream.name, "keeps", 0)))
    store = host_store(prefetch_bytes=2 * 16)  # two (1, 2, 2) float32 layers
    store._offload_stream, store._prefetch_stream = Stream("offload"), Stream("prefetch")
    fetch = store._fetch
    monkeypatch.setattr(
        store, "_fetch", lambda *a: log.append(((current or [compute])[-1].name, "copies in", 0)) or fetch(*a)
    )
    return store, log


def test_the_cuda_path_orders_its_copies_by_streams_and_events(fake_cuda):
    """The CUDA branch of host storage, run on the CPU with stand-ins: the copy out waits for the compute stream
    and keeps the feature's memory for the offload stream; the prefetch waits on the copies out; a layer waits on
    its own event and keeps the references for the compute stream; the CPU reads host copies only after waiting on
    them. (Real streams: the ``gpu`` test above.)"""
    store, log = fake_cuda
    record(store, "anchor", 5, {"a": torch.ones(1, 2, 2), "b": torch.zeros(1, 2, 2)})
    assert log == [
        ("offload", "waits for", "compute"),
        ("offload", "keeps", 0),
        ("offload", "records", "e1"),
        ("offload", "waits for", "compute"),
        ("offload", "keeps", 0),
        ("offload", "records", "e2"),
    ]
    log.clear()
    store.set_step(5, attend=True)
    assert log == [
        ("prefetch", "waits on", "e2"),  # the anchor's last copy out
        ("prefetch", "copies in", 0),
        ("prefetch", "records", "e3"),
        ("prefetch", "copies in", 0),
        ("prefetch", "records", "e4"),
    ]
    log.clear()
    assert torch.equal(store.references("b"), torch.zeros(1, 2, 2))
    assert log == [("compute", "waits on", "e4"), ("compute", "keeps", 0)]  # its own event, not a full sync
    log.clear()
    store.references("b")  # not prefetched any more: fetched on the compute stream after the copies out
    assert log == [("compute", "waits on", "e2"), ("compute", "copies in", 0)]
    log.clear()
    store.idle()
    assert log == [("compute", "records", "e5")]  # marks where the GPU is done with the references handed out
    record(store, "pending", 5, {"a": torch.ones(1, 2, 2)})
    store.commit_pending()
    log.clear()
    assert torch.equal(store.previous_on_host()[(5, "a")], torch.ones(1, 2, 2))
    assert log == [("cpu", "waits on", "e6")]  # the committed keyframe's last copy out, nothing else


def test_on_cuda_the_prefetch_waits_for_the_gpu_to_finish_with_references_it_handed_out(fake_cuda):
    """Window of two layers: the third is brought in only once the GPU has run the layer that used the first (the
    CPU may run ahead of the GPU; references handed out stay allocated until then)."""
    store, log = fake_cuda
    record(store, "anchor", 5, {f"l{i}": torch.full((1, 2, 2), float(i)) for i in range(3)})
    store.set_step(5, attend=True)
    assert list(store._prefetched) == ["l0", "l1"]
    log.clear()
    store.references("l0")  # l0 in use, l1 waiting: the window is full
    assert ("prefetch", "copies in", 0) not in log and list(store._prefetched) == ["l1"]
    log.clear()
    assert torch.equal(store.references("l1"), torch.ones(1, 2, 2))
    marker = log[0][2]
    assert log[0] == ("compute", "records", marker)  # after l0's layer
    assert log[3:] == [("cpu", "waits on", marker), ("prefetch", "copies in", 0), ("prefetch", "records", log[-1][2])]
    assert torch.equal(store.references("l2"), torch.full((1, 2, 2), 2.0)) and store.fetches["on_demand"] == 0
