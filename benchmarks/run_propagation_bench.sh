#!/usr/bin/env bash
# Keyframe propagation benchmark (issue 4): the three target configurations, ours beside warp_blend.
# Usage: benchmarks/run_propagation_bench.sh [extra propagation_bench.py args, e.g. --save-frames DIR]
# Env: PYTHON (default .venv/bin/python), SHARED (default ../shared), PROPAGATORS (default: warp_blend + ours),
#      JSON_DIR (if set, full results per configuration go to $JSON_DIR/<configuration>.json).
# The antoni clip starts at frame 20 as in the reference figures (ebsynth.md §6.2: frames 20–60, hands enter).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
SHARED="${SHARED:-../shared}"
BENCH="$SHARED/bench/propagation_bench.py"
VIDEOS="$SHARED/data/videos"
COTTONBRO="$VIDEOS/pexels-cottonbro-studio-6649832-960x506-25fps.mp4"
ANTONI="$VIDEOS/pexels-antoni-shkraba-8048492-540x960-25fps.mp4"
read -r -a PROPAGATORS <<< "${PROPAGATORS:---propagator warp_blend --propagator py:benchmarks/propagation_adapter.py:run}"

# warm numba's on-disk cache so the timed runs do not pay the one-off compilation
"$PYTHON" -c "import numpy as np; from rerender.propagation import propagate_video; \
f=[np.zeros((32,32,3),np.uint8)]*3; propagate_video(f, {0: f[0], 2: f[2]}, progress=False, workers=1)"

json() { if [ -n "${JSON_DIR:-}" ]; then mkdir -p "$JSON_DIR"; echo --json "$JSON_DIR/$1.json"; fi; }

echo "== cottonbro, --long-side 512 --step 2 (targets: PSNR >= 27.0, SSIM >= 0.90, sharpness >= 0.95, flicker <= GT, <= 2 s/frame)"
"$PYTHON" "$BENCH" --video "$COTTONBRO" --long-side 512 --step 2 "${PROPAGATORS[@]}" $(json cottonbro_512_step2) "$@"
echo "== cottonbro, --long-side 256 --step 4 (targets: PSNR >= 23.0, SSIM >= 0.86, sharpness >= 0.93)"
"$PYTHON" "$BENCH" --video "$COTTONBRO" --long-side 256 --step 4 "${PROPAGATORS[@]}" $(json cottonbro_256_step4) "$@"
echo "== antoni, --start 20 --long-side 256 --step 2 (targets: PSNR >= 18.2, SSIM >= 0.74, sharpness >= 0.90)"
"$PYTHON" "$BENCH" --video "$ANTONI" --start 20 --long-side 256 --step 2 "${PROPAGATORS[@]}" $(json antoni_256_step2) "$@"
