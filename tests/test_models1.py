"""One source of truth for the model-file checks (`rerender env` reports what a run refuses), one rule for picking a
LoRA file, `--lora` naming a file inside a hub repository, the cached checkpoint header, one Union-mode check."""

from __future__ import annotations

from pathlib import Path

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


# --------------------------------------------------------------------------------------------------------
# one rule for a LoRA's file: the loader, the checks, `rerender env` and `rerender download` agree
# --------------------------------------------------------------------------------------------------------

LORA_KEY = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"


def _lora_bytes(width: int = 32) -> bytes:
    import torch
    from safetensors.torch import save

    return save({LORA_KEY: torch.zeros(4, width), LORA_KEY.replace("lora_A", "lora_B"): torch.zeros(320, 4)})


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """Start a `tests.fake_hub.FakeHub` over `repositories` as this process's connected hub, with an empty cache."""
    import contextlib

    from huggingface_hub import constants

    import rerender.weights as weights
    from tests.fake_hub import FakeHub

    stack = contextlib.ExitStack()

    def start(repositories):
        hub = stack.enter_context(FakeHub(repositories))
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        weights._endpoint_reachable.cache_clear()
        return hub

    yield start
    stack.close()
    weights._endpoint_reachable.cache_clear()


def _go_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


class _RecordingPipeline:
    """What `load_loras` calls on a pipeline, recorded (the real loader's code path, without a model)."""

    def __init__(self):
        self.loaded, self.names = [], []

    def load_lora_weights(self, source, adapter_name, **kwargs):
        self.loaded.append((source, kwargs))
        self.names.append(adapter_name)

    def get_list_adapters(self):
        return {"unet": list(self.names)}

    def set_adapters(self, names, adapter_weights):
        pass


def test_a_hub_lora_with_another_file_name_is_fetched_reported_and_loaded_as_one_file(
    fake_hub, monkeypatch, tiny_pipeline_dir, tmp_path
):
    # was: `rerender env` and `rerender download` looked for pytorch_lora_weights.safetensors only, so a cached
    # single-file hub LoRA named otherwise was called missing (and download failed: "no such file") though the
    # loader found it
    from rerender.config import LoraConfig, RerenderConfig
    from rerender.diffusion.loading import check_hub_loras, load_loras
    from rerender.environment import model_report
    from rerender.weights import download_weights

    lora = LoraConfig(path="someone/film-grain", scale=0.7)
    config = RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir), loras=(lora,)))
    hub = fake_hub({"someone/film-grain": {"film-grain.safetensors": _lora_bytes(), "README.md": b"# grain"}})
    records = download_weights(config, include_flow=False, progress=False)
    (record,) = [record for record in records if record["role"] == "LoRA"]
    assert record["fetched"] == ["film-grain.safetensors"]
    assert hub.downloaded == [("someone/film-grain", "film-grain.safetensors")]

    _go_offline(monkeypatch)
    (source,) = [source for source in model_report(config)["sources"] if source["role"] == "LoRA"]
    assert source["present"] is True
    assert not model_report(config)["translate"].startswith("refused")
    check_hub_loras(config.model.loras)  # cached: not refused offline
    pipe = _RecordingPipeline()
    assert load_loras(pipe, config.model.loras) == ["lora_0"]
    ((folder, kwargs),) = pipe.loaded
    assert kwargs == {"weight_name": "film-grain.safetensors"} and (Path(folder) / "film-grain.safetensors").is_file()


def test_a_hub_lora_repository_of_several_files_and_none_named_is_refused_listing_them(fake_hub, tiny_pipeline_dir):
    from rerender.config import LoraConfig, RerenderConfig
    from rerender.diffusion.loading import check_hub_loras
    from rerender.weights import download_weights

    lora = LoraConfig(path="someone/styles")
    config = RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir), loras=(lora,)))
    files = {"grain.safetensors": _lora_bytes(), "ink.safetensors": _lora_bytes(), "sub/old.safetensors": b""}
    hub = fake_hub({"someone/styles": files})
    listed = r"is a hub repository of 2 .safetensors files \(grain.safetensors, ink.safetensors\): name the one"
    with pytest.raises(ConfigError, match=listed + r".*--lora someone/styles/grain.safetensors"):
        check_hub_loras(config.model.loras)  # online, not cached: the hub's file list tells, before any work
    with pytest.raises(ConfigError, match=listed):
        download_weights(config, include_flow=False, progress=False, dry_run=True)
    assert hub.downloaded == []
    named = RerenderConfig(
        model=ModelConfig(loras=(LoraConfig(path="someone/styles", weight_name="ink.safetensors"),))
    )
    check_hub_loras(named.model.loras)


