"""End-to-end benchmark (issue 6): demo wall time per stage, memory for 100 vs 1,000 frames, eval of the demo.

1. `rerender translate` on the bundled clip (100 frames, 512×256) with the default settings and
   `renderer="auto"`: without diffusion weights the keyframes come from the classic stylizer (printed).
2. Peak RSS of `translate` (classic keyframes) on synthetic clips of 100 and 1,000 frames at 128×96 (each in a fresh process;
   the propagation workers' peak is reported too). The ratio is the figure: memory must not grow with length.
3. `rerender eval` of the demo output against the source.

    python benchmarks/translate_benchmark.py [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MEMORY_PROBE = r"""
import json, resource, sys
from rerender.workflow.translation import translate
from rerender.synthetic import write_synthetic_video
frames, folder = int(sys.argv[1]), sys.argv[2]
clip = f"{folder}/clip{frames}.mp4"
write_synthetic_video(clip, num_frames=frames, width=128, height=96, motion="mixed", audio=True)
result = translate(clip, "a cartoon", K=10, output=f"{folder}/out{frames}.mp4", progress=False,
                   resolution=128, size_multiple=16, flow_estimator="dis", renderer="classic")
print(json.dumps({
    "frames": result.frame_count,
    "self_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "workers_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "timings": result.timings,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as folder:
        from rerender.evaluation import evaluate_video
        from rerender.workflow.translation import translate

        demo = REPO / "rerender" / "assets" / "demo.mp4"
        output = Path(folder) / "demo_out.mp4"
        result = translate(demo, "a cartoon, flat colours", output=output, progress=False, renderer="auto")
        print(f"demo ({result.renderer} keyframes {result.keyframe_indices}):")
        for stage, seconds in result.timings.items():
            print(f"  {stage:12s} {seconds:7.1f} s")
        print(f"  {'total':12s} {sum(result.timings.values()):7.1f} s for {result.frame_count} frames")

        if not args.skip_memory:
            peaks = {}
            for frames in (100, 1000):
                run = subprocess.run(
                    [sys.executable, "-c", MEMORY_PROBE, str(frames), folder],
                    capture_output=True,
                    text=True,
                    env=environment,
                    check=True,
                )
                peaks[frames] = json.loads(run.stdout.strip().splitlines()[-1])
                record = peaks[frames]
                print(
                    f"{frames:5d} frames: peak RSS {record['self_peak_mib']:.0f} MiB (main), "
                    f"{record['workers_peak_mib']:.0f} MiB (largest worker), "
                    f"propagation {record['timings'].get('propagation', 0):.1f} s"
                )
            ratio = peaks[1000]["self_peak_mib"] / peaks[100]["self_peak_mib"]
            print(f"peak RSS ratio 1000 / 100 frames: {ratio:.2f} (main process)")

        report = evaluate_video(output, demo, prompt="a cartoon, flat colours")
        print("eval of the demo output vs the source:")
        print(json.dumps({key: value for key, value in report.items() if key not in ("output", "source")}, indent=2))


if __name__ == "__main__":
    main()
