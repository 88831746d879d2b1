"""Video propagation end to end on a synthetic video whose motion is known exactly."""

from __future__ import annotations

import doctest
import importlib

import cv2
import numpy as np
import pytest

import ebsynth_bridge
from rerender.errors import ConfigError
from rerender.propagation import PropagationOptions, propagate_video

FRAME_COUNT, HEIGHT, WIDTH = 9, 48, 64


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    mse = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def stylise(frame: np.ndarray) -> np.ndarray:
    """A per-frame 'style' that depends only on the frame: inverted, channels swapped, posterised."""
    return ((255 - frame[..., ::-1]) // 40 * 40 + 20).astype(np.uint8)


@pytest.fixture(scope="module")
def video() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A window sliding over a smooth random texture: 1 px/frame right, 1 px every other frame down."""
    rng = np.random.default_rng(0)
    world = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 2.0)
    world = cv2.normalize(world, None, 0, 255, cv2.NORM_MINMAX)
    frames = [
        np.ascontiguousarray(world[6 + t // 2 : 6 + t // 2 + HEIGHT, 8 + t : 8 + t + WIDTH])
        for t in range(FRAME_COUNT)
    ]
    return frames, [stylise(frame) for frame in frames]


def test_two_keys_reach_the_ground_truth(video):
    frames, truth = video
    last = FRAME_COUNT - 1
    output = propagate_video(frames, {0: truth[0], last: truth[last]}, progress=False, workers=1)
    assert len(output) == FRAME_COUNT and all(o.shape == (HEIGHT, WIDTH, 3) and o.dtype == np.uint8 for o in output)
    np.testing.assert_array_equal(output[0], truth[0])
    np.testing.assert_array_equal(output[last], truth[last])
    scores = [psnr(output[t], truth[t]) for t in range(1, last)]
    copy_scores = [psnr(truth[0] if t < FRAME_COUNT / 2 else truth[last], truth[t]) for t in range(1, last)]
    # The motion is an exact translation, so flow + patches recover everything except the 1–4 px strips
    # of content entering at the borders (which only the far key has) and flow errors along them;
    # that costs a few percent of the pixels, i.e. mid-30s dB (measured 35.7–40.5, mean 37).
    # Copying the nearest key scores 16–23 dB.
    assert min(scores) > 33.0 and np.mean(scores) > 35.0
    assert min(np.subtract(scores, copy_scores)) > 12.0


def test_single_key_propagates_one_way_with_any_flow_function(video):
    frames, truth = video

    def exact_flow(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # consecutive frames: target(p) = source(p + (1, 0 or 1)); the test knows which pair it gets
        index = next(t for t in range(FRAME_COUNT) if np.array_equal(frames[t], source))
        step = np.array([1.0, float((index + 1) // 2 - index // 2)], np.float32)
        forward = np.broadcast_to(-step, (HEIGHT, WIDTH, 2)).copy()  # source(p) = target(p - step)
        backward = np.broadcast_to(step, (HEIGHT, WIDTH, 2)).copy()
        return forward, backward

    output = propagate_video(frames, {0: truth[0]}, flow=exact_flow, progress=False, workers=1)
    for t in range(1, 4):
        assert psnr(output[t], truth[t]) > 30.0


def test_keys_anywhere_fill_both_ends(video):
    frames, truth = video
    keys = {2: truth[2], 6: truth[6]}
    output = propagate_video(frames, keys, progress=False, workers=1)
    np.testing.assert_array_equal(output[2], truth[2])
    np.testing.assert_array_equal(output[6], truth[6])
    for t in (0, 1, 3, 4, 5, 7, 8):
        assert psnr(output[t], truth[t]) > 30.0, t


def test_parallel_threads_give_the_same_frames(video):
    frames, truth = video
    keys = {0: truth[0], 5: truth[5]}
    options = PropagationOptions.preset("fast")
    serial = propagate_video(frames[:7], keys, options=options, progress=False, workers=1)
    parallel = propagate_video(frames[:7], keys, options=options, progress=True, workers=2)
    for one, other in zip(serial, parallel):
        np.testing.assert_array_equal(one, other)


@pytest.mark.parametrize("blend_mode", ["agreement", "histogram", "poisson", "select", "linear"])
def test_every_blend_mode_runs_and_stays_close(video, blend_mode):
    frames, truth = video
    output = propagate_video(
        frames[:5],
        {0: truth[0], 4: truth[4]},
        progress=False,
        workers=1,
        options=PropagationOptions(blend_mode=blend_mode),
    )
    assert min(psnr(output[t], truth[t]) for t in (1, 2, 3)) > 28.0


def test_reconstruction_blend_trusts_the_pass_that_explains_the_frame(video):
    frames, truth = video
    # the closing key's source frame is unrelated noise: the backward pass explains nothing it draws, so its
    # reconstructions are poor everywhere; a blend by time alone would mix it in, most near that key
    frames = list(frames)
    frames[8] = np.random.default_rng(7).integers(0, 256, frames[8].shape, dtype=np.uint8)
    keys = {0: truth[0], 8: stylise(frames[8])}
    ours = propagate_video(frames, keys, progress=False, workers=1)
    by_time = propagate_video(
        frames,
        keys,
        progress=False,
        workers=1,
        options=PropagationOptions(blend_mode="linear", blend_visibility=False),
    )
    scores = [psnr(ours[t], truth[t]) for t in range(1, 8)]
    # near the forward pass's own quality (measured 26.6–40 dB against its 29.6–40 alone)
    assert min(scores) > 25.0 and np.mean(scores) > 30.0
    assert psnr(ours[7], truth[7]) > psnr(by_time[7], truth[7]) + 6.0  # by time: 19.2 dB


def test_reconstruction_blend_keeps_the_keyframes_sharpness(video):
    frames, truth = video
    keys = {0: truth[0], 8: truth[8]}
    sharp = propagate_video(frames, keys, progress=False, workers=1)
    soft = propagate_video(frames, keys, progress=False, workers=1, options=PropagationOptions(blend_sharpness=None))
    energies = [ebsynth_bridge.gradient_energy(truth[0]), ebsynth_bridge.gradient_energy(truth[8])]
    for t in range(1, 8):
        target = PropagationOptions().blend_sharpness * ((8 - t) / 8 * energies[0] + t / 8 * energies[1])
        # restored up to the target (rounding to uint8 may cost a hair), never softer than without
        assert ebsynth_bridge.gradient_energy(sharp[t]) >= min(0.99 * target, ebsynth_bridge.gradient_energy(soft[t]))
        assert ebsynth_bridge.gradient_energy(sharp[t]) >= ebsynth_bridge.gradient_energy(soft[t]) - 0.05


def test_presets_and_option_errors():
    assert PropagationOptions.preset("balanced") == PropagationOptions()
    assert PropagationOptions.preset("best", workers=1).workers == 1
    assert PropagationOptions.preset("rerender").style_weight == 1.0
    with pytest.raises(ValueError, match="unknown quality preset 'slow'.*fast"):
        PropagationOptions.preset("slow")
    with pytest.raises(ValueError, match="did you mean \\['patch_size'\\]"):
        PropagationOptions.preset("fast", patchsize=7)
    with pytest.raises(ValueError, match="patch_size.*odd.*got 4"):
        PropagationOptions(patch_size=4)
    with pytest.raises(ValueError, match="vote_size"):
        PropagationOptions(vote_size=7)
    with pytest.raises(ValueError, match="blend_mode.*agreement.*got 'mean'"):
        PropagationOptions(blend_mode="mean")
    with pytest.raises(ConfigError, match="color_guide_weight.*≥ 0.*-1"):
        PropagationOptions(color_guide_weight=-1)
    with pytest.raises(ConfigError, match="`colour_weight` is now `color_guide_weight`"):
        PropagationOptions.preset("balanced", colour_weight=1.0)
    with pytest.raises(ConfigError, match="engine.*got 'cupy'"):
        PropagationOptions(engine="cupy")
    with pytest.raises(ConfigError, match="device.*got 'tpu'"):
        PropagationOptions(device="tpu")
    with pytest.raises(ConfigError, match="chunk_pixels.*≥ 256.*got 10"):
        PropagationOptions(chunk_pixels=10)
    with pytest.raises(ValueError, match="workers"):
        PropagationOptions(workers=0)
    with pytest.raises(ValueError, match="flow_render.*got 'nearest'"):
        PropagationOptions(flow_render="nearest")
    with pytest.raises(ValueError, match="blend_error_power.*-1"):
        PropagationOptions(blend_error_power=-1)
    with pytest.raises(ValueError, match="blend_measure"):
        PropagationOptions(blend_measure="ssim")
    with pytest.raises(ValueError, match="blend_warp_weight.*-0.5"):
        PropagationOptions(blend_warp_weight=-0.5)
    with pytest.raises(ValueError, match=r"blend_sharpness.*\(0, 2\].*got 0"):
        PropagationOptions(blend_sharpness=0)
    rerender = PropagationOptions.preset("rerender")
    assert rerender.flow_render is None and not rerender.blend_visibility  # the official method, as published


def test_bad_video_input_fails_before_any_flow_work(video):
    frames, truth = video

    def no_flow(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("flow must not be computed for invalid input")

    with pytest.raises(ValueError, match="keyframe index 9 is outside the video; valid indices: 0 … 8"):
        propagate_video(frames, {9: truth[0]}, flow=no_flow, progress=False)
    with pytest.raises(ValueError, match="keyframes` is empty"):
        propagate_video(frames, {}, flow=no_flow, progress=False)
    with pytest.raises(ValueError, match=r"keyframes\[0\].*uint8"):
        propagate_video(frames, {0: truth[0].astype(np.float32)}, flow=no_flow, progress=False)
    with pytest.raises(ValueError, match=r"keyframes\[0\].*shape"):
        propagate_video(frames, {0: truth[0][:10]}, flow=no_flow, progress=False)
    with pytest.raises(ValueError, match="frames.*RGB uint8"):
        propagate_video([frame[..., 0] for frame in frames], {0: truth[0]}, flow=no_flow, progress=False)


@pytest.mark.parametrize("module", ["options", "runner"])
def test_docstring_examples(module):
    failures, attempted = doctest.testmod(
        importlib.import_module(f"rerender.propagation.{module}"), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert attempted > 0 and failures == 0


def test_config_and_options_share_one_vocabulary():
    """Every propagation option of the config is a `PropagationOptions` field of the same name and reaches it."""
    import dataclasses

    from rerender.config import PropagationConfig, RerenderConfig, apply_overrides
    from rerender.workflow.stages import propagation_options

    option_names = {item.name for item in dataclasses.fields(PropagationOptions)}
    config_only = {"propagation_preset", "output_size"}  # the preset's name; the frames' size (a workflow choice)
    shared = {item.name for item in dataclasses.fields(PropagationConfig)} - config_only
    assert shared <= option_names
    values = {
        "color_guide_weight": 3.0,
        "edge_guide_weight": 0.25,
        "position_guide_weight": 1.5,
        "temporal_guide_weight": 0.75,
        "blend_mode": "agreement",
        "workers": 3,
        "engine": "numba",
        "device": "cpu",
        "chunk_pixels": 4096,
    }
    assert set(values) == shared  # a new shared option must be added here (and so be tested)
    config = apply_overrides(
        RerenderConfig(),
        {f"propagation.{name}": value for name, value in values.items()} | {"propagation.propagation_preset": "fast"},
    )
    options = propagation_options(config)
    assert {name: getattr(options, name) for name in values} == values
    assert options.patchmatch_iterations == PropagationOptions.preset("fast").patchmatch_iterations
    assert propagation_options(RerenderConfig()) == PropagationOptions()  # None = the preset's value


def test_cuda_device_without_a_gpu_is_refused_before_any_work(monkeypatch):
    import torch

    from rerender.config import RerenderConfig, apply_overrides
    from rerender.workflow.stages import propagation_options

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = apply_overrides(RerenderConfig(), {"propagation.device": "cuda"})
    with pytest.raises(ConfigError, match=r"`propagation.device` is 'cuda' but torch .* sees no CUDA GPU"):
        propagation_options(config)

    def no_flow(source, target):
        raise AssertionError("no work may start")

    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        propagate_video(
            frames,
            {0: frames[0]},
            flow=no_flow,
            progress=False,
            options=PropagationOptions(engine="torch", device="cuda"),
        )
    assert rerender_engine(PropagationOptions(engine="auto")).name == "numba"  # auto without a GPU
    assert rerender_engine(PropagationOptions(engine="torch")) == ("torch", "cpu")


def rerender_engine(options):
    from rerender.propagation import resolve_engine

    return resolve_engine(options)


def test_translate_and_propagate_keyframes_refuse_a_missing_cuda_device_before_decoding(tmp_path, monkeypatch):
    import time

    import torch

    import rerender
    from rerender.workflow.keyframe_folder import propagate_keyframes

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    started = time.perf_counter()
    # the video does not even exist: the option is refused first
    with pytest.raises(ConfigError, match="propagation.device"):
        rerender.translate(
            tmp_path / "missing.mp4",
            "a painting",
            output=tmp_path / "out.mp4",
            renderer="classic",
            **{"propagation.device": "cuda"},
        )
    with pytest.raises(ConfigError, match="propagation.device"):
        propagate_keyframes(
            tmp_path / "missing.mp4", tmp_path / "keys", tmp_path / "out.mp4", **{"propagation.device": "cuda"}
        )
    assert time.perf_counter() - started < 5.0
