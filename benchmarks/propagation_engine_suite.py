"""The torch engine against the numba engine on every case of the propagation suite (issue 23's "same pictures").

    python benchmarks/propagation_engine_suite.py [--styles cartoon,pencil,watercolor] [--clips ...] [--out DIR]
    python benchmarks/propagation_engine_suite.py --torch-json torch.json --numba-json numba.json

Runs ``propagation_suite_plus.py`` twice, the balanced preset on the torch engine (``run_torch``: CUDA when torch
sees one, else the CPU) and on the numba engine (``run``), each case judged against ``warp_blend`` in its own run,
and writes both runs' JSON under ``--out``; or compares two such files given with ``--torch-json``/``--numba-json``.
Prints per case the two engines' PSNR and SSIM against the ground truth, their differences, the torch run's
margins over ``warp_blend``, and the verdict: every case within ``--max-dpsnr`` dB (0.1) and ``--max-dssim``
(0.002) of numba, and the torch run passing the suite's targets (dPSNR ≥ +0.30, dSSIM ≥ +0.005, sharpness ≥ 0.90,
flicker ≤ the ground truth's). Exit status 0 when both hold.

On the CPU the torch engine spends about half its time in page faults when glibc hands its large temporaries
back to the kernel after every use; ``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184
MALLOC_TOP_PAD_=1073741824`` in the environment keeps them (same pictures, about 2.3× faster on car-turn pencil).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = dict(dpsnr=0.30, dssim=0.005, sharp=0.90)


def run_suite(propagator: str, styles: str, clips: str | None, path: str) -> None:
    """One suite run of ``propagation_suite_plus.py`` writing its cases to ``path``."""
    command = [sys.executable, os.path.join(HERE, "propagation_suite_plus.py"), "--propagator", propagator]
    command += ["--styles", styles, "--json", path] + (["--clips", clips] if clips else [])
    subprocess.run(command, check=False)  # the suite's own FAIL exit is read from the JSON


def compare(torch_run: dict, numba_run: dict, max_dpsnr: float, max_dssim: float) -> bool:
    """Print the per-case table and the verdict; True when every case is within tolerance and the suite passes."""
    numba_cases = {(case["clip"], case["style"]): case for case in numba_run["cases"]}
    print(
        f"{'clip':<14}{'style':<11}{'PSNR numba':>11}{'torch':>7}{'diff':>7}{'SSIM numba':>11}{'torch':>7}"
        f"{'diff':>8}{'dPSNR':>7}{'dSSIM':>8}{'sharp':>6}{'s/f numba':>10}{'torch':>7}"
    )
    worst_dpsnr = worst_dssim = 0.0
    behind_dpsnr = behind_dssim = 0.0  # the most torch falls short of numba (one-sided)
    passed = True
    for case in torch_run["cases"]:
        key = (case["clip"], case["style"])
        if key not in numba_cases:
            print(f"{key[0]:<14}{key[1]:<11} not in the numba run")
            passed = False
            continue
        other = numba_cases[key]
        dpsnr, dssim = case["psnr"] - other["psnr"], case["ssim"] - other["ssim"]
        worst_dpsnr, worst_dssim = max(worst_dpsnr, abs(dpsnr)), max(worst_dssim, abs(dssim))
        behind_dpsnr, behind_dssim = max(behind_dpsnr, -dpsnr), max(behind_dssim, -dssim)
        meets = (
            case["dpsnr"] >= TARGETS["dpsnr"]
            and case["dssim"] >= TARGETS["dssim"]
            and case["sharp"] >= TARGETS["sharp"]
            and case["flicker"] <= case["flicker_gt"]
        )
        passed &= meets and abs(dpsnr) <= max_dpsnr and abs(dssim) <= max_dssim
        print(
            f"{key[0]:<14}{key[1]:<11}{other['psnr']:11.2f}{case['psnr']:7.2f}{dpsnr:+7.3f}{other['ssim']:11.4f}"
            f"{case['ssim']:7.4f}{dssim:+8.4f}{case['dpsnr']:+7.2f}{case['dssim']:+8.4f}{case['sharp']:6.2f}"
            f"{other['spf']:10.2f}{case['spf']:7.2f}{'' if meets else '  misses a target'}"
        )
    print(
        f"largest difference: {worst_dpsnr:.3f} dB (<= {max_dpsnr}), SSIM {worst_dssim:.4f} (<= {max_dssim}); torch "
        f"behind numba by at most {behind_dpsnr:.3f} dB, SSIM {behind_dssim:.4f}; "
        f"torch run of the suite: {'PASS' if torch_run.get('passed') else 'FAIL'}; "
        f"{'PASS' if passed and torch_run.get('passed') else 'FAIL'}"
    )
    return passed and bool(torch_run.get("passed"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", default="cartoon,pencil,watercolor", help="suite styles (default: the bench's)")
    parser.add_argument("--clips", default=None, help="comma-separated clips (default: all eight)")
    parser.add_argument("--out", default=None, help="folder for the two runs' JSON (default: a temporary one)")
    parser.add_argument("--torch-json", default=None, help="compare this torch run instead of running one")
    parser.add_argument("--numba-json", default=None, help="compare this numba run instead of running one")
    parser.add_argument("--max-dpsnr", type=float, default=0.1, help="tolerance in dB (default 0.1)")
    parser.add_argument("--max-dssim", type=float, default=0.002, help="SSIM tolerance (default 0.002)")
    arguments = parser.parse_args(argv)
    out = arguments.out or tempfile.mkdtemp(prefix="engine_suite_")
    os.makedirs(out, exist_ok=True)
    paths = {}
    for engine, propagator, given in (
        ("torch", "run_torch", arguments.torch_json),
        ("numba", "run", arguments.numba_json),
    ):
        paths[engine] = given or os.path.join(out, f"{engine}.json")
        if not given:
            run_suite(
                f"py:{HERE}/propagation_adapter.py:{propagator}", arguments.styles, arguments.clips, paths[engine]
            )
    runs = {}
    for engine, path in paths.items():
        with open(path) as f:
            runs[engine] = json.load(f)
    return 0 if compare(runs["torch"], runs["numba"], arguments.max_dpsnr, arguments.max_dssim) else 1


if __name__ == "__main__":
    sys.exit(main())
