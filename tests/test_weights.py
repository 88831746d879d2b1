"""Loading as on any diffusers project: what is fetched, what counts as missing, the renderer choice, quiet loading.

The hub is a fake one on 127.0.0.1 (`tests/fake_hub.py`) or a hand-made cache folder in the hub library's
documented layout; nothing here touches the network.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rerender
from rerender.config import ControlConfig, ModelConfig, RerenderConfig, apply_overrides
from rerender.errors import ConfigError, WeightsNotFoundError
from rerender.weights import fetch_commands, missing_weights, select_files, weight_sources
from tests.fake_hub import COMMIT, FakeHub, hub_env, run_cli

REPO = Path(__file__).resolve().parents[1]
FAST = dict(
    resolution=64, size_multiple=16, propagation_preset="fast", workers=1, flow_estimator="dis", dis_preset="fast"
)

SD15_FILES = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "v1-5-pruned.ckpt",
    "v1-5-pruned.safetensors",
    "v1-5-pruned-emaonly.safetensors",
    "v1-inference.yaml",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",
    "safety_checker/model.fp16.safetensors",
    "safety_checker/pytorch_model.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/pytorch_model.bin",
    "text_encoder/flax_model.msgpack",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_flax_model.msgpack",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.bin",
]
CONFIGS = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "vae/config.json",
]


# ------------------------------------------------------------------------------------ which files are fetched


def test_select_files_full_precision_keeps_one_safetensors_per_component():
    fetched, skipped = select_files(SD15_FILES, half_precision=False)
    assert fetched == sorted(
        CONFIGS
        + [
            "text_encoder/model.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    )
    assert sorted(fetched + skipped) == sorted(SD15_FILES)
    for never in (
        "safety_checker/model.safetensors",
        "feature_extractor/preprocessor_config.json",
        "v1-5-pruned.ckpt",
        "v1-5-pruned-emaonly.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "text_encoder/flax_model.msgpack",
        "unet/diffusion_pytorch_model.fp16.safetensors",
    ):
        assert never in skipped


def test_select_files_half_precision_takes_the_fp16_variants_only():
    fetched, skipped = select_files(SD15_FILES, half_precision=True)
    assert fetched == sorted(
        CONFIGS
        + [
            "text_encoder/model.fp16.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model.fp16.safetensors",
        ]
    )
    assert "unet/diffusion_pytorch_model.safetensors" in skipped


def test_select_files_for_a_separate_vae_skips_the_models_own_and_bin_only_repositories_keep_bin():
    fetched, _ = select_files(SD15_FILES, components=("unet", "text_encoder", "tokenizer", "scheduler"))
    assert not [name for name in fetched if name.startswith("vae/")]
    controlnet = ["README.md", ".gitattributes", "config.json", "diffusion_pytorch_model.bin"]
    assert select_files(controlnet, half_precision=True) == (
        ["config.json", "diffusion_pytorch_model.bin"],
        [".gitattributes", "README.md"],
    )
    lineart = [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.fp16.bin",
    ]
    assert select_files(lineart, half_precision=True)[0] == ["config.json", "diffusion_pytorch_model.fp16.safetensors"]
    sharded = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model-00001-of-00002.bin",
    ]
    assert select_files(sharded)[0] == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]


# ------------------------------------------------------------------------------------ a fake hub cache


def _cache_file(cache: Path, repository: str, filename: str, data: bytes = b"x") -> None:
    """Write one file in the hub cache layout (models--owner--name/snapshots/<commit>/..., refs/main)."""
    folder = cache / f"models--{repository.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    path = folder / "snapshots" / COMMIT / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _cache_defaults(cache: Path) -> None:
    base = ModelConfig().base_model
    for name in (
        "model_index.json",
        "unet/config.json",  # a real snapshot has it: the family is read from it (a run refuses a snapshot without)
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ):
        _cache_file(cache, base, name)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        _cache_file(cache, ControlConfig().resolved_model, name)


def test_missing_weights_offline_lists_what_is_not_cached(hub_cache):
    config = RerenderConfig()
    assert [(s.role, s.location) for s in missing_weights(config)] == [
        ("base model (SD 1.5)", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        ("ControlNet (canny)", "lllyasviel/sd-controlnet-canny"),
    ]
    _cache_file(hub_cache, config.model.base_model, "model_index.json")  # a config alone is not the weights
    assert len(missing_weights(config)) == 2
    _cache_defaults(hub_cache)
    assert missing_weights(config) == []
    with_vae = apply_overrides(config, {"vae": "stabilityai/sd-vae-ft-mse"})
    assert [s.key for s in missing_weights(with_vae)] == ["model.vae"]
    commands = fetch_commands(with_vae, missing_weights(with_vae))
    assert commands[0] == "rerender download --vae stabilityai/sd-vae-ft-mse"
    assert commands[1].startswith("hf download stabilityai/sd-vae-ft-mse ")


def test_the_translation_model_and_the_ip_adapter_are_reported_with_their_fetch_commands(hub_cache):
    from rerender.environment import model_report
    from rerender.weights import extra_sources

    _cache_defaults(hub_cache)
    config = apply_overrides(RerenderConfig(), {"prompt_language": "ko", "style_image": "my style.png"})
    sources, unresolved = extra_sources(config)
    assert [(s.role, s.key, s.location, s.present) for s in sources] == [
        ("translation model (ko)", "prompt.translation_model", "Helsinki-NLP/opus-mt-ko-en", False),
        ("IP-Adapter", "model.ip_adapter", "h94/IP-Adapter", False),
    ] and unresolved == []
    report = model_report(config)
    assert [item["role"] for item in report["sources"]][-2:] == ["translation model (ko)", "IP-Adapter"]
    # the keyframe models are here; env's verdict is the run's own refusal, which reads the style image first
    assert report["translate"] == "refused: `style_image` 'my style.png' not found"
    assert report["fetch"][0] == "rerender download --prompt-language ko --style-image 'my style.png'"
    assert (
        'hf download h94/IP-Adapter --include "models/ip-adapter_sd15.safetensors" "models/image_encoder/*"'
        in report["fetch"]
    )
    _cache_file(hub_cache, "h94/IP-Adapter", "models/ip-adapter_sd15.safetensors")
    assert [s.present for s in extra_sources(config)[0]] == [False, True]
    # English needs no translator, unless one is named
    assert extra_sources(RerenderConfig())[0] == []
    named = extra_sources(apply_overrides(RerenderConfig(), {"translation_model": "my/marian"}))[0]
    assert [(s.role, s.location) for s in named] == [("translation model", "my/marian")]


def test_on_a_connected_machine_nothing_is_missing(hub_cache, monkeypatch):
    import rerender.weights

    monkeypatch.setattr(rerender.weights, "hub_offline", lambda: False)
    monkeypatch.setattr(rerender.weights, "_endpoint_reachable", lambda endpoint, timeout: True)
    assert missing_weights(RerenderConfig()) == []  # downloaded by from_pretrained when loaded
    monkeypatch.setattr(rerender.weights, "_endpoint_reachable", lambda endpoint, timeout: False)  # no network
    assert len(missing_weights(RerenderConfig())) == 2


def test_a_local_folder_needs_nothing_from_the_hub(hub_cache, tiny_pipeline_dir):
    config = RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir)))
    sources = weight_sources(config, include_flow=False)
    assert [(s.role, s.is_hub, s.present) for s in sources] == [
        ("base model (SD 1.5)", False, True),
        ("ControlNet (canny)", False, True),
    ]
    assert missing_weights(config) == []


# ------------------------------------------------------------------------------------ no silent fallback


def test_library_default_raises_with_what_where_and_how(hub_cache, synthetic_clip, tmp_path):
    with pytest.raises(WeightsNotFoundError) as raised:
        rerender.translate(synthetic_clip, "a cartoon", K=8, output=tmp_path / "o.mp4", progress=False, **FAST)
    message = str(raised.value)
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in message and "lllyasviel/sd-controlnet-canny" in message
    assert str(hub_cache) in message and "HF_HUB_OFFLINE" in message
    assert "`rerender download`" in message and "hf download" in message and "renderer='classic'" in message
    assert not (tmp_path / "o.mp4.work").exists()  # raised before decoding anything
    with pytest.raises(ConfigError, match="`renderer` must be one of"):
        rerender.translate(synthetic_clip, "x", output=tmp_path / "o.mp4", renderer="clasic", progress=False)


def test_classic_when_asked_and_auto_falls_back_with_a_warning(hub_cache, synthetic_clip, tmp_path, caplog):
    classic = rerender.translate(
        synthetic_clip,
        "a cartoon",
        K=8,
        output=None,
        stage="first",
        renderer="classic",
        workspace=tmp_path / "a",
        progress=False,
        **FAST,
    )
    assert classic.renderer == "classic"
    with caplog.at_level(logging.WARNING, logger="rerender.workflow.renderers"):
        auto = rerender.translate(
            synthetic_clip,
            "a cartoon",
            K=8,
            output=None,
            stage="first",
            renderer="auto",
            workspace=tmp_path / "b",
            progress=False,
            **FAST,
        )
    assert auto.renderer == "classic"
    assert "classic stylizer" in caplog.text and "rerender download" in caplog.text


def test_auto_runs_diffusion_when_the_weights_are_there(hub_cache, synthetic_clip, tmp_path, tiny_pipeline_dir):
    result = rerender.translate(
        synthetic_clip,
        "a cat",
        K=10,
        output=None,
        stage="first",
        renderer="auto",
        workspace=tmp_path / "w",
        progress=False,
        base_model=str(tiny_pipeline_dir),
        num_inference_steps=2,
        device="cpu",
        **FAST,
    )
    assert result.renderer == "diffusion"


def test_cli_renderer_option(hub_cache, synthetic_clip, tmp_path, capsys):
    from rerender.cli import main

    sets = [f"--set={key}={value}" for key, value in FAST.items()]
    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "x",
            "-o",
            str(tmp_path / "o.mp4"),
            "-q",
            "--renderer",
            "diffusion",
            *sets,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "rerender download" in err and "Traceback" not in err
    code = main(
        [
            "translate",
            str(synthetic_clip),
            "-p",
            "x",
            "-o",
            str(tmp_path / "c.mp4"),
            "-q",
            "--stage",
            "first",
            "--set",
            "renderer=classic",
            *sets,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "keyframes (classic)" in out and "classic stylizer instead" not in err  # asked: no warning


# ------------------------------------------------------------------------------------ VAE default


def test_the_default_vae_is_the_models_own(tiny_pipeline_dir):
    import torch

    from rerender.diffusion.loading import load_pipeline

    assert ModelConfig().vae is None and RerenderConfig().model.renderer == "diffusion"
    pipe = load_pipeline(ModelConfig(base_model=str(tiny_pipeline_dir)), device="cpu")  # offline: no hub VAE asked for
    from diffusers import AutoencoderKL

    own = AutoencoderKL.from_pretrained(str(tiny_pipeline_dir / "vae"))
    for name, tensor in own.state_dict().items():
        torch.testing.assert_close(pipe.vae.state_dict()[name], tensor)


# ------------------------------------------------------------------------------------ download against a fake hub


def _fake_repositories(tiny_pipeline_dir: Path) -> dict[str, dict[str, bytes]]:
    sd = {
        str(path.relative_to(tiny_pipeline_dir)): path.read_bytes()
        for path in tiny_pipeline_dir.rglob("*")
        if path.is_file() and not path.name.startswith("_")
    }
    controlnet = {
        name.removeprefix("controlnet/"): data for name, data in sd.items() if name.startswith("controlnet/")
    }
    sd = {name: data for name, data in sd.items() if not name.startswith(("controlnet/", "_"))}
    sd.update(
        {
            "safety_checker/model.safetensors": b"never",
            "v1-5-pruned.ckpt": b"never either",
            "unet/diffusion_pytorch_model.bin": b"duplicate",
            "README.md": b"# fake",
        }
    )
    controlnet["diffusion_pytorch_model.bin"] = b"duplicate"
    return {
        "fake/tiny-sd": sd,
        "lllyasviel/sd-controlnet-canny": controlnet,
        "PKUWilliamYang/Rerender": {"models/gmflow_sintel-0c07dcb3.pth": b"gmflow", "models/other.pth": b"unused"},
    }


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def extras(tiny_pipeline_dir, tmp_path_factory) -> dict[str, Path]:
    """A tiny translation model and a tiny IP-Adapter saved as local folders (what the fake hub serves)."""
    from diffusers import UNet2DConditionModel

    from tests.tiny_models import save_tiny_ip_adapter, save_tiny_translator

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    return {
        "translator": save_tiny_translator(tmp_path_factory.mktemp("marian")),
        "adapter": save_tiny_ip_adapter(tmp_path_factory.mktemp("adapter"), unet),
    }


EXTRA_OPTIONS = [
    "--prompt-language",
    "vi",
    "--translation-model",
    "fake/tiny-marian",
    "--style-image",
    "style.png",
    "--set",
    "ip_adapter=fake/tiny-ip-adapter",
]


@pytest.fixture(scope="module")
def downloaded(tiny_pipeline_dir, tmp_path_factory, extras):
    """`rerender download --model fake/tiny-sd` from the fake hub, with a prompt in Vietnamese and a style image:
    (hub, HF_HOME, dry-run output)."""
    home = tmp_path_factory.mktemp("hf")
    repositories = _fake_repositories(tiny_pipeline_dir)
    repositories["fake/tiny-marian"] = {
        **_folder_files(extras["translator"]),
        "pytorch_model.bin": b"pickle",
        "tf_model.h5": b"tf",
        "README.md": b"# fake",
        ".gitattributes": b"",
    }
    repositories["fake/tiny-ip-adapter"] = {
        **_folder_files(extras["adapter"]),
        "models/image_encoder/pytorch_model.bin": b"pickle",
        "models/ip-adapter-plus_sd15.safetensors": b"other",
        "sdxl_models/ip-adapter_sdxl.safetensors": b"sdxl",
        "README.md": b"# fake",
    }
    with FakeHub(repositories) as hub:
        env = hub_env(hub, home)
        dry = run_cli(["download", "--model", "fake/tiny-sd", "--dry-run", "--precision", "fp32", *EXTRA_OPTIONS], env)
        assert dry.returncode == 0, dry.stderr
        assert hub.downloaded == []  # a dry run fetches nothing
        done = run_cli(["download", "--model", "fake/tiny-sd", "--precision", "fp32", *EXTRA_OPTIONS], env)
        assert done.returncode == 0, done.stderr
    return hub, home, dry.stdout


def test_download_fetches_only_the_files_rerender_reads(downloaded, tiny_pipeline_dir):
    hub, home, listing = downloaded
    assert "skip  safety_checker/model.safetensors" in listing and "fetch unet/config.json" in listing
    fetched = set(hub.downloaded)
    assert ("fake/tiny-sd", "unet/diffusion_pytorch_model.safetensors") in fetched
    assert ("lllyasviel/sd-controlnet-canny", "diffusion_pytorch_model.safetensors") in fetched
    assert ("PKUWilliamYang/Rerender", "models/gmflow_sintel-0c07dcb3.pth") in fetched
    for never in (
        ("fake/tiny-sd", "safety_checker/model.safetensors"),
        ("fake/tiny-sd", "v1-5-pruned.ckpt"),
        ("fake/tiny-sd", "unet/diffusion_pytorch_model.bin"),
        ("fake/tiny-sd", "README.md"),
        ("lllyasviel/sd-controlnet-canny", "diffusion_pytorch_model.bin"),
        ("PKUWilliamYang/Rerender", "models/other.pth"),
    ):
        assert never not in fetched
    snapshot = home / "hub" / "models--fake--tiny-sd" / "snapshots" / COMMIT
    assert (snapshot / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tiny_pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"
    ).read_bytes()
    assert not (snapshot / "safety_checker").exists()


def test_download_fetches_the_translation_model_and_the_ip_adapter_that_load(downloaded, extras, tiny_pipeline_dir):
    from rerender.diffusion.ip_adapter import install_ip_adapter
    from rerender.diffusion.pipeline import RerenderPipeline
    from rerender.languages import Seq2SeqTranslator

    hub, home, listing = downloaded
    assert "translation model (vi): fake/tiny-marian" in listing and "IP-Adapter: fake/tiny-ip-adapter" in listing
    assert "skip  pytorch_model.bin" in listing and "fetch models/image_encoder/model.safetensors" in listing
    fetched = {(repo, name) for repo, name in hub.downloaded if repo in ("fake/tiny-marian", "fake/tiny-ip-adapter")}
    assert fetched == {("fake/tiny-marian", name) for name in _folder_files(extras["translator"])} | {
        ("fake/tiny-ip-adapter", name) for name in _folder_files(extras["adapter"])
    }
    # what was fetched is enough to load them, and gives the same results as the originals
    marian = home / "hub" / "models--fake--tiny-marian" / "snapshots" / COMMIT
    assert Seq2SeqTranslator(str(marian))("một con mèo", "vi") == Seq2SeqTranslator(str(extras["translator"]))(
        "một con mèo", "vi"
    )
    pipeline = RerenderPipeline.from_pretrained(str(tiny_pipeline_dir))
    install_ip_adapter(
        pipeline,
        str(home / "hub" / "models--fake--tiny-ip-adapter" / "snapshots" / COMMIT),
        "models/ip-adapter_sd15.safetensors",
        0.5,
    )
    assert pipeline.unet.encoder_hid_proj is not None and pipeline.image_encoder is not None


def test_download_dry_run_offline_lists_by_id_and_says_what_is_not_resolved(capsys, monkeypatch, tmp_path):
    from rerender.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))  # nothing cached
    code = main(
        ["download", "--dry-run", "-p", "bức tranh màu nước", "--prompt-language", "auto", "--style-image", "s.png"]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    by_pattern = [line for line in lines if "listed by pattern: HF_HUB_OFFLINE is set" in line]
    assert [line.split(":")[0] for line in by_pattern] == [
        "base model (SD 1.5)",
        "ControlNet (canny)",
        "translation model (vi)",
        "IP-Adapter",
    ]
    assert (
        "stable-diffusion-v1-5/stable-diffusion-v1-5" in by_pattern[0]
        and "Helsinki-NLP/opus-mt-vi-en" in by_pattern[2]
    )
    assert "  fetch unet/*" in lines and "  fetch models/ip-adapter_sd15.safetensors" in lines
    assert (
        "GMFlow: PKUWilliamYang/Rerender: 1 files, size unknown -> (dry run)" in lines
        and "  fetch models/gmflow_sintel-0c07dcb3.pth" in lines
    )
    # the language of an absent prompt cannot be known: said, not guessed
    code = main(["download", "--dry-run", "--prompt-language", "auto", "--no-flow"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("not resolved: the translation model: `prompt.prompt_language` is 'auto'")
    assert "translation model" not in out.split("\n", 1)[1]
    # a local model path: present is "nothing to fetch", absent (a typo) says so instead of looking fine
    (tmp_path / "my-model").mkdir()
    for model, said in (
        (tmp_path / "my-model", "local, nothing to fetch"),
        (tmp_path / "my-modle", "local path not found"),
    ):
        assert main(["download", "--dry-run", "--no-flow", "--model", str(model)]) == 0
        assert f"base model (SD 1.5): {model}: {said}" in capsys.readouterr().out.splitlines()[0]
    # without --dry-run, offline is an error that says why
    code = main(["download", "--no-flow"])
    assert code == 2 and "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_a_downloaded_hub_id_loads_offline(downloaded, monkeypatch):
    # diffusers alone would refuse this cache offline (it expects the safety checker it lists); rerender loads the
    # snapshot folder it fetched.
    from huggingface_hub import constants

    from rerender.diffusion.loading import load_pipeline
    from rerender.environment import model_report

    _, home, _ = downloaded
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    config = RerenderConfig(model=ModelConfig(base_model="fake/tiny-sd"))
    assert missing_weights(config) == [] and model_report(config)["translate"] == "diffusion"
    pipe = load_pipeline(config.model, config.control, device="cpu")
    assert pipe.unet.config.block_out_channels and type(pipe).__name__ == "RerenderPipeline"


@pytest.mark.slow
def test_cli_translate_from_the_downloaded_cache_offline(downloaded, synthetic_clip, tmp_path):
    hub, home, _ = downloaded
    offline = {**hub_env(hub, home), "HF_HUB_OFFLINE": "1"}
    report = run_cli(["env", "--json", "--model", "fake/tiny-sd"], offline)
    assert report.returncode == 0, report.stderr
    models = json.loads(report.stdout)["models"]
    assert models["translate"] == "diffusion" and all(item["present"] for item in models["sources"])
    result = run_cli(
        [
            "translate",
            synthetic_clip,
            "-p",
            "a cat",
            "-o",
            tmp_path / "o.mp4",
            "--stage",
            "first",
            "-q",
            "--model",
            "fake/tiny-sd",
            "--renderer",
            "diffusion",
            "--set",
            "num_inference_steps=2",
            "--set",
            "device=cpu",
            *[f"--set={key}={value}" for key, value in FAST.items()],
        ],
        offline,
    )
    assert result.returncode == 0, result.stderr
    assert "keyframes (diffusion)" in result.stdout
    assert "requires torchvision" not in result.stderr  # quiet loading


@pytest.mark.slow
def test_translate_downloads_a_hub_id_on_a_connected_machine(tiny_pipeline_dir, synthetic_clip, tmp_path):
    with FakeHub(_fake_repositories(tiny_pipeline_dir)) as hub:
        result = run_cli(
            [
                "translate",
                synthetic_clip,
                "-p",
                "a cat",
                "-o",
                tmp_path / "o.mp4",
                "--stage",
                "first",
                "-q",
                "--model",
                "fake/tiny-sd",
                "--set",
                "num_inference_steps=2",
                "--set",
                "device=cpu",
                *[f"--set={key}={value}" for key, value in FAST.items()],
            ],
            hub_env(hub, tmp_path / "hf"),
        )
    assert result.returncode == 0, result.stderr
    assert "keyframes (diffusion)" in result.stdout and "classic" not in result.stderr
    assert ("fake/tiny-sd", "unet/diffusion_pytorch_model.safetensors") in hub.downloaded
    assert ("fake/tiny-sd", "safety_checker/model.safetensors") not in hub.downloaded


# ------------------------------------------------------------------------------------ env, exports, imports


def test_env_reports_weights_and_the_renderer_translate_will_use(hub_cache):
    from rerender.environment import model_report

    report = model_report(RerenderConfig())
    assert [item["role"] for item in report["sources"]] == ["base model (SD 1.5)", "ControlNet (canny)", "GMFlow"]
    assert not any(item["present"] for item in report["sources"][:2])
    assert report["translate"].startswith("classic stylizer") and report["fetch"][0] == "rerender download"
    _cache_defaults(hub_cache)
    report = model_report(RerenderConfig())
    assert report["translate"] == "diffusion" and all(item["present"] for item in report["sources"][:2])


def _module_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_environment_and_flow_do_not_import_each_other():
    for path in (REPO / "rerender" / "flow").glob("*.py"):
        assert "rerender.environment" not in _module_imports(path), path.name
    weights = _module_imports(REPO / "rerender" / "weights.py")
    assert not {
        name for name in weights if name.startswith(("rerender.flow", "rerender.environment", "torch", "diffusers"))
    }


def test_public_names_are_exported_at_the_top_level():
    from rerender.diffusion.pipeline import RerenderPipeline

    assert rerender.RerenderPipeline is RerenderPipeline
    for name in rerender.__all__:
        assert getattr(rerender, name) is not None, name
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("translate", "propagate_keyframes", "RerenderPipeline", "RerenderConfig", "load_pipeline"):
        assert name in readme and name in rerender.__all__, name


# ------------------------------------------------------------------------------------ quiet loading


def test_quiet_loading_drops_only_the_known_noise_and_only_inside():
    from rerender.diffusion.loading import quiet_loading

    emitter = logging.getLogger("transformers.utils.import_utils")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    emitter.addHandler(handler)
    try:
        spurious = "`CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil`"
        with quiet_loading():
            emitter.warning(spurious)
            emitter.warning("a real problem")
        emitter.warning(spurious)
    finally:
        emitter.removeHandler(handler)
    assert records == ["a real problem", spurious]


@pytest.mark.slow
def test_loading_route_prints_no_spurious_messages(tiny_pipeline_dir):
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from rerender import RerenderPipeline, load_pipeline\n"
        "from rerender.config import ModelConfig\n"
        f"load_pipeline(ModelConfig(base_model={str(tiny_pipeline_dir)!r}), device='cpu')\n"
        "logging.getLogger('transformers.utils.import_utils').warning('a real warning')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "requires torchvision" not in result.stderr and "a real warning" in result.stderr


def test_the_local_path_hint_names_the_option_of_what_is_missing(hub_cache, tmp_path):
    """A local base model with a missing ControlNet: the hint says how to point the ControlNet at a local folder
    (`--set control.0.model=`, which `apply_overrides` takes), not --model, which is already local."""
    from rerender.config import parse_override
    from rerender.weights import describe_missing

    base = tmp_path / "base"
    base.mkdir()
    config = apply_overrides(RerenderConfig(), {"base_model": str(base)})
    missing = missing_weights(config)
    assert [source.key for source in missing] == ["control[0].model"]
    message = describe_missing(config, missing)
    assert "pass --model" not in message and "--set control.0.model=" in message, message
    key, value = parse_override("control.0.model=" + str(tmp_path / "controlnet"))
    assert apply_overrides(config, {key: value}).control[0].model == str(tmp_path / "controlnet")
    both = describe_missing(RerenderConfig(), missing_weights(RerenderConfig()))
    assert "--model PATH" in both and "--set control.0.model=" in both, both


def test_a_single_file_page_given_as_the_model_says_to_download_it():
    """`--model https://huggingface.co/o/n/blob/main/model.safetensors` (a checkpoint's page) is one file of a
    repository: the hint says how to fetch that file, not only "pass the hub id" (which reads the repository's
    diffusers folder, another thing)."""
    from rerender.weights import missing_source_error

    page = "https://huggingface.co/o/n/blob/main/model.safetensors"
    message = str(missing_source_error("model.base_model", page, Path(page)))
    assert "hf download o/n model.safetensors --local-dir" in message and "'o/n'" in message
    typo = str(missing_source_error("model.vae", "o/n/vae.safetensors", Path("o/n/vae.safetensors")))
    assert "hf download" not in typo  # a relative path that does not exist may be a typo: the general hint
