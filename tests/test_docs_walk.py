"""What the documentation site states by hand (defaults, closed sets of values, figures of the bundled clip) checked
against their one source: the config (`rerender.config`), the CLI's parser and the code. Text checks only."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from rerender.config import CHOICES, RerenderConfig, choices

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def _page(name: str) -> str:
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())  # one line: prose wraps anywhere


def _default(path: str):
    """The default of `path` in a default `RerenderConfig` (a section that is off by default is None)."""
    value = RerenderConfig()
    for name in path.split("."):
        value = value[int(name)] if name.isdigit() else getattr(value, name)
    return value


def _yaml(value) -> str:
    """A default as the pages write it: null, true/false, numbers with :g, windows as (start, end)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "(" + ", ".join(_yaml(item) for item in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _subcommand(name: str) -> argparse.ArgumentParser:
    from rerender.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no sub-commands")


def test_the_method_page_constraint_table_gives_the_config_defaults():
    page = _page("concepts/method.md")
    for path in (
        "constraints.cross_frame_attention_period",
        "constraints.style_update_interval",
        "constraints.shape_fusion_period",
        "constraints.pixel_fusion_period",
        "constraints.mask_strength",
        "constraints.inner_strength",
        "constraints.adain_period",
        "constraints.color_preserve",
        "constraints.freeu",
        "sampling.refinement",
    ):
        leaf = path if path == "sampling.refinement" else path.split(".")[-1]  # as the table writes it
        assert f"`{leaf}` {_yaml(_default(path))}" in page, f"{path}: the page does not give {_yaml(_default(path))}"
    from rerender.config import FreeUConfig

    assert f'`freeu.variant` "{FreeUConfig().variant}"' in page
    assert f"K = {_default('keyframes.keyframe_interval')} by default" in page


def test_the_configuration_page_lists_the_defaults_that_differ_from_the_official_code():
    from rerender.propagation.options import PropagationOptions

    page = _page("concepts/configuration.md")
    assert f'`resize_side` defaults to "{_default("video.resize_side")}"' in page
    assert f"`denoising_strength` defaults to {_yaml(_default('sampling.denoising_strength'))}" in page
    assert f'`control[0].type` defaults to "{_default("control.0.type")}"' in page
    preset = _default("propagation.propagation_preset")
    ours, official = PropagationOptions.preset(preset), PropagationOptions.preset("rerender")
    assert f"(the `{preset}` preset: position guide {ours.position_guide_weight:g}, no temporal guide, the " in page
    assert ours.temporal_guide_weight == 0 and f"the {ours.blend_mode} blend)" in page
    assert (
        f"(position {official.position_guide_weight:g}, temporal {official.temporal_guide_weight:g}, "
        f"{official.blend_mode} blend)" in page
    )
    # the sections table names every control type, and no other
    row = next(line for line in page.split("| `control` |")[1:])
    listed = re.search(r"type \(([^)]*)\)", row).group(1).split(", ")
    assert sorted(listed) == sorted(choices(CHOICES["ControlType"]))


def test_the_translate_guide_synopsis_and_paths_use_the_config_sets():
    from rerender.video.files import WRITABLE_SUFFIXES

    page = _page("guides/translate-a-video.md")
    assert f"[--renderer {'|'.join(choices(CHOICES['RendererName']))}]" in page
    assert f"[--stage {'|'.join(choices(CHOICES['Stage']))}]" in page
    assert f"K = {_default('keyframes.keyframe_interval')} by default" in page
    sentence = page.split("a video must end in ")[1].split("(")[0]
    assert sorted(re.findall(r"`(\.\w+)`", sentence)) == sorted(WRITABLE_SUFFIXES)


def test_the_web_ui_page_gives_the_ui_commands_defaults_and_the_zoom_amount():
    from rerender.camera import DEFAULT_AMOUNT

    defaults = {action.dest: action.default for action in _subcommand("ui")._actions}
    page = _page("guides/web-ui.md")
    assert f"`--host` (default `{defaults['host']}`" in page
    assert f"`--max-upload-mb` ({defaults['max_upload_mb']})" in page
    assert defaults["port"] is None and "(a free port, printed)" in page
    assert not defaults["share"] and "off by default" in page
    assert f"{DEFAULT_AMOUNT['zoom-in']:g} for a zoom = ×{1 + DEFAULT_AMOUNT['zoom-in']:g}" in page


def test_the_optical_flow_page_lists_the_dis_presets_and_the_default():
    page = _page("concepts/optical-flow.md")
    presets = choices(CHOICES["DISPreset"])
    listed = re.search(r"presets ((?:`\w+`(?:, | and )?)+)", page).group(1)
    assert re.findall(r"`(\w+)`", listed) == list(presets)
    assert f"`{_default('flow.dis_preset')}` (the default" in page


def test_getting_started_states_the_bundled_clip_as_the_reader_sees_it():
    from rerender.cli.options import model_defaults
    from rerender.video import probe_video
    from rerender.workflow.stages import processing_size

    info = probe_video(REPO / "rerender" / "assets" / "demo.mp4")
    page = _page("getting-started.md")
    audio = "" if info.has_audio else ", no audio"
    assert f"({info.frame_count} frames, {info.width}×{info.height}, {float(info.fps):g} fps{audio})" in page
    width, height = processing_size(info, model_defaults(RerenderConfig()))  # SD 1.5's multiple
    assert f"at the processing size ({width}×{height}:" in page


def test_getting_started_python_call_falls_back_as_the_cli_does():
    """The CLI's renderer default ("auto") is not the library's ("diffusion"): the page's "same from Python" call
    offline would raise instead of rendering what the CLI rendered, unless it passes the CLI's renderer."""
    from rerender.cli.options import CLI_DEFAULTS

    assert CLI_DEFAULTS["model.renderer"] != _default("model.renderer")  # else this test has nothing to check
    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    block = text.split("The same from Python:")[1].split("```python")[1].split("```")[0]
    assert f'renderer="{CLI_DEFAULTS["model.renderer"]}"' in block


@pytest.mark.parametrize("folder", ["docs", "examples"])
def test_no_page_or_example_names_the_withdrawn_sd15_repository(folder):
    """runwayml/stable-diffusion-v1-5 left the hub in 2024; the default is its copy under stable-diffusion-v1-5/."""
    assert _default("model.base_model") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    for path in sorted((REPO / folder).rglob("*")):
        if path.suffix in (".md", ".py"):
            assert "runwayml/" not in path.read_text(encoding="utf-8"), path


def test_the_languages_page_lists_every_prompt_language_and_the_style_image_defaults():
    page = _page("guides/languages-style-images-poses.md")
    translated = re.search(r"or a code: `([a-z ]+)` \(these have a default translator", page).group(1).split()
    detected = re.search(r"and `([a-z ]+)` \(Thai", page).group(1).split()
    default = _default("prompt.prompt_language")
    assert f"is `{default}` (the default: nothing is translated), `auto`," in page
    assert sorted([default, "auto", *translated, *detected]) == sorted(choices(CHOICES["PromptLanguage"]))
    assert f"[--style-image-scale {_yaml(_default('prompt.style_image_scale'))}]" in page
    assert f"(hub id or folder, default `{_default('model.ip_adapter')}`)" in page
    assert f"(default `{_default('model.ip_adapter_weight_name')}`;" in page


def test_the_prompt_language_example_offers_every_prompt_language():
    text = (REPO / "examples" / "prompt_language.py").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if 'add_argument("--language"' in line)
    listed = re.search(r'help="([^"]*)"', line).group(1)
    assert "choices(PromptLanguage)" in line or set(re.findall(r"\b[a-z]{2,4}\b", listed)) >= set(
        choices(CHOICES["PromptLanguage"])
    ), line


