"""`rerender download`: exactly the files a run reads, for every family and precision, with their sizes.

The hub is mocked at the function boundary (``HfApi.model_info`` returns huggingface_hub's own `ModelInfo`, built
from the published repositories' real layouts with their sizes) or at the HTTP boundary (`tests.fake_hub`, on
127.0.0.1). Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rerender.config import RerenderConfig, apply_overrides
from rerender.errors import InputNotFoundError
from tests.fake_hub import COMMIT, FakeHub, hub_env, run_cli

GB, MB = 10**9, 10**6

# The published layouts (file → bytes) of the repositories rerender fetches from, as the hub lists them.
SD15 = {
    ".gitattributes": 1548,
    "README.md": 14461,
    "model_index.json": 541,
    "v1-5-pruned.ckpt": 7703807346,
    "v1-5-pruned.safetensors": 7703324286,
    "v1-5-pruned-emaonly.ckpt": 4265380512,
    "v1-5-pruned-emaonly.safetensors": 4265146304,
    "v1-inference.yaml": 1873,
    "feature_extractor/preprocessor_config.json": 342,
    "safety_checker/config.json": 4723,
    "safety_checker/model.safetensors": 1215981830,
    "safety_checker/model.fp16.safetensors": 608018440,
    "safety_checker/pytorch_model.bin": 1216064769,
    "scheduler/scheduler_config.json": 308,
    "text_encoder/config.json": 617,
    "text_encoder/model.safetensors": 492265168,
    "text_encoder/model.fp16.safetensors": 246144152,
    "text_encoder/pytorch_model.bin": 492305335,
    "text_encoder/pytorch_model.fp16.bin": 246187076,
    "text_encoder/flax_model.msgpack": 492242815,
    "tokenizer/merges.txt": 524619,
    "tokenizer/special_tokens_map.json": 472,
    "tokenizer/tokenizer_config.json": 806,
    "tokenizer/vocab.json": 1059962,
    "unet/config.json": 743,
    "unet/diffusion_pytorch_model.safetensors": 3438167536,
    "unet/diffusion_pytorch_model.fp16.safetensors": 1719125304,
    "unet/diffusion_pytorch_model.bin": 3438354725,
    "unet/diffusion_pytorch_model.fp16.bin": 1719327893,
    "unet/diffusion_pytorch_model.non_ema.safetensors": 3438167536,
    "unet/diffusion_pytorch_model.non_ema.bin": 3438354725,
    "unet/diffusion_flax_model.msgpack": 3438110483,
    "vae/config.json": 547,
    "vae/diffusion_pytorch_model.safetensors": 334643268,
    "vae/diffusion_pytorch_model.fp16.safetensors": 167335342,
    "vae/diffusion_pytorch_model.bin": 334707217,
    "vae/diffusion_pytorch_model.fp16.bin": 167405651,
    "vae/diffusion_flax_model.msgpack": 334585761,
}
SD15_CANNY = {
    ".gitattributes": 1477,
    "README.md": 7868,
    "config.json": 920,
    "diffusion_pytorch_model.bin": 1445259701,
    "diffusion_pytorch_model.safetensors": 1445157124,
    "sd.png": 441434,
}
SDXL = {
    ".gitattributes": 1683,
    "01.png": 4609012,
    "LICENSE.md": 14140,
    "README.md": 9271,
    "comparison.png": 130405,
    "pipeline.png": 80199,
    "model_index.json": 609,
    "sd_xl_base_1.0.safetensors": 6938078334,
    "sd_xl_base_1.0_0.9vae.safetensors": 6938078334,
    "sd_xl_offset_example-lora_1.0.safetensors": 49553604,
    "scheduler/scheduler_config.json": 479,
    "text_encoder/config.json": 565,
    "text_encoder/flax_model.msgpack": 492242815,
    "text_encoder/model.fp16.safetensors": 246144152,
    "text_encoder/model.onnx": 492587457,
    "text_encoder/model.safetensors": 492265168,
    "text_encoder/openvino_model.bin": 492242672,
    "text_encoder/openvino_model.xml": 847521,
    "text_encoder_2/config.json": 575,
    "text_encoder_2/flax_model.msgpack": 2778640439,
    "text_encoder_2/model.fp16.safetensors": 1389382176,
    "text_encoder_2/model.onnx": 1041992,
    "text_encoder_2/model.onnx_data": 2778639360,
    "text_encoder_2/model.safetensors": 2778702264,
    "text_encoder_2/openvino_model.bin": 2778640128,
    "text_encoder_2/openvino_model.xml": 1998513,
    "tokenizer/merges.txt": 524619,
    "tokenizer/special_tokens_map.json": 460,
    "tokenizer/tokenizer_config.json": 737,
    "tokenizer/vocab.json": 1059962,
    "tokenizer_2/merges.txt": 524619,
    "tokenizer_2/special_tokens_map.json": 460,
    "tokenizer_2/tokenizer_config.json": 725,
    "tokenizer_2/vocab.json": 1059962,
    "unet/config.json": 1680,
    "unet/diffusion_flax_model.msgpack": 10269848316,
    "unet/diffusion_pytorch_model.fp16.safetensors": 5135149760,
    "unet/diffusion_pytorch_model.safetensors": 10270077736,
    "unet/model.onnx": 7293930,
    "unet/model.onnx_data": 10269270016,
    "unet/openvino_model.bin": 10268938240,
    "unet/openvino_model.xml": 15416291,
    "vae/config.json": 642,
    "vae/diffusion_flax_model.msgpack": 334585761,
    "vae/diffusion_pytorch_model.fp16.safetensors": 167335342,
    "vae/diffusion_pytorch_model.safetensors": 334643268,
    "vae_1_0/config.json": 607,
    "vae_1_0/diffusion_pytorch_model.fp16.safetensors": 167335342,
    "vae_1_0/diffusion_pytorch_model.safetensors": 334643268,
    "vae_decoder/config.json": 607,
    "vae_decoder/model.onnx": 198093688,
    "vae_decoder/openvino_model.bin": 197983748,
    "vae_decoder/openvino_model.xml": 946986,
    "vae_encoder/config.json": 607,
    "vae_encoder/model.onnx": 136775811,
    "vae_encoder/openvino_model.bin": 136655148,
    "vae_encoder/openvino_model.xml": 863637,
}
SDXL_CANNY = {
    ".gitattributes": 1519,
    "README.md": 4405,
    "config.json": 1587,
    "diffusion_pytorch_model.bin": 5004233241,
    "diffusion_pytorch_model.fp16.safetensors": 2502139136,
    "diffusion_pytorch_model.safetensors": 5004167864,
    "out_bird.png": 1010263,
}
SDXL_VAE_FIX = {
    ".gitattributes": 1519,
    "README.md": 3433,
    "config.json": 631,
    "diffusion_pytorch_model.bin": 334707217,
    "diffusion_pytorch_model.safetensors": 334643268,
    "images/activation-magnitudes.jpg": 157315,
    "sdxl.vae.safetensors": 334641164,
    "sdxl_vae.safetensors": 334641164,
}
ZIMAGE = {
    ".gitattributes": 1646,
    "README.md": 14071,
    "assets/showcase.jpg": 2106405,
    "model_index.json": 449,
    "scheduler/scheduler_config.json": 173,
    "text_encoder/config.json": 726,
    "text_encoder/generation_config.json": 239,
    "text_encoder/model-00001-of-00003.safetensors": 3957900840,
    "text_encoder/model-00002-of-00003.safetensors": 3987450520,
    "text_encoder/model-00003-of-00003.safetensors": 99630640,
    "text_encoder/model.safetensors.index.json": 32819,
    "tokenizer/merges.txt": 1671853,
    "tokenizer/tokenizer.json": 11422654,
    "tokenizer/tokenizer_config.json": 9732,
    "tokenizer/vocab.json": 2776833,
    "transformer/config.json": 473,
    "transformer/diffusion_pytorch_model-00001-of-00003.safetensors": 4989364312,
    "transformer/diffusion_pytorch_model-00002-of-00003.safetensors": 4984214160,
    "transformer/diffusion_pytorch_model-00003-of-00003.safetensors": 2340294600,
    "transformer/diffusion_pytorch_model.safetensors.index.json": 49542,
    "vae/config.json": 805,
    "vae/diffusion_pytorch_model.safetensors": 167666902,
}
ZIMAGE_CONTROLNET = {
    ".gitattributes": 1519,
    "README.md": 5236,
    "Z-Image-Turbo-Fun-Controlnet-Union.safetensors": 3081784248,
    "asset/pose.jpg": 180412,
}
FLUX_SCHNELL = {
    ".gitattributes": 1655,
    "LICENSE.md": 11357,
    "README.md": 2950,
    "ae.safetensors": 335304388,
    "flux1-schnell.safetensors": 23782506688,
    "model_index.json": 536,
    "schnell_grid.jpeg": 1671012,
    "scheduler/scheduler_config.json": 274,
    "text_encoder/config.json": 613,
    "text_encoder/model.safetensors": 246144152,
    "text_encoder_2/config.json": 782,
    "text_encoder_2/model-00001-of-00002.safetensors": 4994582224,
    "text_encoder_2/model-00002-of-00002.safetensors": 4530066360,
    "text_encoder_2/model.safetensors.index.json": 19885,
    "tokenizer/merges.txt": 524619,
    "tokenizer/special_tokens_map.json": 588,
    "tokenizer/tokenizer_config.json": 705,
    "tokenizer/vocab.json": 1059962,
    "tokenizer_2/special_tokens_map.json": 2543,
    "tokenizer_2/spiece.model": 791656,
    "tokenizer_2/tokenizer.json": 2424035,
    "tokenizer_2/tokenizer_config.json": 20817,
    "transformer/config.json": 321,
    "transformer/diffusion_pytorch_model-00001-of-00003.safetensors": 9962580296,
    "transformer/diffusion_pytorch_model-00002-of-00003.safetensors": 9949328904,
    "transformer/diffusion_pytorch_model-00003-of-00003.safetensors": 3870584832,
    "transformer/diffusion_pytorch_model.safetensors.index.json": 121262,
    "vae/config.json": 774,
    "vae/diffusion_pytorch_model.safetensors": 167666902,
}
FLUX_DEV = {
    **{name: size for name, size in FLUX_SCHNELL.items() if "schnell" not in name},
    "flux1-dev.safetensors": 23802932552,
    "dev_grid.jpg": 1156712,
}
FLUX_CANNY = {
    ".gitattributes": 1519,
    "README.md": 2833,
    "config.json": 373,
    "diffusion_pytorch_model.safetensors": 3583774152,
    "canny.jpg": 88523,
}
GMFLOW = {"models/gmflow_sintel-0c07dcb3.pth": 18818813, "models/control_sd15_canny.pth": 5710753329}
FLUX_DEV_CARD = {"license": "other", "license_name": "flux-1-dev-non-commercial-license"}
REPOSITORIES = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": (SD15, {}),
    "lllyasviel/sd-controlnet-canny": (SD15_CANNY, {}),
    "stabilityai/stable-diffusion-xl-base-1.0": (SDXL, {}),
    "diffusers/controlnet-canny-sdxl-1.0": (SDXL_CANNY, {}),
    "madebyollin/sdxl-vae-fp16-fix": (SDXL_VAE_FIX, {}),
    "Tongyi-MAI/Z-Image-Turbo": (ZIMAGE, {"cardData": {"license": "apache-2.0"}}),
    "alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union": (ZIMAGE_CONTROLNET, {}),
    "black-forest-labs/FLUX.1-schnell": (FLUX_SCHNELL, {"cardData": {"license": "apache-2.0"}}),
    "black-forest-labs/FLUX.1-dev": (FLUX_DEV, {"gated": "auto", "cardData": FLUX_DEV_CARD}),
    "InstantX/FLUX.1-dev-Controlnet-Canny": (FLUX_CANNY, {"cardData": FLUX_DEV_CARD}),
    "PKUWilliamYang/Rerender": (GMFLOW, {}),
}


def _model_info(self, repo_id, *, files_metadata=False, **kwargs):
    """`HfApi.model_info` answering from `REPOSITORIES` with the hub's JSON (huggingface_hub parses it)."""
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.hf_api import ModelInfo

    if repo_id not in REPOSITORIES:  # what the hub answers: 404 with its error code
        import httpx

        url = f"https://huggingface.co/api/models/{repo_id}"
        response = httpx.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=httpx.Request("GET", url))
        raise RepositoryNotFoundError(f"404 Client Error. Repository Not Found for url: {url}", response=response)
    files, extra = REPOSITORIES[repo_id]
    siblings = [
        {"rfilename": name}
        | ({"size": size, "blobId": hashlib.sha1(name.encode()).hexdigest()} if files_metadata else {})
        for name, size in files.items()
    ]
    return ModelInfo(id=repo_id, sha=COMMIT, siblings=siblings, private=False, **{"gated": False, **extra})


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A connected machine whose hub answers from `REPOSITORIES`; nothing cached; downloading fails the test."""
    import huggingface_hub
    from huggingface_hub import constants

    import rerender.weights as weights

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "hub_offline", lambda: False)
    monkeypatch.setattr(weights, "_endpoint_reachable", lambda endpoint, timeout: True)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", _model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded"))
    return tmp_path / "hub"


def _plan(overrides: dict, precision: str) -> dict[str, dict]:
    from rerender.weights import download_weights

    config = apply_overrides(RerenderConfig(), overrides)
    records = download_weights(config, dry_run=True, progress=False, precision=precision)
    return {record["location"] or f"unresolved {index}": record for index, record in enumerate(records)}


SD15_CONFIGS = [
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


@pytest.mark.parametrize(("precision", "variant"), [("float32", ""), ("float16", ".fp16")], ids=["float32", "float16"])
def test_sd15_fetches_the_pipeline_folders_its_controlnet_and_gmflow(hub, precision, variant):
    plan = _plan({}, precision)
    base = plan["stable-diffusion-v1-5/stable-diffusion-v1-5"]
    weights = [
        f"text_encoder/model{variant}.safetensors",
        f"unet/diffusion_pytorch_model{variant}.safetensors",
        f"vae/diffusion_pytorch_model{variant}.safetensors",
    ]
    assert base["fetched"] == sorted(SD15_CONFIGS + weights)
    assert base["sizes"] == {name: SD15[name] for name in base["fetched"]}
    assert base["size"] == sum(SD15[name] for name in base["fetched"])
    assert plan["lllyasviel/sd-controlnet-canny"]["fetched"] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert plan["PKUWilliamYang/Rerender"]["fetched"] == ["models/gmflow_sintel-0c07dcb3.pth"]
    assert plan["PKUWilliamYang/Rerender"]["size"] == 18818813
    assert len(plan) == 3


SDXL_CONFIGS = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
    "unet/config.json",
]


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_sdxl_full_precision_fetches_both_text_encoders_and_its_own_vae(hub, precision):
    # bfloat16 loads the default files (loading asks diffusers for the fp16 variant only in float16)
    plan = _plan({"base_model": "stabilityai/stable-diffusion-xl-base-1.0", "flow_estimator": "dis"}, precision)
    assert list(plan) == ["stabilityai/stable-diffusion-xl-base-1.0", "diffusers/controlnet-canny-sdxl-1.0"]
    base = plan["stabilityai/stable-diffusion-xl-base-1.0"]
    assert base["role"] == "base model (SDXL)"
    assert base["fetched"] == sorted(
        SDXL_CONFIGS
        + [
            "text_encoder/model.safetensors",
            "text_encoder_2/model.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    )
    assert not [name for name in base["fetched"] if "openvino" in name or name.startswith("vae_")]
    assert plan["diffusers/controlnet-canny-sdxl-1.0"]["fetched"] == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]


def test_sdxl_half_precision_fetches_fp16_variants_and_the_fp16_fixed_vae_instead_of_its_own(hub):
    plan = _plan({"base_model": "stabilityai/stable-diffusion-xl-base-1.0", "flow_estimator": "dis"}, "float16")
    base = plan["stabilityai/stable-diffusion-xl-base-1.0"]
    assert base["fetched"] == sorted(
        SDXL_CONFIGS
        + [
            "text_encoder/model.fp16.safetensors",
            "text_encoder_2/model.fp16.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
        ]
    )
    fixed = plan["madebyollin/sdxl-vae-fp16-fix"]
    assert fixed["role"] == "VAE (SDXL fp16-fixed)"
    assert fixed["fetched"] == ["config.json", "diffusion_pytorch_model.safetensors"]  # not the two single files
    assert fixed["size"] == 631 + 334643268
    assert plan["diffusers/controlnet-canny-sdxl-1.0"]["fetched"] == [
        "config.json",
        "diffusion_pytorch_model.fp16.safetensors",
    ]
    # a VAE the user chose replaces both
    chosen = _plan(
        {
            "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
            "flow_estimator": "dis",
            "vae": "madebyollin/sdxl-vae-fp16-fix",
        },
        "float16",
    )
    assert [record["role"] for record in chosen.values()] == ["base model (SDXL)", "ControlNet (canny)", "VAE"]


def test_sdxl_style_image_fetches_the_sdxl_adapter_with_the_vit_h_encoder(hub):
    REPOSITORIES["h94/IP-Adapter"] = (
        {
            "models/ip-adapter_sd15.safetensors": 44642768,
            "models/image_encoder/config.json": 587,
            "models/image_encoder/model.safetensors": 2528373448,
            "models/image_encoder/pytorch_model.bin": 2528481905,
            "sdxl_models/ip-adapter_sdxl.safetensors": 702585097,
            "sdxl_models/ip-adapter_sdxl_vit-h.safetensors": 698390793,
            "sdxl_models/image_encoder/config.json": 560,
            "sdxl_models/image_encoder/model.safetensors": 3689912664,
        },
        {},
    )
    try:
        plan = _plan(
            {
                "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
                "flow_estimator": "dis",
                "style_image": "s.png",
            },
            "float32",
        )
    finally:
        del REPOSITORIES["h94/IP-Adapter"]
    assert plan["h94/IP-Adapter"]["fetched"] == [
        "models/image_encoder/config.json",
        "models/image_encoder/model.safetensors",
        "sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
    ]


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_zimage_fetches_its_folders_every_shard_and_the_union_controlnet_file(hub, precision):
    plan = _plan({"base_model": "Tongyi-MAI/Z-Image-Turbo", "flow_estimator": "dis"}, precision)
    base = plan["Tongyi-MAI/Z-Image-Turbo"]
    assert base["role"] == "base model (Z-Image)"
    # published in bfloat16 without a separate variant: the same files for either precision
    folders = [name for name in ZIMAGE if "/" in name and not name.startswith("assets/")]
    assert base["fetched"] == sorted([*folders, "model_index.json"])
    assert base["size"] == sum(ZIMAGE[name] for name in base["fetched"])
    control = plan["alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union"]
    assert control["fetched"] == ["Z-Image-Turbo-Fun-Controlnet-Union.safetensors"]
    assert control["size"] == 3081784248
    assert base["terms"] is None


def test_flux_fetches_both_text_encoders_the_sharded_transformer_and_the_named_controlnet(hub):
    overrides = {
        "base_model": "black-forest-labs/FLUX.1-schnell",
        "flow_estimator": "dis",
        "control.0.model": "InstantX/FLUX.1-dev-Controlnet-Canny",
    }
    plan = _plan(overrides, "bfloat16")
    base = plan["black-forest-labs/FLUX.1-schnell"]
    expected = sorted(name for name in FLUX_SCHNELL if "/" in name or name == "model_index.json")
    assert base["fetched"] == expected
    assert "flux1-schnell.safetensors" in base["skipped"] and "ae.safetensors" in base["skipped"]
    assert base["terms"] is None  # Apache-2.0, not gated
    control = plan["InstantX/FLUX.1-dev-Controlnet-Canny"]
    assert control["fetched"] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert "non-commercial" in control["terms"]


def test_flux_dev_is_said_to_be_gated_and_non_commercial_and_flux_without_a_controlnet_is_unresolved(hub):
    plan = _plan({"base_model": "black-forest-labs/FLUX.1-dev", "flow_estimator": "dis"}, "bfloat16")
    base = plan["black-forest-labs/FLUX.1-dev"]
    assert "gated" in base["terms"] and "flux-1-dev-non-commercial-license: non-commercial use only" in base["terms"]
    assert "huggingface.co/black-forest-labs/FLUX.1-dev" in base["terms"]
    unresolved = [record["note"] for key, record in plan.items() if key.startswith("unresolved")]
    assert len(unresolved) == 1 and "Flux has no default" in unresolved[0] and "control.0.model" in unresolved[0]
    assert "lllyasviel/sd-controlnet-canny" not in plan  # never an SD ControlNet for Flux


def test_cli_dry_run_prints_each_file_with_its_size_and_the_total(hub, capsys):
    from rerender.cli import main

    args = [
        "download",
        "--dry-run",
        "--no-flow",
        "--precision",
        "fp16",
        "--model",
        "stabilityai/stable-diffusion-xl-base-1.0",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "  fetch unet/diffusion_pytorch_model.fp16.safetensors  5.14 GB" in lines
    assert "  fetch text_encoder_2/model.fp16.safetensors  1.39 GB" in lines
    assert "  fetch diffusion_pytorch_model.safetensors  334.6 MB" in lines  # the fixed VAE
    assert (
        "  skip  sd_xl_base_1.0.safetensors" in lines and "  skip  unet/diffusion_pytorch_model.safetensors" in lines
    )
    base_total = 5135149760 + 1389382176 + 246144152 + sum(SDXL[name] for name in SDXL_CONFIGS)
    expected = base_total + 631 + 334643268 + 1587 + 2502139136
    total = [line for line in lines if line.startswith("total: ")]
    assert total == [
        f"total: {15 + 1 + 2 + 2} files, {expected / GB:.2f} GB ({expected / GB:.2f} GB not cached before, would fetch)"
    ]
    assert f"base model (SDXL): stabilityai/stable-diffusion-xl-base-1.0: 16 files, {base_total / GB:.2f} GB" in out


def test_flux_dev_terms_are_printed(hub, capsys):
    from rerender.cli import main

    assert main(["download", "--dry-run", "--no-flow", "--model", "black-forest-labs/FLUX.1-dev"]) == 0
    out = capsys.readouterr().out
    assert "  terms: gated: accept its terms on https://huggingface.co/black-forest-labs/FLUX.1-dev" in out
    assert "not resolved: the ControlNet of control[0] (canny): Flux has no default" in out


def test_an_unknown_id_is_refused_naming_it_and_its_option(hub, capsys):
    from rerender.cli import main
    from rerender.weights import download_weights

    config = apply_overrides(RerenderConfig(), {"base_model": "nobody/no-such-model", "flow_estimator": "dis"})
    with pytest.raises(InputNotFoundError) as raised:
        download_weights(config, dry_run=True, progress=False)
    assert "the hub has no model 'nobody/no-such-model' (`model.base_model`" in str(raised.value)
    assert main(["download", "--dry-run", "--no-flow", "--model", "nobody/no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "nobody/no-such-model" in err and "check the id" in err and "Traceback" not in err


def test_offline_dry_run_names_flux_dev_terms_without_the_hub(monkeypatch, tmp_path, capsys):
    from rerender.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    assert main(["download", "--dry-run", "--no-flow", "--model", "black-forest-labs/FLUX.1-dev"]) == 0
    out = capsys.readouterr().out
    assert "base model (Flux): black-forest-labs/FLUX.1-dev: listed by pattern" in out
    assert (
        "  fetch transformer/*" in out and "  fetch text_encoder_2/*" in out and "FLUX.1 [dev] Non-Commercial" in out
    )


# ------------------------------------------------------------------------------------ through HTTP, then loading


def _tiny_sdxl_repositories(tiny_sdxl_dir: Path) -> dict[str, dict[str, bytes]]:
    """The tiny SDXL model laid out as the hub publishes SDXL (fp16 variants beside the full weights, single files,
    ONNX/OpenVINO exports), its ControlNet under the default SDXL canny id, and a tiny fp16-fixed VAE."""
    import torch
    from safetensors.torch import load_file, save_file

    def half(path: Path) -> bytes:
        tensors = {name: tensor.half().contiguous() for name, tensor in load_file(str(path)).items()}
        target = path.with_suffix(".fp16-tmp")
        save_file(tensors, str(target))
        data = target.read_bytes()
        target.unlink()
        return data

    base: dict[str, bytes] = {}
    for path in sorted(tiny_sdxl_dir.rglob("*")):
        name = str(path.relative_to(tiny_sdxl_dir))
        if not path.is_file() or name.startswith(("_", "controlnet")):
            continue
        base[name] = path.read_bytes()
        if name.endswith(".safetensors"):
            base[name.replace(".safetensors", ".fp16.safetensors")] = half(path)
            base[name.replace(Path(name).name, "openvino_model.xml")] = b"<xml/>"
    base["sd_xl_base_1.0.safetensors"] = b"single file"
    base["README.md"] = b"# tiny"
    controlnet = {
        name.removeprefix("controlnet/"): data
        for name, data in (
            (str(p.relative_to(tiny_sdxl_dir)), p.read_bytes()) for p in (tiny_sdxl_dir / "controlnet").iterdir()
        )
    }
    from diffusers import AutoencoderKL

    torch.manual_seed(7)
    vae = AutoencoderKL.from_config({**AutoencoderKL.load_config(tiny_sdxl_dir / "vae"), "force_upcast": False})
    folder = tiny_sdxl_dir.parent / "fixed-vae"
    vae.save_pretrained(folder)
    fixed = {path.name: path.read_bytes() for path in folder.iterdir()}
    fixed["sdxl_vae.safetensors"] = b"single file"
    return {
        "fake/tiny-sdxl": base,
        "diffusers/controlnet-canny-sdxl-1.0": controlnet,
        "madebyollin/sdxl-vae-fp16-fix": fixed,
    }


@pytest.mark.slow
def test_sdxl_fp16_download_over_http_fetches_what_loading_reads_and_loads_offline_with_the_fixed_vae(
    tiny_sdxl_dir, tmp_path, monkeypatch
):
    import torch
    from huggingface_hub import constants

    from rerender.config import ControlConfig, ModelConfig
    from rerender.diffusion.loading import load_pipeline
    from rerender.weights import missing_weights

    repositories = _tiny_sdxl_repositories(tiny_sdxl_dir)
    home = tmp_path / "hf"
    with FakeHub(repositories) as hub:
        env = hub_env(hub, home)
        args = ["download", "--model", "fake/tiny-sdxl", "--precision", "fp16", "--no-flow", "-q"]
        dry = run_cli([*args, "--dry-run"], env)
        assert dry.returncode == 0, dry.stderr
        assert hub.downloaded == []
        done = run_cli(args, env)
        assert done.returncode == 0, done.stderr
    listed = {line.split()[1] for line in dry.stdout.splitlines() if line.startswith("  fetch ")}
    downloaded = set(hub.downloaded)
    assert {name for _, name in downloaded} == listed  # the dry run said exactly what was fetched
    base = {name for repo, name in downloaded if repo == "fake/tiny-sdxl"}
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in base and "text_encoder_2/model.fp16.safetensors" in base
    assert not [
        name
        for name in base
        if name.startswith("vae/") or "openvino" in name or ".fp16." not in name and name.endswith(".safetensors")
    ]
    assert ("madebyollin/sdxl-vae-fp16-fix", "diffusion_pytorch_model.safetensors") in downloaded
    assert ("madebyollin/sdxl-vae-fp16-fix", "sdxl_vae.safetensors") not in downloaded
    from rerender.cli.commands.download import format_size

    size = sum(len(repositories[repo][name]) for repo, name in downloaded)
    total = f"total: {len(downloaded)} files, {format_size(size)} ({format_size(size)} not cached before, would fetch)"
    assert total in dry.stdout.splitlines()
    # the real run says the same sizes first (before downloading), then where each repository was saved
    planned = [line for line in done.stdout.splitlines() if line.startswith("  fetch ")]
    assert planned == [line for line in dry.stdout.splitlines() if line.startswith("  fetch ")]
    assert (
        f"base model (SDXL): fake/tiny-sdxl -> {home / 'hub' / 'models--fake--tiny-sdxl' / 'snapshots' / COMMIT}"
        in (done.stdout.splitlines())
    )
    assert total.replace("would fetch", "fetched") in done.stdout.splitlines()

    # offline, from what was fetched alone: the run in float16 loads the fixed VAE (never a black frame)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ModelConfig(base_model="fake/tiny-sdxl", dtype="float16")
    config = RerenderConfig(model=model)
    assert missing_weights(config) == []
    pipe = load_pipeline(model, [ControlConfig()], device="cpu")
    assert pipe.unet.dtype == torch.float16 and pipe.vae.dtype == torch.float16
    assert pipe.vae.config.force_upcast is False  # the fixed VAE, kept in float16
    with torch.no_grad():
        image = pipe.vae.decode(torch.randn(1, 4, 8, 8, dtype=torch.float16)).sample
    assert torch.isfinite(image).all() and image.abs().max() > 0


def test_a_gated_repository_over_http_is_named_with_its_terms_and_refused_clearly(tmp_path):
    repositories = {
        "fake/gated-sd": {
            "model_index.json": b"{}",
            "unet/config.json": b"{}",
            "unet/diffusion_pytorch_model.safetensors": b"x" * 2048,
        },
        "lllyasviel/sd-controlnet-canny": {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"y" * 10},
    }
    metadata = {"fake/gated-sd": {"gated": "manual", "cardData": {"license": "cc-by-nc-4.0"}}}
    with FakeHub(repositories, metadata) as hub:
        env = hub_env(hub, tmp_path / "hf")
        args = ["download", "--model", "fake/gated-sd", "--no-flow", "-q", "--precision", "fp32"]
        dry = run_cli([*args, "--dry-run"], env)
        assert dry.returncode == 0, dry.stderr
        assert "  terms: gated: accept its terms on https://huggingface.co/fake/gated-sd" in dry.stdout
        assert "licence cc-by-nc-4.0: non-commercial use only" in dry.stdout
        assert "  fetch unet/diffusion_pytorch_model.safetensors  2.0 KB" in dry.stdout.splitlines()
        done = run_cli(args, env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'fake/gated-sd' (--model) is gated" in done.stderr and "hf auth login" in done.stderr
    assert hub.downloaded == []


@pytest.mark.parametrize(
    ("repository", "layout", "control"),
    [
        ("Tongyi-MAI/Z-Image-Turbo", ZIMAGE, {}),
        (
            "black-forest-labs/FLUX.1-schnell",
            FLUX_SCHNELL,
            {"control.0.model": "InstantX/FLUX.1-dev-Controlnet-Canny"},
        ),
    ],
    ids=["zimage", "flux"],
)
def test_a_cache_holding_what_was_fetched_counts_as_present_offline(hub, monkeypatch, repository, layout, control):
    """Sharded transformers and text encoders are recognised by their index: what `download` fetched is enough."""
    from rerender.weights import missing_weights
    from tests.test_weights import _cache_file

    overrides = {"base_model": repository, "flow_estimator": "dis", **control}
    plan = _plan(overrides, "bfloat16")
    monkeypatch.setattr("rerender.weights.hub_offline", lambda: True)
    config = apply_overrides(RerenderConfig(), overrides)
    assert [source.location for source in missing_weights(config)] == [record["location"] for record in plan.values()]
    for record in plan.values():
        for name in record["fetched"]:
            pipeline = "ZImagePipeline" if "Z-Image" in repository else "FluxPipeline"  # as published
            data = f'{{"_class_name": "{pipeline}"}}'.encode() if name == "model_index.json" else b"{}"
            _cache_file(hub, record["location"], name, data)
    assert missing_weights(config) == []


def test_an_unreachable_hub_is_refused_as_such_not_as_a_wrong_id(hub, monkeypatch, capsys):
    import httpx

    import rerender.weights as weights
    from rerender.cli import main
    from rerender.errors import ServiceUnavailableError
    from rerender.weights import download_weights

    config = apply_overrides(RerenderConfig(), {"flow_estimator": "dis"})
    monkeypatch.setattr(weights, "_endpoint_reachable", lambda endpoint, timeout: False)
    with pytest.raises(ServiceUnavailableError, match=r"needs the network, but the hub \(.*\) cannot be reached"):
        download_weights(config, progress=False)
    assert main(["download", "--no-flow"]) != 0 and "cannot be reached" in capsys.readouterr().err
    # reachable at first, then the connection fails while listing: a run-time failure naming the source
    monkeypatch.setattr(weights, "_endpoint_reachable", lambda endpoint, timeout: True)

    def refused(self, repo_id, **kwargs):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refused)
    with pytest.raises(ServiceUnavailableError) as raised:
        download_weights(config, dry_run=True, progress=False)
    message = str(raised.value)
    assert "base model (SD 1.5) 'stable-diffusion-v1-5/stable-diffusion-v1-5' (`model.base_model`)" in message
    assert "ConnectError" in message


def test_sdxl_in_float16_needs_its_own_vae_only_without_the_fixed_one(empty_offline_cache):
    """The fixed VAE is optional (without it the model's VAE decodes in float32); with it, the model's own VAE is not
    read, so a cache made by `download --precision fp16` (no `vae/`) is complete."""
    from rerender.environment import model_report
    from rerender.weights import missing_weights
    from tests.test_weights import _cache_file

    sdxl, canny = "stabilityai/stable-diffusion-xl-base-1.0", "diffusers/controlnet-canny-sdxl-1.0"
    config = apply_overrides(RerenderConfig(), {"base_model": sdxl, "dtype": "float16", "flow_estimator": "dis"})
    for name in (
        *SDXL_CONFIGS,
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.fp16.safetensors",
    ):
        data = b'{"addition_embed_type": "text_time"}' if name == "unet/config.json" else b"{}"
        _cache_file(empty_offline_cache, sdxl, name, data)
    _cache_file(
        empty_offline_cache,
        sdxl,
        "model_index.json",
        b'{"text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}',
    )
    _cache_file(empty_offline_cache, sdxl, "text_encoder_2/model.fp16.safetensors")
    for name in ("config.json", "diffusion_pytorch_model.fp16.safetensors"):
        _cache_file(empty_offline_cache, canny, name)
    assert [source.location for source in missing_weights(config)] == [sdxl]  # no vae/, no fixed VAE: incomplete
    fixed = [item for item in model_report(config)["sources"] if item["location"] == "madebyollin/sdxl-vae-fp16-fix"]
    assert fixed == [
        {
            "role": "VAE (SDXL fp16-fixed)",
            "key": "model.vae",
            "location": "madebyollin/sdxl-vae-fp16-fix",
            "present": False,
            "downloadable": False,
            "optional": True,
        }
    ]
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        _cache_file(empty_offline_cache, "madebyollin/sdxl-vae-fp16-fix", name)
    assert missing_weights(config) == []  # the fixed VAE replaces the model's own
    assert missing_weights(apply_overrides(config, {"dtype": "float32"})) != []  # float32 reads the model's own VAE


@pytest.fixture
def empty_offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"
