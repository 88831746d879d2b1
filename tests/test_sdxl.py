"""SDXL as a base of RerenderPipeline: family detection, conditioning, Union ControlNet, fp16 VAE, refusals.

The constraints themselves are tested on both families by tests/test_pipeline.py (its `pipe` is parametrised)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rerender.config import ControlConfig, FreeUConfig, LoraConfig, ModelConfig
from rerender.diffusion.loading import (
    SD15_CONFIG_DIR,
    SDXL_CONFIG_DIR,
    check_families,
    check_ip_adapter_family,
    detect_family,
    load_pipeline,
)
from rerender.errors import ConfigError
from tests.test_pipeline import ZeroFlow, make_frames


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl_dir):
    pipe = load_pipeline(
        ModelConfig(base_model=str(tiny_sdxl_dir)),
        [ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))],
        device="cpu",
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _render(pipe, frames, **kwargs):
    kwargs.setdefault("num_inference_steps", 4)
    kwargs.setdefault("strength", 0.75)
    return pipe(
        frames, "a red square", generator=torch.Generator().manual_seed(0), flow_estimator=ZeroFlow(), **kwargs
    )


# --------------------------------------------------------------------------------------------------------
# family: detected from the model itself, checked before loading
# --------------------------------------------------------------------------------------------------------


def test_family_is_read_from_the_unet_config_and_checkpoint_keys(tiny_pipeline_dir, tiny_sdxl_dir, tmp_path):
    from safetensors.torch import save_file

    assert detect_family(tiny_pipeline_dir) == "sd15" and detect_family(tiny_sdxl_dir) == "sdxl"
    assert detect_family(SD15_CONFIG_DIR) == "sd15" and detect_family(SDXL_CONFIG_DIR) == "sdxl"

    def tensors(*names):
        return {name: torch.zeros(1) for name in names}

    save_file(
        tensors(
            "model.diffusion_model.input_blocks.0.0.weight",
            "model.diffusion_model.label_emb.0.0.weight",
            "conditioner.embedders.1.model.positional_embedding",
        ),
        str(tmp_path / "xl.safetensors"),
    )
    save_file(
        tensors(
            "model.diffusion_model.input_blocks.0.0.weight",
            "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
        ),
        str(tmp_path / "sd15.safetensors"),
    )
    save_file(tensors("transformer.weight"), str(tmp_path / "other.safetensors"))
    assert detect_family(tmp_path / "xl.safetensors") == "sdxl"
    assert detect_family(tmp_path / "sd15.safetensors") == "sd15"
    with pytest.raises(ConfigError, match="not a Stable Diffusion checkpoint"):
        detect_family(tmp_path / "other.safetensors")


def test_stated_family_must_match_the_model(tiny_sdxl_dir):
    with pytest.raises(ConfigError, match=r"`model.family` is 'sd15'.*SDXL model"):
        check_families(ModelConfig(base_model=str(tiny_sdxl_dir), family="sd15"), (), tiny_sdxl_dir)
    with pytest.raises(ConfigError, match="model.family"):
        ModelConfig(family="sd3")


def _refuse_unet_loading(monkeypatch):
    from diffusers import UNet2DConditionModel

    def refuse(*args, **kwargs):
        raise AssertionError("the UNet was loaded before the mismatch was found")

    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained", classmethod(refuse))


def test_controlnet_of_the_other_family_is_refused_before_the_unet_loads(
    tiny_pipeline_dir, tiny_sdxl_dir, monkeypatch
):
    _refuse_unet_loading(monkeypatch)
    with pytest.raises(ConfigError, match=r"control\[0\].model.*made for SD 1.5, but the base model is SDXL"):
        load_pipeline(
            ModelConfig(base_model=str(tiny_sdxl_dir)), [ControlConfig(model=str(tiny_pipeline_dir / "controlnet"))]
        )
    with pytest.raises(ConfigError, match=r"made for SDXL, but the base model is SD 1.5"):
        load_pipeline(
            ModelConfig(base_model=str(tiny_pipeline_dir)), [ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))]
        )


def _sgm_name(name: str, per_level: int = 3) -> str:
    """A diffusers UNet module name in the original (SGM) block naming SDXL kohya LoRAs use."""
    import re

    name = re.sub(
        r"^down_blocks\.(\d+)\.attentions\.(\d+)",
        lambda m: f"input_blocks.{per_level * int(m[1]) + int(m[2]) + 1}.1",
        name,
    )
    name = re.sub(
        r"^up_blocks\.(\d+)\.attentions\.(\d+)", lambda m: f"output_blocks.{per_level * int(m[1]) + int(m[2])}.1", name
    )
    return name.replace("mid_block.attentions.0", "middle_block.1")


def _kohya_lora(path: Path, unet, second_text_encoder: bool = False, sgm: bool | None = None) -> Path:
    """A kohya (A1111) LoRA: SD 1.5 files name UNet modules as diffusers does, SDXL files by the original blocks."""
    from safetensors.torch import save_file

    torch.manual_seed(2)
    tensors = {}
    for name, module in unet.named_modules():
        if name.endswith(("attn1.to_q", "attn2.to_k")) and isinstance(module, torch.nn.Linear):
            sgm_names = second_text_encoder if sgm is None else sgm
            key = "lora_unet_" + (_sgm_name(name) if sgm_names else name).replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(4, module.in_features) * 0.1
            tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, 4) * 0.1
            tensors[f"{key}.alpha"] = torch.tensor(4.0)
    if second_text_encoder:
        key = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
        tensors[f"{key}.lora_down.weight"] = torch.randn(4, 48) * 0.1
        tensors[f"{key}.lora_up.weight"] = torch.randn(48, 4) * 0.1
        tensors[f"{key}.alpha"] = torch.tensor(4.0)
    save_file(tensors, str(path))
    return path


def test_lora_of_the_other_family_is_refused_before_the_unet_loads(
    sdxl, tiny_pipeline_dir, tiny_sdxl_dir, tmp_path, monkeypatch
):
    from diffusers import UNet2DConditionModel

    sd15_lora = _kohya_lora(
        tmp_path / "sd15.safetensors", UNet2DConditionModel.from_pretrained(tiny_pipeline_dir / "unet")
    )
    sdxl_lora = _kohya_lora(tmp_path / "xl.safetensors", sdxl.unet, second_text_encoder=True)
    _refuse_unet_loading(monkeypatch)
    with pytest.raises(ConfigError, match=r"model.loras\[0\].path.*made for SD 1.5, but the base model is SDXL"):
        check_families(
            ModelConfig(base_model=str(tiny_sdxl_dir), loras=(LoraConfig(str(sd15_lora)),)), (), tiny_sdxl_dir
        )
    with pytest.raises(ConfigError, match=r"model.loras\[1\].path.*made for SDXL, but the base model is SD 1.5"):
        check_families(
            ModelConfig(
                base_model=str(tiny_pipeline_dir), loras=(LoraConfig(str(sd15_lora)), LoraConfig(str(sdxl_lora)))
            ),
            (),
            tiny_pipeline_dir,
        )
    assert (
        check_families(
            ModelConfig(base_model=str(tiny_sdxl_dir), loras=(LoraConfig(str(sdxl_lora)),)), (), tiny_sdxl_dir
        )
        == "sdxl"
    )


def test_ip_adapter_of_the_other_family_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"ip_adapter.1.to_k_ip.weight": torch.zeros(640, 768)}, str(tmp_path / "ip-adapter_sd15.safetensors"))
    with pytest.raises(ConfigError, match="made for SD 1.5, but the base model is SDXL"):
        check_ip_adapter_family("sdxl", tmp_path / "ip-adapter_sd15.safetensors")
    check_ip_adapter_family("sd15", tmp_path / "ip-adapter_sd15.safetensors")


# --------------------------------------------------------------------------------------------------------
# loading and conditioning
# --------------------------------------------------------------------------------------------------------


def test_folder_loads_both_text_encoders_and_logs_the_family(tiny_sdxl_dir, caplog):
    with caplog.at_level(logging.INFO, logger="rerender.diffusion.loading"):
        pipe = load_pipeline(
            ModelConfig(base_model=str(tiny_sdxl_dir), family="sdxl"),
            [ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))],
            device="cpu",
        )
    assert pipe.family == "sdxl" and type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert any("SDXL" in record.getMessage() for record in caplog.records)


def test_sdxl_conditioning_pooled_embedding_and_size_numbers_from_the_frame(sdxl):
    seen = []
    handle = sdxl.unet.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:
        _render(sdxl, [frame[:, :48] for frame in make_frames(3)])
    finally:
        handle.remove()
    assert seen
    for kwargs in seen:  # every UNet call of every keyframe: (original H, W, crop 0, 0, target H, W)
        time_ids = kwargs["added_cond_kwargs"]["time_ids"]
        assert time_ids.tolist() == [[64, 48, 0, 0, 64, 48]] * 2
        assert kwargs["added_cond_kwargs"]["text_embeds"].shape == (2, 48)  # the second encoder's projection
        assert kwargs["encoder_hidden_states"].shape == (2, 77, 80)  # both encoders' channels, 32 + 48
    empty = sdxl.encode_prompt("a cat", None, torch.device("cpu"), True, size=(64, 64))
    assert (
        torch.count_nonzero(empty.prompt_embeds[0]) == 0
        and torch.count_nonzero(empty.added_cond_kwargs["text_embeds"][0]) == 0
    )
    negative = sdxl.encode_prompt("a cat", "blurry", torch.device("cpu"), True, size=(64, 64))
    assert torch.count_nonzero(negative.prompt_embeds[0]) > 0
    assert torch.equal(negative.prompt_embeds[1], empty.prompt_embeds[1])


def test_small_frames_warn_and_sizes_name_the_multiple(sdxl, caplog):
    with caplog.at_level(logging.WARNING):
        _render(sdxl, make_frames(1))
    assert any("SDXL is made for about 1024 px" in record.getMessage() for record in caplog.records)
    with pytest.raises(ConfigError, match="multiples of 2 for SDXL"):
        _render(sdxl, [np.zeros((63, 64, 3), np.uint8)])


def test_decoder_self_attention_layers_of_sdxl_by_the_structural_rule():
    """SDXL base: attn1 of every transformer block in up_blocks: 3×10 in up_blocks.0 (1280 wide, 32² latents at
    1024 px) and 3×2 in up_blocks.1 (640 wide); loose drops up_blocks.0, keeping the 6 of up_blocks.1."""
    from diffusers import UNet2DConditionModel

    from rerender.diffusion.attention import decoder_self_attention_layers
    from rerender.diffusion.freeu import freeu_stages

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SDXL_CONFIG_DIR / "unet"))
    layers = decoder_self_attention_layers(unet)
    assert len(layers) == 36
    assert sum(name.startswith("up_blocks.0.") for name in layers) == 30
    loose = decoder_self_attention_layers(unet, loose=True)
    assert len(loose) == 6 and all(name.startswith("up_blocks.1.") for name in loose)
    stages = {stage.name: (stage.backbone_channels, stage.stage) for stage in freeu_stages(unet)}
    assert stages["up_blocks.0.resnets.0"] == (1280, 1) and stages["up_blocks.1.resnets.0"] == (1280, 1)
    assert stages["up_blocks.1.resnets.1"] == (640, 2) and stages["up_blocks.2.resnets.0"] == (640, 2)
    assert FreeUConfig.published("sdxl") == FreeUConfig(b1=1.3, b2=1.4, s1=0.9, s2=0.2)


def test_freeu_left_unset_installs_sdxl_s_published_factors(sdxl, monkeypatch):
    """`FreeUConfig()` (factors unset: the base's own, `FAMILY_DEFAULTS`) on SDXL is FreeU's published 1.3, 1.4,
    0.9, 0.2 at the decoder resnets (issue 22; SD 1.5 keeps Rerender's 1.1, 1.2, 1, 0.2)."""
    from rerender.config import ConstraintConfig
    from rerender.diffusion import freeu as freeu_module

    used, original = set(), freeu_module.rerender_freeu

    def spy(hidden, skip, residual, backbone_factor, skip_factor):
        used.add((hidden.shape[1], backbone_factor, skip_factor))
        return original(hidden, skip, residual, backbone_factor, skip_factor)

    monkeypatch.setattr(freeu_module, "rerender_freeu", spy)
    frames = [np.full((64, 64, 3), 128, np.uint8)]
    _render(sdxl, frames, num_inference_steps=2, strength=0.5, constraints=ConstraintConfig(freeu=FreeUConfig()))
    widths = sorted(set(sdxl.unet.config.block_out_channels), reverse=True)
    assert used == {(widths[0], 1.3, 0.9), (widths[1], 1.4, 0.2)}


# --------------------------------------------------------------------------------------------------------
# ControlNet Union, fp16 VAE
# --------------------------------------------------------------------------------------------------------


def test_union_controlnet_takes_several_conditions_with_their_modes(tiny_sdxl_dir):
    union = str(tiny_sdxl_dir / "controlnet_union")
    controls = [ControlConfig(model=union), ControlConfig(type="depth", model=union, strength=0.5)]
    pipe = load_pipeline(ModelConfig(base_model=str(tiny_sdxl_dir)), controls, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.is_union and len(pipe.controlnets) == 1
    seen = []
    handle = pipe.controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True
    )
    frames = make_frames(2)
    try:
        output = _render(pipe, frames, controls=controls, control_images=[frames, frames])
    finally:
        handle.remove()
    assert np.isfinite(output.images).all()
    assert all(kwargs["control_type_idx"] == [3, 1] for kwargs in seen)  # canny 3, depth 1
    assert seen[0]["control_type"][0].tolist() == [0, 1, 0, 1, 0, 0, 0, 0]
    assert seen[0]["conditioning_scale"] == [1.0, 0.5] and len(seen[0]["controlnet_cond"]) == 2
    with pytest.raises(ConfigError, match="control.control_mode"):
        _render(
            pipe,
            frames,
            controls=[ControlConfig(type="precomputed", model=union, maps="x")] * 2,
            control_images=[frames, frames],
        )
    with pytest.raises(ConfigError, match="ControlNet Union"):
        load_pipeline(
            ModelConfig(base_model=str(tiny_sdxl_dir)),
            [ControlConfig(model=union), ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))],
        )


