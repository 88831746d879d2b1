"""What a new user runs into with this round's changes (eleventh round): `rerender env` against a run for the same
config, outputs rerun and replaced, audio in every output container; each case a defect found by doing so, with the
behaviour that should have happened."""

from __future__ import annotations

import numpy as np
import pytest

from rerender.config import ModelConfig, PromptConfig, RerenderConfig
from rerender.errors import ConfigError, RerenderError


def _env_verdict(config):
    from rerender.environment import model_report

    return model_report(config)["translate"]


def test_env_refuses_a_style_image_whose_ip_adapter_is_missing_offline(tiny_pipeline_dir, tmp_path, monkeypatch):
    # was: env said "diffusion" (the IP-Adapter listed as missing), and the run refused: "--style-image needs the
    # IP-Adapter ... which are not on this machine and cannot be downloaded now"
    from PIL import Image

    from rerender.workflow.preflight import check_model_inputs

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    style = tmp_path / "style.png"
    Image.new("RGB", (16, 16), "red").save(style)
    model = ModelConfig(base_model=str(tiny_pipeline_dir), ip_adapter="nobody/no-such-ip-adapter")
    config = RerenderConfig(model=model, prompt=PromptConfig(style_image=str(style)))
    with pytest.raises(RerenderError) as refused:
        check_model_inputs(config)
    assert _env_verdict(config) == f"refused: {refused.value}"
    unused = RerenderConfig(model=model, prompt=PromptConfig(style_image=str(style), style_image_scale=0))
    check_model_inputs(unused)  # scale 0: no IP-Adapter needed, by the run and by env
    assert _env_verdict(unused) == "diffusion"


def test_env_refuses_a_sound_prompt_whose_clap_model_is_missing_offline(tiny_pipeline_dir, tmp_path, monkeypatch):
    # was: env said "diffusion" (the sound model listed as missing); the run refused it before any work
    from rerender.sound import check_audio_model
    from tests.test_sound import RATE, write_wav

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a sound file the run accepts (env, as the run, checks the file before the model that hears it)
    rain = write_wav(tmp_path / "rain.wav", 0.3 * np.sin(np.arange(RATE) * 2 * np.pi * 440 / RATE).astype(np.float32))
    prompt = PromptConfig(audio_prompt=str(rain), audio_model="nobody/no-such-clap")
    config = RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir)), prompt=prompt)
    with pytest.raises(RerenderError) as refused:
        check_audio_model(prompt.audio_model, prompt.audio_prompt)
    assert _env_verdict(config) == f"refused: {refused.value}"


def test_env_refuses_a_foreign_prompt_whose_translation_model_is_missing_offline(tiny_pipeline_dir, monkeypatch):
    # was: env said "diffusion" (the translation model listed as missing); the run refused: "translating the prompt
    # needs the translation model ..., which is not in the Hugging Face cache and cannot be downloaded now"
    from rerender.workflow.preflight import check_prompt_language

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prompt = PromptConfig(prompt="un chat", prompt_language="fr", translation_model="nobody/no-such-translator")
    config = RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir)), prompt=prompt)
    with pytest.raises(RerenderError) as refused:
        check_prompt_language(config)
    assert _env_verdict(config) == f"refused: {refused.value}"


def test_a_workspace_of_an_edited_video_says_it_changed_not_another_video_of_the_same_name(tmp_path):
    # was: "holds work for another video ('v.mp4', not 'v.mp4')": the same name twice, and no word of
    # on_change='restart', the option made for an edited input
    from rerender.workflow.workspace import Workspace, WorkspaceMismatchError

    clip, config = tmp_path / "v.clip", RerenderConfig()
    clip.mkdir()
    (clip / "00000.png").write_bytes(b"frame one")
    with Workspace.open(tmp_path / "ws", clip, config):
        pass
    (clip / "00000.png").write_bytes(b"frame one, edited")
    with pytest.raises(WorkspaceMismatchError) as refused:
        Workspace.open(tmp_path / "ws", clip, config)
    message = str(refused.value)
    assert "'v.clip' changed since the workspace was made" in message and "not 'v.clip'" not in message
    assert "on_change='restart'" in message and "force=True" in message


