"""Model loading offline: local folders, single-file checkpoints, LoRAs, the shipped config, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rerender.config import ControlConfig, LoraConfig, ModelConfig
from rerender.diffusion.loading import (
    SD15_CONFIG_DIR,
    check_controlnet_fits,
    load_loras,
    load_pipeline,
    resolve_device,
    resolve_dtype,
)
from rerender.errors import ConfigError, InputNotFoundError


def _tiny_model_config(folder: Path, **overrides) -> ModelConfig:
    return ModelConfig(base_model=str(folder), vae=None, **overrides)


def _tiny_controls(folder: Path) -> tuple[ControlConfig, ...]:
    return (ControlConfig(model=str(folder / "controlnet")),)


def _unet_output(pipe) -> torch.Tensor:
    torch.manual_seed(0)
    sample, text = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 32)
    with torch.no_grad():
        return pipe.unet(sample, 10, text).sample


@pytest.fixture
def tiny_pipe(tiny_pipeline_dir):
    return load_pipeline(_tiny_model_config(tiny_pipeline_dir), _tiny_controls(tiny_pipeline_dir), device="cpu")


# --------------------------------------------------------------------------------------------------------
# local folders, devices, dtypes
# --------------------------------------------------------------------------------------------------------


def test_load_from_a_local_folder(tiny_pipe):
    from rerender.diffusion.pipeline import RerenderPipeline

    assert isinstance(tiny_pipe, RerenderPipeline)
    assert type(tiny_pipe.scheduler).__name__ == "DDIMScheduler"
    assert tiny_pipe.vae_scale_factor == 2 and tiny_pipe.size_multiple == 2
    assert tiny_pipe.unet.dtype == torch.float32 and tiny_pipe.device.type == "cpu"


def test_load_with_a_separate_vae_and_dtype(tiny_pipeline_dir):
    config = ModelConfig(base_model=str(tiny_pipeline_dir), vae=str(tiny_pipeline_dir / "vae"), dtype="bfloat16")
    pipe = load_pipeline(config, _tiny_controls(tiny_pipeline_dir), device="cpu")
    assert pipe.vae.dtype == torch.bfloat16 and pipe.unet.dtype == torch.bfloat16


def test_device_and_dtype_resolution():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("auto", "cuda") == torch.float16
    assert resolve_dtype("bfloat16") == torch.bfloat16
    with pytest.raises(ConfigError, match="`model.dtype` must be one of"):
        resolve_dtype("float8")
    with pytest.raises(ConfigError, match="`model.device` must be"):
        resolve_device("tpu")


# --------------------------------------------------------------------------------------------------------
# errors that say where they looked
# --------------------------------------------------------------------------------------------------------


def test_missing_local_path_names_where_it_looked(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(InputNotFoundError, match=re.escape(str(missing))):
        load_pipeline(_tiny_model_config(missing), controlnets=[torch.nn.Module()])
    with pytest.raises(InputNotFoundError, match=r"`model.base_model` .*model.safetensors.* does not exist"):
        load_pipeline(
            ModelConfig(base_model=str(tmp_path / "model.safetensors"), vae=None), controlnets=[torch.nn.Module()]
        )


def test_uncached_hub_id_offline_says_how_to_point_to_local_weights(tiny_pipeline_dir):
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_pretrained(str(tiny_pipeline_dir / "controlnet"))
    with pytest.raises(InputNotFoundError) as raised:
        load_pipeline(ModelConfig(base_model="nobody-here/not-a-cached-model", vae=None), controlnets=[controlnet])
    message = str(raised.value)
    assert "nobody-here/not-a-cached-model" in message and "HF_HUB_OFFLINE" in message
    assert (
        "hf download nobody-here/not-a-cached-model" in message
        and "rerender download" in message
        and "Hugging Face cache" in message
    )
    with pytest.raises(InputNotFoundError, match="control.model"):
        load_pipeline(_tiny_model_config(tiny_pipeline_dir), (ControlConfig(model="nobody-here/no-controlnet"),))


def test_incompatible_controlnet_is_refused(tiny_pipeline_dir, tmp_path):
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline_dir / "unet"))
    other = ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        in_channels=4,
        cross_attention_dim=16,
        norm_num_groups=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        conditioning_embedding_out_channels=(16, 32),
    )
    with pytest.raises(ConfigError, match=r"cross_attention_dim is 16, the UNet's is 32"):
        check_controlnet_fits(unet, other, "sd2-controlnet")
    other.save_pretrained(tmp_path / "sd2-controlnet")
    with pytest.raises(ConfigError, match="does not fit the base model"):
        load_pipeline(_tiny_model_config(tiny_pipeline_dir), (ControlConfig(model=str(tmp_path / "sd2-controlnet")),))


# --------------------------------------------------------------------------------------------------------
# LoRA, written by the test in both formats
# --------------------------------------------------------------------------------------------------------


def _write_diffusers_lora(tiny_pipeline_dir: Path, folder: Path) -> Path:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig as PeftLoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline_dir / "unet"))
    torch.manual_seed(1)
    unet.add_adapter(
        PeftLoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder / "pytorch_lora_weights.safetensors"


def _write_kohya_lora(path: Path, unet, rank: int = 4, wrong_shape: bool = False) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(2)
    tensors = {}
    for name, module in unet.named_modules():
        if name.endswith(("attn1.to_q", "attn1.to_v", "attn2.to_k")) and isinstance(module, torch.nn.Linear):
            key = "lora_unet_" + name.replace(".", "_")
            in_features = module.in_features + (3 if wrong_shape else 0)
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, in_features) * 0.1
            tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank) * 0.1
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path))
    return path


def test_lora_diffusers_and_kohya_formats_with_scales(tiny_pipe, tiny_pipeline_dir, tmp_path):
    base = _unet_output(tiny_pipe)
    diffusers_file = _write_diffusers_lora(tiny_pipeline_dir, tmp_path / "diffusers-lora")
    kohya_file = _write_kohya_lora(tmp_path / "kohya.safetensors", tiny_pipe.unet)
    names = load_loras(
        tiny_pipe, [LoraConfig(path=str(diffusers_file), scale=0.8), LoraConfig(path=str(kohya_file), scale=0.5)]
    )
    assert names == ["lora_0", "lora_1"]
    assert set(tiny_pipe.get_active_adapters()) == {"lora_0", "lora_1"}
    both = _unet_output(tiny_pipe)
    assert not torch.allclose(both, base, atol=1e-4)
    tiny_pipe.set_adapters(["lora_0", "lora_1"], adapter_weights=[0.0, 0.0])  # not merged: scale 0 is the base
    assert torch.allclose(_unet_output(tiny_pipe), base, atol=1e-5)
    tiny_pipe.set_adapters(["lora_0", "lora_1"], adapter_weights=[0.8, 0.0])
    only_first = _unet_output(tiny_pipe)
    assert not torch.allclose(only_first, base, atol=1e-4) and not torch.allclose(only_first, both, atol=1e-4)


def test_an_sd15_lora_loads_without_diffusers_warning_of_a_second_text_encoder(tiny_pipe, tmp_path):
    """SD 1.5 has one text encoder; diffusers' SDXL loader warned "No LoRA keys associated to NoneType found with the
    prefix='text_encoder_2'" on every SD 1.5 LoRA (on stderr, through diffusers' own handler)."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger("diffusers")  # diffusers' loggers stop propagating here
    root.addHandler(handler)
    try:
        load_loras(tiny_pipe, [LoraConfig(path=str(_write_kohya_lora(tmp_path / "k.safetensors", tiny_pipe.unet)))])
    finally:
        root.removeHandler(handler)
    assert tiny_pipe.get_active_adapters() == ["lora_0"]
    assert not [record for record in records if "text_encoder_2" in record.getMessage()]


