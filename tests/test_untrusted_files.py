"""Nothing loaded from a workspace, a config or a weights file runs code: planted pickles are refused.

Each test plants a harmless payload that would create a marker file if it were unpickled, in the place a
user (or a colleague's project, or shared storage) could drop it, and checks that loading refuses it with a
clear error (or ignores it) and that the marker never appears. The resume state of the diffusion renderer
has its own test in `test_translate_diffusion.py`.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from rerender.errors import CheckpointError, ConfigError, InputNotFoundError


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "a planted pickle ran"


def test_pickled_single_file_checkpoint_is_refused(tmp_path, marker, tiny_pipeline_dir):
    from rerender.config import ControlConfig, ModelConfig
    from rerender.diffusion.loading import load_pipeline

    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"weight": Payload(marker)}}, checkpoint)
    model = ModelConfig(base_model=str(checkpoint), vae=None, device="cpu", dtype="float32")
    with pytest.raises(InputNotFoundError, match="model.ckpt.* is not a loadable model"):
        load_pipeline(model, [ControlConfig(model=str(tiny_pipeline_dir / "controlnet"))])


def test_pickled_lora_is_refused(tmp_path, marker, tiny_pipeline_dir):
    from rerender.config import LoraConfig
    from rerender.diffusion.loading import load_loras
    from rerender.diffusion.pipeline import RerenderPipeline

    lora = tmp_path / "style.bin"
    torch.save({"lora_unet_down_blocks_0_attentions_0.lora_down.weight": Payload(marker)}, lora)
    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    with pytest.raises(ConfigError, match=r"model.loras\[0\].path.*could not be read"):
        load_loras(pipeline, [LoraConfig(path=str(lora))])


def test_pickled_gmflow_checkpoint_is_refused(tmp_path, marker):
    from rerender.flow.gmflow import read_gmflow_checkpoint

    checkpoint = tmp_path / "gmflow.pth"
    torch.save({"model": {"weight": Payload(marker)}}, checkpoint)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_gmflow_checkpoint(checkpoint)


def test_pickled_flow_cache_entry_is_a_cache_miss(tmp_path, marker):
    from rerender.flow import FlowCache

    cache = FlowCache(tmp_path / "flows")
    source, target = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 9, np.uint8)
    key = cache.key("dis", source, target)
    cache.save(key, np.zeros((8, 8, 2), np.float32), np.zeros((8, 8, 2), np.float32))
    with open(cache.path(key), "wb") as handle:  # an .npz whose arrays are pickled objects
        np.savez(handle, forward=np.array([Payload(marker)], dtype=object), backward=np.zeros((8, 8, 2), np.float32))
    assert cache.load(key, (8, 8)) is None


def test_yaml_config_tags_never_build_objects(tmp_path, marker):
    from rerender.config import load_config

    config = tmp_path / "evil.yaml"
    config.write_text(f"prompt:\n  prompt: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config)


def test_pickled_manifest_is_not_unpickled(tmp_path, marker, synthetic_clip):
    from rerender.config import RerenderConfig
    from rerender.workflow.workspace import Workspace

    root = tmp_path / "ws"
    root.mkdir()
    (root / "manifest.json").write_bytes(pickle.dumps(Payload(marker)))
    try:
        Workspace.open(root, synthetic_clip, RerenderConfig())
    except ValueError:
        pass  # refusing a damaged manifest is fine, or rebuilding it; running it is not (the fixture checks)
