"""Models: resolving specs to files, checkpoints, device and dtype, schedulers, and the shared engine."""