def test_a_hub_lora_of_the_other_family_not_cached_is_refused_before_the_base_model_is_fetched_or_loaded(
    fake_hub, monkeypatch, tiny_pipeline_dir
):
    # was (issue 22): an SDXL hub LoRA not downloaded yet on an SD 1.5 model was refused only after the UNet
    # loaded, by diffusers' shape error, without naming the families
    import rerender.diffusion.loading as loading
    from rerender.config import ControlConfig, LoraConfig
    from rerender.diffusion.pipeline import RerenderPipeline

    xl_key = "lora_te2_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight"  # SDXL's second text encoder

    def xl_lora() -> bytes:
        import torch
        from safetensors.torch import save

        return save({xl_key: torch.zeros(4, 1280), LORA_KEY: torch.zeros(4, 2048)})

    hub = fake_hub({"someone/xl-style": {"xl-style.safetensors": xl_lora(), "README.md": b"# xl"}})

    def never(*args, **kwargs):
        raise AssertionError("the base model or a ControlNet was fetched or loaded before the LoRA was checked")

    monkeypatch.setattr(loading, "_load_controlnets", never)
    monkeypatch.setattr(loading, "_hub_folder", never)
    monkeypatch.setattr(RerenderPipeline, "from_pretrained", never)
    model = ModelConfig(base_model=str(tiny_pipeline_dir), loras=(LoraConfig(path="someone/xl-style"),))
    with pytest.raises(
        ConfigError,
        match=r"`model.loras\[0\].path` 'someone/xl-style' is made for SDXL, but the base model is SD 1\.5 \('.*"
        + tiny_pipeline_dir.name,
    ):
        loading.load_pipeline(model, [ControlConfig(model=str(tiny_pipeline_dir / "controlnet"))], device="cpu")
    assert hub.downloaded == [("someone/xl-style", "xl-style.safetensors")]  # the LoRA's file only


# --------------------------------------------------------------------------------------------------------
# `rerender env` refuses exactly what a run refuses (one check: preflight.check_model_files)
# --------------------------------------------------------------------------------------------------------


