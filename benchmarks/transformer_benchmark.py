"""The keyframe benchmark both transformer families share (`zimage_benchmark.py`, `flux_benchmark.py`).

One family's script builds its components (the real block structure at reduced width, random weights) and a
`BenchmarkFamily`; `run` does the rest the same way for both: in one process, diffusers' plain ControlNet pipeline
(one call per keyframe) before and after ours (the anchor, then keyframes with cross-frame attention, shape-aware and
pixel-aware fusion in two passes, AdaIN), on frames of the demo clip with canny maps. Printed: seconds per
keyframe (the anchor apart), the time ratio against plain and the ratio of transformer calls, the memory the stored
attention references take per reference frame here (measured) and at 1024² for the real model in bf16
(`reference_bytes`, with the block count `blocks_within` allows in a memory budget), and the peak VRAM on CUDA.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class BenchmarkFamily:
    """What differs between the families in the benchmark."""

    name: str
    """How the output names the family."""
    plain: Callable[[dict], Any]
    """``plain(components)``: diffusers' ControlNet pipeline of the family."""
    ours: Callable[[dict, Any], Any]
    """``ours(components, plain)``: the Rerender pipeline on the same modules."""
    plain_control: Callable[[Any], dict]
    """``plain_control(canny map)``: the keywords the plain pipeline takes the map (and its options) with."""
    guidance_scale: float
    """Guidance off for our pipeline (Z-Image: 1; Flux: 0)."""
    real_width: int
    """The real model's transformer width."""
    real_blocks: int
    """The real model's blocks that cross-frame attention may use."""
    preset_blocks: int
    """``constraints.cross_frame_blocks`` in the family's preset."""
    token_multiple: int = 1
    """The transformer pads the image tokens to a multiple of this (Z-Image: 32)."""


def common_arguments(parser: argparse.ArgumentParser, steps: int, real_width: int) -> None:
    """The options both scripts take (each adds its block counts)."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--width", type=int, default=256, help=f"transformer width (real: {real_width}; head dim stays 128)"
    )
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--keyframes", type=int, default=2, help="keyframes after the anchor")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU check: --device cuda --size 1024)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument(
        "--last-blocks", type=int, default=None, help="cross-frame attention in the last N blocks only"
    )
    parser.add_argument(
        "--budget-gib", type=float, default=4.0, help="memory for the stored references, for the block rule (GiB)"
    )


def reduced_vae(quant_conv: bool):
    """The 16-channel KL VAE (8× down, with Flux's and Z-Image's scaling and shift factors) at reduced width."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        latent_channels=16,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=quant_conv,
        use_post_quant_conv=quant_conv,
    )


