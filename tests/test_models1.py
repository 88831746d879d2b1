"""One source of truth for the model-file checks (`rerender env` reports what a run refuses), one rule for picking a
LoRA file, `--lora` naming a file inside a hub repository, the cached checkpoint header, one Union-mode check."""

from __future__ import annotations

import pytest

from rerender.config import ModelConfig
from rerender.errors import ConfigError


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_blank_base_model_is_refused_naming_the_option(blank):
    with pytest.raises(ConfigError, match=r"`model.base_model` must name a hub id, folder or file, got"):
        ModelConfig(base_model=blank)


# --------------------------------------------------------------------------------------------------------
# the checkpoint header, read once per file version
# --------------------------------------------------------------------------------------------------------


def _save(path, names, width=4):
    import torch
    from safetensors.torch import save_file

    save_file({name: torch.zeros(2, width) for name in names}, str(path))


def test_checkpoint_keys_reads_a_header_once_and_again_after_the_file_changes(tmp_path, monkeypatch):
    import os

    import safetensors

    from rerender.weights import checkpoint_keys, checkpoint_shapes

    opened = []
    real = safetensors.safe_open
    monkeypatch.setattr(safetensors, "safe_open", lambda path, **kw: opened.append(path) or real(path, **kw))
    lora = tmp_path / "style.safetensors"
    _save(lora, ["unet.a.lora_A.weight"])
    assert checkpoint_keys(lora) == {"unet.a.lora_A.weight"}
    assert checkpoint_keys(lora) == {"unet.a.lora_A.weight"}
    assert checkpoint_shapes(tmp_path / "." / "style.safetensors") == {"unet.a.lora_A.weight": (2, 4)}
    assert len(opened) == 1  # one read for the three questions (the same file by another spelling too)

    _save(lora, ["unet.a.lora_A.weight", "unet.b.lora_B.weight"])  # another size
    assert checkpoint_keys(lora) == {"unet.a.lora_A.weight", "unet.b.lora_B.weight"}
    _save(lora, ["unet.c.lora_A.weight", "unet.d.lora_B.weight"])  # the same size: the time tells
    stat = lora.stat()
    os.utime(lora, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert checkpoint_keys(lora) == {"unet.c.lora_A.weight", "unet.d.lora_B.weight"}
    assert len(opened) == 3
    keys = checkpoint_keys(lora)
    keys.add("changed by a caller")
    assert "changed by a caller" not in checkpoint_keys(lora)  # callers get copies
