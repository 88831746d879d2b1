"""Config: defaults, validation messages, YAML/JSON round trips, overrides, shipped presets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from rerender.config import (
    ControlConfig,
    RerenderConfig,
    apply_overrides,
    config_from_dict,
    config_hash,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)
from rerender.errors import ConfigError, InputNotFoundError

REPO = Path(__file__).resolve().parents[1]


def test_default_yaml_equals_defaults():
    assert load_config(REPO / "configs" / "default.yaml") == RerenderConfig()


def test_every_shipped_preset_is_valid():
    presets = sorted((REPO / "configs").glob("*.yaml"))
    assert len(presets) >= 2
    for preset in presets:
        load_config(preset)


def test_tiny_preset_is_small_and_fast():
    config = load_config(REPO / "configs" / "tiny.yaml")
    assert config.video.resolution <= 64
    assert config.sampling.num_inference_steps <= 4
    assert config.flow.flow_estimator == "dis"


def test_official_defaults_that_matter():
    from rerender.workflow.preflight import resolve_model_defaults

    config = RerenderConfig()
    assert config.keyframes.keyframe_interval == 10
    # the steps, guidance and added prompt are the model's own (FAMILY_DEFAULTS); on SD 1.5 the official ones
    assert (config.sampling.num_inference_steps, config.sampling.guidance_scale) == (None, None)
    on_sd15 = resolve_model_defaults(config, "sd15")
    assert (on_sd15.sampling.num_inference_steps, on_sd15.sampling.guidance_scale) == (20, 7.5)
    assert on_sd15.prompt.added_prompt == "best quality, extremely detailed"
    assert config.constraints.cross_frame_attention_period == (0.0, 1.0)
    assert config.constraints.shape_fusion_period == (0.0, 0.1)
    assert config.constraints.pixel_fusion_period == (0.5, 0.8)
    assert config.constraints.adain_period is None  # official (1, 1) is effectively off
    assert (config.constraints.mask_strength, config.constraints.inner_strength) == (0.5, 0.9)
    assert config.constraints.smooth_boundary and config.constraints.color_preserve
    assert config.video.resize_side == "long" and config.video.size_multiple is None  # the model's own:
    assert resolve_model_defaults(config, "sd15").video.size_multiple == 8  # SD 1.5 needs 8 (issue 9), not 64
    assert config.propagation.propagation_preset == "balanced" and config.propagation.blend_mode is None


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_through_files(tmp_path, suffix):
    config = apply_overrides(
        RerenderConfig(),
        {
            "keyframe_interval": 7,
            "adain_period": [0.8, 1.0],
            "color_preserve": False,
            "freeu": {"b1": 1.1, "b2": 1.2, "s1": 1.0, "s2": 0.2},
            "loras": [{"path": "style.safetensors", "scale": 0.8}],
            "keyframe_mode": "explicit",
            "keyframe_indices": [0, 5, 9],
            "prompt": "a sculpture, 日本語 ok",
        },
    )
    path = save_config(config, tmp_path / f"config{suffix}")
    assert load_config(path) == config
    assert config_from_dict(config_to_dict(config)) == config


def test_color_preserve_can_be_turned_off_from_json(tmp_path):
    # The official loader read a misspelled key, so JSON could never disable colour preservation.
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"constraints": {"color_preserve": False}}))
    assert load_config(path).constraints.color_preserve is False


def test_unknown_key_suggests_nearest_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sampling:\n  denoising_strenght: 0.5\n")
    with pytest.raises(ConfigError, match="denoising_strenght.*did you mean 'denoising_strength'"):
        load_config(path)
    with pytest.raises(ConfigError, match="did you mean 'sampling'"):
        config_from_dict({"samplng": {}})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"keyframe_interval": 0}, r"`keyframes.keyframe_interval` must be ≥ 1, got 0"),
        ({"denoising_strength": 1.5}, r"`sampling.denoising_strength` must be in \[0.0, 1.0\], got 1.5"),
        ({"pixel_fusion_period": [0.8, 0.5]}, r"start ≤ end"),
        ({"shape_fusion_period": [0.0, 1.2]}, r"must lie in \[0, 1\]"),
        ({"resolution": 32}, r"`video.resolution` must be in \[64, 4096\], got 32"),
        ({"resolution": 100000}, r"`video.resolution` must be in \[64, 4096\]"),
        ({"resize_side": "width"}, r"must be one of 'long', 'short', got 'width'"),
        ({"num_inference_steps": "many"}, r"`sampling.num_inference_steps` must be an integer, got 'many'"),
        ({"smooth_boundary": "yes"}, r"must be true or false"),
        ({"keyframe_indices": [5, 2]}, r"sorted and unique"),
        ({"control.strength": 3.0}, r"`control\[0\].strength` must be in \[0.0, 2.0\], got 3.0"),
        ({"mask_strength": -0.1}, r"`constraints.mask_strength` must be in \[0.0, 1.0\]"),
        ({"crf": 60}, r"`output.crf` must be in \[0, 51\]"),
        ({"device": "gpu"}, r"`model.device` must be 'auto'"),
    ],
)
def test_out_of_range_values_name_key_value_and_range(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(RerenderConfig(), overrides)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        apply_overrides(RerenderConfig(), {"keyframe_interval": -3})


def test_none_turns_features_off_and_no_sentinels():
    config = apply_overrides(RerenderConfig(), {"shape_fusion_period": None, "style_update_interval": None})
    assert config.constraints.shape_fusion_period is None
    assert config.constraints.style_update_interval is None
    with pytest.raises(ConfigError):
        apply_overrides(RerenderConfig(), {"style_update_interval": -1})


def test_overrides_by_leaf_dotted_and_control_index():
    base = RerenderConfig(control=(ControlConfig(type="canny"), ControlConfig(type="hed", strength=0.5)))
    config = apply_overrides(base, {"video.resolution": 256, "guidance_scale": 5, "control.1.strength": 0.9})
    assert config.video.resolution == 256
    assert config.sampling.guidance_scale == 5.0 and isinstance(config.sampling.guidance_scale, float)
    assert [c.strength for c in config.control] == [1.0, 0.9]
    both = apply_overrides(base, {"control_strength": 0.7})
    assert [c.strength for c in both.control] == [0.7, 0.7]
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(base, {"control.5.strength": 0.1})
    with pytest.raises(ConfigError, match="did you mean"):
        apply_overrides(base, {"guidance": 5})


def test_dotted_overrides_start_at_a_leaf_and_fill_in_optional_groups():
    config = apply_overrides(
        RerenderConfig(), {"crop.left": 100, "freeu.b1": 1.3, "refinement.refinement_strength": 0.4}
    )
    assert config.video.crop.left == 100
    assert config.constraints.freeu.b1 == 1.3 and config.constraints.freeu.s2 is None  # the rest: the model's own
    assert config.sampling.refinement.refinement_strength == 0.4
    with pytest.raises(ConfigError, match="did you mean 'left'"):
        apply_overrides(RerenderConfig(), {"crop.lft": 1})


def test_parse_override_reads_yaml_values():
    assert parse_override("denoising_strength=0.6") == ("denoising_strength", 0.6)
    assert parse_override("adain_period=[0.8, 1]") == ("adain_period", [0.8, 1])
    assert parse_override("freeu=null") == ("freeu", None)
    assert parse_override("prompt=a cat, oil painting") == ("prompt", "a cat, oil painting")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("denoising_strength")


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("video: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(InputNotFoundError):
        load_config(tmp_path / "missing.yaml")
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(not_mapping)


def test_precomputed_control_needs_maps_and_model():
    with pytest.raises(ConfigError, match="control.maps"):
        ControlConfig(type="precomputed")
    control = ControlConfig(type="precomputed", maps="poses/", model="lllyasviel/sd-controlnet-openpose")
    assert control.resolved_model == "lllyasviel/sd-controlnet-openpose"
    assert ControlConfig(type="canny").resolved_model == "lllyasviel/sd-controlnet-canny"


def test_configs_are_frozen_and_hash_is_stable():
    config = RerenderConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.video.resolution = 10  # type: ignore[misc]
    assert config_hash(config) == config_hash(RerenderConfig())
    changed = apply_overrides(config, {"prompt": "a cat"})
    assert config_hash(changed) != config_hash(config)
    assert config_hash(changed, ("video",)) == config_hash(config, ("video",))


def test_full_prompt_joins_added_prompt():
    config = apply_overrides(RerenderConfig(), {"prompt": "a cat"})
    assert config.prompt.full_prompt == "a cat, best quality, extremely detailed"
    assert apply_overrides(config, {"added_prompt": ""}).prompt.full_prompt == "a cat"


def test_default_yaml_text_is_readable():
    text = (REPO / "configs" / "default.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["constraints"]["shape_fusion_period"] == [0.0, 0.1]


def test_a_lora_may_be_given_as_its_path_alone(tmp_path):
    """`loras=["style.safetensors"]` (Python) and `loras: [style.safetensors]` (YAML) are LoRAs at scale 1, as the
    CLI's `--lora style.safetensors`; the mapping form still takes a scale."""
    from pathlib import Path

    from rerender.config import LoraConfig, apply_overrides, load_config

    config = apply_overrides(
        RerenderConfig(), {"loras": ["a.safetensors", Path("b.safetensors"), {"path": "c", "scale": 0.5}]}
    )
    assert config.model.loras == (
        LoraConfig(path="a.safetensors"),
        LoraConfig(path="b.safetensors"),
        LoraConfig(path="c", scale=0.5),
    )
    (tmp_path / "c.yaml").write_text("model:\n  loras: [style.safetensors]\n")
    assert load_config(tmp_path / "c.yaml").model.loras == (LoraConfig(path="style.safetensors"),)
    with pytest.raises(ConfigError, match=r"model\.loras\[0\]"):
        apply_overrides(RerenderConfig(), {"loras": [5]})
