"""An on-disk cache of flows, keyed by frame content, estimator and size.

The keyframe stage and the propagation stage ask for many of the same pairs, and a rerun asks for all of them
again; flow is the one expensive thing both share. Each entry is one ``.npz`` file holding the forward and the
backward flow of a pair, written to a temporary name and then moved into place with `os.replace`, so an
interrupted run leaves either the whole entry or none of it.

Entries are stored compactly: float16 (a step of at most 1/32 px below 64 px of motion, 1/16 px below 128 px)
in a deflate-compressed ``.npz``, about a third of float32. Loading uses ``allow_pickle=False``: an entry can
hold arrays only, never code. `benchmarks/flow_storage_benchmark.py` measures the effect on propagation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rerender.flow.estimators import FlowEstimator, _check_uint8_image_pair, estimate_flow_numpy

__all__ = ["FlowCache"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = b"rerender-flow-cache-v1"


class FlowCache:
    """Flows of frame pairs stored in `directory`, computed on a miss.

    The key is the SHA-1 of the two frames' bytes, their size and the estimator's ``name`` (which must name every
    setting that changes its output; the estimators of `rerender.flow` do). A hit for the swapped pair
    (target, source) is used too, with forward and backward exchanged. The folder is created on the first write;
    the constructor touches nothing.

    Args:
        directory: where the ``<key>.npz`` files live.
        on_save: called with an entry's path just before it is written (a workspace records what it owns).

    Example:
        >>> import tempfile, numpy as np
        >>> from rerender.flow import DISFlowEstimator
        >>> cache = FlowCache(tempfile.mkdtemp())
        >>> frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> forward, backward = cache.get_or_compute(DISFlowEstimator("fast"), frames[0], frames[1])
        >>> forward.shape, len(list(cache.directory.glob("*.npz")))
        ((32, 32, 2), 1)
    """

    def __init__(self, directory: str | os.PathLike[str], on_save: Callable[[Path], object] | None = None) -> None:
        self.directory = Path(directory).expanduser()
        self.on_save = on_save

    def __repr__(self) -> str:
        return f"FlowCache({str(self.directory)!r})"

    @staticmethod
    def key(estimator_name: str, source: np.ndarray, target: np.ndarray) -> str:
        """The cache key of a pair: hex SHA-1 of the format version, estimator name, size and both frames."""
        digest = hashlib.sha1(_FORMAT_VERSION)
        digest.update(estimator_name.encode())
        digest.update(repr((source.shape, source.dtype.str)).encode())
        digest.update(np.ascontiguousarray(source).tobytes())
        digest.update(np.ascontiguousarray(target).tobytes())
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry of `key` lives."""
        return self.directory / f"{key}.npz"

    def load(self, key: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached ``(forward, backward)`` of `key`, or None when absent or unreadable (logged, then ignored).

        Shape:
            - Output: (H, W, 2), (H, W, 2) float32 for ``shape = (H, W)``
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                forward, backward = entry["forward"], entry["backward"]
        except Exception as error:  # a damaged file is a cache miss, never a failure
            logger.warning("Ignoring unreadable flow cache entry %s (%s: %s)", path, type(error).__name__, error)
            return None
        if not (np.issubdtype(forward.dtype, np.floating) and np.issubdtype(backward.dtype, np.floating)):
            logger.warning("Ignoring flow cache entry %s of dtype %s", path, forward.dtype)
            return None
        if forward.shape != (*shape, 2) or backward.shape != (*shape, 2):
            logger.warning("Ignoring flow cache entry %s with shape %s, expected %s", path, forward.shape, (*shape, 2))
            return None
        return forward.astype(np.float32, copy=False), backward.astype(np.float32, copy=False)

    def save(self, key: str, forward: np.ndarray, backward: np.ndarray) -> Path:
        """Store an entry atomically (float16, compressed): a temporary file in the folder, then `os.replace`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.on_save is not None:
            self.on_save(self.path(key))
        descriptor, temporary_name = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                np.savez_compressed(file, forward=_compact(forward), backward=_compact(backward))
            os.replace(temporary_name, self.path(key))
        except BaseException as error:
            Path(temporary_name).unlink(missing_ok=True)
            if isinstance(error, OSError) and error.filename is None:
                error.filename = str(self.path(key))  # so a full disk names this folder
            raise
        return self.path(key)

    def get_or_compute(
        self, estimator: FlowEstimator, source: np.ndarray, target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The flows of a pair from the cache, or computed with `estimator` and stored.

        Args:
            estimator: any `FlowEstimator`; its ``name`` is part of the key.
            source: the source image, RGB.
            target: the target image, RGB, same size.

        Returns:
            ``(forward, backward)``: source→target and target→source, float32 holding float16 values (what the
            cache stores, so a hit and a miss give the same flows), x first.

        Raises:
            FlowInputError: not HxWx3 uint8, or of different sizes.

        Shape:
            - source, target: (H, W, 3) uint8
            - Output: (H, W, 2), (H, W, 2)
        """
        _check_uint8_image_pair(source, target)
        shape = source.shape[:2]
        key = self.key(estimator.name, source, target)
        cached = self.load(key, shape)
        if cached is not None:
            return cached
        swapped = self.load(self.key(estimator.name, target, source), shape)
        if swapped is not None:
            return swapped[1], swapped[0]
        forward, backward = estimate_flow_numpy(estimator, source, target)
        # What a later hit returns, so a resumed run computes exactly what an uninterrupted one does.
        forward, backward = _compact(forward).astype(np.float32), _compact(backward).astype(np.float32)
        self.save(key, forward, backward)
        logger.debug("Cached %s flow %s for a %dx%d pair", estimator.name, key, shape[1], shape[0])
        return forward, backward


def _compact(flow: np.ndarray) -> np.ndarray:
    """Flow as float16, clipped to its finite range (a displacement beyond ±65504 px means no match anyway)."""
    return np.clip(np.nan_to_num(flow, nan=0.0), -65504, 65504).astype(np.float16)