def test_fp16_vae_overflow_never_gives_nan(sdxl, caplog):
    """A VAE whose activations overflow float16 (weights scaled up, as the SDXL VAE's activations are large) is
    redone in float32: finite output, a warning, the VAE left in float16."""
    vae = sdxl.vae
    original = {key: value.clone() for key, value in vae.state_dict().items()}
    try:
        with torch.no_grad():
            vae.decoder.conv_in.weight.mul_(3e4)
            vae.decoder.conv_in.bias.mul_(3e4)
        vae.to(torch.float16)
        latents = torch.randn(1, 4, 8, 8)
        with torch.no_grad():
            assert not torch.isfinite(vae.decoder.conv_in(latents.half())).all()  # the overflow is real
            with caplog.at_level(logging.WARNING):
                image = sdxl.decode_latents(latents)
        assert torch.isfinite(image).all() and image.shape == (1, 3, 16, 16)
        assert vae.dtype == torch.float16
        assert any("overflowed in float16" in record.getMessage() for record in caplog.records)
    finally:
        vae.to(torch.float32)
        vae.load_state_dict(original)


def test_fp16_load_keeps_the_sdxl_vae_in_float32(tiny_sdxl_dir):
    pipe = load_pipeline(
        ModelConfig(base_model=str(tiny_sdxl_dir), dtype="float16"),
        [ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))],
        device="cpu",
    )
    assert pipe.unet.dtype == torch.float16 and pipe.vae.dtype == torch.float32


