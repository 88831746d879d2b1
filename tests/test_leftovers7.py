"""The lead's leftovers of round 7: one rule each (other tools' words, typed values, the --jobs/--ray warning, the
single-file parts, `~` in path options, Z-Image-Turbo's detection, generate's size help)."""

from __future__ import annotations

import pytest

from rerender.config import RerenderConfig, apply_overrides, config_from_dict
from rerender.errors import ConfigError

# ------------------------------------------------------------------------------------ 1. other tools' words


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ({"steps": 30}, "'num_inference_steps'"),  # a leaf name: as before
        ({"sampling.steps": 30}, "'sampling.num_inference_steps'"),  # was: the section's 7 valid keys
        ({"video.max_frames": 30}, "'video.end_frame'"),  # was: did you mean 'start_frame'?
    ],
)
def test_another_tool_s_word_in_an_override_suggests_the_option_it_means(given, suggested):
    with pytest.raises(ConfigError, match=rf"unknown option `{next(iter(given))}`; did you mean {suggested}\?$"):
        apply_overrides(RerenderConfig(), given)


@pytest.mark.parametrize(
    ("data", "suggested"),
    [
        ({"sampling": {"cfg_scale": 7}}, "`sampling.cfg_scale`; did you mean 'guidance_scale'"),  # was: valid keys
        ({"keyframes": {"K": 5}}, "`keyframes.K`; did you mean 'keyframe_interval'"),
        ({"steps": 30}, "`steps`; did you mean 'sampling.num_inference_steps'"),  # top level: the section too
        ({"model": {"loras": [{"path": "a.safetensors", "strength": 0.8}]}}, r"`model.loras\[0\].strength`; did you "
         "mean 'scale'"),  # a LoRA's strength is its scale, not the run's denoising strength
    ],
)  # fmt: skip
def test_another_tool_s_word_in_a_config_file_suggests_the_option_it_means_there(data, suggested):
    with pytest.raises(ConfigError, match=rf"unknown option {suggested}\?$"):
        config_from_dict(data)
