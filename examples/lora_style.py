"""Use a DreamBooth/civitai checkpoint plus LoRA styles (several, with scales) without merging them.

    python examples/lora_style.py input.mp4 out.mp4 \
        --checkpoint revAnimated_v122.safetensors --lora ghibli_style.safetensors:0.8 --lora film_grain.safetensors:0.3

The checkpoint is a single .safetensors/.ckpt file (loaded offline with the SD 1.5 config folder rerender
ships); LoRA files may be in diffusers or kohya format. The maintainers' Ghibli demo used a low denoising
strength (0.25) and ControlNet strength 0.7 so the structure follows the input closely.
"""

from __future__ import annotations

import argparse
import sys

import rerender
from rerender.cli import run_example
from rerender.cli.options import parse_lora
from rerender.config import LoraConfig, RerenderConfig, apply_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("output")
    parser.add_argument("--checkpoint", required=True, help="SD 1.5 single-file checkpoint or diffusers folder")
    parser.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]")
    parser.add_argument("--prompt", default="ghibli style, a girl walking, best quality")
    args = parser.parse_args()

    loras = [LoraConfig(**parse_lora(item)) for item in args.lora]  # PATH[:SCALE] as the CLI reads it
    config = apply_overrides(
        RerenderConfig(),
        {"base_model": args.checkpoint, "denoising_strength": 0.25, "control.strength": 0.7, "keyframe_interval": 10},
    )
    config = apply_overrides(config, {"loras": [{"path": lora.path, "scale": lora.scale} for lora in loras]})
    result = rerender.translate(args.video, args.prompt, output=args.output, config=config)
    print(f"wrote {result.output} with LoRAs {[(lora.path, lora.scale) for lora in loras]}")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