def _cells(page: str, first: str) -> list[str]:
    """The cells after the first of the last table row that starts with `first` (the page as written)."""
    row = [line for line in page.splitlines() if line.startswith(f"| {first} |")][-1]
    return [cell.strip() for cell in row.split("|")[2:-1]]


def test_the_transformer_page_family_defaults_table_is_family_defaults():
    from rerender.config import FAMILY_DEFAULTS

    page = (DOCS / "guides" / "transformer-models.md").read_text(encoding="utf-8")
    header = _cells(page, "option, left unset")
    assert header[1:] == ["FLUX.1 [dev]", "FLUX.1 [schnell]", "Z-Image", "Z-Image-Turbo"], header
    variants = ["sd15", "flux-dev", "flux-schnell", "zimage", "zimage-turbo"]
    for option in ("sampling.num_inference_steps", "sampling.guidance_scale"):
        table = FAMILY_DEFAULTS[option]
        assert table["sdxl"] == table["sd15"]  # one column for both
        cells = [c for c in _cells(page, f"`{option}`") if not c.startswith("8 (")][-5:]
        stated = [float(re.match(r"[\d.]+", cell).group()) for cell in cells]
        assert stated == [float(table[variant]) for variant in variants], option
    added = _cells(page, "`prompt.added_prompt`")[-5:]
    assert f"`{FAMILY_DEFAULTS['prompt.added_prompt']['sd15']}`" in added[0]
    assert all(
        cell == "none" and not FAMILY_DEFAULTS["prompt.added_prompt"][v] for cell, v in zip(added[1:], variants[1:])
    )


def test_the_text_to_video_page_gives_the_frame_limit_and_each_models_steps():
    from rerender.config import FAMILY_DEFAULTS
    from rerender.workflow.generation import MAX_GENERATED_FRAMES

    page = _page("guides/text-to-video.md")
    steps = FAMILY_DEFAULTS["sampling.num_inference_steps"]
    assert f"`--frames` must be 1–{MAX_GENERATED_FRAMES}" in page
    assert (
        f"the model's own, {steps['sd15']} on SD 1.5, {steps['flux-schnell']} on Flux schnell, "
        f"{steps['zimage-turbo']} on Z-Image-Turbo)" in page
    )