def test_lora_through_the_model_config(tiny_pipeline_dir, tmp_path):
    kohya_file = tmp_path / "style.safetensors"
    from diffusers import UNet2DConditionModel

    _write_kohya_lora(kohya_file, UNet2DConditionModel.from_pretrained(str(tiny_pipeline_dir / "unet")))
    config = _tiny_model_config(tiny_pipeline_dir, loras=(LoraConfig(path=str(kohya_file), scale=0.7),))
    pipe = load_pipeline(config, _tiny_controls(tiny_pipeline_dir), device="cpu")
    assert pipe.get_active_adapters() == ["lora_0"]


def test_incompatible_or_missing_lora_is_refused(tiny_pipe, tmp_path):
    wrong = _write_kohya_lora(tmp_path / "sdxl-lora.safetensors", tiny_pipe.unet, wrong_shape=True)
    with pytest.raises(
        ConfigError, match=r"`model.loras\[0\].path` .*sdxl-lora.safetensors.* does not fit the base model"
    ):
        load_loras(tiny_pipe, [LoraConfig(path=str(wrong))])
    from safetensors.torch import save_file

    save_file(
        {
            "lora_unet_nowhere_to_q.lora_down.weight": torch.zeros(4, 8),
            "lora_unet_nowhere_to_q.lora_up.weight": torch.zeros(8, 4),
        },
        str(tmp_path / "unrelated.safetensors"),
    )
    with pytest.raises(ConfigError, match="LoRA|base model"):
        load_loras(tiny_pipe, [LoraConfig(path=str(tmp_path / "unrelated.safetensors"))])
    with pytest.raises(InputNotFoundError, match="does not exist"):
        load_loras(tiny_pipe, [LoraConfig(path=str(tmp_path / "missing.safetensors"))])


# --------------------------------------------------------------------------------------------------------
# single-file checkpoints (original Stable Diffusion layout), written by the test
# --------------------------------------------------------------------------------------------------------

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


