"""ControlNet Union control modes on every base with a Union ControlNet: one table per model kind, a name resolved
with the table of the base's own Union model, the number that reaches the ControlNet's forward, and the refusals
(naming `control.control_mode`, the value and that base's names) before any expensive work.

The model cards' numbers are written out here, not read from `rerender.config`, so that a table that drifts from
its card fails.
"""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rerender.config import ConstraintConfig, ControlConfig, ModelConfig, RerenderConfig, apply_overrides
from rerender.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
OFF = ConstraintConfig(cross_frame_attention_period=None, shape_fusion_period=None, pixel_fusion_period=None)

XINSIR_CARD = {  # https://huggingface.co/xinsir/controlnet-union-sdxl-1.0
    "openpose": 0, "depth": 1, "hed": 2, "pidi": 2, "scribble": 2, "ted": 2, "canny": 3, "lineart": 3,
    "anime_lineart": 3, "mlsd": 3, "normal": 4, "segment": 5, "tile": 6, "repaint": 7,
}  # fmt: skip
FLUX_UNION_CARD = {  # InstantX/FLUX.1-dev-Controlnet-Union, Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro
    "canny": 0, "tile": 1, "depth": 2, "blur": 3, "openpose": 4, "gray": 5, "low_quality": 6,
}  # fmt: skip


