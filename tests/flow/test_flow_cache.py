"""The on-disk flow cache: hits, keys, swapped pairs, atomic writes, damaged entries."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rerender.flow import DISFlowEstimator, FlowCache, FlowInputError


class CountingTranslationEstimator:
    """A real `FlowEstimator` with a known answer: a constant translation, counting its calls."""

    def __init__(self, dx: float, name: str = "translation") -> None:
        self.dx = dx
        self.name = name
        self.calls = 0

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        forward = torch.zeros(source.shape[0], 2, *source.shape[-2:])
        forward[:, 0] = self.dx
        return forward, -forward


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_computes_once_then_reads_from_disk(tmp_path, images):
    estimator = CountingTranslationEstimator(2.0)
    cache = FlowCache(tmp_path / "flows")
    assert not (tmp_path / "flows").exists()  # the constructor touches nothing
    forward, backward = cache.get_or_compute(estimator, *images)
    assert forward.shape == backward.shape == (24, 32, 2) and forward.dtype == np.float32
    assert float(forward[..., 0].mean()) == 2.0 and float(backward[..., 0].mean()) == -2.0
    again_forward, again_backward = FlowCache(tmp_path / "flows").get_or_compute(estimator, *images)
    assert estimator.calls == 1
    np.testing.assert_array_equal(again_forward, forward)
    np.testing.assert_array_equal(again_backward, backward)
    assert [path.suffix for path in (tmp_path / "flows").iterdir()] == [".npz"]


def test_swapped_pair_reuses_the_entry(tmp_path, images):
    estimator = CountingTranslationEstimator(2.0)
    cache = FlowCache(tmp_path)
    forward, backward = cache.get_or_compute(estimator, *images)
    swapped_forward, swapped_backward = cache.get_or_compute(estimator, images[1], images[0])
    assert estimator.calls == 1
    np.testing.assert_array_equal(swapped_forward, backward)
    np.testing.assert_array_equal(swapped_backward, forward)


def test_key_depends_on_estimator_content_and_size(tmp_path, images):
    cache = FlowCache(tmp_path)
    first = CountingTranslationEstimator(2.0, name="one")
    second = CountingTranslationEstimator(5.0, name="two")
    cache.get_or_compute(first, *images)
    forward, _ = cache.get_or_compute(second, *images)
    assert second.calls == 1 and float(forward[..., 0].mean()) == 5.0
    changed = images[1].copy()
    changed[0, 0, 0] ^= 1
    cache.get_or_compute(first, images[0], changed)
    assert first.calls == 2
    # the same bytes as another size are another key
    assert FlowCache.key("one", images[0], images[1]) != FlowCache.key(
        "one", images[0].reshape(32, 24, 3), images[1].reshape(32, 24, 3)
    )
    assert FlowCache.key(DISFlowEstimator("fast").name, *images) != FlowCache.key(
        DISFlowEstimator("medium").name, *images
    )


def test_interrupted_write_leaves_no_entry_and_no_temporary(tmp_path, images, monkeypatch):
    estimator = CountingTranslationEstimator(2.0)
    cache = FlowCache(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(estimator, *images)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    cache.get_or_compute(estimator, *images)
    assert estimator.calls == 2 and len(list(tmp_path.glob("*.npz"))) == 1 and not list(tmp_path.glob("*.tmp"))


def test_damaged_entry_is_recomputed(tmp_path, images, caplog):
    estimator = CountingTranslationEstimator(2.0)
    cache = FlowCache(tmp_path)
    cache.get_or_compute(estimator, *images)
    entry = cache.path(FlowCache.key(estimator.name, *images))
    entry.write_bytes(entry.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="rerender.flow.cache"):
        forward, _ = cache.get_or_compute(estimator, *images)
    assert estimator.calls == 2 and float(forward[..., 0].mean()) == 2.0
    assert "Ignoring unreadable flow cache entry" in caplog.text
    assert cache.load(FlowCache.key(estimator.name, *images), (24, 32)) is not None  # rewritten whole


def test_entries_are_compact_float16_and_a_hit_equals_a_miss(tmp_path, images):
    class SmoothFlow(CountingTranslationEstimator):
        def __call__(self, source, target):
            self.calls += 1
            height, width = source.shape[-2:]
            ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            forward = torch.stack([xs * 0.37 + 0.123, ys * -1.91 + 3.3])[None].float()
            return forward, -forward

    estimator = SmoothFlow(0.0)
    cache = FlowCache(tmp_path)
    forward, backward = cache.get_or_compute(estimator, *images)
    entry = cache.path(FlowCache.key(estimator.name, *images))
    with np.load(entry, allow_pickle=False) as stored:
        assert stored["forward"].dtype == np.float16 and stored["backward"].dtype == np.float16
    raw_float32 = 2 * 24 * 32 * 2 * 4
    assert entry.stat().st_size < raw_float32 / 2
    # float16 rounding only: relative error ≤ 2^-11 of the displacement
    ys, xs = np.mgrid[0:24, 0:32]
    exact = np.stack([xs * 0.37 + 0.123, ys * -1.91 + 3.3], axis=-1)
    assert np.all(np.abs(forward - exact) <= np.abs(exact) * 2.0**-11 + 1e-6)
    hit_forward, hit_backward = FlowCache(tmp_path).get_or_compute(estimator, *images)
    assert estimator.calls == 1
    np.testing.assert_array_equal(hit_forward, forward)  # a resumed run sees exactly the flows of the first
    np.testing.assert_array_equal(hit_backward, backward)


def test_an_entry_holding_objects_never_unpickles(tmp_path, images):
    estimator = CountingTranslationEstimator(2.0)
    cache = FlowCache(tmp_path)
    key = FlowCache.key(estimator.name, *images)
    tmp_path.mkdir(exist_ok=True)
    np.savez(cache.path(key), forward=np.array([object()], dtype=object), backward=np.zeros(1))
    forward, _ = cache.get_or_compute(estimator, *images)
    assert estimator.calls == 1 and float(forward[..., 0].mean()) == 2.0


def test_bad_input(tmp_path, images):
    cache = FlowCache(tmp_path)
    with pytest.raises(FlowInputError, match=r"`target` must be an \(H, W, 3\) uint8 RGB array, got float32"):
        cache.get_or_compute(DISFlowEstimator(), images[0], images[1].astype(np.float32))
    with pytest.raises(FlowInputError, match="same size"):
        cache.get_or_compute(DISFlowEstimator(), images[0], images[1][:20])