def test_default_controlnets_per_family():
    control = ControlConfig(type="depth")
    assert control.model_for("sd15") == "lllyasviel/sd-controlnet-depth"
    assert control.model_for("sdxl") == "diffusers/controlnet-depth-sdxl-1.0"
    assert ControlConfig(type="hed").model_for("sdxl") == "xinsir/controlnet-union-sdxl-1.0"
    assert ControlConfig(model="mine").model_for("sdxl") == "mine"


def test_download_selects_both_text_encoders_and_fp16_variants():
    from rerender.weights import base_components, select_files

    files = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors",
        "text_encoder_2/config.json",
        "text_encoder_2/model.safetensors",
        "text_encoder_2/model.fp16.safetensors",
        "tokenizer/vocab.json",
        "tokenizer_2/vocab.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "sd_xl_base_1.0.safetensors",
    ]
    components = base_components(False, "sdxl")
    assert "text_encoder_2" in components and "tokenizer_2" in components
    assert "text_encoder_2" not in base_components(False, "sd15")
    fetched, skipped = select_files(files, half_precision=True, components=components)
    assert "text_encoder_2/model.fp16.safetensors" in fetched and "tokenizer_2/vocab.json" in fetched
    assert "text_encoder_2/model.safetensors" in skipped and "sd_xl_base_1.0.safetensors" in skipped