def run(args: argparse.Namespace, family: BenchmarkFamily, components: dict, structure: str) -> dict:
    """Time plain and ours on the same components and print the figures; returns them."""
    import numpy as np
    import torch

    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.diffusion.transformer_attention import REFERENCE_FRAMES, blocks_within, reference_bytes
    from rerender.flow import DISFlowEstimator
    from rerender.video import read_frames

    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    plain = family.plain(components)
    ours = family.ours(components, plain)
    for pipe in (plain, ours):
        pipe.to(device, dtype)
        pipe.set_progress_bar_config(disable=True)
    cuda = device.type == "cuda"

    def peak_reset() -> None:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak() -> float:
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")

    frames = list(
        read_frames(
            REPO / "rerender" / "assets" / "demo.mp4",
            end=10 * (args.keyframes + 1),
            stride=10,
            resolution=args.size,
            size_multiple=16,
        )
    )
    frames = [frame[: args.size, : args.size] for frame in frames]
    maps = [canny(frame) for frame in frames]
    height, width = frames[0].shape[:2]
    constraints = ConstraintConfig(adain_period=(0.75, 1.0), cross_frame_blocks=args.last_blocks)

    def run_plain() -> float:
        started = time.perf_counter()
        for control_map in maps[1:]:
            plain(
                "a cartoon",
                height=height,
                width=width,
                num_inference_steps=args.steps,
                guidance_scale=0.0,
                generator=torch.Generator().manual_seed(0),
                output_type="np",
                **family.plain_control(control_map),
            )
        return (time.perf_counter() - started) / (len(maps) - 1)

    def run_ours() -> tuple[float, float, list[int], int, int]:
        stores, layers = [], []
        install = type(ours).cross_frame_attention

        def spy(self: Any, store: Any, last_blocks: int | None) -> Any:
            stores.append(store)
            manager = install(self, store, last_blocks)
            return _Counted(manager, layers)

        type(ours).cross_frame_attention = spy
        times, calls, anchor_bytes = [], [], 0
        try:
            for frame in ours.render_keyframes(
                frames,
                "a cartoon",
                control_images=[maps],
                num_inference_steps=args.steps,
                guidance_scale=family.guidance_scale,
                strength=1.0,
                constraints=constraints,
                flow_estimator=DISFlowEstimator(),
                generator=torch.Generator().manual_seed(0),
            ):
                times.append(frame.seconds)
                calls.append(frame.unet_calls)
                if frame.index == 0:
                    anchor_bytes = stores[-1].nbytes
        finally:
            type(ours).cross_frame_attention = install
        return times[0], float(np.mean(times[1:])), calls, anchor_bytes, layers[-1]

    peak_reset()
    before = run_plain()
    plain_peak = peak()
    peak_reset()
    anchor, keyframe, calls, anchor_bytes, blocks = run_ours()
    ours_peak = peak()
    after = run_plain()
    plain_time = (before + after) / 2
    print(
        f"{family.name} structure at width {args.width}, {structure}, {width}x{height}, {args.steps} steps, "
        f"{args.threads} threads, {args.device} {args.dtype}"
    )
    print(
        f"plain {type(plain).__name__}: {plain_time:.2f} s/keyframe (runs {before:.2f} / {after:.2f}), "
        f"{args.steps} calls"
    )
    print(f"rerender: anchor {anchor:.2f} s ({calls[0]} calls), keyframe {keyframe:.2f} s ({calls[1]} calls)")
    print(f"time ratio {keyframe / plain_time:.2f} vs call ratio {calls[1] / args.steps:.2f}")
    tokens = -(-(height // 16) * (width // 16) // family.token_multiple) * family.token_multiple
    element = torch.empty((), dtype=ours.transformer.dtype).element_size()
    expected = reference_bytes(tokens, args.width, blocks, args.steps, element_size=element)
    real = {count: reference_bytes(4096, family.real_width, count, args.steps) / 2**30 for count in
            (family.real_blocks, family.preset_blocks)}  # fmt: skip
    fitting = blocks_within(args.budget_gib * 2**30, 4096, family.real_width, args.steps, family.real_blocks)
    print(
        f"stored references per reference frame here ({blocks} blocks, {tokens} tokens): measured "
        f"{anchor_bytes / 2**20:.2f} MiB, reference_bytes {expected / 2**20:.2f} MiB"
    )
    print(
        f"at 1024² on the real {family.name} (bf16, 4096 tokens, width {family.real_width}, {args.steps} steps): "
        f"{real[family.real_blocks]:.2f} GiB per reference frame in all {family.real_blocks} blocks, "
        f"{real[family.preset_blocks]:.2f} GiB in the preset's last {family.preset_blocks}; "
        f"{REFERENCE_FRAMES} are held at once; a {args.budget_gib:g} GiB budget fits the last {fitting} blocks "
        "(blocks_within)"
    )
    if cuda:
        print(f"peak VRAM: plain {plain_peak:.1f} GiB, rerender {ours_peak:.1f} GiB (target ≤ 16 GB without offload)")
    return {
        "plain_seconds": plain_time,
        "keyframe_seconds": keyframe,
        "anchor_seconds": anchor,
        "calls": calls,
        "steps": args.steps,
        "time_ratio": keyframe / plain_time,
        "call_ratio": calls[1] / args.steps,
        "reference_bytes": anchor_bytes,
        "expected_reference_bytes": expected,
        "blocks": blocks,
        "real_reference_gib": real,
        "blocks_within_budget": fitting,
        "peak_gib": {"plain": plain_peak, "rerender": ours_peak},
    }


class _Counted:
    """A context manager that records how many layers the wrapped installer yielded."""

    def __init__(self, manager: Any, into: list[int]) -> None:
        self.manager, self.into = manager, into

    def __enter__(self) -> Any:
        names = self.manager.__enter__()
        self.into.append(len(names))
        return names

    def __exit__(self, *exc: Any) -> Any:
        return self.manager.__exit__(*exc)
