"""FreeU's factors follow the base model (issue 22): left unset, SD 1.5 keeps Rerender's 1.1/1.2/1.0/0.2 and SDXL
takes FreeU's published 1.3/1.4/0.9/0.2, through the one table `rerender.config.FAMILY_DEFAULTS`; a value set wins;
the help texts (CLI, web page, docs) show the table; an unresolved factor never reaches the maths."""

import pytest

from rerender.config import (
    FAMILY_DEFAULTS,
    FREEU_FACTORS,
    FreeUConfig,
    RerenderConfig,
    apply_overrides,
    config_from_dict,
    field_help,
)
from rerender.errors import ConfigError

RERENDER_SD15 = {"b1": 1.1, "b2": 1.2, "s1": 1.0, "s2": 0.2}
"""Rerender-A-Video's SD 1.5 factors (its configs/*_freeu.json), FreeU's class defaults before issue 22."""


def _factors(freeu: FreeUConfig) -> dict[str, float | None]:
    return {name: getattr(freeu, name) for name in FREEU_FACTORS}


def _resolved(config: RerenderConfig, family: str) -> RerenderConfig:
    from rerender.workflow.preflight import resolve_model_defaults

    return resolve_model_defaults(config, family)


def test_the_table_is_rerender_s_on_sd15_and_freeu_s_published_on_sdxl_and_none_on_transformer_bases():
    published = FreeUConfig.published("sdxl")
    for name in FREEU_FACTORS:
        row = FAMILY_DEFAULTS[f"constraints.freeu.{name}"]
        assert row["sd15"] == RERENDER_SD15[name] and row["sdxl"] == getattr(published, name)
        assert all(row[variant] is None for variant in ("flux-dev", "flux-schnell", "zimage", "zimage-turbo"))
    assert _factors(FreeUConfig()) == dict.fromkeys(FREEU_FACTORS)  # unset until a run knows its base


def test_freeu_left_unset_takes_the_family_s_factors_and_a_value_set_wins():
    on = config_from_dict({"constraints": {"freeu": {}}})  # `freeu: {}` in a YAML file
    assert _factors(_resolved(on, "sd15").constraints.freeu) == RERENDER_SD15  # SD 1.5 runs unchanged
    assert _resolved(on, "sdxl").constraints.freeu == FreeUConfig.published("sdxl")
    own = apply_overrides(RerenderConfig(), {"freeu.b1": 1.05, "constraints.freeu.s2": 0.5})  # --set
    assert _factors(_resolved(own, "sdxl").constraints.freeu) == {"b1": 1.05, "b2": 1.4, "s1": 0.9, "s2": 0.5}
    assert _factors(_resolved(own, "sd15").constraints.freeu) == {"b1": 1.05, "b2": 1.2, "s1": 1.0, "s2": 0.5}
    assert _resolved(RerenderConfig(), "sdxl").constraints.freeu is None  # off stays off
    flux = _resolved(on, "flux").constraints.freeu  # ignored there (a warning): no factor is made up for it
    assert _factors(flux) == dict.fromkeys(FREEU_FACTORS)
    # a renderer handed a config that skipped `check_run` resolves it for its pipeline's base
    from rerender.workflow.preflight import resolve_family_defaults

    class Pipeline:
        family = variant = "sdxl"

    assert resolve_family_defaults(on, Pipeline()).constraints.freeu == FreeUConfig.published("sdxl")


def test_a_workspace_made_before_keeps_its_sd15_keyframes():
    """Before issue 22, `freeu: {}` was FreeUConfig(1.1, 1.2, 1.0, 0.2) and the workspace hashed those numbers;
    the resolved config a run compares now hashes the same, so no keyframe is rendered again."""
    from rerender.workflow.workspace import _section_hashes

    before = config_from_dict({"constraints": {"freeu": RERENDER_SD15}})
    now = config_from_dict({"constraints": {"freeu": {}}})
    assert _section_hashes(_resolved(now, "sd15"), "keyframes") == _section_hashes(
        _resolved(before, "sd15"), "keyframes"
    )
    assert _section_hashes(_resolved(now, "sdxl"), "keyframes") != _section_hashes(
        _resolved(before, "sdxl"), "keyframes"
    )


def test_an_unresolved_factor_never_reaches_the_maths():
    from torch import nn

    from rerender.diffusion.freeu import freeu_installed

    with pytest.raises(ConfigError, match=r"FreeU factors b2, s1 are unset \(None\).*resolved"):
        with freeu_installed(nn.Module(), FreeUConfig(b1=1.1, s2=0.2)):
            pass


def test_the_help_texts_and_config_show_give_the_per_family_factors(capsys):
    text = field_help("constraints.freeu.b1")
    assert "Left unset, per base: 1.1 (SD 1.5), 1.3 (SDXL); not used on FLUX.1 [dev]" in text
    assert "0.2 (SD 1.5, SDXL); not used on" in field_help("constraints.freeu.s2")
    import json
    from pathlib import Path

    from rerender.cli import main

    preset = Path(__file__).parents[1] / "configs" / "sdxl.yaml"
    assert main(["config", "show", "--json", str(preset), "--set", "freeu.s2=0.3"]) == 0
    shown = json.loads(capsys.readouterr().out)["constraints"]["freeu"]  # what the run uses, as numbers
    assert shown == {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.3, "variant": "rerender"}
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "docs" / "scripts" / "gen_reference.py"  # the configuration reference page
    spec = importlib.util.spec_from_file_location("gen_reference", script)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    row = next(line for line in gen.config_markdown().splitlines() if line.startswith("| `constraints.freeu.b2` |"))
    assert "1.2 (SD 1.5), 1.4 (SDXL); not used on" in row


def test_the_web_page_shows_the_per_family_factors():
    from rerender.ui.fields import component_for, field_spec

    box = component_for(field_spec("constraints.freeu.s1"), None)
    assert box.value is None and "1 (SD 1.5), 0.9 (SDXL)" in box.info  # empty = the model's own
    from rerender.ui.runs import RunRequest, build_config

    switched_on = build_config(
        RunRequest("keyframes", "diffusion", {"constraints.freeu": True, "constraints.freeu.s1": None})
    )
    assert switched_on.constraints.freeu == FreeUConfig()  # left empty: the model's own, set when the run starts


def test_the_sdxl_presets_take_the_factors_from_the_table():
    from pathlib import Path

    from rerender.config import load_config

    for name in ("sdxl.yaml", "sdxl_union.yaml"):
        config = load_config(Path(__file__).parents[1] / "configs" / name)
        assert config.constraints.freeu == FreeUConfig()  # no copy of the numbers
        assert _resolved(config, "sdxl").constraints.freeu == FreeUConfig.published("sdxl")


def test_the_models_page_table_is_the_family_defaults():
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "guides" / "models-and-weights.md").read_text(encoding="utf-8")
    for names in (("b1", "b2"), ("s1", "s2")):
        row = next(line for line in page.splitlines() if line.startswith(f"| `{names[0]}`, `{names[1]}` "))
        cells = [cell.strip() for cell in row.split("|")[2:-1]]
        for cell, variant in zip(cells, ("sd15", "sdxl")):
            stated = [float(number) for number in cell.split(" (")[0].split(", ")]
            assert stated == [FAMILY_DEFAULTS[f"constraints.freeu.{name}"][variant] for name in names], row
        assert cells[2] == "not used" and FAMILY_DEFAULTS[f"constraints.freeu.{names[0]}"]["flux-dev"] is None
