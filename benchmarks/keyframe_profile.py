"""Where a keyframe's time goes: UNet, ControlNet, VAE encode/decode, flow and the rest, per call.

Full-size SD 1.5 (random weights, the shipped configs), DDIM 10 steps, strength 0.75, every constraint on, DIS flow;
the anchor plus keyframes of the demo clip. Usage (frame side, frames incl. the anchor):

    python benchmarks/keyframe_profile.py 128 2
"""

import collections
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import torch

torch.set_num_threads(2)
torch.set_flush_denormal(True)
from pathlib import Path

from keyframe_benchmark import build_components, read_demo_frames

from rerender.config import ConstraintConfig
from rerender.diffusion.control import canny
from rerender.diffusion.pipeline import RerenderPipeline
from rerender.flow import DISFlowEstimator

size = int(sys.argv[1]) if len(sys.argv) > 1 else 256
c = build_components(Path(REPO) / "rerender" / "assets" / "sd15-config")
frames = read_demo_frames(int(sys.argv[2]) if len(sys.argv) > 2 else 3, size)
controls = [canny(f) for f in frames]
ours = RerenderPipeline(**c)
ours.set_progress_bar_config(disable=True)
acc = collections.defaultdict(float)
cnt = collections.Counter()


def wrap(obj, name, label):
    f = getattr(obj, name)

    def g(*a, **k):
        t = time.perf_counter()
        r = f(*a, **k)
        acc[label] += time.perf_counter() - t
        cnt[label] += 1
        return r

    setattr(obj, name, g)


wrap(c["unet"], "forward", "unet")
wrap(c["controlnet"], "forward", "controlnet")
wrap(c["vae"], "encode", "vae.encode")
wrap(c["vae"], "decode", "vae.decode")
flow = DISFlowEstimator("medium")


def fl(a, b):
    t = time.perf_counter()
    r = flow(a, b)
    acc["flow"] += time.perf_counter() - t
    cnt["flow"] += 1
    return r


import rerender.diffusion.pipeline as P

orig = P.correct_colors


def cc(*a):
    t = time.perf_counter()
    r = orig(*a)
    acc["color"] += time.perf_counter() - t
    return r


P.correct_colors = cc
with torch.no_grad():
    rendered = list(
        ours.render_keyframes(
            frames,
            "a watercolour painting",
            control_images=controls,
            flow_estimator=fl,
            constraints=ConstraintConfig(adain_period=(0.8, 1.0)),
            generator=torch.Generator().manual_seed(0),
            num_inference_steps=10,
            strength=0.75,
        )
    )
    anchor = rendered[0].seconds
    key = sum(f.seconds for f in rendered[1:])
print("anchor", anchor, "keyframes total", key, [f.unet_calls for f in rendered])
tot = anchor + key
for k, v in sorted(acc.items(), key=lambda x: -x[1]):
    print(f"{k:12s} {v:7.2f} s  n={cnt[k]}  per call {v / max(cnt[k], 1):.3f}")
print("other", tot - sum(acc.values()))