@pytest.mark.parametrize(
    "typed",
    ["nobody/pixel-art/pixel.safetensors", "https://huggingface.co/nobody/pixel-art/blob/main/pixel.safetensors"],
)
def test_a_lora_config_naming_a_hub_file_says_how_to_name_that_file(typed, tmp_path, monkeypatch):
    # was: "... does not exist; for the Hugging Face model, pass its hub id 'nobody/pixel-art'": that reads the
    # repository's default LoRA file (pytorch_lora_weights.safetensors), not pixel.safetensors, or is refused
    from rerender.config import LoraConfig
    from rerender.diffusion.loading import check_model_sources
    from rerender.errors import InputNotFoundError

    monkeypatch.chdir(tmp_path)
    model = ModelConfig(base_model="nobody/base", loras=(LoraConfig(path=typed),))  # loras: [typed]
    with pytest.raises(InputNotFoundError) as refused:
        check_model_sources(model, ())
    message = str(refused.value)
    assert "`model.loras[0].path`" in message
    assert "path: nobody/pixel-art, weight_name: pixel.safetensors" in message


def test_translate_takes_a_numpy_integer_for_k():
    # was: "`K` must be an integer ≥ 1, got np.int64(4)" (a K computed with numpy, e.g. np.clip(n // 10, 1, 20))
    import numpy as np

    from rerender.workflow.stages import resolve_config

    config = resolve_config(None, "x", np.int64(4), {})
    assert config.keyframes.keyframe_interval == 4 and type(config.keyframes.keyframe_interval) is int
    for wrong in (np.int64(0), np.float64(4.0), True, "4"):
        with pytest.raises(ConfigError, match="`K` must be an integer ≥ 1"):
            resolve_config(None, "x", wrong, {})


@pytest.mark.parametrize(
    "url",
    [
        "https://huggingface.co/owner/name/resolve/main/sub/x.safetensors?download=true",
        "https://huggingface.co/owner/name/blob/main/sub/x.safetensors#L1",
    ],
)
def test_a_hub_file_url_with_a_query_names_the_file_without_it(url):
    # was: the file 'sub/x.safetensors?download=true' (the hub's download button adds ?download=true), which no
    # repository holds: `hf download owner/name sub/x.safetensors?download=true` was the advice
    from rerender.cli.options import parse_lora
    from rerender.weights import hub_file_reference

    assert hub_file_reference(url) == ("owner/name", "sub/x.safetensors")
    assert parse_lora(url + ":0.5") == {"path": "owner/name", "scale": 0.5, "weight_name": "sub/x.safetensors"}


def test_a_sound_prompt_that_is_a_folder_is_named_a_folder_not_missing(tmp_path):
    # was: "`prompt.audio_prompt` not found: '<folder>'" for a folder that is there
    from rerender.sound import check_audio_prompt

    with pytest.raises(RerenderError, match=r"`prompt.audio_prompt` '.*' is a folder, not a sound or video file"):
        check_audio_prompt(str(tmp_path))


def test_a_cli_message_names_the_flag_once_not_flag_then_cli_flag():
    # was: "use another workspace, or --force (CLI: --force) to start it over": the library's `force=True` (CLI:
    # --force) became the flag, and the parenthesis repeated it
    from rerender.cli import _cli_message

    message = "use another workspace, or `force=True` (CLI: --force) to start it over for this video"
    assert _cli_message(message) == "use another workspace, or --force to start it over for this video"


def test_a_vae_folder_holding_another_model_is_refused_before_loading(tiny_pipeline_dir):
    # was: accepted by the checks and by rerender env ("diffusion"); loading failed after the frames were read,
    # with diffusers' "cross_attention_dim must be specified for CrossAttnDownBlock2D"
    from rerender.workflow.preflight import check_model_files

    for part, kind in (("unet", "UNet2DConditionModel"), ("controlnet", "ControlNetModel")):
        config = RerenderConfig(
            model=ModelConfig(base_model=str(tiny_pipeline_dir), vae=str(tiny_pipeline_dir / part))
        )
        with pytest.raises(ConfigError, match=rf"`model.vae` .* is a {kind}, not a VAE \(AutoencoderKL\)"):
            check_model_files(config)
        assert _env_verdict(config).startswith("refused: `model.vae`")
    check_model_files(
        RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir), vae=str(tiny_pipeline_dir / "vae")))
    )


def test_env_refuses_a_missing_style_image_at_scale_0_as_the_run_does(tiny_pipeline_dir, tmp_path):
    # was: env said "diffusion"; the run refused "--style-image 'gone.png' not found" (the image is read even at
    # scale 0, where no IP-Adapter is needed)
    from rerender.workflow.preflight import check_model_inputs

    prompt = PromptConfig(style_image=str(tmp_path / "gone.png"), style_image_scale=0)
    config = RerenderConfig(model=ModelConfig(base_model=str(tiny_pipeline_dir)), prompt=prompt)
    with pytest.raises(RerenderError) as refused:
        check_model_inputs(config)
    assert _env_verdict(config) == f"refused: {refused.value}"
