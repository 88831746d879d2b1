"""ebsynth_bridge: guided example-based synthesis (EbSynth) compiled with numba; knows nothing about diffusion."""
