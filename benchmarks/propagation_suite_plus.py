"""The shared propagation suite with our extra styles (``propagation_styles.py``) registered, and a CPU column.

    python benchmarks/propagation_suite_plus.py --propagator py:benchmarks/propagation_adapter.py:run \\
        [--styles cartoon,pencil,watercolor,impasto,glass,mosaic,halftone] [--clips ...] [--json FILE]

Without ``--styles`` it runs the five styles of ``DEFAULT_STYLES`` (8 clips × 5 styles).

Same arguments as ``../shared/bench/propagation_suite.py`` (found there, or under ``$RERENDER_BENCH``). After the
suite's table it prints each case's CPU seconds per propagated frame (the propagator's own process time, which a
shared machine's load inflates far less than wall time) and the slowest, with the 1-minute load average; with
``--json`` these land in the file too (``cpu_spf`` per case, ``worst.cpu_spf``, ``load``).
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# the shared suite: $RERENDER_BENCH, else ../shared/bench beside the repository (where the project keeps it)
BENCH = os.environ.get("RERENDER_BENCH", os.path.join(HERE, "..", "..", "shared", "bench"))
if not os.path.isfile(os.path.join(BENCH, "propagation_suite.py")):
    sys.exit(f"the propagation suite is not at {BENCH}: set RERENDER_BENCH to the folder holding propagation_suite.py")
sys.path.insert(0, BENCH)
sys.path.insert(0, HERE)

import propagation_bench  # noqa: E402
import propagation_suite  # noqa: E402
from propagation_styles import STYLES  # noqa: E402

#: What the suite is judged on: the bench's three looks and our two content-fixed ones (8 clips × 5 styles). The
#: screen-fixed ``mosaic`` and ``halftone`` are not a target for a keyframe propagator (see propagation_styles).
DEFAULT_STYLES = ("cartoon", "pencil", "watercolor", "impasto", "glass")


def main(argv: list[str] | None = None) -> int:
    propagation_bench.STYLES.update(STYLES)
    cpu: list[tuple[str, str, float, float]] = []
    run_case = propagation_suite.run_case

    def timed_case(clip, style, propagator, long_side, threads):
        setup, base, ours = run_case(clip, style, propagator, long_side, threads)
        stats = ours.get("stats", {})
        cpu.append(
            (
                clip,
                style,
                stats.get("cpu_s_per_propagated_frame", float("nan")),
                stats.get("loadavg_1min_after", float("nan")),
            )
        )
        return setup, base, ours

    propagation_suite.run_case = timed_case
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(arg == "--styles" or arg.startswith("--styles=") for arg in argv):
        argv += ["--styles", ",".join(DEFAULT_STYLES)]
    code = propagation_suite.main(argv)
    if cpu:
        print(f"{'clip':<14}{'style':<11}{'CPU s/f':>8}{'load':>6}")
        for clip, style, spf, load in cpu:
            print(f"{clip:<14}{style:<11}{spf:8.2f}{load:6.2f}")
        slow = max(cpu, key=lambda row: row[2])
        print(f"slowest CPU s/frame: {slow[2]:.2f} ({slow[0]}, {slow[1]}); CPU seconds per frame over all threads")
    if "--json" in argv:
        path = argv[argv.index("--json") + 1]
        with open(path) as f:
            data = json.load(f)
        for row, (_, _, spf, load) in zip(data["cases"], cpu):
            row["cpu_spf"] = spf
            row["load"] = load
        data["worst"]["cpu_spf"] = max(row[2] for row in cpu)
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