class _Stop(Exception):
    """Raised by the ControlNet's forward hook once it has seen its inputs: the rest of the render is not needed."""


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    """A tiny Flux pipeline with a Union ControlNet (7 modes, as the published ones), and what reached the
    ControlNet's forward (its ``controlnet_mode``), one entry per call; the call stops there."""
    from rerender.diffusion.flux import RerenderFluxPipeline
    from tests.tiny_flux import make_tiny_flux_components, make_tiny_flux_controlnet

    components = make_tiny_flux_components(tmp_path_factory.mktemp("tokenizer"))
    controlnet = make_tiny_flux_controlnet(components["transformer"], union=True)
    pipe = RerenderFluxPipeline(**components, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    seen: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        seen.append(kwargs["controlnet_mode"])
        raise _Stop

    controlnet.register_forward_pre_hook(hook, with_kwargs=True)
    return pipe, seen, components


def _mode_reaching_the_controlnet(flux, control: ControlConfig) -> torch.Tensor:
    pipe, seen, _ = flux
    frame = np.zeros((32, 32, 3), np.uint8)
    seen.clear()
    with pytest.raises(_Stop):
        pipe(
            [frame],
            "a cube",
            control_images=[frame],
            controls=[control],
            num_inference_steps=1,
            guidance_scale=0.0,
            strength=1.0,
            constraints=OFF,
        )
    (mode,) = seen
    return mode


# --------------------------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------------------------


def test_one_table_per_union_model_kind_each_its_model_card_s_numbers():
    import rerender.config.sections as sections
    import rerender.diffusion.flux as flux_module
    from rerender.config import (
        CHOICES,
        FLUX_UNION_MODES,
        SDXL_UNION_MODES,
        UNION_MODES,
        FluxUnionModeName,
        SDXLUnionModeName,
        UnionControlModeName,
        choices,
        field_help,
    )
    from rerender.diffusion.control import union_modes_text

    assert SDXL_UNION_MODES == XINSIR_CARD and FLUX_UNION_MODES == FLUX_UNION_CARD
    assert choices(SDXLUnionModeName) == tuple(SDXL_UNION_MODES) and choices(FluxUnionModeName) == tuple(
        FLUX_UNION_MODES
    )
    assert set(choices(UnionControlModeName)) == set(SDXL_UNION_MODES) | set(FLUX_UNION_MODES)
    assert {"SDXLUnionModeName", "FluxUnionModeName", "UnionControlModeName"} <= set(CHOICES)
    assert UNION_MODES["sdxl"] is SDXL_UNION_MODES and UNION_MODES["flux"] is FLUX_UNION_MODES
    assert UNION_MODES["zimage"] == {}  # its Union ControlNet takes no mode
    # the option's help (CLI, docs) spells the tables as they are
    help_text = " ".join(field_help("control.control_mode").split())
    assert f"SDXL: {union_modes_text('sdxl')};" in help_text and f"Flux: {union_modes_text('flux')})" in help_text
    # one name per concept: the two tables that once shared `UNION_CONTROL_MODES` are gone
    assert not hasattr(sections, "UNION_CONTROL_MODES") and not hasattr(flux_module, "UNION_CONTROL_MODES")


def test_a_mode_name_is_kept_as_given_until_the_model_is_known():
    # was: ControlConfig turned "canny" into 3 (xinsir's canny) at config time: Flux's "blur"
    assert ControlConfig(control_mode="canny").control_mode == "canny"
    assert apply_overrides(RerenderConfig(), {"control.0.control_mode": "blur"}).control[0].control_mode == "blur"
    assert ControlConfig(control_mode=5).control_mode == 5
    with pytest.raises(
        ConfigError, match=r"`control.control_mode` must be one of .*'repaint'.*'low_quality', got 'pose'"
    ):
        ControlConfig(control_mode="pose")


@pytest.mark.parametrize("name", list(XINSIR_CARD))
def test_sdxl_names_still_map_to_the_xinsir_numbers(name):
    from rerender.diffusion.control import union_control_mode

    assert union_control_mode(ControlConfig(control_mode=name), 8, "sdxl") == XINSIR_CARD[name]


def test_sdxl_union_refuses_a_flux_only_name_before_the_unet_loads(tiny_sdxl_dir):
    from rerender.diffusion.loading import check_families

    union = str(tiny_sdxl_dir / "controlnet_union")
    controls = [ControlConfig(model=union), ControlConfig(type="depth", model=union, control_mode="blur")]
    with pytest.raises(ConfigError) as caught:
        check_families(ModelConfig(base_model=str(tiny_sdxl_dir)), controls, tiny_sdxl_dir)
    message = str(caught.value)
    assert "`control[1].control_mode` 'blur' is not a mode of the SDXL ControlNet Union" in message
    assert "0 openpose, 1 depth, 2 hed/pidi/scribble/ted, 3 canny/lineart/anime_lineart/mlsd" in message
    assert "--set control.1.control_mode=" in message
    # a name it has passes, with the number checked against the model's own count
    check_families(ModelConfig(base_model=str(tiny_sdxl_dir)), [ControlConfig(model=union, control_mode="mlsd")])


def test_an_sdxl_union_s_name_is_checked_when_its_hub_model_is_not_here_yet(tiny_sdxl_dir):
    from rerender.diffusion.loading import check_families

    controls = [ControlConfig(type="depth", model="xinsir/controlnet-union-sdxl-1.0", control_mode="gray")]
    with pytest.raises(ConfigError, match=r"`control\[0\].control_mode` 'gray' is not a mode of the SDXL"):
        check_families(ModelConfig(base_model=str(tiny_sdxl_dir)), controls, tiny_sdxl_dir)


def test_the_cli_refuses_a_name_the_base_s_union_lacks_before_any_frame_is_decoded(tiny_sdxl_dir, tmp_path, capsys):
    from rerender.cli import main

    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    args = ["translate", demo, "-p", "x", "-o", str(out), "--model", str(tiny_sdxl_dir), "--renderer", "diffusion"]
    args += ["--set", f"control.0.model={tiny_sdxl_dir}/controlnet_union", "--set", "control.0.control_mode=gray"]
    assert main([*args, "--stage", "first"]) == 2
    err = capsys.readouterr().err
    assert "`control[0].control_mode` 'gray' is not a mode of the SDXL ControlNet Union" in err
    assert "6 tile, 7 repaint" in err and "--set control.0.control_mode=" in err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded


# --------------------------------------------------------------------------------------------------------
# Flux: the mode that reaches the ControlNet
# --------------------------------------------------------------------------------------------------------


def test_flux_mode_names_reach_the_controlnet_as_the_model_card_s_numbers(flux):
    # was: `control.control_mode` was ignored on Flux (the mode came from `control.type` alone), so tile, blur, gray
    # and low quality could not be chosen, and a name meant xinsir's number (canny 3: Flux's blur)
    for name, number in FLUX_UNION_CARD.items():
        mode = _mode_reaching_the_controlnet(flux, ControlConfig(type="canny", control_mode=name))
        assert mode.tolist() == [[number]], name
        assert mode.dtype == torch.long  # nn.Embedding's index, as FluxControlNetPipeline passes it


def test_the_flux_mode_tensor_is_the_one_diffusers_flux_controlnet_pipeline_passes(flux):
    from diffusers import FluxControlNetPipeline

    pipe, seen, components = flux
    ours = _mode_reaching_the_controlnet(flux, ControlConfig(control_mode="blur"))
    reference = FluxControlNetPipeline(**components, controlnet=pipe.controlnet)
    reference.set_progress_bar_config(disable=True)
    seen.clear()
    with pytest.raises(_Stop):
        reference(
            "a cube",
            control_image=torch.zeros(1, 3, 32, 32),
            control_mode=3,
            height=32,
            width=32,
            num_inference_steps=1,
            max_sequence_length=32,
        )
    (theirs,) = seen
    assert theirs.dtype == ours.dtype and theirs.shape == ours.shape and torch.equal(theirs, ours)


def test_an_explicit_flux_mode_wins_over_the_type(flux):
    assert _mode_reaching_the_controlnet(flux, ControlConfig(type="depth", control_mode="tile")).item() == 1
    assert _mode_reaching_the_controlnet(flux, ControlConfig(type="openpose", control_mode=5)).item() == 5
    # without one, the type's own mode (the model card's)
    assert _mode_reaching_the_controlnet(flux, ControlConfig(type="depth")).item() == 2
    assert _mode_reaching_the_controlnet(flux, ControlConfig(type="openpose")).item() == 4


def test_a_precomputed_map_with_its_mode_runs_on_a_flux_union(flux):
    # was: refused ("`control.type` 'precomputed' has no mode in a Flux Union ControlNet"), whatever the mode
    precomputed = ControlConfig(type="precomputed", maps="maps", model="union", control_mode="low_quality")
    assert _mode_reaching_the_controlnet(flux, precomputed).item() == 6
    pipe, seen, _ = flux
    frame = np.zeros((32, 32, 3), np.uint8)
    seen.clear()
    with pytest.raises(ConfigError) as caught:
        pipe([frame], "a cube", control_images=[frame], num_inference_steps=1, guidance_scale=0.0, constraints=OFF,
             controls=[ControlConfig(type="precomputed", maps="maps", model="union")])  # fmt: skip
    message = str(caught.value)
    assert "`control.control_mode` must be set for a 'precomputed' condition" in message
    assert "0 canny, 1 tile, 2 depth, 3 blur, 4 openpose, 5 gray, 6 low_quality" in message
    assert not seen  # refused before the ControlNet ran


@pytest.mark.parametrize(
    ("value", "expected"), [("hed", "'hed' is not a mode"), (7, "is 7, but this ControlNet Union has modes 0-6")]
)
def test_a_mode_the_flux_union_lacks_is_refused_naming_the_option_and_its_names(flux, value, expected):
    pipe, seen, _ = flux
    frame = np.zeros((32, 32, 3), np.uint8)
    seen.clear()
    with pytest.raises(ConfigError) as caught:
        pipe([frame], "a cube", control_images=[frame], num_inference_steps=1, guidance_scale=0.0, constraints=OFF,
             controls=[ControlConfig(control_mode=value)])  # fmt: skip
    message = str(caught.value)
    assert message.startswith("`control.control_mode` ") and expected in message
    assert "Flux ControlNet Union" in message or "0-6" in message
    assert "0 canny, 1 tile, 2 depth, 3 blur, 4 openpose, 5 gray, 6 low_quality" in message
    assert not seen


# --------------------------------------------------------------------------------------------------------
# Flux: refused before any weights load (preflight)
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flux_controlnets(flux, tmp_path_factory):
    """A saved tiny Flux Union ControlNet (`num_mode` 7) and a saved one without modes."""
    from tests.tiny_flux import make_tiny_flux_controlnet

    folder = tmp_path_factory.mktemp("flux-controlnets")
    flux[0].controlnet.save_pretrained(folder / "union")
    make_tiny_flux_controlnet(flux[2]["transformer"]).save_pretrained(folder / "plain")
    return folder / "union", folder / "plain"


def test_flux_preflight_refuses_a_mode_its_controlnet_lacks_before_the_transformer_loads(flux_controlnets):
    from rerender.diffusion.loading import check_transformer_sources

    union, plain = flux_controlnets
    model = ModelConfig(base_model="black-forest-labs/FLUX.1-schnell")
    for value, expected in [("repaint", "'repaint' is not a mode of the Flux ControlNet Union"), (7, "modes 0-6")]:
        with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
            check_transformer_sources(model, [ControlConfig(model=str(union), control_mode=value)], "flux")
        assert "`control[0].control_mode`" in str(caught.value)
    assert check_transformer_sources(model, [ControlConfig(model=str(union), control_mode="gray")], "flux")
    with pytest.raises(ConfigError, match=r"`control\[0\].control_mode` is 'canny', but this Flux ControlNet is not"):
        check_transformer_sources(model, [ControlConfig(model=str(plain), control_mode="canny")], "flux")
    # a hub id that is not here: its name at least must be a Flux Union one
    hub = ControlConfig(model="InstantX/FLUX.1-dev-Controlnet-Union", control_mode="scribble")
    with pytest.raises(ConfigError, match=r"'scribble' is not a mode of the Flux ControlNet Union.*blur"):
        check_transformer_sources(model, [hub], "flux")


def test_flux_pipeline_refuses_a_mode_on_a_controlnet_without_modes(flux):
    from rerender.diffusion.flux import RerenderFluxPipeline
    from tests.tiny_flux import make_tiny_flux_controlnet

    components = flux[2]
    pipe = RerenderFluxPipeline(**components, controlnet=make_tiny_flux_controlnet(components["transformer"]))
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ConfigError, match=r"`control.control_mode` is 'tile', but this Flux ControlNet is not a"):
        pipe([frame], "a cube", control_images=[frame], num_inference_steps=1, guidance_scale=0.0, constraints=OFF,
             controls=[ControlConfig(control_mode="tile")])  # fmt: skip