# --------------------------------------------------------------------------------------------------------
# end to end: the CLI with a tiny SDXL folder as --model, and `rerender env`
# --------------------------------------------------------------------------------------------------------


def test_cli_translate_with_a_tiny_sdxl_folder(capsys, synthetic_clip, tmp_path, tiny_sdxl_dir):
    from rerender.cli import main
    from rerender.video import probe_video

    output = tmp_path / "sdxl.mp4"
    code = main(
        [
            str(arg)
            for arg in (
                "translate",
                synthetic_clip,
                "-p",
                "a cat",
                "-o",
                output,
                "-K",
                "10",
                "-q",
                "--model",
                tiny_sdxl_dir,
                "--set",
                "resolution=64",
                "--set",
                "size_multiple=16",
                "--set",
                "propagation_preset=fast",
                "--set",
                "workers=1",
                "--set",
                "flow_estimator=dis",
                "--set",
                "vae=null",
                "--set",
                "num_inference_steps=2",
                "--set",
                "device=cpu",
                "--set",
                "negative_prompt=",
                "--set",
                "added_prompt=",
            )
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "keyframes (diffusion): [0, 10, 19]" in out  # the last frame is a keyframe too
    assert probe_video(output).frame_count == 20


def test_env_shows_the_family(tiny_sdxl_dir):
    from rerender.config import RerenderConfig, apply_overrides
    from rerender.environment import model_report

    report = model_report(apply_overrides(RerenderConfig(), {"base_model": str(tiny_sdxl_dir)}))
    assert report["sources"][0]["role"] == "base model (SDXL)"
    assert report["sources"][1]["location"] == str(tiny_sdxl_dir / "controlnet")


# --------------------------------------------------------------------------------------------------------
# IP-Adapter and LoRA on SDXL
# --------------------------------------------------------------------------------------------------------


def test_sdxl_ip_adapter_composes_with_cross_frame_attention_on_every_unet_call(tiny_sdxl_dir, tmp_path):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    from rerender.diffusion.attention import CrossFrameAttnProcessor
    from rerender.diffusion.ip_adapter import install_ip_adapter
    from rerender.diffusion.pipeline import RerenderPipeline
    from tests.tiny_models import save_tiny_ip_adapter

    pipe = RerenderPipeline.from_pretrained(str(tiny_sdxl_dir))
    pipe.set_progress_bar_config(disable=True)
    plain = _render(pipe, make_frames(2)).images
    adapter = save_tiny_ip_adapter(tmp_path / "ip", pipe.unet)
    install_ip_adapter(pipe, str(adapter), "models/ip-adapter_sd15.safetensors", 1.0)
    seen = []

    def check(module, args, kwargs):
        processors = module.attn_processors
        added = kwargs["added_cond_kwargs"]
        seen.append(
            any(isinstance(p, CrossFrameAttnProcessor) for p in processors.values())
            and any(isinstance(p, IPAdapterAttnProcessor2_0) for p in processors.values())
            and {"image_embeds", "text_embeds", "time_ids"} <= set(added)
        )

    handle = pipe.unet.register_forward_pre_hook(check, with_kwargs=True)
    warm = np.zeros((64, 64, 3), np.uint8)
    warm[..., 0] = 250
    try:
        styled = _render(pipe, make_frames(2), ip_adapter_image=warm).images
    finally:
        handle.remove()
    assert seen and all(seen)  # every UNet call: both processors and the image + SDXL conditioning
    assert np.abs(styled - plain).max() > 1e-3


def test_sdxl_lora_diffusers_and_kohya_formats_with_weights(sdxl, tmp_path):
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig as PeftLoraConfig
    from peft.utils import get_peft_model_state_dict

    from rerender.diffusion.loading import load_loras

    def unet_output():
        torch.manual_seed(0)
        sample, text = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 80)
        added = {"text_embeds": torch.randn(1, 48), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
        with torch.no_grad():
            return sdxl.unet(sample, 10, text, added_cond_kwargs=added).sample

    def text_output():
        with torch.no_grad():
            return sdxl.text_encoder_2(torch.tensor([[512, 70, 513]]))[0]

    base, base_text = unet_output(), text_output()
    unet = type(sdxl.unet).from_config(sdxl.unet.config)
    unet.load_state_dict(sdxl.unet.state_dict())
    torch.manual_seed(1)
    unet.add_adapter(
        PeftLoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    )
    StableDiffusionXLPipeline.save_lora_weights(
        tmp_path / "diffusers", unet_lora_layers=get_peft_model_state_dict(unet)
    )
    kohya = _kohya_lora(tmp_path / "kohya.safetensors", sdxl.unet, sgm=True)
    try:
        names = load_loras(
            sdxl,
            [
                LoraConfig(str(tmp_path / "diffusers" / "pytorch_lora_weights.safetensors"), 0.8),
                LoraConfig(str(kohya), 0.5),
            ],
        )
        assert names == ["lora_0", "lora_1"]
        both = unet_output()
        assert not torch.allclose(both, base, atol=1e-4)
        sdxl.set_adapters(names, adapter_weights=[0.0, 0.0])
        assert torch.allclose(unet_output(), base, atol=1e-5) and torch.allclose(text_output(), base_text)
        sdxl.set_adapters(names, adapter_weights=[0.0, 0.5])
        only_kohya = unet_output()
        assert not torch.allclose(only_kohya, base, atol=1e-4) and not torch.allclose(only_kohya, both, atol=1e-4)
    finally:
        sdxl.unload_lora_weights()


# --------------------------------------------------------------------------------------------------------
# a single SDXL file in the original (A1111 / Civitai) layout, loaded offline
# --------------------------------------------------------------------------------------------------------


def _open_clip_to_ldm(encoder, prefix: str = "conditioner.embedders.1.model.") -> dict[str, torch.Tensor]:
    """The reverse of diffusers' OpenCLIP → CLIPTextModelWithProjection conversion (SDXL's second text encoder)."""
    state = encoder.state_dict()
    model = "text_model."
    checkpoint = {
        "positional_embedding": state[model + "embeddings.position_embedding.weight"],
        "token_embedding.weight": state[model + "embeddings.token_embedding.weight"],
        "ln_final.weight": state[model + "final_layer_norm.weight"],
        "ln_final.bias": state[model + "final_layer_norm.bias"],
        "text_projection": state["text_projection.weight"].T.contiguous(),
    }
    for layer in range(encoder.config.num_hidden_layers):
        source, target = f"{model}encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            checkpoint[f"{target}attn.in_proj_{kind}"] = torch.cat(
                [state[f"{source}self_attn.{name}_proj.{kind}"] for name in ("q", "k", "v")]
            )
            checkpoint[f"{target}attn.out_proj.{kind}"] = state[f"{source}self_attn.out_proj.{kind}"]
            checkpoint[f"{target}ln_1.{kind}"] = state[f"{source}layer_norm1.{kind}"]
            checkpoint[f"{target}ln_2.{kind}"] = state[f"{source}layer_norm2.{kind}"]
            checkpoint[f"{target}mlp.c_fc.{kind}"] = state[f"{source}mlp.fc1.{kind}"]
            checkpoint[f"{target}mlp.c_proj.{kind}"] = state[f"{source}mlp.fc2.{kind}"]
    return {prefix + key: value for key, value in checkpoint.items()}


def test_single_sdxl_file_loads_offline_with_its_config_folder(sdxl, tiny_sdxl_dir, tmp_path):
    from safetensors.torch import save_file

    from tests.test_models import _unet_to_ldm, _vae_to_ldm

    checkpoint = {**_unet_to_ldm(sdxl.unet), **_vae_to_ldm(sdxl.vae), **_open_clip_to_ldm(sdxl.text_encoder_2)}
    for key, tensor in sdxl.text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        checkpoint[f"conditioner.embedders.0.transformer.{key}"] = tensor
    path = tmp_path / "juggernaut-xl-tiny.safetensors"
    save_file({key: tensor.contiguous() for key, tensor in checkpoint.items()}, str(path))
    assert detect_family(path) == "sdxl"
    pipe = load_pipeline(
        ModelConfig(base_model=str(path)),
        [ControlConfig(model=str(tiny_sdxl_dir / "controlnet"))],
        single_file_config=tiny_sdxl_dir,
        device="cpu",
    )
    assert pipe.family == "sdxl"
    for name in ("unet", "vae", "text_encoder_2"):
        loaded, expected = getattr(pipe, name).state_dict(), getattr(sdxl, name).state_dict()
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), name
    text = torch.tensor([[512, 70, 513]])
    with torch.no_grad():
        assert torch.allclose(pipe.text_encoder_2(text)[0], sdxl.text_encoder_2(text)[0], atol=1e-6)


def test_text_to_video_keyframes_on_sdxl_get_its_added_conditioning(sdxl):
    """generate's Text2Video-Zero path: every UNet call gets SDXL's pooled embedding and size numbers."""
    from rerender.diffusion.text2video import render_text_keyframes

    seen = []
    handle = sdxl.unet.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:
        images = render_text_keyframes(
            sdxl,
            "a red cube",
            [0, 4],
            (4.0, 0.0),
            (64, 48),
            num_inference_steps=4,
            noise_steps=(1, 2),
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        handle.remove()
    assert [image.shape for image in images] == [(1, 3, 48, 64)] * 2
    assert all(torch.isfinite(image).all() for image in images)
    assert seen and all(
        kwargs["added_cond_kwargs"]["time_ids"].tolist() == [[48, 64, 0, 0, 48, 64]] * 2 for kwargs in seen
    )
