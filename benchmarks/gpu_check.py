"""GPU readiness check of the keyframe engine: full-size SD 1.5 + ControlNet architectures with random weights.

Sized for about 3 minutes on one H100/H200-class GPU. The UNet, ControlNet, VAE and CLIP text encoder are built
from the configs in ``rerender/assets/sd15-config`` with random weights (no hub, no network), in fp16. Frames are
synthetic (a colour gradient with a moving square, no video decoding). Settings: 512², 20 DDIM steps, strength
0.75, guidance 7.5, canny control, the anchor plus 3 keyframes, every constraint on (cross-frame attention,
shape-aware and pixel-aware fusion with fidelity encoding, AdaIN (0.8, 1)), DIS flow.

Variants, in this order, on the same components:

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

Imports: torch, diffusers, transformers and the repository's `rerender` package (which needs numpy, opencv,
PyYAML and, for the fusion masks' blur, kornia). On a machine without diffusers or kornia, carry their wheels
(``diffusers``, ``kornia``, ``kornia_rs``) as the device tool's README describes; the script names what is
missing before it builds anything. PyAV is not needed.

``--tiny`` runs the same code on the CPU with the test kit's tiny models (``tests/tiny_models.py``): 64², 4 steps,
fp32; variants that need CUDA are reported as skipped. A test runs this mode.

Then the propagation rows (issue 23, :func:`propagation_check`): the torch propagation engine on the GPU against
the numba engine on this machine's CPU, s/frame per preset at 512² and 1080p and peak VRAM (targets for
"balanced": ≤ 0.05 s/frame at 512², ≤ 0.3 s at 1080p).

Usage:
    python benchmarks/gpu_check.py --json gpu_check.json
    python benchmarks/gpu_check.py --tiny --json /tmp/gpu_check_tiny.json
    python benchmarks/gpu_check.py --propagation-only --json propagation.json        # the propagation rows alone
    python benchmarks/gpu_check.py --propagation-only --device cpu --quick             # their code path on a CPU
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
    return parser.parse_args(argv)


def propagation_check(device: str, quick: bool) -> dict:
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
    rows = engines.measure(device, sizes, presets, frames=4 if quick else 10, numba_frames=4)
    result = dict(device=device, rows=rows, targets=engines.targets(rows))
    print("propagation targets (balanced, CUDA):", result["targets"])
    return result


def _write_json(path: Path | None, report: dict) -> None:
    if path is not None:
        temporary = path.with_name(path.name + ".partial")
        temporary.write_text(json.dumps(report, indent=2))
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
    device = torch.device("cpu" if arguments.tiny else "cuda")
    dtype = torch.float32 if arguments.tiny else torch.float16
    arguments.size = arguments.size or (64 if arguments.tiny else 512)
    arguments.large_size = arguments.large_size or (96 if arguments.tiny else 1024)
    arguments.steps = arguments.steps or (4 if arguments.tiny else 20)
    if arguments.tiny:
        torch.set_num_threads(1)
    if arguments.sdxl:
        return sdxl_keyframe_check(arguments)
    if arguments.zimage:
        return zimage_keyframe_check(arguments)

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
    _write_json(arguments.json, report)  # the keyframe engine's results first, in case propagation fails
    if not arguments.tiny or arguments.quick:
        report["propagation"] = propagation_check(
            arguments.device or ("cpu" if arguments.tiny else "cuda"), arguments.quick or arguments.tiny
        )
        _write_json(arguments.json, report)
    return 0


# --------------------------------------------------------------------------------------------------------
# SDXL keyframes (issue 22): python benchmarks/gpu_check.py --sdxl --json gpu_check_sdxl.json
# --------------------------------------------------------------------------------------------------------


def sdxl_keyframe_check(arguments: argparse.Namespace) -> int:
    """Full-size SDXL base + one SDXL ControlNet (random weights from ``rerender/assets/sdxl-config``), fp16, 1024²,
    20 steps, strength 0.75, canny, every constraint on; seconds per keyframe and peak VRAM of `RerenderPipeline`
    against diffusers' `StableDiffusionXLControlNetImg2ImgPipeline` on the same components, in the same run, then
    both again with ``enable_model_cpu_offload()``. Targets: ≤ 12 GB peak without offload, ≤ 8 GB with it, time
    ratio within 0.1 of the UNet-call ratio. ``--tiny``: the test kit's tiny SDXL models on the CPU, 64², 4 steps.
    """
    import numpy as np
    import torch
    from diffusers import StableDiffusionXLControlNetImg2ImgPipeline
    from PIL import Image

    sys.path.insert(0, str(REPO / "benchmarks"))
    from keyframe_benchmark import build_sdxl_components

    from rerender.config import ConstraintConfig
    from rerender.diffusion.control import canny
    from rerender.diffusion.pipeline import RerenderPipeline
    from rerender.flow import DISFlowEstimator

    cuda = not arguments.tiny
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    size = arguments.size or (64 if arguments.tiny else 1024)
    steps = arguments.steps or (4 if arguments.tiny else 20)
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
    build_seconds = time.perf_counter() - started
    frames = synthetic_frames(arguments.keyframes + 1, size)
    controls = [canny(frame) for frame in frames]
    prompt = "a watercolour painting, best quality"
    plain = StableDiffusionXLControlNetImg2ImgPipeline(**components, requires_aesthetics_score=False)
    ours = RerenderPipeline(**components)
    for pipeline in (plain, ours):
        pipeline.set_progress_bar_config(disable=True)
    calls: list[int] = []
    components["unet"].register_forward_pre_hook(lambda module, args: calls.append(1))
    common = dict(num_inference_steps=steps, strength=arguments.strength, guidance_scale=7.5)

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    def run_plain() -> tuple[float, list[int]]:
        times, counts = [], []
        for frame, control in zip(frames[1:], controls[1:]):
            calls.clear()
            synchronize()
            begin = time.perf_counter()
            plain(
                prompt,
                image=Image.fromarray(frame),
                control_image=Image.fromarray(control),
                output_type="np",
                generator=torch.Generator().manual_seed(0),
                **common,
            )
            synchronize()
            times.append(time.perf_counter() - begin)
            counts.append(len(calls))
        return float(np.mean(times)), counts

    def run_ours() -> tuple[float, list[int]]:
        rendered = list(
            ours.render_keyframes(
                frames,
                prompt,
                control_images=controls,
                flow_estimator=DISFlowEstimator("medium"),
                constraints=ConstraintConfig(adain_period=(0.8, 1.0)),
                generator=torch.Generator().manual_seed(0),
                **common,
            )
        )
        synchronize()
        return float(np.mean([frame.seconds for frame in rendered[1:]])), [frame.unet_calls for frame in rendered[1:]]

    def measured(run) -> dict[str, Any]:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        seconds, counts = run()
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        return dict(seconds_per_keyframe=seconds, unet_calls_per_keyframe=counts, peak_vram_gib=peak)

    with torch.no_grad():
        if cuda:
            run_plain()  # warm-up
        results = {"plain": measured(run_plain), "rerender": measured(run_ours)}
        if cuda:
            for pipeline in (plain, ours):
                pipeline.enable_model_cpu_offload()
            results["plain, cpu offload"] = measured(run_plain)
            results["rerender, cpu offload"] = measured(run_ours)
    call_ratio = np.mean(results["rerender"]["unet_calls_per_keyframe"]) / np.mean(
        results["plain"]["unet_calls_per_keyframe"]
    )
    time_ratio = results["rerender"]["seconds_per_keyframe"] / results["plain"]["seconds_per_keyframe"]
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(
        f"{name}: SDXL + ControlNet ({'tiny' if arguments.tiny else 'full size'}, random weights), {dtype}, {size}², "
        f"{steps} steps, strength {arguments.strength}, {arguments.keyframes} keyframes, built in {build_seconds:.0f} s"
    )
    print("| variant | s / keyframe | peak VRAM (GiB) | UNet calls / keyframe |")
    print("|---|---|---|---|")
    for variant, result in results.items():
        peak = "–" if result["peak_vram_gib"] is None else f"{result['peak_vram_gib']:.2f}"
        print(
            f"| {variant} | {result['seconds_per_keyframe']:.2f} | {peak} | "
            f"{'/'.join(map(str, result['unet_calls_per_keyframe']))} |"
        )
    print(f"time ratio {time_ratio:.2f} vs UNet-call ratio {call_ratio:.2f} (target within 0.1)")
    targets = dict(time_ratio=dict(value=time_ratio, target=call_ratio + 0.1))
    if cuda:
        targets["peak_vram_gib"] = dict(value=results["rerender"]["peak_vram_gib"], target=12.0)
        targets["peak_vram_offload_gib"] = dict(value=results["rerender, cpu offload"]["peak_vram_gib"], target=8.0)
    for key, target in targets.items():
        target["met"] = bool(target["value"] <= target["target"])
        print(f"  {key}: {target['value']:.2f} ≤ {target['target']:.2f}: {'met' if target['met'] else 'MISSED'}")
    if arguments.json is not None:
        report = dict(
            device=name,
            family="sdxl",
            tiny=arguments.tiny,
            size=size,
            steps=steps,
            variants=results,
            targets=targets,
            call_ratio=float(call_ratio),
            time_ratio=float(time_ratio),
        )
        temporary = arguments.json.with_name(arguments.json.name + ".partial")
        temporary.write_text(json.dumps(report, indent=2))
        os.replace(temporary, arguments.json)
    return 0


# --------------------------------------------------------------------------------------------------------
# Z-Image keyframes (issue 24): python benchmarks/gpu_check.py --zimage --json gpu_check_zimage.json
# --------------------------------------------------------------------------------------------------------


def zimage_keyframe_check(arguments: argparse.Namespace) -> int:
    """Z-Image's real block structure at full width (3,840, 30 blocks; random weights, bf16) at 1024², 9 steps,
    strength 1, guidance off, one ControlNet: seconds per keyframe and peak VRAM of `RerenderZImagePipeline` against
    diffusers' `ZImageControlNetPipeline` in the same run, with cross-frame attention in every block and in the last
    10 (the preset). Targets (issue 24): ≤ 16 GB without offload, time ratio within 0.1 of the call ratio. ``--tiny``
    runs the same code at toy size on the CPU."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from zimage_benchmark import main as zimage_benchmark

    common = (
        ["--threads", "1"]
        if arguments.tiny
        else [
            "--device",
            "cuda",
            "--dtype",
            "bfloat16",
            "--width",
            "3840",
            "--size",
            "1024",
            "--steps",
            "9",
            "--keyframes",
            "2",
        ]
    )
    if arguments.tiny:
        common += ["--width", "64", "--layers", "4", "--size", "64", "--steps", "4", "--keyframes", "1"]
    results = {
        "all blocks": zimage_benchmark(common),
        "last 10 blocks": zimage_benchmark([*common, "--last-blocks", "10"]),
    }
    if arguments.json is not None:
        arguments.json.write_text(
            json.dumps({"family": "zimage", "tiny": arguments.tiny, "variants": results}, indent=2, default=float),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
