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