FLUX_COMPONENTS = {  # model_index.json of black-forest-labs/FLUX.1-schnell (as FluxPipeline.save_pretrained writes it)
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "T5Tokenizer"],
    "transformer": ["diffusers", "FluxTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
FLUX_BLOCKS = {"num_layers": 2, "num_single_layers": 2, "in_channels": 64, "guidance_embeds": False}


@pytest.fixture(scope="module")
def flux_folders(tmp_path_factory):
    """A Flux base folder and a Flux ControlNet folder with the configs the checks before a run read (the layout
    of `tests.tiny_flux.save_tiny_flux`, without its weights: nothing here loads them)."""
    import json

    root = tmp_path_factory.mktemp("flux")
    base, control = root / "flux", root / "flux-controlnet"
    files = {
        base / "model_index.json": {
            "_class_name": "FluxPipeline",
            "feature_extractor": [None, None],
            **FLUX_COMPONENTS,
        },
        base / "transformer" / "config.json": {"_class_name": "FluxTransformer2DModel", **FLUX_BLOCKS},
        base / "vae" / "config.json": {"_class_name": "AutoencoderKL", "latent_channels": 16},
        base / "scheduler" / "scheduler_config.json": {"_class_name": "FlowMatchEulerDiscreteScheduler"},
        base / "text_encoder" / "config.json": {"architectures": ["CLIPTextModel"]},
        base / "text_encoder_2" / "config.json": {"architectures": ["T5EncoderModel"]},
        base / "tokenizer" / "tokenizer_config.json": {},
        base / "tokenizer_2" / "tokenizer_config.json": {},
        control / "config.json": {"_class_name": "FluxControlNetModel", **FLUX_BLOCKS, "num_mode": None},
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return base, control


def _run_and_env_verdicts(config):
    """``(what the run's model check raises, or None; what env says translate does)``."""
    from rerender.environment import model_report
    from rerender.errors import RerenderError
    from rerender.workflow.preflight import check_model_inputs

    try:
        check_model_inputs(config)
        run = None
    except RerenderError as error:
        run = str(error)
    return run, model_report(config)["translate"]


def test_env_refuses_what_a_run_refuses_on_flux(flux_folders, tiny_pipeline_dir, monkeypatch):
    # was: env ran the SD family check (check_families) on a Flux base, where a run checks the transformer's rules
    # (check_transformer_sources): a `model.vae` on Flux, refused by the run, was "diffusion" in env
    from rerender.config import ControlConfig, RerenderConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base, control = flux_folders
    controls = (ControlConfig(model=str(control)),)
    accepted = RerenderConfig(model=ModelConfig(base_model=str(base)), control=controls)
    assert _run_and_env_verdicts(accepted) == (None, "diffusion")
    with_vae = RerenderConfig(
        model=ModelConfig(base_model=str(base), vae=str(tiny_pipeline_dir / "vae")), control=controls
    )
    run, env = _run_and_env_verdicts(with_vae)
    assert run is not None and "`model.vae`" in run and "does not apply to Flux" in run
    assert env == f"refused: {run}"


def test_env_refuses_a_folder_missing_a_part_whatever_the_family_says(tiny_pipeline_dir, tmp_path, monkeypatch):
    # was: env checked a folder's parts only for `family: auto`; with `family: sd15` it said "diffusion" and the
    # run refused the folder without vae/
    import shutil

    from rerender.config import RerenderConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tmp_path / "no vae"
    shutil.copytree(tiny_pipeline_dir, model, ignore=shutil.ignore_patterns("vae"))
    for family in ("auto", "sd15"):
        run, env = _run_and_env_verdicts(RerenderConfig(model=ModelConfig(base_model=str(model), family=family)))
        assert run is not None and "lists vae/ but the folder has no such" in run
        assert env == f"refused: {run}"


# --------------------------------------------------------------------------------------------------------
# --lora names a file inside a hub repository, as users copy it
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("someone/styles/ink.safetensors", {"path": "someone/styles", "scale": 1.0, "weight_name": "ink.safetensors"}),
        (
            "someone/styles/ink.safetensors:0.6",
            {"path": "someone/styles", "scale": 0.6, "weight_name": "ink.safetensors"},
        ),
        (
            "someone/styles/v2/ink.safetensors",
            {"path": "someone/styles", "scale": 1.0, "weight_name": "v2/ink.safetensors"},
        ),
        (
            "https://huggingface.co/someone/styles/blob/main/ink.safetensors",
            {"path": "someone/styles", "scale": 1.0, "weight_name": "ink.safetensors"},
        ),
        (
            "https://huggingface.co/someone/styles/resolve/main/v2/ink.safetensors:-0.5",
            {"path": "someone/styles", "scale": -0.5, "weight_name": "v2/ink.safetensors"},
        ),
        (
            "hf.co/someone/styles/blob/main/ink.safetensors",
            {"path": "someone/styles", "scale": 1.0, "weight_name": "ink.safetensors"},
        ),
        ("https://huggingface.co/someone/styles", {"path": "someone/styles", "scale": 1.0}),
        ("https://huggingface.co/someone/styles:0.8", {"path": "someone/styles", "scale": 0.8}),
        ("someone/styles:0.8", {"path": "someone/styles", "scale": 0.8}),  # a hub id, as before
    ],
)
def test_lora_names_a_file_of_a_hub_repository_as_users_copy_it(typed, parsed):
    from rerender.cli.options import parse_lora

    assert parse_lora(typed) == parsed


def test_lora_local_paths_stay_local_and_other_revisions_are_refused(tmp_path, monkeypatch):
    from rerender.cli.base import UsageError
    from rerender.cli.options import parse_lora

    monkeypatch.chdir(tmp_path)
    (tmp_path / "loras" / "anime").mkdir(parents=True)
    (tmp_path / "loras" / "anime" / "ink.safetensors").write_bytes(b"")
    assert parse_lora("loras/anime/ink.safetensors:0.7") == {"path": "loras/anime/ink.safetensors", "scale": 0.7}
    # a mistyped local path (its first folder is here) is not taken for a hub repository
    assert parse_lora("loras/anme/ink.safetensors") == {"path": "loras/anme/ink.safetensors", "scale": 1.0}
    with pytest.raises(
        UsageError, match=r"--lora '.*blob/v2/ink.safetensors' is a file of revision 'v2'; rerender reads"
    ):
        parse_lora("https://huggingface.co/someone/styles/blob/v2/ink.safetensors")
    with pytest.raises(
        UsageError,
        match=r"--lora 'https://huggingface.co/datasets/someone/styles' is a dataset page, not a model repository",
    ):
        parse_lora("https://huggingface.co/datasets/someone/styles")


