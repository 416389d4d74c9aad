"""Models: specs to files, checkpoints, device and dtype, schedulers, the shared engine."""
