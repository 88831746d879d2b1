"""GPU readiness check: every GPU figure issues 11, 22, 23 and 24 ask for, in one run, full-size architectures with
random weights built from configs (no hub, no network on the device).

The one command (the device tool's ``run``; ``--all``: every row in priority order within ``--budget-s``, each in a
process of its own, stopped at the budget; a row that would not fit, or whose packages are missing, is skipped
with the reason; ``$OUT/gpu_check.json`` is rewritten after every row, so a run stopped from outside keeps what
finished). Prepare once, here in the repository root (the device lacks diffusers, kornia and PyAV, and the
shared suite beside the checkout does not travel)::

    echo /.whl/ >> .git/info/exclude; echo /.gpu_shared/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl diffusers==0.42.1 kornia==0.9.0 av==18.1.0          # about 44 MB
    mkdir -p .gpu_shared && cp -r /work/shared/bench /work/shared/data .gpu_shared/   # the suite, 8 MB

then run, with ``carry=[".whl", ".gpu_shared"]`` and ``timeout_s=560``::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 \
        python3 benchmarks/gpu_check.py --all --budget-s 480 --json $OUT/gpu_check.json

Rows, in priority order (`ROWS`; ``--rows a,b`` picks some; each prints a table and returns targets):

1. ``sd15`` (issue 11, :func:`sd15_keyframe_check`): SD 1.5 keyframes against plain img2img, 512², 20 steps, fp16,
   the variants below.
2. ``sdxl`` (issue 22, :func:`sdxl_keyframe_check`): SDXL + one ControlNet, 1024², 20 steps, strength 0.75, fp16
   (the VAE in fp32) against diffusers' `StableDiffusionXLControlNetImg2ImgPipeline`, ours with its attention
   references on the GPU and in host memory (``constraints.reference_storage``), then both with model CPU offload
   (`SDXL_VARIANTS`): s/keyframe, peak VRAM (targets ≤ 12 GB, ≤ 8 GB with offload), time ratio vs UNet-call ratio,
   host outputs equal to device outputs.
3. ``zimage`` (issue 24, :func:`transformer_keyframe_check`): Z-Image at full width against
   `ZImageControlNetPipeline`, 1024², bf16 (target ≤ 16 GB).
4. ``propagation`` (issue 23, :func:`propagation_check`): the torch engine on CUDA against numba on this machine's
   CPU, s/frame per preset at 512² and 1080p, peak VRAM (targets for "balanced": ≤ 0.05 s/frame at 512², ≤ 0.3 s
   at 1080p).
5. ``suite`` (issue 23, :func:`suite_check`): the shared propagation suite (``--quick``) with the torch engine on
   CUDA and with numba, the torch engine's PSNR/SSIM per case against numba's (within 0.1 dB / 0.002); where the
   suite is not reachable (not carried), :func:`engine_parity` on synthetic and bundled clips instead, and says so.
6. ``translate`` (issue 23, :func:`translate_check`): `translate` end to end, SD 1.5, K = 10, 512², fp16, a
   31-frame synthetic clip: s/output frame and peak VRAM (targets ≤ 1 s/frame, ≤ 10 GB). Needs PyAV.
7. ``flux`` (issue 24): Flux.1 schnell at full width against `FluxControlNetPipeline`, if time remains.

The first line printed (and the JSON's ``environment``) names every package the rows import, with its version or
"missing", and the GPU. ``--tiny --all`` runs every row's code path on the CPU with the test kit's tiny models in
one process (tests/test_gpu_check_all.py, under a minute).

SD 1.5 row. The UNet, ControlNet, VAE and CLIP text encoder are built from ``rerender/assets/sd15-config`` with
random weights, in fp16. Frames are synthetic (a colour gradient with a moving square). Settings: 512², 20 DDIM
steps, strength 0.75, guidance 7.5, canny control, the anchor plus 3 keyframes, every constraint on (cross-frame
attention, shape-aware and pixel-aware fusion with fidelity encoding, AdaIN (0.8, 1)), DIS flow. Variants, in this
order, on the same components:

* ``plain``: diffusers' `StableDiffusionControlNetImg2ImgPipeline`, one call per keyframe (the reference);
* ``sdpa``: `RerenderPipeline` with PyTorch's scaled-dot-product attention (the default processors);
* ``sdpa (repeat)``: the same again (run-to-run difference: GPU kernels need not be deterministic);
* ``xformers``: with ``enable_xformers_memory_efficient_attention()``, when xformers imports;
* ``plain 1024² tiled``, ``sdpa 1024² tiled``, ``sdpa 1024² untiled``: VAE tiling at 1024² (96² with --tiny);
* ``cpu offload``: ``enable_model_cpu_offload()`` (last: it moves the shared components).

Reported per variant: seconds per keyframe (the anchor apart), peak VRAM (``torch.cuda.max_memory_allocated``),
UNet calls per keyframe, time and memory ratios to the plain pipeline at the same size, and the largest
absolute pixel difference to the ``sdpa`` variant at the same size ([0, 1] scale). Targets (issue 11): ≤ 2.1×
the plain pipeline's time, ≤ 1.25× its memory, ≤ 10 GB peak VRAM at 512².

Other usage (one check alone):
    python benchmarks/gpu_check.py --json gpu_check.json                                # SD 1.5, then propagation
    python benchmarks/gpu_check.py --sdxl --json sdxl.json                              # or --zimage
    python benchmarks/gpu_check.py --row translate --json translate.json                # any row of --all
    python benchmarks/gpu_check.py --tiny --all --no-suite --json /tmp/gpu_check_tiny.json   # CPU code path
    python benchmarks/gpu_check.py --propagation-only --device cpu --quick             # propagation on a CPU
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NEEDED = ("torch", "diffusers", "transformers", "numpy", "cv2", "yaml", "kornia")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU, the test kit's tiny models, 64², 4 steps")
    parser.add_argument("--size", type=int, default=None, help="frame side (default 512; tiny 64)")
    parser.add_argument(
        "--large-size", type=int, default=None, help="side of the VAE-tiling variants (default 1024; tiny 96)"
    )
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps of the full schedule (default 20; tiny 4)")
    parser.add_argument("--strength", type=float, default=0.75)
    parser.add_argument("--keyframes", type=int, default=3, help="keyframes after the anchor (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--sdxl", action="store_true", help="the SDXL keyframe check instead (see sdxl_keyframe_check)"
    )
    parser.add_argument(
        "--zimage",
        action="store_true",
        help="the Z-Image keyframe check instead (see zimage_keyframe_check; benchmarks/zimage_benchmark.py)",
    )
    parser.add_argument(
        "--propagation-only",
        action="store_true",
        help="only the propagation rows (torch engine on --device against numba on the CPU)",
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default=None,
        help="device of the propagation rows (default cuda; --tiny: cpu)",
    )
    parser.add_argument("--quick", action="store_true", help="propagation rows at small sizes, balanced only")
    parser.add_argument(
        "--all", action="store_true", help="every row in priority order within --budget-s (see run_all)"
    )
    parser.add_argument("--budget-s", type=float, default=480.0, help="--all: seconds for all rows (default 480)")
    parser.add_argument("--rows", default=None, help=f"--all: these rows only, comma-separated ({', '.join(ROWS)})")
    parser.add_argument("--row", default=None, choices=tuple(ROWS), help="one row (what --all runs per process)")
    parser.add_argument(
        "--in-process", action="store_true", help="--all: every row in this process (default with --tiny)"
    )
    parser.add_argument("--suite", type=Path, default=None, help="the shared suite's propagation_suite.py")
    parser.add_argument("--suite-full", action="store_true", help="every case of the suite (default: --quick)")
    parser.add_argument(
        "--no-suite", action="store_true", help="the engines' parity on bundled/synthetic clips instead of the suite"
    )
    return parser.parse_args(argv)


def propagation_check(device: str, quick: bool, numba_frames: int = 4) -> dict:
    """The propagation rows (issue 23): s/frame of each preset at 512² and 1080p, the torch engine on ``device``
    against the numba engine on this machine's CPU, peak VRAM, PSNR of both; ``quick``: 64², balanced, 4 frames
    (on the CPU with one torch thread). See ``benchmarks/propagation_engines.py`` (also a CPU benchmark)."""
    spec = importlib.util.spec_from_file_location(
        "propagation_engines", REPO / "benchmarks" / "propagation_engines.py"
    )
    engines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engines)
    sizes = ((64, 64),) if quick else engines.SIZES
    if device == "cpu":
        import torch

        torch.set_num_threads(1)  # a shared CPU: threads spinning against each other cost more than they give
    presets = ("balanced",) if quick else engines.PRESETS
    print()
    print(f"propagation engines ({device}; exact flow given, engine time only):")
    print(engines.HEADER)
    rows = engines.measure(device, sizes, presets, frames=4 if quick else 10, numba_frames=numba_frames)
    result = dict(device=device, rows=rows, targets=engines.targets(rows))
    print("propagation targets (balanced, CUDA):", result["targets"])
    return result


def _write_json(path: Path | None, report: dict) -> None:
    if path is not None:
        temporary = path.with_name(path.name + ".partial")
        temporary.write_text(json.dumps(report, indent=2, default=str))  # a stray numpy scalar must not lose the run
        os.replace(temporary, path)


def synthetic_frames(count: int, size: int):
    """A colour gradient with a red square moving right and down: known motion, no video decoding."""
    import numpy as np

    y, x = np.mgrid[0:size, 0:size]
    frames = []
    for index in range(count):
        frame = np.stack([x * 255 // size, y * 255 // size, np.full_like(x, 128)], axis=-1).astype(np.uint8)
        side, step = size * 3 // 8, max(1, size // 32)
        top, left = size // 4 + index * step, size // 5 + 2 * index * step
        frame[top : top + side, left : left + side] = (230, 40, 40)
        frames.append(frame)
    return frames


def build_components(tiny: bool, device, dtype) -> dict[str, Any]:
    """Full-size SD 1.5 components from the shipped configs (random weights), or the test kit's tiny ones."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if tiny:
        sys.path.insert(0, str(REPO))
        from tests.tiny_models import make_tiny_components

        components = make_tiny_components(Path(tempfile.mkdtemp(prefix="gpu-check-tokenizer-")))
    else:
        config_dir = REPO / "rerender" / "assets" / "sd15-config"
        with torch.device(device):  # initialise on the GPU: much faster than on the CPU for 1.3 B parameters
            torch.manual_seed(0)
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet"))
            torch.manual_seed(1)
            controlnet = ControlNetModel.from_config(ControlNetModel.load_config(config_dir / "controlnet"))
            torch.manual_seed(2)
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
            torch.manual_seed(3)
            text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder"))
        components = dict(
            unet=unet,
            controlnet=controlnet,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=CLIPTokenizer.from_pretrained(config_dir / "tokenizer"),
            scheduler=DDIMScheduler.from_pretrained(config_dir, subfolder="scheduler"),
        )
    for name in ("unet", "controlnet", "vae", "text_encoder"):
        model = components[name].to(device=device)
        if model.dtype != dtype:
            model = model.to(dtype=dtype)
        components[name] = model.eval().requires_grad_(False)
    return components


