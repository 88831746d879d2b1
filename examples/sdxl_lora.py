"""Restyle a video with an SDXL model (hub id, folder or single .safetensors) and SDXL LoRAs, several with weights.

    python examples/sdxl_lora.py input.mp4 out.mp4 --model RunDiffusion/Juggernaut-XL-v9 \
        --lora pixel_art_xl.safetensors:0.8 --lora film_grain_xl.safetensors:0.3

Starts from configs/sdxl.yaml (1024 px, the SDXL canny ControlNet, SDXL FreeU factors). LoRAs may be in diffusers
or kohya format; an SD 1.5 LoRA is refused before the model loads, naming both families.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rerender
from rerender.cli import run_example
from rerender.cli.options import parse_lora
from rerender.config import apply_overrides, load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("output")
    parser.add_argument("--model", default="stabilityai/stable-diffusion-xl-base-1.0", help="an SDXL model")
    parser.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]")
    parser.add_argument("--prompt", default="pixel art, a person walking, vivid colours")
    args = parser.parse_args()

    loras = [parse_lora(item) for item in args.lora]  # PATH[:SCALE] as the CLI reads it (C:\\x.safetensors is a path)
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "sdxl.yaml")
    config = apply_overrides(config, {"base_model": args.model, "loras": loras})
    result = rerender.translate(args.video, args.prompt, output=args.output, config=config)
    print(
        f"wrote {result.output} with {config.model.base_model} and LoRAs {[(lora['path'], lora['scale']) for lora in loras]}"
    )


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
