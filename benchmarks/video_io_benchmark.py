"""`rerender info` time and frame-reading throughput: this checkout's `rerender.video` against another version's.

The other version is loaded from git (default `main`) as a separate module, so both run side by side in
one process on the same machine load; figures are medians of a few repeats.

    python benchmarks/video_io_benchmark.py [clip] [--against main] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "videos" / "pexels-cottonbro-studio-6649832-960x506-25fps.mp4"


def load_version(revision: str):
    """`rerender.video` at `revision`, imported as its own module (a single file, or the `video/` package)."""
    folder = Path(tempfile.mkdtemp(prefix="video-io-bench-"))
    name = f"video_{revision.replace('/', '_').replace('.', '_')}"
    single = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:rerender/video.py"], capture_output=True, text=True
    )
    if single.returncode == 0:
        path = folder / f"{name}.py"
        path.write_text(single.stdout)
    else:  # the package: its modules import `rerender.video.*`, so rename those imports to this copy
        listing = subprocess.run(
            ["git", "-C", str(REPO), "ls-tree", "--name-only", revision, "rerender/video/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        (folder / name).mkdir()
        for file in listing:
            source = subprocess.run(
                ["git", "-C", str(REPO), "show", f"{revision}:{file}"], capture_output=True, text=True, check=True
            ).stdout
            (folder / name / Path(file).name).write_text(source.replace("rerender.video.", f"{name}."))
        path = folder / name / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(folder))
    spec.loader.exec_module(module)
    return module


def measure(module, clip: Path, repeats: int) -> dict:
    probe_times, read_rates = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        info = module.probe_video(clip)
        probe_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        count = sum(1 for _ in module.read_frames(clip, info=info))
        read_rates.append(count / (time.perf_counter() - started))
    return {
        "frames": info.frame_count,
        "size": f"{info.width}x{info.height}",
        "fps": str(info.fps),
        "probe_ms": 1000 * statistics.median(probe_times),
        "read_fps": statistics.median(read_rates),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--against", default="main", help="git revision to compare with (default main)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import rerender.video as current

    before = load_version(args.against)
    rows = [
        (args.against, measure(before, args.clip, args.repeats)),
        ("this checkout", measure(current, args.clip, args.repeats)),
    ]
    print(f"clip: {args.clip.name} ({args.repeats} repeats, medians)")
    print(f"{'version':16s}{'frames':>8s}{'size':>10s}{'fps':>6s}{'info (probe) ms':>18s}{'read frames/s':>15s}")
    for name, row in rows:
        print(
            f"{name:16s}{row['frames']:>8d}{row['size']:>10s}{row['fps']:>6s}{row['probe_ms']:>18.1f}{row['read_fps']:>15.1f}"
        )
    old, new = rows[0][1], rows[1][1]
    print(
        f"ratio new/old: info time {new['probe_ms'] / old['probe_ms']:.2f}x, read throughput {new['read_fps'] / old['read_fps']:.2f}x"
    )


if __name__ == "__main__":
    main()