def test_env_reads_a_lora_file_named_inside_a_hub_repository(tiny_pipeline_dir, tmp_path, monkeypatch, capsys):
    # was: --lora owner/name/file.safetensors was taken for a local path that does not exist, and a hub LoRA
    # whose file is not the default name needed `weight_name` in a config file
    from huggingface_hub import constants

    from rerender.cli import main
    from rerender.cli.options import parse_lora
    from rerender.config import LoraConfig, RerenderConfig
    from rerender.environment import model_report

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--someone--styles" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    for name in ("grain.safetensors", "ink.safetensors"):
        (snapshot / name).write_bytes(_lora_bytes())
    lora = LoraConfig(**parse_lora("someone/styles/ink.safetensors:0.6"))
    report = model_report(RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir), loras=(lora,))))
    assert report["translate"] == "diffusion"
    assert [(item["location"], item["present"]) for item in report["sources"] if item["role"] == "LoRA"] == [
        ("someone/styles", True)
    ]
    assert main(["env", "--model", str(tiny_pipeline_dir), "--lora", "https://huggingface.co/someone/styles"]) == 0
    out = capsys.readouterr().out
    assert (
        "translate refuses this config: --lora 'someone/styles' is a hub repository of 2 .safetensors files "
        "(grain.safetensors, ink.safetensors): name the one to use as a path inside it "
        "(--lora someone/styles/grain.safetensors)"
    ) in out  # named as the user typed it, as the run's CLI names it
    assert "fetch with: hf download someone/styles" not in out  # both files are here: nothing to fetch


# --------------------------------------------------------------------------------------------------------
# one Union-mode check, each family's table
# --------------------------------------------------------------------------------------------------------


def test_one_union_mode_check_reads_each_familys_controlnet_config(tmp_path):
    import json

    from rerender.config import ControlConfig
    from rerender.diffusion.loading import check_union_mode

    configs = {
        "sd-union": {"_class_name": "ControlNetUnionModel", "num_control_type": 6},
        "sd-canny": {"_class_name": "ControlNetModel"},
        "flux-union": {"_class_name": "FluxControlNetModel", "num_mode": 7},
        "flux-canny": {"_class_name": "FluxControlNetModel", "num_mode": None},
    }
    for name, config in configs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    depth = ControlConfig(type="depth")
    check_union_mode(depth, 0, str(tmp_path / "sd-union"), "sdxl")  # depth has a mode on both Unions
    check_union_mode(depth, 0, str(tmp_path / "flux-union"), "flux")
    check_union_mode(depth, 0, str(tmp_path / "sd-canny"), "sdxl")  # no Union, no mode: nothing to check
    check_union_mode(ControlConfig(control_mode=5), 0, str(tmp_path / "flux-canny"), "zimage")  # no table
    with pytest.raises(
        ConfigError, match=r"`control\[0\].control_mode` is 7, but this ControlNet Union has modes 0-6"
    ):
        check_union_mode(ControlConfig(control_mode=7), 0, str(tmp_path / "flux-union"), "flux")
    with pytest.raises(
        ConfigError, match=r"`control\[2\].control_mode` is 7, but this ControlNet Union has modes 0-5"
    ):
        check_union_mode(ControlConfig(control_mode=7), 2, str(tmp_path / "sd-union"), "sdxl")
    with pytest.raises(ConfigError, match=r"sd-canny' is not a ControlNet Union \(a ControlNetModel, one condition"):
        check_union_mode(ControlConfig(control_mode=1), 1, str(tmp_path / "sd-canny"), "sdxl")
    with pytest.raises(ConfigError, match=r"`control\[0\].control_mode` is 1, but this Flux ControlNet is not a"):
        check_union_mode(ControlConfig(control_mode=1), 0, str(tmp_path / "flux-canny"), "flux")
    with pytest.raises(ConfigError, match=r"'gray' is not a mode of the SDXL ControlNet Union"):
        check_union_mode(ControlConfig(control_mode="gray"), 0, "someone/controlnet-union-sdxl", "sdxl")  # not here
    check_union_mode(ControlConfig(control_mode="gray"), 0, "someone/flux-controlnet-union", "flux")
