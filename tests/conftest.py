"""Test setup: offline, one thread, fixed seeds; shared fixtures for the synthetic clip and tiny models."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or torch: never touch the network, never oversubscribe 2 cores.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import random
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _deterministic():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def synthetic_clip(tmp_path_factory) -> Path:
    """A 20-frame 96×64 mixed-motion clip at 25 fps with a 440 Hz AAC tone, written with PyAV."""
    from rerender.synthetic import write_synthetic_video

    path = tmp_path_factory.mktemp("clips") / "synthetic clip.mp4"
    write_synthetic_video(path, num_frames=20, width=96, height=64, motion="mixed", fps=25, audio=True)
    return path


@pytest.fixture(scope="session")
def silent_clip(tmp_path_factory) -> Path:
    """A 12-frame 64×48 clip without audio."""
    from rerender.synthetic import write_synthetic_video

    path = tmp_path_factory.mktemp("clips") / "silent.mp4"
    write_synthetic_video(path, num_frames=12, width=64, height=48, motion="translation", fps=25, audio=False)
    return path


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """The tiny SD1.5 + ControlNet components saved once per session as a local diffusers folder."""
    from tests.tiny_models import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd15"))


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory) -> Path:
    """The tiny SDXL + ControlNet components (and a Union ControlNet) saved once per session as a diffusers folder."""
    from tests.tiny_models import save_tiny_sdxl_pipeline

    return save_tiny_sdxl_pipeline(tmp_path_factory.mktemp("tiny-sdxl"))