# --------------------------------------------------------------------------------------------------------
# Z-Image: its Union ControlNet takes no mode
# --------------------------------------------------------------------------------------------------------


def test_the_zimage_controlnet_takes_no_mode_and_a_mode_set_for_it_warns_before_any_work(caplog):
    from diffusers.models.controlnets.controlnet_z_image import ZImageControlNetModel

    from rerender.workflow.preflight import resolve_model_defaults

    # what the finding rests on: diffusers' Z-Image ControlNet has no mode input (its kind is read from the map)
    assert not any("mode" in name for name in inspect.signature(ZImageControlNetModel.forward).parameters)
    config = apply_overrides(RerenderConfig(), {"control": [{"type": "canny"}, {"type": "depth", "control_mode": 2}]})
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.preflight"):
        resolve_model_defaults(config, "zimage")
    warnings = [record.getMessage() for record in caplog.records if "control_mode" in record.getMessage()]
    assert warnings == [
        "`control[1].control_mode` is set (2) but does nothing on Z-Image: only SD 1.5 and SDXL and Flux use it; "
        "it is ignored"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.preflight"):
        resolve_model_defaults(config, "flux")
    assert "control_mode" not in caplog.text


# --------------------------------------------------------------------------------------------------------
# the docs
# --------------------------------------------------------------------------------------------------------


def test_the_guide_s_union_mode_table_is_the_tables():
    from rerender.config import UNION_MODES

    text = (REPO / "docs" / "guides" / "models-and-weights.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| mode | SDXL"))
    lines = text.splitlines()
    rows = lines[lines.index(header) + 2 :]
    rows = rows[: next(index for index, line in enumerate(rows) if not line.startswith("|"))]
    columns = {"sdxl": 1, "flux": 2}
    table: dict[str, dict[str, int]] = {"sdxl": {}, "flux": {}}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for family, column in columns.items():
            for name in re.findall(r"`(\w+)`", cells[column]):
                table[family][name] = int(cells[0])
    for family in columns:
        assert table[family] == UNION_MODES[family], family