class Runner:
    """Runs the variants on shared components and collects one result dict per variant."""

    def __init__(self, arguments: argparse.Namespace, components: dict[str, Any], device, dtype) -> None:
        import torch
        from diffusers import StableDiffusionControlNetImg2ImgPipeline

        from rerender.config import ConstraintConfig
        from rerender.diffusion.pipeline import RerenderPipeline
        from rerender.flow import DISFlowEstimator

        self.arguments, self.device, self.dtype = arguments, device, dtype
        self.cuda = device.type == "cuda"
        self.plain = StableDiffusionControlNetImg2ImgPipeline(
            **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
        self.ours = RerenderPipeline(**components)
        for pipeline in (self.plain, self.ours):
            pipeline.set_progress_bar_config(disable=True)
        self.constraints = ConstraintConfig(adain_period=(0.8, 1.0))
        self.flow = DISFlowEstimator("medium")
        self.prompt = "a watercolour painting of a red box, best quality, extremely detailed"
        self.common = dict(num_inference_steps=arguments.steps, strength=arguments.strength, guidance_scale=7.5)
        self.results: list[dict[str, Any]] = []
        self.images: dict[str, Any] = {}
        self.unet_calls: list[int] = []
        components["unet"].register_forward_pre_hook(lambda module, args: self.unet_calls.append(1))
        self.torch = torch

    # ------------------------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def _peak(self) -> float | None:
        if not self.cuda:
            return None
        self.torch.cuda.synchronize()
        return self.torch.cuda.max_memory_allocated() / 2**30

    def _frames(self, size: int):
        from rerender.diffusion.control import canny

        frames = synthetic_frames(self.arguments.keyframes + 1, size)
        return frames, [canny(frame) for frame in frames]

    def skip(self, name: str, reason: str) -> None:
        self.results.append(dict(variant=name, skipped=reason))
        print(f"{name}: skipped ({reason})", flush=True)

    def run_plain(self, name: str, size: int) -> None:
        import numpy as np
        from PIL import Image

        frames, controls = self._frames(size)
        self._begin()
        times, calls, images = [], [], []
        for frame, control in zip(frames[1:], controls[1:]):
            self.unet_calls.clear()
            started = time.perf_counter()
            output = self.plain(
                self.prompt,
                image=Image.fromarray(frame),
                control_image=Image.fromarray(control),
                generator=self.torch.Generator().manual_seed(0),
                output_type="np",
                **self.common,
            ).images[0]
            if self.cuda:
                self.torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
            calls.append(len(self.unet_calls))
            images.append(np.asarray(output, dtype=np.float32))
        self._record(name, size, times, None, calls, self._peak(), np.stack(images))

    def run_ours(self, name: str, size: int) -> None:
        import numpy as np

        frames, controls = self._frames(size)
        self._begin()
        self.unet_calls.clear()
        rendered = list(
            self.ours.render_keyframes(
                frames,
                self.prompt,
                control_images=controls,
                flow_estimator=self.flow,
                constraints=self.constraints,
                generator=self.torch.Generator().manual_seed(0),
                **self.common,
            )
        )
        peak = self._peak()
        if sum(frame.unet_calls for frame in rendered) != len(self.unet_calls):
            raise RuntimeError(
                f"{name}: the pipeline counted {sum(f.unet_calls for f in rendered)} UNet calls, the hook {len(self.unet_calls)}"
            )
        keyframes = rendered[1:]
        images = np.stack([frame.image.permute(1, 2, 0).numpy() for frame in keyframes])
        self._record(
            name,
            size,
            [f.seconds for f in keyframes],
            rendered[0].seconds,
            [f.unet_calls for f in keyframes],
            peak,
            images,
        )

    def _record(self, name, size, times, anchor_seconds, calls, peak, images) -> None:
        import numpy as np

        non_finite = int((~np.isfinite(images)).sum())
        self.images[name] = images
        result = dict(
            variant=name,
            size=size,
            seconds_per_keyframe=float(np.mean(times)),
            seconds=times,
            anchor_seconds=anchor_seconds,
            unet_calls_per_keyframe=calls,
            peak_vram_gib=peak,
            non_finite_pixels=non_finite,
        )
        self.results.append(result)
        peak_text = f"{peak:.2f} GiB" if peak is not None else "n/a (CPU)"
        anchor_text = f" (anchor {anchor_seconds:.2f} s)" if anchor_seconds is not None else ""
        print(
            f"{name}: {result['seconds_per_keyframe']:.2f} s/keyframe{anchor_text}, UNet calls {calls}, peak VRAM {peak_text}",
            flush=True,
        )

    # ------------------------------------------------------------------------------------------------
    def compare(self) -> None:
        """Ratios to the plain pipeline at the same size, and the largest difference to the sdpa variant."""
        import numpy as np

        measured = [r for r in self.results if "skipped" not in r]
        for result in measured:
            plain = next(
                (r for r in measured if r["variant"].startswith("plain") and r["size"] == result["size"]), None
            )
            result["time_vs_plain"] = result["seconds_per_keyframe"] / plain["seconds_per_keyframe"] if plain else None
            both = plain is not None and plain["peak_vram_gib"] and result["peak_vram_gib"] is not None
            result["memory_vs_plain"] = result["peak_vram_gib"] / plain["peak_vram_gib"] if both else None
            if result["variant"].endswith(" tiled"):  # tiled against untiled at the same size
                reference = result["variant"].replace("plain", "sdpa")[: -len(" tiled")] + " untiled"
            else:
                reference = "sdpa" if result["size"] == self.arguments.size else None
            reference = next((r["variant"] for r in measured if r["variant"] == reference), None)
            if result["variant"].startswith("plain") or reference is None or reference == result["variant"]:
                result["max_abs_difference"] = None
            else:
                result["max_abs_difference"] = float(
                    np.abs(self.images[result["variant"]] - self.images[reference]).max()
                )
                result["difference_to"] = reference


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.suite is not None and not arguments.suite.is_file():
        print(f"--suite {str(arguments.suite)!r} is not a file (give propagation_suite.py)", file=sys.stderr)
        return 2
    if arguments.all or arguments.row:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        sys.path.insert(0, str(REPO))
        if arguments.all:
            return run_all(arguments)
        import torch

        if not arguments.tiny and not torch.cuda.is_available():  # else a traceback from deep in the first build
            print(f"no CUDA device for --row {arguments.row}: run with --tiny for the CPU code path", file=sys.stderr)
            return 2
        _write_json(arguments.json, run_row(arguments.row, arguments))
        return 0
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"missing Python packages: {', '.join(missing)}; carry their wheels (see the device tool's README)",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    import torch

    if arguments.propagation_only:
        device = arguments.device or ("cpu" if arguments.tiny else "cuda")
        if device == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: run with --device cpu", file=sys.stderr)
            return 2
        _write_json(arguments.json, dict(propagation=propagation_check(device, arguments.quick or arguments.tiny)))
        return 0
    if arguments.tiny and not arguments.quick:
        print("(propagation rows skipped with --tiny; add --quick, or run --propagation-only --device cpu --quick)")
    if not arguments.tiny and not torch.cuda.is_available():
        print("no CUDA device: run with --tiny for the CPU smoke test", file=sys.stderr)
        return 2
    if arguments.tiny:
        torch.set_num_threads(1)
    if arguments.sdxl:  # its own defaults: 1024² (64² tiny), 20 steps (4 tiny)
        _write_json(arguments.json, sdxl_keyframe_check(arguments))
        return 0
    arguments.size = arguments.size or (64 if arguments.tiny else 512)
    arguments.large_size = arguments.large_size or (96 if arguments.tiny else 1024)
    arguments.steps = arguments.steps or (4 if arguments.tiny else 20)
    if arguments.zimage:
        return zimage_keyframe_check(arguments)

    report = sd15_keyframe_check(arguments)
    _write_json(arguments.json, report)  # the keyframe engine's results first, in case propagation fails
    if not arguments.tiny or arguments.quick:
        report["propagation"] = propagation_check(
            arguments.device or ("cpu" if arguments.tiny else "cuda"), arguments.quick or arguments.tiny
        )
        _write_json(arguments.json, report)
    return 0


def sd15_keyframe_check(arguments: argparse.Namespace) -> dict:
    """The SD 1.5 variants (see the module docstring) on ``arguments`` (size, steps, keyframes, tiny); returns the
    report (variants, targets) that ``--json`` writes."""
    import torch

    device = torch.device("cpu" if arguments.tiny else "cuda")
    dtype = torch.float32 if arguments.tiny else torch.float16
    started = time.perf_counter()
    components = build_components(arguments.tiny, device, dtype)
    build_seconds = time.perf_counter() - started
    runner = Runner(arguments, components, device, dtype)
    size, large = arguments.size, arguments.large_size
    large_label = f"{large}²"

    if runner.cuda:  # warm-up: kernels, allocator, autotuning
        runner.run_plain("warm-up", size)
        runner.results.pop()

    runner.run_plain("plain", size)
    runner.run_ours("sdpa", size)
    runner.run_ours("sdpa (repeat)", size)
    if importlib.util.find_spec("xformers") is None:
        runner.skip("xformers", "xformers is not importable")
    elif not runner.cuda:
        runner.skip("xformers", "needs CUDA")
    else:
        runner.ours.enable_xformers_memory_efficient_attention()
        try:
            runner.run_ours("xformers", size)
        finally:
            runner.ours.disable_xformers_memory_efficient_attention()
    components["vae"].enable_tiling()
    runner.run_plain(f"plain {large_label} tiled", large)
    runner.run_ours(f"sdpa {large_label} tiled", large)
    components["vae"].disable_tiling()
    runner.run_ours(f"sdpa {large_label} untiled", large)
    if runner.cuda:
        runner.ours.enable_model_cpu_offload()
        runner.run_ours("cpu offload", size)
    else:
        runner.skip("cpu offload", "needs CUDA")
    runner.compare()

    name = torch.cuda.get_device_name() if runner.cuda else "CPU"
    print()
    print(
        f"{name}: {'tiny test models' if arguments.tiny else 'SD 1.5 + ControlNet (random weights)'}, "
        f"{dtype}, {arguments.steps} steps, strength {arguments.strength}, {arguments.keyframes} keyframes, "
        f"models built in {build_seconds:.0f} s"
    )
    print()
    print(
        "| variant | size | s / keyframe | × plain | peak VRAM (GiB) | × plain | max |Δ| to | UNet calls / keyframe |"
    )
    print("|---|---|---|---|---|---|---|---|")

    def number(value, digits=2):
        return "–" if value is None else f"{value:.{digits}f}"

    for result in runner.results:
        if "skipped" in result:
            print(f"| {result['variant']} | skipped: {result['skipped']} | | | | | | |")
            continue
        difference = (
            "–"
            if result["max_abs_difference"] is None
            else f"{result['max_abs_difference']:.4f} ({result['difference_to']})"
        )
        print(
            f"| {result['variant']} | {result['size']} | {number(result['seconds_per_keyframe'])} | {number(result['time_vs_plain'])} | "
            f"{number(result['peak_vram_gib'])} | {number(result['memory_vs_plain'])} | {difference} | "
            f"{'/'.join(map(str, result['unet_calls_per_keyframe']))} |"
        )
    sdpa = next(r for r in runner.results if r["variant"] == "sdpa")
    targets = dict(
        time_vs_plain=dict(value=sdpa["time_vs_plain"], target=2.1),
        memory_vs_plain=dict(value=sdpa["memory_vs_plain"], target=1.25),
        peak_vram_gib=dict(value=sdpa["peak_vram_gib"], target=10.0),
    )
    for target in targets.values():
        target["met"] = None if target["value"] is None else target["value"] <= target["target"]
    print()
    print(
        "targets at",
        size,
        "²: "
        + "; ".join(
            f"{key} {number(t['value'])} ≤ {t['target']}: {'n/a' if t['met'] is None else ('met' if t['met'] else 'MISSED')}"
            for key, t in targets.items()
        ),
    )
    report = dict(
        device=name,
        tiny=arguments.tiny,
        dtype=str(dtype),
        size=size,
        large_size=large,
        steps=arguments.steps,
        strength=arguments.strength,
        keyframes=arguments.keyframes,
        build_seconds=build_seconds,
        torch=torch.__version__,
        diffusers=__import__("diffusers").__version__,
        variants=runner.results,
        targets=targets,
    )
    return report


# --------------------------------------------------------------------------------------------------------
# SDXL keyframes (issue 22): python benchmarks/gpu_check.py --sdxl --json gpu_check_sdxl.json
# --------------------------------------------------------------------------------------------------------

SDXL_VARIANTS: tuple[tuple[str, str | None, bool], ...] = (
    ("plain", None, False),
    ("rerender, device storage", "device", False),
    ("rerender, host storage", "host", False),
    ("plain, cpu offload", None, True),
    ("rerender, cpu offload, auto storage", "auto", True),
)
"""The SDXL row's variants, in order: (name, ``constraints.reference_storage`` of ours or None for diffusers' plain
pipeline, model CPU offload). Offload comes last (it moves the shared components) and needs CUDA; with offload on,
"auto" keeps the references in host memory."""


class _StoreSpy:
    """While active: every `CrossFrameAttentionStore` the pipeline creates, and the pipeline's log line with the
    reference estimate and the storage chosen."""

    def __enter__(self):
        import logging

        from rerender.diffusion import pipeline as pipeline_module

        spy = self
        self.stores, self.lines, self.module = [], [], pipeline_module
        self.original = pipeline_module.CrossFrameAttentionStore

        class Recording(self.original):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                spy.stores.append(self)

        class Lines(logging.Handler):
            def emit(self, record):
                if "cross-frame attention references" in record.getMessage():
                    spy.lines.append(record.getMessage())

        pipeline_module.CrossFrameAttentionStore = Recording
        self.logger, self.handler = logging.getLogger(pipeline_module.__name__), Lines(logging.INFO)
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.module.CrossFrameAttentionStore = self.original
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


def _sdxl_setup(arguments: argparse.Namespace) -> dict[str, Any]:
    """The SDXL row's components (on the GPU in fp16, the VAE in fp32; ``--tiny``: the test kit's on the CPU), both
    pipelines on them, the frames and their canny maps."""
    import torch
    from diffusers import StableDiffusionXLControlNetImg2ImgPipeline

    sys.path.insert(0, str(REPO / "benchmarks"))
    from keyframe_benchmark import build_sdxl_components

    from rerender.diffusion.control import canny
    from rerender.diffusion.pipeline import RerenderPipeline

    cuda = not arguments.tiny
    device, dtype = torch.device("cuda" if cuda else "cpu"), torch.float16 if cuda else torch.float32
    if arguments.tiny:
        from tests.tiny_models import save_tiny_sdxl_pipeline

        config_dir = save_tiny_sdxl_pipeline(Path(tempfile.mkdtemp(prefix="gpu-check-sdxl-")))
    else:
        config_dir = REPO / "rerender" / "assets" / "sdxl-config"
    started = time.perf_counter()
    components = build_sdxl_components(config_dir, 1.0, device)
    for name in ("unet", "controlnet", "text_encoder", "text_encoder_2"):
        components[name] = components[name].to(device=device, dtype=dtype)
    components["vae"] = components["vae"].to(device=device)  # float32: the SDXL VAE overflows in float16
    size = arguments.size or (64 if arguments.tiny else 1024)
    frames = synthetic_frames(arguments.keyframes + 1, size)
    setup = dict(
        cuda=cuda,
        dtype=dtype,
        size=size,
        steps=arguments.steps or (4 if arguments.tiny else 20),
        build_seconds=time.perf_counter() - started,
        frames=frames,
        controls=[canny(frame) for frame in frames],
        plain=StableDiffusionXLControlNetImg2ImgPipeline(**components, requires_aesthetics_score=False),
        ours=RerenderPipeline(**components),
        calls=[],
        prompt="a watercolour painting, best quality",
    )
    for pipeline in (setup["plain"], setup["ours"]):
        pipeline.set_progress_bar_config(disable=True)
    components["unet"].register_forward_pre_hook(lambda module, args: setup["calls"].append(1))
    setup["common"] = dict(num_inference_steps=setup["steps"], strength=arguments.strength, guidance_scale=7.5)
    return setup


def _sdxl_run_plain(setup: dict[str, Any], keyframes: int) -> dict[str, Any]:
    """Diffusers' SDXL ControlNet img2img on keyframes 1…`keyframes`, one call each."""
    import torch
    from PIL import Image

    times, counts = [], []
    vae = setup["plain"].vae
    vae_dtype = vae.dtype
    for frame, control in zip(setup["frames"][1 : keyframes + 1], setup["controls"][1 : keyframes + 1]):
        setup["calls"].clear()
        if setup["cuda"]:
            torch.cuda.synchronize()
        begin = time.perf_counter()
        try:
            setup["plain"](
                setup["prompt"],
                image=Image.fromarray(frame),
                control_image=Image.fromarray(control),
                output_type="np",
                generator=torch.Generator().manual_seed(0),
                **setup["common"],
            )
        finally:  # diffusers casts a force_upcast VAE to the UNet's float16 after encoding; ours shares it
            vae.to(vae_dtype)
        if setup["cuda"]:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - begin)
        counts.append(len(setup["calls"]))
    return dict(seconds=times, wall_seconds=times, unet_calls_per_keyframe=counts)