def test_the_sound_page_gives_the_prompt_sections_audio_defaults():
    import yaml

    page = _page("guides/prompts-from-sound.md")
    assert f"default `{_default('prompt.audio_model')}`" in page
    assert f"`prompt.audio_threshold` (default {_yaml(_default('prompt.audio_threshold'))})" in page
    assert f"`prompt.audio_max_events` (default {_default('prompt.audio_max_events')})" in page
    events = yaml.safe_load((REPO / "rerender" / "assets" / "sound_events.yaml").read_text(encoding="utf-8"))
    assert "about 30 events" in page and 25 <= len(events) <= 35


def test_the_glossary_names_every_renderer():
    entry = _page("concepts/glossary.md").split("**renderer**")[1].split("##")[0]
    assert sorted(re.findall(r"`(\w+)` \(", entry)) == sorted(choices(CHOICES["RendererName"]))


def test_the_benchmarks_page_names_every_script_under_benchmarks():
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    scripts = [path.name for path in (REPO / "benchmarks").iterdir() if path.suffix in (".py", ".sh")]
    assert scripts and [name for name in scripts if f"`{name}`" not in page] == []


def test_getting_started_lists_every_extra_and_the_torch_and_python_floors():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|", page, flags=re.M)
    assert sorted(rows) == sorted(project["optional-dependencies"])
    torch = next(spec for spec in project["dependencies"] if re.match(r"torch\b", spec))
    assert f"any torch ≥ {torch.split('>=')[1].split(',')[0]} you already have" in _page("getting-started.md")
    assert f"Python ≥ {project['requires-python'].removeprefix('>=')}" in page


def test_the_translate_guide_gives_the_clis_exit_codes():
    from rerender.cli.base import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    page = _page("guides/translate-a-video.md")
    assert f"Exit codes: {EXIT_OK} success, {EXIT_FAILURE} runtime failure, {EXIT_USAGE} usage error" in page
    assert f"{EXIT_INTERRUPTED} interrupted" in page and f"exits with code {EXIT_INTERRUPTED}" in page


def test_the_translate_guide_signature_is_translates():
    import inspect

    from rerender import translate

    parameters = inspect.signature(translate).parameters
    shown = "video, prompt, " + ", ".join(
        f"{name}={parameters[name].default!r}".replace("'", '"') for name in ("K", "output", "config", "pipeline")
    )
    assert f"`translate({shown}, **overrides)`" in _page("guides/translate-a-video.md")
    assert "`.m4v`" in translate.__doc__  # every suffix the output check takes (`WRITABLE_SUFFIXES`)


def test_the_union_modes_table_and_the_sdxl_controlnets_are_the_configs():
    from rerender.config import FLUX_UNION_MODES, SDXL_UNION_MODES
    from rerender.config.sections import DEFAULT_SDXL_CONTROLNETS

    page = (DOCS / "guides" / "models-and-weights.md").read_text(encoding="utf-8")
    section = page.split("## ControlNet Union modes")[1].split("```")[0]
    stated: dict[str, dict[str, int]] = {"sdxl": {}, "flux": {}}
    for line in section.splitlines():
        match = re.match(r"\| (\d+) \| (.*) \| (.*) \|$", line)
        if match:
            for table, cell in zip(("sdxl", "flux"), match.groups()[1:]):
                stated[table].update({name: int(match.group(1)) for name in re.findall(r"`(\w+)`", cell)})
    assert stated == {"sdxl": SDXL_UNION_MODES, "flux": FLUX_UNION_MODES}
    text = " ".join(page.split())
    defaults = DEFAULT_SDXL_CONTROLNETS
    assert defaults["hed"] == defaults["lineart"]
    assert (
        f"canny `{defaults['canny']}`, depth `{defaults['depth']}`, openpose `{defaults['openpose']}`, "
        f"HED and lineart `{defaults['hed']}`" in text
    )
    assert f"The defaults are `{_default('model.base_model')}` with the SD 1.5 ControlNet" in text


def test_the_still_to_video_page_gives_the_moves_defaults_and_limits():
    from rerender.camera import DEFAULT_AMOUNT, ParallaxPath
    from rerender.workflow.animation import MAX_FRAMES

    page = _page("guides/still-to-video.md")
    assert f"`zoom-in` / `zoom-out`: ×{1 + DEFAULT_AMOUNT['zoom-in']:g} by default" in page
    assert DEFAULT_AMOUNT["zoom-in"] == DEFAULT_AMOUNT["zoom-out"]
    pans = {DEFAULT_AMOUNT[f"pan-{side}"] for side in ("left", "right", "up", "down")}
    assert len(pans) == 1 and f"`pan-down`: zoomed ×{1 + pans.pop():g}" in page
    assert f"`amount · Δd · width ≤ {ParallaxPath.FOLD_MARGIN:g}` must hold" in page
    assert f"`seconds × fps` must give 2 to {MAX_FRAMES} frames" in page
