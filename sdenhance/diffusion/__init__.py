"""Diffusion blocks shared by the stages: tiled denoising on one latent canvas, tiled VAE."""
