"""What a new user runs into (third round, SDXL / Flux / Z-Image / propagation engines / Ray / download / env):
each case a defect found by using the CLI, the Python API and the docs as a newcomer would, with the behaviour
that should have happened (the argument as typed, the value, what is valid; exit 2 for usage errors, before any
expensive work)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rerender.cli import main

REPO = Path(__file__).resolve().parents[1]
HAVE_CONTROLNET_AUX = importlib.util.find_spec("controlnet_aux") is not None


@pytest.mark.skipif(HAVE_CONTROLNET_AUX, reason="controlnet-aux is installed here")
def test_an_annotator_that_cannot_import_is_refused_before_the_model_loads(
    silent_clip, tiny_pipeline_dir, tmp_path, capsys, monkeypatch
):
    # was: the frames decoded and the whole model loaded (minutes for SDXL), then "the 'depth' annotator needs
    # controlnet-aux" from inside the keyframe stage
    from rerender.diffusion import loading

    monkeypatch.setattr(loading, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "out.mp4"
    args = ["translate", str(silent_clip), "-p", "x", "-o", str(out), "--model", str(tiny_pipeline_dir)]
    args += ["--renderer", "diffusion", "--set", "control.0.type=depth", "--config", str(REPO / "configs/tiny.yaml")]
    assert main(args) == 1  # a missing dependency is the machine's state, not a usage error (as before)
    err = capsys.readouterr().err
    assert "`control[0].type` 'depth'" in err and "rerender[annotators]" in err and "canny" in err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded


UNION = {"config.json": 1000, "diffusion_pytorch_model.safetensors": 2_500_000_000, "README.md": 10}


@pytest.fixture
def sdxl_hub(monkeypatch, tmp_path):
    """A connected machine whose hub answers as `tests.test_weights_download`'s does, plus the SDXL Union
    ControlNet; nothing cached; downloading fails the test."""
    import huggingface_hub
    from huggingface_hub import constants

    import rerender.weights as weights
    from tests import test_weights_download as answers

    monkeypatch.setitem(answers.REPOSITORIES, "xinsir/controlnet-union-sdxl-1.0", (UNION, {}))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "hub_offline", lambda: False)
    monkeypatch.setattr(weights, "_endpoint_reachable", lambda endpoint, timeout: True)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", answers._model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded"))


def test_a_union_controlnet_named_by_two_controls_is_listed_and_counted_once(sdxl_hub, capsys):
    # was: configs/sdxl_union.yaml listed xinsir/controlnet-union-sdxl-1.0 twice (canny, then depth), and the total
    # counted its files and its 2.5 GB twice
    config = REPO / "configs/sdxl_union.yaml"
    assert main(["download", "--dry-run", "--no-flow", "--precision", "float32", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    union = [line for line in lines if "xinsir/controlnet-union-sdxl-1.0" in line]
    assert union == [
        "ControlNet (canny, depth): xinsir/controlnet-union-sdxl-1.0: 2 files, 2.50 GB, skipped 1 unused -> (dry run)"
    ]
    base = next(line for line in lines if line.startswith("base model (SDXL)"))
    base_files = int(base.split(": ")[2].split(" files")[0])
    assert next(line for line in lines if line.startswith("total: ")).startswith(f"total: {base_files + 2} files")


@pytest.mark.parametrize("component", ["unet", "vae"])
def test_a_component_folder_given_as_the_model_is_refused_naming_the_model_folder(
    tiny_sdxl_dir, tmp_path, capsys, component
):
    # was: --model tiny-sdxl/unet read as an SDXL base (its config.json taken for the model's); `env` said "SDXL,
    # present", `download` "local, nothing to fetch" (exit 0), and translate decoded the frames, then failed
    # inside diffusers ("no file named scheduler_config.json found in directory …/unet")
    from rerender.errors import ConfigError
    from rerender.weights import detect_family

    folder = tiny_sdxl_dir / component
    with pytest.raises(
        ConfigError, match=rf"is one component of a model \(\w+\), not a base model.*'{tiny_sdxl_dir}'"
    ):
        detect_family(str(folder))
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--model", str(folder), "--stage", "first"]) == 2
    err = capsys.readouterr().err
    assert f"--model '{folder}' is one component of a model" in err and not (tmp_path / "out.mp4.work").exists()
    assert main(["download", "--no-flow", "--model", str(folder)]) == 2
    assert f"--model '{folder}' is one component of a model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "key"),
    [
        ("guidance_scale", "sampling.guidance_scale"),
        ("true_cfg_scale", "sampling.true_cfg_scale"),
        ("color_guide_weight", "propagation.color_guide_weight"),
        ("fps", "output.fps"),
    ],
)
def test_nan_is_refused_for_every_ranged_number(option, key, capsys):
    # was: `--set guidance_scale=.nan` (YAML's NaN) or guidance_scale=float("nan") passed every range check (NaN
    # compares false) and reached the sampler
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"`{key}` must be .*, got nan"):
        apply_overrides(RerenderConfig(), {option: float("nan")})
    assert main(["config", "show", "--set", f"{option}=.nan"]) == 2
    assert f"`{key}` must be" in capsys.readouterr().err


def test_a_lora_scale_of_nan_is_refused_naming_lora(tmp_path, capsys):
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    assert main(["translate", demo, "-p", "x", "-o", str(out), "--lora", f"{lora}:nan", "--stage", "first"]) == 2
    err = capsys.readouterr().err
    assert (
        f"--lora '{lora}:nan': the scale must be in [-4.0, 4.0], got nan" in err
        and not (tmp_path / "out.mp4.work").exists()
    )


@pytest.mark.parametrize("example", ["sdxl_lora.py", "lora_style.py"])
def test_the_lora_examples_refuse_a_mistyped_scale_in_one_line(example, tmp_path):
    # was: sdxl_lora.py printed a traceback (float('abc')); both split at the first ':' (a Windows path broke)
    import subprocess
    import sys

    args = [sys.executable, str(REPO / "examples" / example), "in.mp4", str(tmp_path / "out.mp4")]
    args += ["--lora", "style.safetensors:abc"] + (["--checkpoint", "model.safetensors"] if "style" in example else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--lora 'style.safetensors:abc': the scale after ':' must be a number" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "valid"),
    [
        ("num_cpus", "2", "a number > 0"),
        ("num_cpus", None, "a number > 0"),
        ("num_cpus", float("nan"), "a number > 0"),
        ("max_retries", 1.5, r"an integer ≥ -1 \(-1: retry without end\)"),
        ("max_retries", "3", r"an integer ≥ -1 \(-1: retry without end\)"),
        ("shared_storage", "no", "True or False"),
    ],
)
def test_ray_executor_options_of_the_wrong_type_are_refused_naming_them(option, value, valid):
    # was: num_cpus="2" or None raised a bare TypeError ('<=' not supported …); NaN, max_retries=1.5 or "3" and
    # shared_storage="no" (taken as True) were accepted and failed, or misbehaved, inside Ray later
    pytest.importorskip("ray")
    from rerender.errors import ConfigError
    from rerender.workflow.executors import RayExecutor

    with pytest.raises(ConfigError, match=rf"`{option}` must be {valid}, got {value!r}"):
        RayExecutor(**{option: value})


def test_a_cuda_device_with_the_numba_engine_is_warned_about(tmp_path, caplog):
    # was: `--set propagation.engine=numba --set propagation.device=cuda` ran numba on the CPU without a word
    # (the device applies to the torch engine only), although the user asked for the GPU
    from rerender.workflow.preflight import check_run

    overrides = {"propagation.engine": "numba", "propagation.device": "cuda"}
    with caplog.at_level("WARNING"):
        check_run(None, prompt="x", overrides=overrides, output=tmp_path / "out.mp4", check_model=False)
    assert "`propagation.device` is 'cuda', but `propagation.engine` is 'numba'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_run(
            None, prompt="x", overrides={"propagation.engine": "numba"}, output=tmp_path / "out.mp4", check_model=False
        )
    assert "propagation.device" not in caplog.text


@pytest.mark.parametrize(
    ("args", "steps", "seed"),
    [
        (["--config", str(REPO / "configs/flux.yaml")], 4, 0),  # schnell's 4 steps, as the docs promise
        (["--config", str(REPO / "configs/zimage_turbo.yaml")], 9, 0),
        (["--config", str(REPO / "configs/flux.yaml"), "--steps", "3"], 3, 0),  # the flag wins
        (["--set", "seed=5", "--set", "num_inference_steps=12"], 12, 5),
        ([], None, 0),  # unset: `generate` takes the model's own (20 on SD 1.5; tests/test_polish2.py)
    ],
)
def test_generate_takes_steps_and_seed_from_the_config(monkeypatch, tmp_path, args, steps, seed):
    # was: `--steps` and `--seed` had their own defaults (20, 0), so `rerender generate --config configs/flux.yaml`
    # ran schnell for 20 steps instead of the preset's 4 (Z-Image-Turbo: 20 instead of 9), and --set
    # num_inference_steps/seed were ignored
    from rerender.workflow import generation

    seen = {}

    def fake_generate(prompt, **kwargs):
        seen.update(kwargs)
        raise generation.ConfigError("stop")  # nothing else to run

    monkeypatch.setattr(generation, "generate", fake_generate)
    assert main(["generate", "-p", "a cat", "-o", str(tmp_path / "out.mp4"), *args]) == 2
    assert (seen["num_inference_steps"], seen["seed"]) == (steps, seed)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "control.0.model={sd15}/controlnet"], "`control[0].model` '{sd15}/controlnet' is made for SD 1.5"),
        (["--set", "family=sd15"], "`model.family` is 'sd15', but --model '{sdxl}' is a SDXL model"),
    ],
    ids=["sd15-controlnet", "family"],
)
def test_mixed_families_on_sdxl_are_refused_before_any_frame_is_decoded(
    tiny_sdxl_dir, tiny_pipeline_dir, tmp_path, capsys, extra, message
):
    # was: refused only when the pipeline loaded, after the frames had been decoded and the keyframes chosen
    # (Flux and Z-Image were already checked before any work)
    names = {"sd15": tiny_pipeline_dir, "sdxl": tiny_sdxl_dir}
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    args = ["translate", demo, "-p", "x", "-o", str(out), "--model", str(tiny_sdxl_dir), "--renderer", "diffusion"]
    args += ["--set", f"control.0.model={tiny_sdxl_dir}/controlnet", "--stage", "first"]
    assert main(args + [item.format(**names) for item in extra]) == 2
    assert message.format(**names) in capsys.readouterr().err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded


def test_an_option_of_the_second_controlnet_is_named_with_its_position(tmp_path):
    # was: "`control.control_mode` must be in [0, 7], got 12": which of the controls, the user had to guess
    from rerender.config import load_config
    from rerender.errors import ConfigError

    config = tmp_path / "union.yaml"
    config.write_text("control:\n  - {type: canny}\n  - {type: depth, control_mode: 12}\n")
    with pytest.raises(ConfigError, match=r"`control\[1\]\.control_mode` must be in \[0, 7\], got 12"):
        load_config(config)
    config.write_text("control:\n  - {type: canny, strength: -1}\n")
    with pytest.raises(ConfigError, match=r"`control\[0\]\.strength` must be"):
        load_config(config)


def test_a_precomputed_union_condition_without_its_mode_is_refused_before_any_frame_is_decoded(
    tiny_sdxl_dir, tmp_path, capsys
):
    # was: "`control.control_mode` must be set …" once the keyframes were rendering, after the frames were decoded
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    args = ["translate", demo, "-p", "x", "-o", str(out), "--model", str(tiny_sdxl_dir), "--renderer", "diffusion"]
    args += ["--set", f"control.0.model={tiny_sdxl_dir}/controlnet_union", "--set", "control.0.type=precomputed"]
    args += ["--set", f"control.0.maps={demo}", "--stage", "first"]
    assert main(args) == 2
    assert "`control[0].control_mode` must be set for a 'precomputed' condition" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded


def test_a_vae_with_other_latent_channels_is_refused_before_any_frame_is_decoded(tiny_sdxl_dir, tmp_path, capsys):
    # was: "`model.vae` … does not fit the base model: 16 latent channels, the UNet takes 4" once the whole pipeline
    # had loaded, after the frames were decoded
    vae = tmp_path / "flux-vae"
    vae.mkdir()
    (vae / "config.json").write_text('{"_class_name": "AutoencoderKL", "latent_channels": 16}')
    demo, out = str(REPO / "rerender" / "assets" / "demo.mp4"), tmp_path / "out.mp4"
    args = ["translate", demo, "-p", "x", "-o", str(out), "--model", str(tiny_sdxl_dir), "--renderer", "diffusion"]
    args += ["--set", f"control.0.model={tiny_sdxl_dir}/controlnet", "--set", f"vae={vae}", "--stage", "first"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"`model.vae` '{vae}' does not fit the base model: 16 latent channels, the UNet takes 4" in err
    assert not (tmp_path / "out.mp4.work").exists()  # refused before any frame was decoded


def test_a_batch_whose_propagation_cannot_run_here_is_refused_before_any_job_runs(silent_clip, tmp_path):
    # was: every job started and failed on its own ("N failed", exit 1); a job list's `propagation.device: cuda`
    # column failed only that job, after the jobs before it had run
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    from rerender.errors import ConfigError
    from rerender.workflow.batching import batch

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        f"- {{video: '{silent_clip}', output: a.mp4}}\n- {{video: '{silent_clip}', output: b.mp4, propagation.device: cuda}}\n"
    )
    with pytest.raises(ConfigError, match=r"job 2 .*silent.mp4.*`propagation.device` is 'cuda' but torch"):
        batch(jobs, "x", tmp_path / "out", renderer="classic")
    with pytest.raises(ConfigError, match=r"job 1 .*`propagation.device` is 'cuda' but torch"):
        batch(jobs, "x", tmp_path / "out", renderer="classic", **{"propagation.device": "cuda"})
    assert not (tmp_path / "out" / "a.mp4.work").exists()  # no job ran


def test_a_keyframe_file_given_where_the_folder_goes_is_named_as_a_file(silent_clip, tmp_path, capsys):
    # was: "keyframe folder not found: '…/0000.png'": the file is there, and the message named no argument
    from tests.test_newcomer_errors import _still

    key = _still(tmp_path / "0000.png")
    out = tmp_path / "out.mp4"
    assert main(["propagate", str(silent_clip), "--keyframes", key, "-o", str(out)]) == 2
    assert f"--keyframes '{key}' is a file, not a folder of keyframe images" in capsys.readouterr().err
    assert main(["propagate", str(silent_clip), "--keyframes", str(tmp_path / "nokeys"), "-o", str(out)]) == 2
    assert f"--keyframes '{tmp_path / 'nokeys'}' does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        (
            {"base_model": "black-forest-labs/FLUX.1-schnell", "freeu": {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}},
            "but does nothing on Flux: only SD 1.5 and SDXL use it",
        ),
        (
            {"base_model": "Tongyi-MAI/Z-Image-Turbo", "true_cfg_scale": 4.0},
            "`sampling.true_cfg_scale` is set (4.0) but does nothing on Z-Image: only Flux uses it",
        ),
        ({"true_cfg_scale": 4.0}, "`sampling.true_cfg_scale` is set (4.0) but does nothing on SD 1.5"),
        (
            {"base_model": "black-forest-labs/FLUX.1-schnell", "true_cfg_scale": 4.0, "negative_prompt": ""},
            "`sampling.true_cfg_scale` is 4.0, but `prompt.negative_prompt` is empty",
        ),
    ],
    ids=["freeu-flux", "cfg-zimage", "cfg-sd15", "cfg-flux-no-negative"],
)
def test_options_that_do_not_apply_to_the_base_are_warned_about_once_before_work(overrides, warning, caplog):
    # was: logged at INFO (which the CLI does not show) at every keyframe, or not at all (Flux's true guidance with
    # the preset's empty negative prompt stayed off without a word)
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.weights import model_family
    from rerender.workflow.preflight import resolve_model_defaults, warn_unused_options

    def preflight(config: RerenderConfig) -> None:  # what check_run does with a config, family read from its names
        warn_unused_options(resolve_model_defaults(config, model_family(config.model)))

    with caplog.at_level("WARNING"):
        preflight(apply_overrides(RerenderConfig(), overrides))
    assert warning in caplog.text.replace("\n", " ") and len(caplog.records) == 1
    caplog.clear()
    with caplog.at_level("WARNING"):
        preflight(apply_overrides(RerenderConfig(), {"base_model": overrides.get("base_model", "x/y")}))
    assert not caplog.records


def test_download_refuses_a_vae_flux_will_refuse_before_fetching_anything(sdxl_hub, capsys):
    # was: `download --config configs/flux.yaml --vae madebyollin/sdxl-vae-fp16-fix` fetched everything, the VAE
    # too, for a run that then refuses `model.vae` on Flux; the same for an SD 1.5 ControlNet on SDXL
    config = str(REPO / "configs/flux.yaml")
    assert main(["download", "--no-flow", "--config", config, "--vae", "madebyollin/sdxl-vae-fp16-fix"]) == 2
    assert "--vae 'madebyollin/sdxl-vae-fp16-fix' does not apply to Flux" in capsys.readouterr().err
    sdxl = str(REPO / "configs/sdxl.yaml")
    assert main(["download", "--no-flow", "--config", sdxl, "--set", "control.0.model=/nowhere/cn"]) == 2
    assert "`control[0].model` '/nowhere/cn' does not exist" in capsys.readouterr().err


def test_a_generate_motion_that_is_not_finite_names_dx_dy(tmp_path, capsys):
    # was: "`motion` must be finite, got (nan, 0.0)": generate's Python argument, which the CLI user never typed
    assert main(["generate", "-p", "x", "--dx", "nan", "-o", str(tmp_path / "g.mp4")]) == 2
    assert "--dx/--dy must be finite, got (nan, 0.0)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("executor", "ray", r"`executor` must be an executor object \(None, LocalExecutor\(\) or RayExecutor\("),
        (
            "pipeline",
            "stabilityai/stable-diffusion-xl-base-1.0",
            r"`pipeline` must be a loaded pipeline .*base_model=",
        ),
    ],
)
def test_a_name_given_where_an_object_goes_is_refused_before_any_frame_is_decoded(
    silent_clip, tmp_path, argument, value, message
):
    # was: executor="ray" raised AttributeError ('str' object has no attribute 'check'); pipeline="<hub id>"
    # decoded the frames, then raised AttributeError ('str' object has no attribute 'planned_unet_calls')
    import rerender
    from rerender.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        rerender.translate(silent_clip, "x", output=tmp_path / "out.mp4", progress=False, **{argument: value})
    assert not (tmp_path / "out.mp4.work").exists()
