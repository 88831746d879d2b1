"""The torch propagation engine against the numba engine and against the numpy definitions it ports (CPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import ebsynth_bridge
from ebsynth_bridge import patchmatch
from ebsynth_bridge.synthesis import _occupancy
from rerender.propagation import PropagationOptions, propagate_video, torch_engine
from rerender.propagation import torch_ops as ops

HEIGHT, WIDTH, FRAME_COUNT = 40, 56, 7
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread: on a shared CPU, torch's spinning worker threads cost far more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    mse = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def stylise(frame: np.ndarray) -> np.ndarray:
    return ((255 - frame[..., ::-1]) // 40 * 40 + 20).astype(np.uint8)


@pytest.fixture(scope="module")
def video() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A window sliding over a smooth random texture (1 px/frame right, 1 px every other frame down)."""
    rng = np.random.default_rng(3)
    world = cv2.GaussianBlur(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8), (0, 0), 2.0)
    world = cv2.normalize(world, None, 0, 255, cv2.NORM_MINMAX)
    frames = [
        np.ascontiguousarray(world[5 + t // 2 : 5 + t // 2 + HEIGHT, 6 + t : 6 + t + WIDTH])
        for t in range(FRAME_COUNT)
    ]
    return frames, [stylise(frame) for frame in frames]


def _run(video, **options):
    frames, truth = video
    keys = {0: truth[0], FRAME_COUNT - 1: truth[-1]}
    return propagate_video(frames, keys, progress=False, options=PropagationOptions(workers=1, **options))


@pytest.fixture(scope="module")
def numba_output(video):
    return _run(video, engine="numba")


@pytest.fixture(scope="module")
def torch_output(video):
    return _run(video, engine="torch", device="cpu")


# --------------------------------------------------------------------------------------------------
# same pictures
# --------------------------------------------------------------------------------------------------


def test_torch_engine_gives_the_numba_engines_pictures(video, numba_output, torch_output):
    _, truth = video
    inner = range(1, FRAME_COUNT - 1)
    numba_scores = [psnr(numba_output[t], truth[t]) for t in inner]
    torch_scores = [psnr(torch_output[t], truth[t]) for t in inner]
    # both recover the translation (measured 43–49 dB each), equally well (the suite's tolerance: 0.1 dB)
    assert min(torch_scores) > 40.0
    assert abs(np.mean(torch_scores) - np.mean(numba_scores)) < 0.1
    # and they agree with each other far better than with the truth (measured 70–78 dB): the same method
    assert min(psnr(torch_output[t], numba_output[t]) for t in inner) > 60.0
    np.testing.assert_array_equal(torch_output[0], truth[0])  # keys returned as given


@pytest.mark.parametrize("blend_mode", ["agreement", "histogram"])
def test_torch_engine_with_style_and_temporal_terms_and_other_blends(video, blend_mode):
    """The "rerender"-style energy (style term, temporal guide, stop threshold, uniformity), cut short."""
    frames, truth = video
    keys = {0: truth[0], 4: truth[4]}
    options = dict(
        style_weight=1.0,
        temporal_guide_weight=0.5,
        position_guide_weight=2.0,
        uniformity=3500.0,
        search_vote_iterations=2,
        patchmatch_iterations=2,
        blend_mode=blend_mode,
        workers=1,
    )
    numba = propagate_video(frames[:5], keys, progress=False, options=PropagationOptions(engine="numba", **options))
    ours = propagate_video(
        frames[:5], keys, progress=False, options=PropagationOptions(engine="torch", device="cpu", **options)
    )
    for t in (1, 2, 3):
        assert psnr(ours[t], truth[t]) > 28.0
        assert psnr(ours[t], truth[t]) > psnr(numba[t], truth[t]) - 1.0


def test_torch_engine_is_deterministic_and_independent_of_the_chunk_size(video, torch_output):
    again = _run(video, engine="torch", device="cpu")
    small_chunks = _run(video, engine="torch", device="cpu", chunk_pixels=700)  # one frame per batch, row bands
    for first, second, third in zip(torch_output, again, small_chunks):
        np.testing.assert_array_equal(first, second)
        np.testing.assert_array_equal(first, third)
    other_seed = _run(video, engine="torch", device="cpu", seed=5)
    assert any(not np.array_equal(a, b) for a, b in zip(torch_output, other_seed))


def test_a_long_interval_on_a_small_chunk_keeps_the_search_memory_bounded(monkeypatch):
    """16 frames of 32×32 with chunk_pixels = 256: every gathered block of patches holds ≤ 256 pixels, each
    batch one frame, whatever the interval's length."""
    rng = np.random.default_rng(1)
    world = cv2.GaussianBlur(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8), (0, 0), 1.5)
    frames = [np.ascontiguousarray(world[4:36, t : t + 32]) for t in range(16)]
    keys = {0: stylise(frames[0]), 15: stylise(frames[15])}
    largest, batch_sizes = [0], []
    real_gather, real_render = ops.gather_rows, torch_engine._render_batch

    def counting_gather(rows, index):
        largest[0] = max(largest[0], index.numel() * rows.shape[1])
        return real_gather(rows, index)

    def counting_render(state, frames, *args, **kwargs):
        batch_sizes.append(len(frames))
        return real_render(state, frames, *args, **kwargs)

    monkeypatch.setattr(ops, "gather_rows", counting_gather)
    monkeypatch.setattr(torch_engine, "_render_batch", counting_render)
    options = PropagationOptions(engine="torch", device="cpu", chunk_pixels=256, workers=1)
    output = propagate_video(frames, keys, progress=False, options=options)
    channels = 3 + 1 + 2  # colour, edge, position guides
    assert 0 < largest[0] <= 256 * 5 * 5 * channels
    assert set(batch_sizes) == {1} and len(batch_sizes) == 2 * 14
    assert np.mean([psnr(output[t], stylise(frames[t])) for t in range(1, 15)]) > 25.0


def test_progress_per_frame_and_cancel(video):
    frames, truth = video
    seen = []
    propagate_video(
        frames[:5],
        {0: truth[0], 4: truth[4]},
        progress=False,
        callback=lambda stage, done, total: seen.append((done, total)),
        options=PropagationOptions(engine="torch", device="cpu", chunk_pixels=HEIGHT * WIDTH),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]  # one report per frame (batches of one frame here)

    class Stop(Exception):
        pass

    def stop(stage, done, total):
        raise Stop

    with pytest.raises(Stop):
        propagate_video(
            frames,
            {0: truth[0]},
            progress=False,
            callback=stop,
            options=PropagationOptions(engine="torch", device="cpu"),
        )


def test_rerender_propagate_with_painted_keys_on_the_torch_engine(tmp_path, caplog):
    """`propagate_keyframes` (what `rerender propagate` runs): the torch engine, logged, in the workspace, with
    the numba engine's frames; a rerun reuses every interval."""
    import logging

    from rerender.synthetic import make_synthetic_video
    from rerender.video import read_image, write_image
    from rerender.workflow.keyframe_folder import propagate_keyframes

    frames = make_synthetic_video(num_frames=8, width=48, height=32, motion="translation").frames
    video, keys = tmp_path / "video", tmp_path / "keys"
    video.mkdir()
    keys.mkdir()
    for number, frame in enumerate(frames):
        write_image(frame, video / f"{number:04d}.png")
    for number in (0, 4, 7):
        write_image(stylise(frames[number]), keys / f"{number:04d}.png")
    settings = dict(progress=False, propagation_preset="fast", flow_estimator="dis", dis_preset="fast")
    with caplog.at_level(logging.INFO, logger="rerender.propagation"):
        propagate_keyframes(
            video,
            keys,
            tmp_path / "torch.mp4",
            workspace=tmp_path / "torch",
            engine="torch",
            **{"propagation.device": "cpu"},
            **settings,
        )
    assert "engine torch on cpu" in caplog.text
    propagate_keyframes(video, keys, tmp_path / "numba.mp4", workspace=tmp_path / "numba", engine="numba", **settings)
    for index in range(8):
        ours = read_image(tmp_path / "torch" / "propagated" / f"{index:04d}.png")
        reference = read_image(tmp_path / "numba" / "propagated" / f"{index:04d}.png")
        assert psnr(ours, reference) > 35.0, index
    again = propagate_keyframes(
        video,
        keys,
        tmp_path / "torch.mp4",
        workspace=tmp_path / "torch",
        engine="torch",
        **{"propagation.device": "cpu"},
        **settings,
    )
    assert "propagation" not in again.timings  # every interval kept


# --------------------------------------------------------------------------------------------------
# the ported maths against the numpy/numba definitions
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def field():
    rng = np.random.default_rng(0)
    source = rng.random((20, 24, 4)).astype(np.float32) * 255
    target = rng.random((18, 22, 4)).astype(np.float32) * 255
    nnf = np.stack([rng.integers(0, 24, (18, 22)), rng.integers(0, 20, (18, 22))], axis=-1).astype(np.int32)
    return source, target, nnf


def test_patch_distance_is_the_numba_nnf_error(field):
    source, target, nnf = field
    pad = lambda image: np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="edge")  # noqa: E731
    expected = patchmatch.nnf_error(pad(target), pad(source), nnf, 5)
    space = ops.PatchSpace(torch.from_numpy(source), torch.from_numpy(target)[None], 5, chunk_pixels=50)
    got = space.distance(torch.from_numpy(nnf).long()[None])[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_vote_and_occupancy_are_the_numba_ones(field):
    source, _, nnf = field
    style = source[..., :3]
    error = np.random.default_rng(2).random(nnf.shape[:2]).astype(np.float32) * 300
    for weights, scale in ((None, 0.0), (error, 75.0)):
        expected = patchmatch.vote(
            style, nnf, np.zeros(nnf.shape[:2], np.float32) if weights is None else weights, 5, scale
        )
        got = ops.vote(
            torch.from_numpy(style),
            torch.from_numpy(nnf).long()[None],
            5,
            None if weights is None else torch.from_numpy(weights)[None],
            scale,
            chunk_pixels=60,
        )[0]
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-3)
    ratio = nnf.shape[0] * nnf.shape[1] / (20 * 24)
    expected = _occupancy(nnf, (20, 24), 5, ratio)
    got = ops.occupancy(torch.from_numpy(nnf).long()[None], (20, 24), 5, ratio)[0].view(20, 24)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_hash_filters_and_blend_maths_match_their_definitions():
    values = np.array([0, 1, 12345, 2**31 + 7, 2**32 - 1], np.int64)
    assert ops.mix32(torch.from_numpy(values)).tolist() == [patchmatch._mix32(int(v)) for v in values]
    rng = np.random.default_rng(4)
    image = rng.random((12, 30)).astype(np.float32) * 255  # smaller than the 65-tap kernel: reflect-101 wraps
    for sigma in (1.0, 2.0, 8.0):
        np.testing.assert_allclose(
            ops.gaussian_blur(torch.from_numpy(image), sigma).numpy(),
            cv2.GaussianBlur(image, (0, 0), sigma),
            atol=1e-3,
        )
    rgb = rng.integers(0, 256, (16, 20, 3)).astype(np.uint8)
    assert float(ops.gradient_energy(torch.from_numpy(rgb).float())) == pytest.approx(
        ebsynth_bridge.gradient_energy(rgb), rel=1e-5
    )
    errors = [rng.random((16, 20)).astype(np.float32) * 50 for _ in range(3)]
    expected = ebsynth_bridge.reconstruction_weights(errors, [0.5, 0.3, 0.2])
    got = ops.reconstruction_weights(torch.from_numpy(np.stack(errors)), [0.5, 0.3, 0.2])
    np.testing.assert_allclose(got.numpy(), np.stack(expected), atol=1e-5)
    candidates = [rng.integers(0, 256, (16, 20, 3)).astype(np.uint8) for _ in range(3)]
    blended = ebsynth_bridge.weighted_blend(candidates, expected)
    target = 1.3 * ebsynth_bridge.gradient_energy(blended)
    restored, _ = ebsynth_bridge.match_sharpness(blended, candidates, expected, target)
    ours = ops.match_sharpness(torch.from_numpy(blended), torch.from_numpy(np.stack(candidates)).float(), got, target)
    np.testing.assert_allclose(ours.numpy(), restored, atol=0.05)
    coordinates = (rng.random((16, 20, 2)) * [19, 15]).astype(np.float32)
    # smooth, since OpenCV snaps the coordinates to 1/32 px
    patch = np.ascontiguousarray(cv2.GaussianBlur(image, (0, 0), 3.0)[:16, :20])
    for mode, interpolation in (("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)):
        expected = cv2.remap(
            patch, coordinates[..., 0], coordinates[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE
        )
        got = ops.remap(torch.from_numpy(patch[None, ..., None]), torch.from_numpy(coordinates)[None], mode)
        np.testing.assert_allclose(got[0, ..., 0].numpy(), expected, atol=0.5)


def test_gpu_check_propagation_rows_run_on_the_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    output = tmp_path / "propagation.json"
    assert gpu_check.main(["--propagation-only", "--device", "cpu", "--quick", "--json", str(output)]) == 0
    (row,) = json.loads(output.read_text())["propagation"]["rows"]
    assert row["preset"] == "balanced" and row["size"] == "64x64" and row["device"] == "cpu"
    assert row["torch_s_per_frame"] > 0 and row["numba_s_per_frame"] > 0 and row["peak_vram_gib"] is None
    # the synthetic clip is an exact translation with the exact flow: both engines reproduce it
    assert row["torch_psnr"] > 35 and abs(row["torch_psnr"] - row["numba_psnr"]) < 1.0
    assert row["torch_vs_numba_psnr"] > 35


# --------------------------------------------------------------------------------------------------
# on a GPU
# --------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_engine_gives_the_cpu_engines_pictures(video, torch_output):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, truth = video
    cuda = _run(video, engine="torch", device="cuda")
    again = _run(video, engine="torch", device="cuda")
    for t in range(FRAME_COUNT):
        np.testing.assert_array_equal(cuda[t], again[t])  # deterministic on a device
        assert psnr(cuda[t], torch_output[t]) > 35.0
    assert np.mean([psnr(cuda[t], truth[t]) for t in range(1, FRAME_COUNT - 1)]) > 33.0


def test_a_neighbour_candidate_is_the_shifted_field_plus_the_shift():
    """``nnf(p − d) + d`` where ``p − d`` is inside (jump flooding's candidate), built without a device copy."""
    from rerender.propagation.torch_ops import _neighbour_candidate

    nnf = torch.stack(torch.meshgrid(torch.arange(5), torch.arange(4), indexing="xy"), -1)[None].repeat(2, 1, 1, 1)
    nnf[1] *= 2
    candidate, valid = _neighbour_candidate(nnf, 2, -1)
    for b in range(2):
        for y in range(4):
            for x in range(5):
                source_y, source_x = y + 1, x - 2  # p − d
                inside = 0 <= source_x < 5 and 0 <= source_y < 4
                assert bool(valid[b, y, x]) == inside
                if inside:
                    assert candidate[b, y, x].tolist() == [
                        nnf[b, source_y, source_x, 0] + 2,
                        nnf[b, source_y, source_x, 1] - 1,
                    ]
    assert nnf[0, 0, 0].tolist() == [0, 0]  # the field itself is untouched


@pytest.mark.gpu
def test_a_search_sweep_never_waits_for_the_gpu():
    """A sweep queues its kernels without a host-device synchronisation (a copy of Python values to the device
    waits for all queued work; 16 of them per sweep left the GPU idle between kernels)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from rerender.propagation import torch_ops as ops

    generator = torch.Generator().manual_seed(0)
    source = torch.rand((48, 40, 6), generator=generator).cuda()
    target = torch.rand((2, 48, 40, 6), generator=generator).cuda()
    nnf = torch.stack(torch.meshgrid(torch.arange(40), torch.arange(48), indexing="xy"), -1)[None].repeat(2, 1, 1, 1)
    search = ops.Search(ops.PatchSpace(source, target, 5, 1 << 20), nnf.cuda(), 0.0, 1.0)
    seeds = torch.tensor([1, 2], dtype=torch.int64).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        search.sweep(8, (8, 4, 2, 1), seeds)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
