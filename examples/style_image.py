"""A reference image as the prompt: an IP-Adapter steers every keyframe towards the look of one picture.

    python examples/style_image.py input.mp4 painting.jpg "a portrait" out.mp4 --scale 0.6

The adapter (default h94/IP-Adapter, models/ip-adapter_sd15.safetensors, with its image encoder) is loaded with
diffusers' `load_ip_adapter`; the image is encoded once and applied to every keyframe, beside the prompt and the
cross-frame constraints. `--adapter FOLDER_OR_ID` and `--weight-name models/ip-adapter-plus_sd15.safetensors`
pick another SD 1.5 adapter. Diffusion weights are required (fetch them with `rerender download`).
"""

from __future__ import annotations

import argparse
import sys

import rerender
from rerender.cli import run_example
from rerender.config import field_default, parse_override


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("style_image")
    parser.add_argument("prompt")
    parser.add_argument("output")
    parser.add_argument(
        "--scale",
        type=float,
        default=field_default("prompt.style_image_scale"),
        help="weight of the image against the text",
    )
    parser.add_argument("--adapter", default=field_default("model.ip_adapter"), help="IP-Adapter hub id or folder")
    parser.add_argument("--weight-name", default=field_default("model.ip_adapter_weight_name"))
    parser.add_argument("-K", type=int, default=field_default("keyframes.keyframe_interval"), help="keyframe interval")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config option")
    args = parser.parse_args()

    result = rerender.translate(
        args.video,
        args.prompt,
        K=args.K,
        output=args.output,
        renderer="diffusion",
        style_image=args.style_image,
        style_image_scale=args.scale,
        ip_adapter=args.adapter,
        ip_adapter_weight_name=args.weight_name,
        **dict(map(parse_override, args.set)),
    )
    print(f"wrote {result.output}: {result.frame_count} frames, keyframes {result.keyframe_indices}")


if __name__ == "__main__":
    sys.exit(run_example(main))  # errors: the CLI's one line, not a traceback