def _sdxl_run_ours(setup: dict[str, Any], storage: str, keyframes: int) -> dict[str, Any]:
    """`RerenderPipeline` on the anchor and keyframes 1…`keyframes` with ``reference_storage=storage``: per keyframe
    the frame's own seconds and the wall time between consecutive frames (which also holds the resume state's copy
    of the previous keyframe's references), the UNet calls, the reference estimate and choice (the run's log line),
    the bytes held at most and how the layers got their references."""
    import numpy as np
    import torch

    from rerender.config import ConstraintConfig
    from rerender.flow import DISFlowEstimator

    constraints = ConstraintConfig(adain_period=(0.8, 1.0), reference_storage=storage)
    rendered, walls = [], []
    with _StoreSpy() as spy:
        last = time.perf_counter()
        for frame in setup["ours"].render_keyframes(
            setup["frames"][: keyframes + 1],
            setup["prompt"],
            control_images=setup["controls"][: keyframes + 1],
            flow_estimator=DISFlowEstimator("medium"),
            constraints=constraints,
            generator=torch.Generator().manual_seed(0),
            **setup["common"],
        ):
            now = time.perf_counter()  # the frame is on the host: the GPU work before it is done
            frame.resume_state = None  # as `__call__` does: it holds the references
            rendered.append(frame)
            walls.append(now - last)
            last = now
    store = spy.stores[-1]
    return dict(
        seconds=[frame.seconds for frame in rendered[1:]],
        wall_seconds=walls[1:],
        anchor_seconds=rendered[0].seconds,
        unet_calls_per_keyframe=[frame.unet_calls for frame in rendered[1:]],
        references=spy.lines[-1] if spy.lines else None,
        reference_storage="host" if store.on_host else "device",
        reference_peak_gib=store.peak_nbytes / 2**30,
        reference_fetches=dict(store.fetches),
        images=np.stack([frame.image.permute(1, 2, 0).numpy() for frame in rendered[1:]]),
    )


