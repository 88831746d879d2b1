"""Propagation engines side by side: seconds per propagated frame of the torch engine and the numba engine.

One key interval of a synthetic clip (a smooth random texture sliding 2 px right and 1 px down per frame, keys at
both ends, stylised by inversion and posterisation) with the exact flow given, so that only the engine is timed:
guides, patch search, voting, flow render, the reconstruction blend and its detail restore. Per preset and size:
s/frame of torch on ``--device`` and of numba on this machine's CPU (same run), the torch engine's peak memory
on CUDA (``torch.cuda.max_memory_allocated``), and the PSNR of each engine's frames against the clip's own
stylisation and against each other. Each engine runs once on a small clip first (compilation, allocator).

Targets (issue 23, H100-class GPU, "balanced"): ≤ 0.05 s/frame at 512², ≤ 0.3 s/frame at 1080p.

Usage:
    python benchmarks/propagation_engines.py --device cuda                 # 512² and 1080p, every preset
    python benchmarks/propagation_engines.py --device cpu --quick          # CPU: small sizes, balanced only
    python benchmarks/propagation_engines.py --device cpu --sizes 256x256 --presets balanced,fast --frames 8

``benchmarks/gpu_check.py`` calls :func:`measure` for its propagation rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("fast", "balanced", "best", "rerender")
SIZES = ((512, 512), (1080, 1920))
STEP = (2.0, 1.0)  # (x, y) px per frame


def synthetic_interval(height: int, width: int, count: int, seed: int = 0):
    """``count`` frames of a texture sliding by ``STEP`` per frame, its stylisation, and the exact flow function."""
    import cv2

    rng = np.random.default_rng(seed)
    margin_x, margin_y = int(STEP[0] * count) + 2, int(STEP[1] * count) + 2
    world = rng.integers(0, 256, (height + margin_y, width + margin_x, 3), dtype=np.uint8)
    world = cv2.GaussianBlur(world, (0, 0), 2.0)
    world = cv2.normalize(world, None, 0, 255, cv2.NORM_MINMAX)
    frames = [
        np.ascontiguousarray(
            world[int(STEP[1] * t) : int(STEP[1] * t) + height, int(STEP[0] * t) : int(STEP[0] * t) + width]
        )
        for t in range(count)
    ]
    styled = [((255 - frame[..., ::-1]) // 40 * 40 + 20).astype(np.uint8) for frame in frames]
    step = np.array(STEP, np.float32)

    def flow(source: np.ndarray, target: np.ndarray):
        # consecutive frames: target(p) = source(p + step); forward maps source pixels into the target
        forward = np.broadcast_to(-step, (height, width, 2)).copy()
        return forward, -forward

    return frames, styled, flow


def _psnr(first: np.ndarray, second: np.ndarray) -> float:
    mse = float(np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def run_engine(engine: str, device: str | None, preset: str, frames, styled, flow, chunk_pixels: int | None = None):
    """Propagate the interval; returns (frames, seconds per propagated frame, peak CUDA memory in GiB or None)."""
    from rerender.propagation import PropagationOptions, propagate_video

    overrides = dict(engine=engine, workers=1 if engine == "torch" else None)
    if device is not None:
        overrides["device"] = device
    if chunk_pixels is not None:
        overrides["chunk_pixels"] = chunk_pixels
    options = PropagationOptions.preset(preset, **overrides)
    keys = {0: styled[0], len(frames) - 1: styled[-1]}
    cuda = engine == "torch" and device == "cuda"
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    output = propagate_video(frames, keys, flow=flow, options=options, progress=False)
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / (len(frames) - 2)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return output, seconds, peak


def measure(
    device: str = "cuda",
    sizes=SIZES,
    presets=PRESETS,
    frames: int = 10,
    numba_frames: int = 4,
    numba: bool = True,
    chunk_pixels: int | None = None,
    log=print,
) -> list[dict]:
    """One row per (preset, size): torch on ``device`` against numba on the CPU, same clip (numba on its first
    ``numba_frames`` frames, as its time per frame does not depend on the interval's length)."""
    sys.path.insert(0, str(REPO))
    warm_frames, warm_styled, warm_flow = synthetic_interval(64, 64, 4)
    run_engine("torch", device, "balanced", warm_frames, warm_styled, warm_flow)
    if numba:
        run_engine("numba", None, "balanced", warm_frames, warm_styled, warm_flow)
    rows = []
    for height, width in sizes:
        clip, styled, flow = synthetic_interval(height, width, frames)
        for preset in presets:
            ours, seconds, peak = run_engine("torch", device, preset, clip, styled, flow, chunk_pixels)
            row = dict(
                preset=preset,
                size=f"{width}x{height}",
                device=device,
                frames=frames,
                torch_s_per_frame=seconds,
                peak_vram_gib=peak,
                torch_psnr=float(np.mean([_psnr(o, s) for o, s in zip(ours[1:-1], styled[1:-1])])),
            )
            if numba:
                short = min(numba_frames, frames)
                reference, numba_seconds, _ = run_engine("numba", None, preset, clip[:short], styled[:short], flow)
                ours_short, _, _ = run_engine(
                    "torch", device, preset, clip[:short], styled[:short], flow, chunk_pixels
                )
                # PSNR of both engines on the same short interval (the long one's is torch_psnr_interval)
                row.update(
                    numba_s_per_frame=numba_seconds,
                    speedup=numba_seconds / seconds,
                    torch_psnr_interval=row["torch_psnr"],
                    torch_psnr=float(np.mean([_psnr(o, s) for o, s in zip(ours_short[1:-1], styled[1:-1])])),
                    numba_psnr=float(np.mean([_psnr(o, s) for o, s in zip(reference[1:-1], styled[1:-1])])),
                    torch_vs_numba_psnr=float(
                        np.mean([_psnr(o, r) for o, r in zip(ours_short[1:-1], reference[1:-1])])
                    ),
                )
            log(format_row(row))
            rows.append(row)
    return rows


def format_row(row: dict) -> str:
    def number(value, digits=3):
        return "–" if value is None else f"{value:.{digits}f}"

    return (
        f"| {row['preset']} | {row['size']} | {row['device']} | {number(row['torch_s_per_frame'])} | "
        f"{number(row.get('numba_s_per_frame'))} | {number(row.get('speedup'), 1)} | "
        f"{number(row['peak_vram_gib'], 2)} | {number(row['torch_psnr'], 2)} | "
        f"{number(row.get('numba_psnr'), 2)} | "
        f"{number(row.get('torch_vs_numba_psnr'), 1)} |"
    )


HEADER = (
    "| preset | size | device | torch s/frame | numba s/frame (CPU) | × | peak VRAM GiB | PSNR torch | "
    "PSNR numba | torch vs numba dB |\n|---|---|---|---|---|---|---|---|---|---|"
)


def targets(rows: list[dict]) -> dict:
    """The issue's targets for the "balanced" rows (met only on CUDA)."""
    wanted = {"512x512": 0.05, "1920x1080": 0.3}
    result = {}
    for row in rows:
        if row["preset"] == "balanced" and row["size"] in wanted:
            met = row["torch_s_per_frame"] <= wanted[row["size"]] if row["device"] == "cuda" else None
            result[row["size"]] = dict(value=row["torch_s_per_frame"], target=wanted[row["size"]], met=met)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="128² and 192×256, balanced, 6 frames")
    parser.add_argument("--sizes", default=None, help="HxW[,HxW…] (default 512x512,1080x1920)")
    parser.add_argument("--presets", default=None, help="comma-separated (default every preset)")
    parser.add_argument("--frames", type=int, default=None, help="frames of the interval, keys included (default 10)")
    parser.add_argument("--no-numba", action="store_true", help="torch only")
    parser.add_argument("--chunk-pixels", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    if arguments.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: use --device cpu", file=sys.stderr)
        return 2
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    sizes = ((128, 128), (192, 256)) if arguments.quick else SIZES
    if arguments.sizes:
        sizes = tuple(tuple(int(part) for part in size.split("x")) for size in arguments.sizes.split(","))
    presets = ("balanced",) if arguments.quick else PRESETS
    if arguments.presets:
        presets = tuple(arguments.presets.split(","))
    frames = arguments.frames or (6 if arguments.quick else 10)
    print(
        f"{torch.cuda.get_device_name() if arguments.device == 'cuda' else 'CPU'}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}"
    )
    print(HEADER)
    rows = measure(
        arguments.device, sizes, presets, frames, numba=not arguments.no_numba, chunk_pixels=arguments.chunk_pixels
    )
    print("targets:", targets(rows))
    if arguments.json is not None:
        temporary = arguments.json.with_name(arguments.json.name + ".partial")
        temporary.write_text(json.dumps(dict(rows=rows, targets=targets(rows)), indent=2))
        os.replace(temporary, arguments.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
