"""Decisions on what last round's newcomer passes left open: a reference image at scale 0 needs no IP-Adapter, the
sound prompt hears the output's audio track, a silent sound file is refused before any model, QuickTime-playable
audio in .mp4, a batch names every missing video at once, and propagate reading translate's keyframes leaves
translate's workspace alone."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.video import write_image

# 1. `--style-image-scale 0`: the reference image has no effect, so its IP-Adapter is neither needed nor loaded


@pytest.fixture
def style_png(tmp_path) -> Path:
    return write_image(np.full((16, 16, 3), 200, np.uint8), tmp_path / "style.png")


def _style_config(style_png: Path, scale: float, **more) -> RerenderConfig:
    overrides = {"prompt.style_image": str(style_png), "prompt.style_image_scale": scale, **more}
    return apply_overrides(RerenderConfig(), overrides)


def test_scale_0_needs_no_ip_adapter_weights(style_png):
    from rerender.weights import extra_sources, fetch_commands

    used, unused = _style_config(style_png, 0.6), _style_config(style_png, 0.0)
    assert "IP-Adapter" in [source.role for source in extra_sources(used)[0]]
    assert "IP-Adapter" not in [source.role for source in extra_sources(unused)[0]]
    assert not any("--style-image" in command for command in fetch_commands(unused, []))


def test_scale_0_passes_preflight_without_the_adapter(style_png, tmp_path, caplog):
    from rerender.errors import WeightsNotFoundError
    from rerender.workflow.preflight import check_model_inputs

    missing = {"model.ip_adapter": str(tmp_path / "no-such-adapter")}
    with pytest.raises(WeightsNotFoundError):  # the same check at a scale that uses the image
        check_model_inputs(_style_config(style_png, 0.5, **missing), pipeline=object())
    with caplog.at_level(logging.INFO, logger="rerender.workflow.preflight"):
        check_model_inputs(_style_config(style_png, 0.0, **missing), pipeline=object())
    assert "IP-Adapter is skipped" in caplog.text


def test_scale_0_on_a_base_without_an_adapter_is_not_refused(style_png):
    from rerender.errors import ConfigError
    from rerender.weights import check_ip_adapter_family

    flux = {"model.base_model": "black-forest-labs/FLUX.1-schnell"}
    with pytest.raises(ConfigError, match="needs an IP-Adapter"):
        check_ip_adapter_family(_style_config(style_png, 0.6, **flux))
    check_ip_adapter_family(_style_config(style_png, 0.0, **flux))


class _UnetWithoutAdapter:
    encoder_hid_proj = None


class _PipelineThatMustNotLoad:
    """A pipeline whose IP-Adapter loading fails the test (diffusers' `load_ip_adapter` / `set_ip_adapter_scale`)."""

    unet = _UnetWithoutAdapter()
    family = "sd15"

    def load_ip_adapter(self, *args, **kwargs):
        raise AssertionError("the IP-Adapter was loaded at scale 0")

    def set_ip_adapter_scale(self, scale):
        raise AssertionError("the IP-Adapter scale was set at scale 0")


def test_scale_0_does_not_load_the_adapter(style_png, tmp_path, caplog):
    from rerender.diffusion.ip_adapter import style_adapter

    config = _style_config(style_png, 0.0, **{"model.ip_adapter": str(tmp_path / "no-such-adapter")})
    with caplog.at_level(logging.INFO, logger="rerender.diffusion.ip_adapter"):
        with style_adapter(_PipelineThatMustNotLoad(), config) as image:
            assert image is None
    assert "not loaded" in caplog.text