def sdxl_keyframe_check(arguments: argparse.Namespace) -> dict:
    """Full-size SDXL base + one SDXL ControlNet (random weights from ``rerender/assets/sdxl-config``), fp16, 1024²,
    20 steps, strength 0.75, canny, every constraint on; seconds per keyframe and peak VRAM of `RerenderPipeline`
    with its attention references on the GPU and in host memory, against diffusers'
    `StableDiffusionXLControlNetImg2ImgPipeline` on the same components, in the same run, then both with
    ``enable_model_cpu_offload()`` (on 2 keyframes; ours with "auto" storage: host). Targets: ≤ 12 GB peak without
    offload, ≤ 8 GB with it, time ratio (wall time) within 0.1 of the UNet-call ratio. ``--tiny``: the test kit's
    tiny SDXL models on the CPU, 64², 4 steps (offload skipped).
    """
    import numpy as np
    import torch

    setup = _sdxl_setup(arguments)
    cuda, results, skipped = setup["cuda"], {}, {}
    with torch.no_grad():
        if cuda:  # warm-up of both (kernels, allocator), so that neither variant measured first pays for it
            _sdxl_run_plain(setup, 1)
            _sdxl_run_ours(setup, "device", 1)
        for name, storage, offload in SDXL_VARIANTS:
            if offload and not cuda:
                skipped[name] = "needs CUDA"
                continue
            if offload:  # one pipeline's hooks at a time: they share the components
                for pipeline in (setup["plain"], setup["ours"]):
                    pipeline.remove_all_hooks()
                (setup["plain"] if storage is None else setup["ours"]).enable_model_cpu_offload()
            keyframes = min(2, arguments.keyframes) if offload else arguments.keyframes
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            result = (
                _sdxl_run_plain(setup, keyframes) if storage is None else _sdxl_run_ours(setup, storage, keyframes)
            )
            result["peak_vram_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            result["seconds_per_keyframe"] = float(np.mean(result["seconds"]))
            result["wall_seconds_per_keyframe"] = float(np.mean(result["wall_seconds"]))
            results[name] = result
    return _sdxl_report(arguments, setup, results, skipped)


def _sdxl_report(arguments: argparse.Namespace, setup: dict[str, Any], results: dict, skipped: dict) -> dict:
    """Print the SDXL row's table and targets; the report ``--json`` writes."""
    import numpy as np
    import torch

    cuda, plain = setup["cuda"], results["plain"]
    device_run, host_run = results["rerender, device storage"], results["rerender, host storage"]
    call_ratio = float(np.mean(device_run["unet_calls_per_keyframe"]) / np.mean(plain["unet_calls_per_keyframe"]))
    difference = float(np.abs(host_run.pop("images") - device_run.pop("images")).max())
    for result in results.values():
        result.pop("images", None)
        result["time_vs_plain"] = result["wall_seconds_per_keyframe"] / plain["wall_seconds_per_keyframe"]
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(
        f"{name}: SDXL + ControlNet ({'tiny' if arguments.tiny else 'full size'}, random weights), {setup['dtype']}, "
        f"{setup['size']}², {setup['steps']} steps, strength {arguments.strength}, {arguments.keyframes} keyframes "
        f"(2 with offload), built in {setup['build_seconds']:.0f} s"
    )
    print(
        "| variant | s / keyframe (wall) | s / keyframe (frame) | × plain | peak VRAM (GiB) | UNet calls | refs (GiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for variant, result in results.items():
        peak = "–" if result["peak_vram_gib"] is None else f"{result['peak_vram_gib']:.2f}"
        references = (
            f"{result['reference_peak_gib']:.2f} {result['reference_storage']}"
            if "reference_peak_gib" in result
            else "–"
        )
        walls = "/".join(f"{seconds:.2f}" for seconds in result["wall_seconds"])  # the first ones pin host memory
        print(
            f"| {variant} | {result['wall_seconds_per_keyframe']:.2f} ({walls}) | {result['seconds_per_keyframe']:.2f} | "
            f"{result['time_vs_plain']:.2f} | {peak} | {'/'.join(map(str, result['unet_calls_per_keyframe']))} | "
            f"{references} |"
        )
    for variant, reason in skipped.items():
        print(f"| {variant} | skipped: {reason} | | | | | |")
    print(f"host vs device storage: largest pixel difference {difference:.6f} (expected 0)")
    for result in results.values():
        if result.get("references"):
            print(f"  {result['references']}; fetches {result['reference_fetches']}")
    targets = {
        "time_ratio, device storage": dict(value=device_run["time_vs_plain"], target=call_ratio + 0.1),
        "time_ratio, host storage": dict(value=host_run["time_vs_plain"], target=call_ratio + 0.1),
        "host_equals_device": dict(value=difference, target=0.0),
    }
    if cuda:
        targets["peak_vram_gib, device storage"] = dict(value=device_run["peak_vram_gib"], target=12.0)
        targets["peak_vram_gib, host storage"] = dict(value=host_run["peak_vram_gib"], target=12.0)
        offloaded = results["rerender, cpu offload, auto storage"]["peak_vram_gib"]
        targets["peak_vram_offload_gib"] = dict(value=offloaded, target=8.0)
    print(f"UNet-call ratio {call_ratio:.2f}: time ratios within 0.1 of it are the target")
    for key, target in targets.items():
        target["met"] = bool(target["value"] <= target["target"])
        print(f"  {key}: {target['value']:.2f} ≤ {target['target']:.2f}: {'met' if target['met'] else 'MISSED'}")
    return dict(
        device=name,
        family="sdxl",
        tiny=arguments.tiny,
        size=setup["size"],
        steps=setup["steps"],
        build_seconds=setup["build_seconds"],
        variants=results,
        skipped=skipped,
        targets=targets,
        call_ratio=call_ratio,
        time_ratio=device_run["time_vs_plain"],
        host_vs_device_max_difference=difference,
    )


# --------------------------------------------------------------------------------------------------------
# Transformer bases (issue 24): python benchmarks/gpu_check.py --zimage --json gpu_check_zimage.json
# --------------------------------------------------------------------------------------------------------

TRANSFORMER_BASES: dict[str, dict[str, Any]] = {
    # Z-Image-Turbo: 30 main-stream blocks of width 3,840 (6 B parameters), 9 steps without guidance
    "zimage": dict(
        module="zimage_benchmark",
        full=dict(width=3840, layers=30),
        tiny=dict(width=64, layers=4),
        steps=9,
        block_variants=(None, 10),
        vram_target_gib=16.0,
    ),
    # Flux.1 schnell: 19 double- and 38 single-stream blocks of width 3,072 (12 B parameters), 4 steps
    "flux": dict(
        module="flux_benchmark",
        full=dict(width=3072, layers=19, single_layers=38),
        tiny=dict(width=64, layers=2, single_layers=2),
        steps=4,
        block_variants=(None,),
        vram_target_gib=None,
    ),
}
TEXT_ENCODER_NOTE = (
    "text encoders are tiny stand-ins (the prompt is encoded once per run): the real ones add about 8 GB "
    "(Z-Image's Qwen3-4B) or 9.5 GB (Flux's T5-XXL) in bf16 unless offloaded after encoding"
)


def full_size_flow_vae():
    """The 16-channel VAE of Flux and Z-Image at its real width (128-256-512-512, two layers per block)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        latent_channels=16,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def transformer_keyframe_check(arguments: argparse.Namespace, family: str) -> dict:
    """A flow-matching transformer base (``family`` "zimage" or "flux") at its real block structure and width
    (random weights, bf16, the real 16-channel VAE; built on the GPU), 1024², its Turbo/schnell steps, strength 1,
    guidance off, one canny ControlNet: seconds per keyframe and peak VRAM of our pipeline against diffusers'
    ControlNet pipeline (`ZImageControlNetPipeline`, `FluxControlNetPipeline`) in the same run; Z-Image also with
    cross-frame attention in the last 10 blocks only (the preset). Targets (issue 24): ≤ 16 GB peak without offload
    (Z-Image), time ratio within 0.1 of the call ratio. ``--tiny``: the same code at toy width on the CPU, 64²."""
    import numpy as np
    import torch

    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.flow import DISFlowEstimator

    base = TRANSFORMER_BASES[family]
    sys.path.insert(0, str(REPO / "benchmarks"))
    builder = importlib.import_module(base["module"])
    cuda = not arguments.tiny
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    size, steps, keyframes = (64, 4, 1) if arguments.tiny else (1024, base["steps"], 2)
    started = time.perf_counter()
    with torch.device(device):  # initialise on the GPU: 6-12 B parameters take minutes on a CPU
        components = builder.build(**base["tiny" if arguments.tiny else "full"])
        if cuda:
            components["vae"] = full_size_flow_vae()
    if family == "zimage":
        from diffusers import ZImageControlNetPipeline

        from rerender.diffusion.zimage import RerenderZImagePipeline

        plain = ZImageControlNetPipeline(**components)
        ours = RerenderZImagePipeline(**{**components, "controlnet": plain.controlnet})
    else:
        from diffusers import FluxControlNetPipeline

        from rerender.diffusion.flux import RerenderFluxPipeline

        plain = FluxControlNetPipeline(**components)
        ours = RerenderFluxPipeline(**components)
    for pipeline in (plain, ours):
        pipeline.to(device, dtype)
        pipeline.set_progress_bar_config(disable=True)
    build_seconds = time.perf_counter() - started
    frames = synthetic_frames(keyframes + 1, size)
    maps = [canny(frame) for frame in frames]

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    def plain_control(control_map):
        if family == "zimage":
            return control_map
        return torch.from_numpy(control_map).permute(2, 0, 1)[None].float() / 127.5 - 1

    def run_plain(count: int) -> float:
        times = []
        for control_map in maps[1 : count + 1]:
            synchronize()
            begin = time.perf_counter()
            extra = dict(max_sequence_length=ours.max_sequence_length) if family == "flux" else {}
            plain(
                "a cartoon",
                control_image=plain_control(control_map),
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=0.0,
                generator=torch.Generator().manual_seed(0),
                output_type="np",
                **extra,
            )
            synchronize()
            times.append(time.perf_counter() - begin)
        return float(np.mean(times))

    def run_ours(last_blocks: int | None) -> dict:
        rendered = list(
            ours.render_keyframes(
                frames,
                "a cartoon",
                control_images=[maps],
                num_inference_steps=steps,
                guidance_scale=0.0 if family == "flux" else 1.0,
                strength=1.0,
                constraints=ConstraintConfig(adain_period=(0.75, 1.0), cross_frame_blocks=last_blocks),
                flow_estimator=DISFlowEstimator(),
                generator=torch.Generator().manual_seed(0),
            )
        )
        synchronize()
        images = np.stack([frame.image.float().permute(1, 2, 0).cpu().numpy() for frame in rendered])
        return dict(
            seconds_per_keyframe=float(np.mean([frame.seconds for frame in rendered[1:]])),
            anchor_seconds=rendered[0].seconds,
            calls_per_keyframe=[frame.unet_calls for frame in rendered[1:]],
            non_finite_pixels=int((~np.isfinite(images)).sum()),
        )

    def measured(run, *arguments_) -> dict:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        result = run(*arguments_)
        result = result if isinstance(result, dict) else dict(seconds_per_keyframe=result, calls_per_keyframe=[steps])
        result["peak_vram_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        return result

    variants: dict[str, dict] = {}
    with torch.no_grad():
        if cuda:
            run_plain(1)  # warm-up: kernels, allocator
        variants["plain"] = measured(run_plain, keyframes)
        for last_blocks in base["block_variants"]:
            label = "rerender" if last_blocks is None else f"rerender, last {last_blocks} blocks"
            variants[label] = measured(run_ours, last_blocks)
    plain_seconds = variants["plain"]["seconds_per_keyframe"]
    for result in variants.values():
        result["time_vs_plain"] = result["seconds_per_keyframe"] / plain_seconds
        result["call_ratio"] = float(np.mean(result["calls_per_keyframe"])) / steps
    ours_result = variants["rerender"]
    targets = dict(time_ratio=dict(value=ours_result["time_vs_plain"], target=ours_result["call_ratio"] + 0.1))
    if cuda and base["vram_target_gib"] is not None:
        targets["peak_vram_gib"] = dict(value=ours_result["peak_vram_gib"], target=base["vram_target_gib"])
    for target in targets.values():
        target["met"] = bool(target["value"] <= target["target"])
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(
        f"{name}: {family} ({'tiny' if arguments.tiny else 'full width'}, random weights), {dtype}, {size}², "
        f"{steps} steps, strength 1, {keyframes} keyframes, built in {build_seconds:.0f} s"
    )
    print("| variant | s / keyframe | × plain | calls / keyframe (ratio) | peak VRAM (GiB) |")
    print("|---|---|---|---|---|")
    for label, result in variants.items():
        peak = "–" if result["peak_vram_gib"] is None else f"{result['peak_vram_gib']:.2f}"
        print(
            f"| {label} | {result['seconds_per_keyframe']:.2f} | {result['time_vs_plain']:.2f} | "
            f"{'/'.join(map(str, result['calls_per_keyframe']))} ({result['call_ratio']:.2f}) | {peak} |"
        )
    for key, target in targets.items():
        print(f"  {key}: {target['value']:.2f} ≤ {target['target']:.2f}: {'met' if target['met'] else 'MISSED'}")
    print(f"  note: {TEXT_ENCODER_NOTE}")
    return dict(
        device=name,
        family=family,
        tiny=arguments.tiny,
        size=size,
        steps=steps,
        dtype=str(dtype),
        build_seconds=build_seconds,
        variants=variants,
        targets=targets,
        note=TEXT_ENCODER_NOTE,
    )


def zimage_keyframe_check(arguments: argparse.Namespace) -> int:
    """``--zimage``: :func:`transformer_keyframe_check` for Z-Image, its report written to ``--json``."""
    _write_json(arguments.json, transformer_keyframe_check(arguments, "zimage"))
    return 0


# --------------------------------------------------------------------------------------------------------
# The shared propagation suite on the torch engine (issue 23), or the engines' parity where it is not reachable
# --------------------------------------------------------------------------------------------------------

SUITE_PLACES = ("shared/bench/propagation_suite.py", ".gpu_shared/bench/propagation_suite.py")
PARITY_DB, PARITY_SSIM = 0.1, 0.002  # issue 23: the torch engine within this of numba on every case


def find_suite(explicit: Path | None) -> Path | None:
    """The shared suite: ``--suite``, else ``shared/`` or ``.gpu_shared/`` in the repository (what travels to a
    lent device), else ``../shared`` beside it (a developer's checkout); None when none holds it."""
    candidates = [explicit] if explicit is not None else [REPO / place for place in SUITE_PLACES]
    if explicit is None:
        candidates.append(REPO.parent / "shared" / "bench" / "propagation_suite.py")
    return next((path.resolve() for path in candidates if path is not None and path.is_file()), None)


def _suite_run(suite: Path, engine: dict, arguments: argparse.Namespace, timeout: float | None) -> dict:
    import subprocess

    with tempfile.TemporaryDirectory(prefix="gpu-check-suite-") as folder:
        output = Path(folder) / "suite.json"
        command = [sys.executable, str(suite), "--propagator", "py:benchmarks/propagation_adapter.py:run"]
        command += ["--json", str(output)] + (["--quick"] if not arguments.suite_full else [])
        if arguments.tiny:
            command += ["--clips", "dog", "--styles", "cartoon", "--long-side", "96", "--threads", "1"]
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "RERENDER_PROPAGATION": repr(engine),
            **({"RERENDER_TORCH_THREADS": "1"} if arguments.tiny else {}),
        }
        started = time.perf_counter()
        finished = subprocess.run(command, cwd=REPO, env=environment, timeout=timeout, text=True, capture_output=True)
        print(finished.stdout, end="", flush=True)
        if not output.is_file():
            raise RuntimeError(f"the suite wrote no results (exit {finished.returncode}): {finished.stderr[-2000:]}")
        report = json.loads(output.read_text())
    report["wall_seconds"] = time.perf_counter() - started
    return report


def suite_check(arguments: argparse.Namespace) -> dict:
    """The shared suite (``--quick``: one style per clip; ``--suite-full``: every case) with the torch engine on
    CUDA and with numba on the CPU, in the same run: each engine's result against the suite's targets, and the
    torch engine's PSNR and SSIM per case against numba's (issue 23: within 0.1 dB / 0.002). Without the suite
    (not carried to the device), :func:`engine_parity` on synthetic clips and the bundled clip instead."""
    suite = None if arguments.no_suite else find_suite(arguments.suite)
    device = "cpu" if arguments.tiny else "cuda"
    if suite is None:
        print("the shared propagation suite is not used here: the engines' parity on bundled/synthetic clips")
        reason = "--no-suite" if arguments.no_suite else "not found (see the docstring: carry .gpu_shared)"
        return dict(suite=None, reason=reason, **engine_parity(arguments))
    budget = getattr(arguments, "row_timeout", None)
    torch_run = _suite_run(suite, {"engine": "torch", "device": device}, arguments, budget)
    numba_run = _suite_run(suite, {"engine": "numba"}, arguments, budget)
    numba_cases = {(case["clip"], case["style"]): case for case in numba_run["cases"]}
    cases = []
    for case in torch_run["cases"]:
        reference = numba_cases[(case["clip"], case["style"])]
        cases.append(
            dict(
                clip=case["clip"],
                style=case["style"],
                psnr_torch=case["psnr"],
                psnr_numba=reference["psnr"],
                ssim_torch=case["ssim"],
                ssim_numba=reference["ssim"],
                s_per_frame_torch=case["spf"],
                s_per_frame_numba=reference["spf"],
                within_tolerance=bool(
                    abs(case["psnr"] - reference["psnr"]) <= PARITY_DB
                    and abs(case["ssim"] - reference["ssim"]) <= PARITY_SSIM
                ),
            )
        )
    print("| clip | style | PSNR torch | numba | SSIM torch | numba | s/frame torch | numba | within 0.1 dB/0.002 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        print(
            f"| {case['clip']} | {case['style']} | {case['psnr_torch']:.2f} | {case['psnr_numba']:.2f} | "
            f"{case['ssim_torch']:.4f} | {case['ssim_numba']:.4f} | {case['s_per_frame_torch']:.3f} | "
            f"{case['s_per_frame_numba']:.3f} | {'yes' if case['within_tolerance'] else 'NO'} |"
        )
    return dict(
        suite=str(suite),
        device=device,
        torch=dict(passed=torch_run["passed"], worst=torch_run["worst"], wall_seconds=torch_run["wall_seconds"]),
        numba=dict(passed=numba_run["passed"], worst=numba_run["worst"], wall_seconds=numba_run["wall_seconds"]),
        cases=cases,
        parity=all(case["within_tolerance"] for case in cases),
    )


def _bundled_clip(count: int, long_side: int):
    """The first ``count`` frames of ``rerender/assets/demo.mp4`` (OpenCV's reader: no PyAV needed), RGB."""
    import cv2

    capture = cv2.VideoCapture(str(REPO / "rerender" / "assets" / "demo.mp4"))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        scale = long_side / max(frame.shape[:2])
        size = (round(frame.shape[1] * scale) // 8 * 8, round(frame.shape[0] * scale) // 8 * 8)
        frames.append(cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def engine_parity(arguments: argparse.Namespace) -> dict:
    """Torch (on CUDA; ``--tiny``: the CPU) against numba on clips with a ground truth: the synthetic sliding
    texture of ``benchmarks/propagation_engines.py`` (exact flow) and the bundled clip (DIS flow), each stylised
    by a deterministic filter (inverted, posterised), keys at both ends. Per case and preset: each engine's PSNR
    against the stylised truth, and the difference (issue 23: within 0.1 dB)."""
    import numpy as np

    spec = importlib.util.spec_from_file_location(
        "propagation_engines", REPO / "benchmarks" / "propagation_engines.py"
    )
    engines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engines)
    device = "cpu" if arguments.tiny else "cuda"
    if arguments.tiny:
        import torch

        torch.set_num_threads(1)
    side, count = (48, 4) if arguments.tiny else (384, 11)
    presets = ("balanced",) if arguments.tiny else engines.PRESETS
    synthetic, styled, flow = engines.synthetic_interval(side, side, count)
    bundled = _bundled_clip(count, side)
    clips = {"synthetic texture": (synthetic, styled, flow)}
    if len(bundled) >= 3:
        clips["bundled demo.mp4"] = (
            bundled,
            [((255 - f[..., ::-1]) // 40 * 40 + 20).astype(np.uint8) for f in bundled],
            None,
        )
    rows = []
    print("| clip | preset | PSNR torch | PSNR numba | difference | within 0.1 dB |")
    print("|---|---|---|---|---|---|")
    for name, (frames, truth, clip_flow) in clips.items():
        for preset in presets:
            scores = {}
            for engine, engine_device in (("torch", device), ("numba", None)):
                output, seconds, _ = engines.run_engine(engine, engine_device, preset, frames, truth, clip_flow)
                scores[engine] = (
                    float(np.mean([engines._psnr(o, t) for o, t in zip(output[1:-1], truth[1:-1])])),
                    seconds,
                )
            difference = scores["torch"][0] - scores["numba"][0]
            rows.append(
                dict(
                    clip=name,
                    preset=preset,
                    size=f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                    psnr_torch=scores["torch"][0],
                    psnr_numba=scores["numba"][0],
                    s_per_frame_torch=scores["torch"][1],
                    s_per_frame_numba=scores["numba"][1],
                    within_tolerance=bool(abs(difference) <= PARITY_DB),
                )
            )
            print(
                f"| {name} | {preset} | {scores['torch'][0]:.2f} | {scores['numba'][0]:.2f} | {difference:+.2f} | "
                f"{'yes' if abs(difference) <= PARITY_DB else 'NO'} |",
                flush=True,
            )
    return dict(device=device, parity_cases=rows, parity=all(row["within_tolerance"] for row in rows))


# --------------------------------------------------------------------------------------------------------
# End to end (issue 23): `translate`, SD 1.5, K = 10, 512², fp16, full-size random weights, a synthetic clip
# --------------------------------------------------------------------------------------------------------


def translate_check(arguments: argparse.Namespace) -> dict:
    """`rerender.translate` on a 31-frame synthetic 512² clip (mixed motion) with K = 10 (keyframes 0, 10, 20, 30),
    the full-size SD 1.5 + ControlNet built from the shipped configs (random weights, fp16, on the GPU), 20 steps,
    strength 0.75, every stage (frames, flow, keyframes, propagation, encoding): seconds per output frame, the
    stages' timings and peak VRAM. Targets (issue 23): ≤ 1 s per output frame, ≤ 10 GB. ``--tiny``: 12 frames at
    64² with the test kit's tiny models on the CPU."""
    import torch

    from rerender.diffusion.pipeline import RerenderPipeline
    from rerender.synthetic import write_synthetic_video
    from rerender.workflow.translation import translate

    cuda = not arguments.tiny
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    size, count, steps = (64, 12, 4) if arguments.tiny else (512, 31, 20)
    components = build_components(arguments.tiny, device, dtype)
    pipeline = RerenderPipeline(**components)
    pipeline.set_progress_bar_config(disable=True)
    settings = dict(
        resolution=size,
        size_multiple=16 if arguments.tiny else 64,
        num_inference_steps=steps,
        denoising_strength=0.75,
        vae=None,
        device=device.type,
        dtype="float32" if arguments.tiny else "float16",
        renderer="diffusion",
        flow_estimator="dis",
    )
    with tempfile.TemporaryDirectory(prefix="gpu-check-translate-") as folder:
        clip = Path(folder) / "clip.mp4"
        write_synthetic_video(clip, num_frames=count, width=size, height=size, motion="mixed", audio=False)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = translate(
            clip,
            "a watercolour painting",
            K=10,
            output=Path(folder) / "out.mp4",
            pipeline=pipeline,
            progress=False,
            **settings,
        )
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    report = dict(
        device=torch.cuda.get_device_name() if cuda else "CPU",
        tiny=arguments.tiny,
        size=size,
        frames=result.frame_count,
        keyframes=result.keyframe_indices,
        steps=steps,
        seconds=wall,
        seconds_per_frame=wall / result.frame_count,
        timings=result.timings,
        peak_vram_gib=peak,
    )
    report["targets"] = dict(
        seconds_per_frame=dict(
            value=report["seconds_per_frame"], target=1.0, met=report["seconds_per_frame"] <= 1.0 if cuda else None
        ),
        peak_vram_gib=dict(value=peak, target=10.0, met=None if peak is None else peak <= 10.0),
    )
    print(
        f"translate ({report['device']}, {'tiny' if arguments.tiny else 'SD 1.5 full size, random weights'}, {dtype}, "
        f"{size}², {result.frame_count} frames, K = 10, keyframes {result.keyframe_indices}): {wall:.1f} s, "
        f"{report['seconds_per_frame']:.2f} s/frame, peak VRAM {'–' if peak is None else f'{peak:.2f} GiB'}; "
        f"stages {', '.join(f'{k} {v:.1f} s' for k, v in result.timings.items())}"
    )
    return report


# --------------------------------------------------------------------------------------------------------
# --all: every row in priority order within --budget-s, the JSON written after each row
# --------------------------------------------------------------------------------------------------------

KEYFRAME_NEEDS = ("torch", "diffusers", "transformers", "numpy", "cv2", "yaml", "kornia")
PROPAGATION_NEEDS = ("torch", "numpy", "cv2", "yaml", "kornia", "numba")  # rerender.flow blurs with kornia
#: name: (what it measures, the packages it imports, its estimated seconds on an H100 including a process start).
ROWS: dict[str, tuple[str, tuple[str, ...], float]] = {
    "sd15": ("SD 1.5 keyframes vs plain img2img, 512², 20 steps, fp16 (+1024² tiling, offload)", KEYFRAME_NEEDS, 75),
    "sdxl": (
        "SDXL keyframes vs diffusers' SDXL ControlNet img2img, 1024², references on GPU / host, then offload",
        KEYFRAME_NEEDS,
        160,
    ),
    "zimage": ("Z-Image keyframes vs ZImageControlNetPipeline, 1024², bf16", KEYFRAME_NEEDS, 80),
    "propagation": ("torch engine (CUDA) vs numba (CPU), 512² and 1080p, every preset", PROPAGATION_NEEDS, 110),
    "suite": ("the shared propagation suite (--quick) on torch/CUDA and numba, parity", PROPAGATION_NEEDS, 90),
    "translate": ("translate end to end: SD 1.5, K = 10, 512², fp16", (*KEYFRAME_NEEDS, "av"), 60),
    "flux": ("Flux keyframes vs FluxControlNetPipeline, 1024², bf16 (if time remains)", KEYFRAME_NEEDS, 90),
}
MINIMUM_SHARE = 0.6
"""A row starts when at least this share of its estimate is left (its process is then stopped at the budget)."""


def environment_report() -> dict:
    """What this machine has: every package a row imports (version, or missing), torch's CUDA device, CPU cores,
    and whether OpenCV reads MP4 (the suite decodes with it)."""
    from importlib import metadata

    names = sorted({name for _, needs, _ in ROWS.values() for name in needs} | {"xformers", "skimage"})
    distributions = {
        "cv2": ("opencv-python-headless", "opencv-contrib-python-headless", "opencv-python", "opencv-contrib-python"),
        "yaml": ("PyYAML",),
        "skimage": ("scikit-image",),
    }
    packages: dict[str, str | None] = {}
    for name in names:
        if importlib.util.find_spec(name) is None:
            packages[name] = None
            continue
        packages[name] = "present"
        for distribution in distributions.get(name, (name,)):
            try:
                packages[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    report = dict(packages=packages, cpu_count=os.cpu_count(), python=sys.version.split()[0])
    if packages.get("torch"):
        import torch

        report.update(cuda=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
        if torch.cuda.is_available():
            report["gpu"] = torch.cuda.get_device_name()
            report["gpu_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    if packages.get("cv2"):
        import cv2

        report["opencv_ffmpeg"] = any(  # the suite decodes its MP4 clips with OpenCV
            line.strip().startswith("FFMPEG:") and "YES" in line for line in cv2.getBuildInformation().splitlines()
        )
    return report


def missing_for(row: str, environment: dict) -> list[str]:
    return [name for name in ROWS[row][1] if not environment["packages"].get(name)]


def run_row(name: str, arguments: argparse.Namespace) -> dict:
    """One row in this process (``--row NAME``; ``--all --in-process``)."""
    import torch

    row_arguments = argparse.Namespace(**vars(arguments))
    row_arguments.size = row_arguments.large_size = row_arguments.steps = None
    if arguments.tiny:
        torch.set_num_threads(1)
    if name == "sd15":
        row_arguments.size, row_arguments.steps = (64, 4) if arguments.tiny else (512, 20)
        row_arguments.large_size = 64 if arguments.tiny else 1024
        row_arguments.keyframes = 1 if arguments.tiny else arguments.keyframes
        return sd15_keyframe_check(row_arguments)
    if name == "sdxl":
        row_arguments.keyframes = 1 if arguments.tiny else arguments.keyframes
        return sdxl_keyframe_check(row_arguments)
    if name in TRANSFORMER_BASES:
        return transformer_keyframe_check(row_arguments, name)
    if name == "propagation":
        # numba on 3 frames (one propagated): its time per frame does not depend on the interval's length
        return propagation_check("cpu" if arguments.tiny else "cuda", arguments.tiny, numba_frames=3)
    if name == "suite":
        return suite_check(row_arguments)
    if name == "translate":
        return translate_check(row_arguments)
    raise ValueError(f"unknown row {name!r}; rows: {', '.join(ROWS)}")


def _row_in_subprocess(name: str, arguments: argparse.Namespace, timeout: float) -> dict:
    """One row in a process of its own (its GPU memory freed when it ends), stopped after ``timeout`` seconds."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as folder:
        output = Path(folder) / "row.json"
        command = [sys.executable, "-u", str(Path(__file__).resolve()), "--row", name, "--json", str(output)]
        command += ["--tiny"] * arguments.tiny + ["--suite-full"] * arguments.suite_full
        command += ["--keyframes", str(arguments.keyframes)]
        if arguments.suite is not None:
            command += ["--suite", str(arguments.suite)]
        command += ["--no-suite"] * arguments.no_suite
        try:
            finished = subprocess.run(command, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except subprocess.TimeoutExpired:
            return dict(status="timed out", reason=f"stopped at the budget after {timeout:.0f} s")
        if finished.returncode != 0 or not output.is_file():
            return dict(status="failed", reason=f"exit code {finished.returncode} (its traceback is printed above)")
        return dict(status="done", result=json.loads(output.read_text()))


def run_all(arguments: argparse.Namespace) -> int:
    """``--all``: every row of ``--rows`` (default all, in the priority order of `ROWS`) while ``--budget-s``
    lasts. A row whose packages are missing, or whose estimate would not fit in what is left, is skipped with
    the reason; the JSON is rewritten after every row, so a run stopped from outside keeps what finished."""
    started = time.perf_counter()
    names = arguments.rows.split(",") if arguments.rows else list(ROWS)
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        print(f"unknown rows {unknown}; rows: {', '.join(ROWS)}", file=sys.stderr)
        return 2
    environment = environment_report()
    print(f"environment: {json.dumps(environment)}", flush=True)
    import torch

    if not arguments.tiny and not torch.cuda.is_available():
        print("no CUDA device: run with --tiny for the CPU code path", file=sys.stderr)
        return 2
    report: dict[str, Any] = dict(
        environment=environment, budget_s=arguments.budget_s, tiny=arguments.tiny, rows={}, order=names
    )
    in_process = arguments.in_process or arguments.tiny
    for name in names:
        title, _, estimate = ROWS[name]
        left = arguments.budget_s - (time.perf_counter() - started)
        missing = missing_for(name, environment)
        print(f"\n=== {name}: {title} ({left:.0f} s of the budget left) ===", flush=True)
        if missing:
            entry = dict(status="skipped", reason=f"missing packages: {', '.join(missing)} (carry their wheels)")
        elif not arguments.tiny and left < MINIMUM_SHARE * estimate:
            entry = dict(
                status="skipped", reason=f"would not fit: about {estimate:.0f} s estimated, {left:.0f} s left"
            )
        elif arguments.tiny and left <= 0:
            entry = dict(status="skipped", reason=f"would not fit: the budget is spent ({left:.0f} s left)")
        elif in_process:
            row_started = time.perf_counter()
            try:
                entry = dict(status="done", result=run_row(name, arguments))
            except Exception as error:  # noqa: BLE001 - one row's failure must not lose the others
                import traceback

                traceback.print_exc()
                entry = dict(status="failed", reason=f"{type(error).__name__}: {error}")
            entry["seconds"] = time.perf_counter() - row_started
        else:
            row_started = time.perf_counter()
            entry = _row_in_subprocess(name, arguments, left)
            entry["seconds"] = time.perf_counter() - row_started
        if entry["status"] != "done":
            print(f"{name}: {entry['status']} ({entry['reason']})", flush=True)
        entry["estimate_s"] = estimate
        report["rows"][name] = entry
        report["elapsed_s"] = time.perf_counter() - started
        _write_json(arguments.json, report)
    print("\nsummary:")
    for name, entry in report["rows"].items():
        result = entry.get("result") or {}
        targets = result.get("targets") or {}
        met = ", ".join(
            f"{key} {'met' if t.get('met') else ('n/a' if t.get('met') is None else 'MISSED')}"
            for key, t in targets.items()
        )
        print(
            f"  {name}: {entry['status']}"
            + (f" ({entry.get('reason')})" if entry.get("reason") else "")
            + (f"; {met}" if met else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
