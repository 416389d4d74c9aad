"""Soft inpainting through the pipeline's step callback (differential diffusion).

diffusers' 4-channel inpainting loop already resets the unmasked latents to the original,
noised to the next step, after every step, and lets the step callback replace its latent mask.
Replacing it each step by the cells whose mask value reaches the falling threshold
(`sdenhance.ops.soft_mask`) turns that reset into differential diffusion with the pipeline's
own noise and image latents, so no second sampler loop is kept here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.soft_mask import cell_values, free_after

Step = Callable[[Any, int, dict[str, Any]], dict[str, Any]]


def soft_step(pipe: Any, model_mask: np.ndarray, cell: int) -> Step:
    """A step-end hook that sets the latent mask for the next step from the graded `model_mask`.

    9-channel inpainting models are refused: their mask is an input of the UNet, not a reset,
    so a changing mask would change what the model is told instead of what it may change.
    """
    if int(pipe.unet.config.in_channels) != 4:
        raise SdenhanceError(
            "`soft` needs a model whose UNet takes 4 channels; this inpainting model takes "
            f"{pipe.unet.config.in_channels}: use the base model or drop `soft`"
        )
    import torch

    cells = cell_values(model_mask, cell)

    def step(pipe_: Any, i: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        mask = kwargs["mask"]
        free = torch.from_numpy(free_after(cells, i + 1, pipe_.num_timesteps))
        kwargs["mask"] = free.to(mask.device, mask.dtype).expand_as(mask).clone()
        return kwargs

    return step