def _unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """The reverse of diffusers' LDM → diffusers UNet conversion, for any number of blocks."""
    per_level = unet.config.layers_per_block + 1
    with_attention = [bool(getattr(block, "attentions", None)) for block in unet.up_blocks]
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
    }  # SDXL's
    checkpoint = {}
    for key, tensor in unet.state_dict().items():
        module, _, parameter = key.rpartition(".")
        parts = module.split(".")
        if module in fixed:
            new = fixed[module]
        elif parts[0] == "down_blocks" and parts[2] == "downsamplers":
            new = f"input_blocks.{per_level * (int(parts[1]) + 1)}.0.op"
        elif parts[0] == "down_blocks":
            level, kind, index = int(parts[1]), parts[2], int(parts[3])
            rest = parts[4:]
            new = f"input_blocks.{per_level * level + index + 1}." + (
                "0." + _RESNET[rest[0]] if kind == "resnets" else "1." + ".".join(rest)
            )
        elif parts[0] == "mid_block":
            kind, index, rest = parts[1], int(parts[2]), parts[3:]
            new = (
                f"middle_block.{2 * index}.{_RESNET[rest[0]]}"
                if kind == "resnets"
                else "middle_block.1." + ".".join(rest)
            )
        elif parts[0] == "up_blocks" and parts[2] == "upsamplers":
            level = int(parts[1])
            new = f"output_blocks.{per_level * level + per_level - 1}.{2 if with_attention[level] else 1}.conv"
        elif parts[0] == "up_blocks":
            level, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
            new = f"output_blocks.{per_level * level + index}." + (
                "0." + _RESNET[rest[0]] if kind == "resnets" else "1." + ".".join(rest)
            )
        else:
            raise AssertionError(f"unmapped UNet key {key}")
        checkpoint[f"model.diffusion_model.{new}.{parameter}"] = tensor
    return checkpoint


def _vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    levels = len(vae.config.block_out_channels)
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    checkpoint = {}
    for key, tensor in vae.state_dict().items():
        new = key
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", new)
        new = re.sub(
            r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)",
            lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}",
            new,
        )
        new = re.sub(
            r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample", new
        )
        new = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m[1]) + 1}", new)
        new = new.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        if ".mid_block.attentions.0." in new:
            prefix, _, rest = new.partition(".mid_block.attentions.0.")
            module, _, parameter = rest.rpartition(".")
            new = f"{prefix}.mid.attn_1.{attention[module]}.{parameter}"
            if parameter == "weight" and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # the original attention uses 1×1 convolutions
        checkpoint[f"first_stage_model.{new}"] = tensor
    return checkpoint


def _write_single_file(tiny_pipeline_dir: Path, path: Path) -> Path:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline_dir / "unet"))
    vae = AutoencoderKL.from_pretrained(str(tiny_pipeline_dir / "vae"))
    text_encoder = CLIPTextModel.from_pretrained(str(tiny_pipeline_dir / "text_encoder"))
    checkpoint = {**_unet_to_ldm(unet), **_vae_to_ldm(vae)}
    for key, tensor in text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        checkpoint[f"cond_stage_model.transformer.{key}"] = tensor
    save_file({key: tensor.contiguous() for key, tensor in checkpoint.items()}, str(path))
    return path


def test_single_file_checkpoint_loads_offline_with_a_config_folder(tiny_pipe, tiny_pipeline_dir, tmp_path):
    checkpoint = _write_single_file(tiny_pipeline_dir, tmp_path / "dreambooth.safetensors")
    config = ModelConfig(base_model=str(checkpoint), vae=None)
    pipe = load_pipeline(config, _tiny_controls(tiny_pipeline_dir), single_file_config=tiny_pipeline_dir, device="cpu")
    for name in ("unet", "vae"):
        loaded, expected = getattr(pipe, name).state_dict(), getattr(tiny_pipe, name).state_dict()
        assert loaded.keys() == expected.keys()
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), name
    assert torch.allclose(_unet_output(pipe), _unet_output(tiny_pipe), atol=1e-5)
    text = torch.tensor([[512, 70, 513]])
    with torch.no_grad():
        assert torch.allclose(pipe.text_encoder(text)[0], tiny_pipe.text_encoder(text)[0])


def test_shipped_sd15_config_folder():
    from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTokenizer

    unet_config = UNet2DConditionModel.load_config(SD15_CONFIG_DIR / "unet")
    assert unet_config["cross_attention_dim"] == 768 and unet_config["block_out_channels"] == [320, 640, 1280, 1280]
    assert ControlNetModel.load_config(SD15_CONFIG_DIR / "controlnet")["conditioning_embedding_out_channels"] == [
        16,
        32,
        96,
        256,
    ]
    scheduler = DDIMScheduler.from_pretrained(SD15_CONFIG_DIR, subfolder="scheduler")
    scheduler.set_timesteps(20)
    assert scheduler.timesteps[0] == 951 and scheduler.timesteps[-1] == 1  # the official schedule
    tokenizer = CLIPTokenizer.from_pretrained(SD15_CONFIG_DIR / "tokenizer")
    # the SD 1.5 (CLIP ViT-L/14) ids of this prompt
    assert tokenizer("a photo of an astronaut riding a horse").input_ids == [
        49406,
        320,
        1125,
        539,
        550,
        18376,
        6765,
        320,
        4558,
        49407,
    ]
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
