"""Flow estimators: DIS accuracy on known motion, choosing an estimator, bad frames."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rerender.errors import ConfigError, InputNotFoundError
from rerender.flow import (
    OFFICIAL_GMFLOW_FILENAME,
    DISFlowEstimator,
    FlowEstimator,
    FlowInputError,
    GMFlow,
    GMFlowEstimator,
    estimate_flow_numpy,
    find_gmflow_checkpoint,
    load_flow_estimator,
)
from rerender.synthetic import MOTIONS, make_synthetic_video
from tests.flow.conftest import affine_pair, rotation, to_tensor, translation

# Mean end-point error allowed on the interior (16 px from the border) of 128×128 textured frames. DIS medium
# measures 0.02–0.07 px on these scenes and fast/ultrafast 0.08–0.25 px; a quarter of a pixel (1/32 of a latent
# cell) is 4× the medium figure, so OpenCV builds may differ, yet any regression to "roughly right" flow, which
# would blur warped keyframes, fails.
MEDIUM_EPE_LIMIT = 0.25
FAST_EPE_LIMIT = 0.5
SCENES = {
    "subpixel translation": translation(2.5, -1.75),
    "large translation": translation(12.5, 7.25),
    "rotation 2°": rotation(2.0, 128),
}


def interior_epe(estimated: torch.Tensor, expected: np.ndarray, border: int = 16) -> float:
    error = estimated[0].permute(1, 2, 0).numpy() - expected
    return float(np.linalg.norm(error, axis=-1)[border:-border, border:-border].mean())


@pytest.mark.parametrize("scene", SCENES)
def test_dis_medium_recovers_known_motion(scene):
    source, target, forward_truth = affine_pair(128, SCENES[scene])
    forward, backward = DISFlowEstimator("medium")(to_tensor(source), to_tensor(target))
    assert forward.shape == backward.shape == (1, 2, 128, 128) and forward.dtype == torch.float32
    assert interior_epe(forward, forward_truth) < MEDIUM_EPE_LIMIT
    # backward flow of a translation is the opposite translation
    if scene == "subpixel translation":
        assert interior_epe(backward, -forward_truth) < MEDIUM_EPE_LIMIT


@pytest.mark.parametrize("scene", SCENES)
def test_dis_fine_is_at_least_as_accurate_as_medium(scene):
    """ "fine" is medium carried to full resolution: on every known motion its error is no worse (a hair of
    slack for OpenCV builds) and within the same limit."""
    source, target, forward_truth = affine_pair(128, SCENES[scene])
    errors = {
        preset: interior_epe(DISFlowEstimator(preset)(to_tensor(source), to_tensor(target))[0], forward_truth)
        for preset in ("medium", "fine")
    }
    assert errors["fine"] < MEDIUM_EPE_LIMIT and errors["fine"] <= errors["medium"] * 1.1 + 0.01, errors


@pytest.mark.parametrize("motion", MOTIONS)
def test_dis_medium_on_synthetic_videos(motion):
    """Mean end-point error on non-occluded pixels below 1 px on every `rerender.synthetic` motion.

    These scenes have motion boundaries, where DIS over-smooths, and a small square spinning 8° per frame that
    it follows poorly: measured 0.01–0.61 px. One pixel, an eighth of a latent cell, leaves room for OpenCV
    differences while a flow that is wrong across whole objects fails. Where the scene moves by whole layers,
    the error must also be under a third of the motion itself (measured 0.04–0.22 of it): a zero flow scores 1.
    """
    video = make_synthetic_video(num_frames=16, width=128, height=96, motion=motion)
    estimator = DISFlowEstimator("medium")
    for frame in (0, 5, 10):
        forward, _ = estimate_flow_numpy(estimator, video.frames[frame], video.frames[frame + 1])
        trusted = ~video.forward_occlusion[frame]
        error = np.linalg.norm(forward - video.forward_flow[frame], axis=-1)
        assert error[trusted].mean() < 1.0, (motion, frame)
        magnitude = np.linalg.norm(video.forward_flow[frame], axis=-1)
        moving = trusted & (magnitude > 1)
        if motion in ("translation", "occluder", "mixed") and moving.sum() > 500:
            assert error[moving].mean() < magnitude[moving].mean() / 3, (motion, frame)


@pytest.mark.parametrize("preset", ["fast", "ultrafast"])
def test_faster_presets_on_small_motion(preset):
    source, target, forward_truth = affine_pair(128, translation(2.5, -1.75))
    forward, _ = DISFlowEstimator(preset)(to_tensor(source), to_tensor(target))
    assert interior_epe(forward, forward_truth) < FAST_EPE_LIMIT


def test_batches_are_estimated_pair_by_pair():
    first = affine_pair(64, translation(2, 0), seed=1)
    second = affine_pair(64, translation(0, -3), seed=2)
    sources = torch.cat([to_tensor(first[0]), to_tensor(second[0])])
    targets = torch.cat([to_tensor(first[1]), to_tensor(second[1])])
    forward, _ = DISFlowEstimator()(sources, targets)
    assert forward.shape == (2, 2, 64, 64)
    assert float(forward[0, 0, 16:-16, 16:-16].mean()) == pytest.approx(2, abs=0.2)
    assert float(forward[1, 1, 16:-16, 16:-16].mean()) == pytest.approx(-3, abs=0.2)


def test_numpy_convenience_returns_channels_last_arrays():
    source, target, forward_truth = affine_pair(64, translation(1.5, 1.0))
    forward, backward = estimate_flow_numpy(
        DISFlowEstimator(), (source * 255).round().astype(np.uint8), (target * 255).round().astype(np.uint8)
    )
    assert forward.shape == backward.shape == (64, 64, 2) and forward.dtype == np.float32
    assert float(np.abs(forward - forward_truth)[16:-16, 16:-16].mean()) < 0.3


def test_estimators_follow_the_protocol():
    assert isinstance(DISFlowEstimator(), FlowEstimator)
    assert isinstance(GMFlowEstimator(GMFlow(num_transformer_layers=1)), FlowEstimator)
    assert [DISFlowEstimator(preset).name for preset in ("ultrafast", "fast", "medium", "fine")] == [
        "dis-ultrafast",
        "dis-fast",
        "dis-medium",
        "dis-fine",
    ]


class TestBadFrames:
    frame = torch.rand(1, 3, 16, 16)

    @pytest.mark.parametrize(
        ("source", "target", "message"),
        [
            (frame, torch.rand(1, 3, 16, 20), r"same shape.*\(1, 3, 16, 16\) and \(1, 3, 16, 20\)"),
            (frame * 255, frame, r"values must be in \[0, 1\].*divide by 255"),
            ((frame * 255).to(torch.uint8), frame, "dtype torch.uint8 .*frames.float\\(\\) / 255"),
            (frame.permute(0, 2, 3, 1), frame, r"channels first, got \(1, 16, 16, 3\) \(channels last\?"),
            (frame[0], frame, r"shape \(B, 3, H, W\)"),
            (np.zeros((16, 16, 3)), frame, "got ndarray; for HxWx3 uint8 arrays use estimate_flow_numpy"),
        ],
    )
    def test_clear_errors(self, source, target, message):
        with pytest.raises(FlowInputError, match=message):
            DISFlowEstimator()(source, target)

    def test_gmflow_checks_the_same_way(self):
        with pytest.raises(FlowInputError, match="same shape"):
            GMFlowEstimator(GMFlow(num_transformer_layers=1))(self.frame, torch.rand(1, 3, 32, 16))

    def test_numpy_images(self):
        image = np.zeros((16, 16, 3), np.uint8)
        with pytest.raises(FlowInputError, match=r"`source` must be an \(H, W, 3\) uint8 RGB array, got float64"):
            estimate_flow_numpy(DISFlowEstimator(), image.astype(np.float64), image)
        with pytest.raises(FlowInputError, match=r"`target` must be .* got uint8 array of shape \(16, 16\)"):
            estimate_flow_numpy(DISFlowEstimator(), image, image[..., 0])
        with pytest.raises(FlowInputError, match="same size"):
            estimate_flow_numpy(DISFlowEstimator(), image, np.zeros((16, 18, 3), np.uint8))


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> Path:
    """Point the Hugging Face and torch hub caches at empty folders."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / OFFICIAL_GMFLOW_FILENAME
    torch.save({"model": GMFlow().state_dict()}, path)
    return path


