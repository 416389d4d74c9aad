"""Diffusion building blocks shared by the stages: tiled denoising on one latent canvas and the tiled VAE."""