class TestLoadFlowEstimator:
    def test_dis_names(self):
        assert load_flow_estimator("dis").name == "dis-fine"
        assert load_flow_estimator("dis-medium").name == "dis-medium"
        assert load_flow_estimator("dis-ultrafast").name == "dis-ultrafast"
        assert load_flow_estimator("dis", dis_preset="fast").name == "dis-fast"

    def test_auto_without_weights_picks_dis_and_says_why(self, empty_caches, caplog):
        with caplog.at_level(logging.INFO, logger="rerender.flow.estimators"):
            estimator = load_flow_estimator("auto", device="cpu")
        assert isinstance(estimator, DISFlowEstimator) and estimator.name == "dis-fine"
        assert "DIS fine (no GMFlow weights found)" in caplog.text

    def test_auto_on_cpu_prefers_dis_even_with_weights(self, checkpoint, caplog):
        with caplog.at_level(logging.INFO, logger="rerender.flow.estimators"):
            estimator = load_flow_estimator("auto", checkpoint=checkpoint, device="cpu", dis_preset="ultrafast")
        assert isinstance(estimator, DISFlowEstimator) and estimator.name == "dis-ultrafast"
        assert "DIS ultrafast (device is cpu, not a GPU)" in caplog.text

    def test_gmflow_by_path(self, checkpoint):
        estimator = load_flow_estimator("gmflow", checkpoint=checkpoint, device="cpu")
        assert isinstance(estimator, GMFlowEstimator) and estimator.device == torch.device("cpu")

    def test_gmflow_from_the_hub_cache(self, empty_caches, checkpoint):
        snapshot = empty_caches / "hf" / "models--PKUWilliamYang--Rerender" / "snapshots" / "abc123" / "models"
        snapshot.mkdir(parents=True)
        (snapshot / OFFICIAL_GMFLOW_FILENAME).write_bytes(checkpoint.read_bytes())
        (empty_caches / "hf" / "models--PKUWilliamYang--Rerender" / "refs").mkdir()
        (empty_caches / "hf" / "models--PKUWilliamYang--Rerender" / "refs" / "main").write_text("abc123")
        assert find_gmflow_checkpoint() == snapshot / OFFICIAL_GMFLOW_FILENAME
        assert isinstance(load_flow_estimator("gmflow", device="cpu"), GMFlowEstimator)

    def test_gmflow_from_the_torch_hub_folder(self, empty_caches, checkpoint):
        folder = empty_caches / "torch" / "hub" / "checkpoints"
        folder.mkdir(parents=True)
        (folder / OFFICIAL_GMFLOW_FILENAME).write_bytes(checkpoint.read_bytes())
        assert find_gmflow_checkpoint() == folder / OFFICIAL_GMFLOW_FILENAME
        assert find_gmflow_checkpoint([checkpoint.parent]) == checkpoint

    def test_errors(self, empty_caches, tmp_path):
        with pytest.raises(InputNotFoundError, match="no gmflow_sintel-0c07dcb3.pth was found .* or use name='dis'"):
            load_flow_estimator("gmflow")
        with pytest.raises(FileNotFoundError, match="`checkpoint` '.*missing.pth' is not a file"):
            load_flow_estimator("auto", checkpoint=tmp_path / "missing.pth")
        with pytest.raises(ConfigError, match="got 'gmflw'; did you mean 'gmflow'\\?"):
            load_flow_estimator("gmflw")
        with pytest.raises(ConfigError, match="`dis_preset` must be one of .* got 'finest'"):
            load_flow_estimator("auto", dis_preset="finest")
        with pytest.raises(
            ValueError, match="`preset` must be one of \\('ultrafast', 'fast', 'medium', 'fine'\\), got 'finest'"
        ):
            DISFlowEstimator("finest")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", 3.5])
def test_a_device_that_is_no_torch_device_is_refused_even_for_dis(device):
    """DIS runs on the CPU whatever `device` says, but a typo there (`"tpu"`, `"cuda:x"`) is refused, naming it."""
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match="`device` must be a torch device"):
        load_flow_estimator("dis", device=device)
    assert load_flow_estimator("dis", device="cuda:1").name == "dis-fine"  # a valid name: DIS ignores it
