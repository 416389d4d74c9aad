"""The model call for a batch of latent tiles: prompt conditioning, optional tile ControlNet,
UNet, classifier-free guidance.

Each piece computes what diffusers' (ControlNet) img2img pipelines compute for one image of the
tile's size, so a one-tile upscale equals the pipeline (tests/test_parity.py): CFG pairs are
batched as [uncond, cond], SDXL's added time ids describe the tile (its size as both the
original and the target size, no crop), and the ControlNet sees the tile's crop of the control
image in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from sdenhance.diffusion.feature_cache import FeatureCache, shallow_controlnet
from sdenhance.diffusion.speedups import Speedups, guided_steps
from sdenhance.ops import tiling
from sdenhance.ops.sizes import LATENT_FACTOR

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Conditioning:
    """Prompt embeddings of one image, CFG pairs stacked as [uncond, cond]."""

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor | None  # SDXL's pooled text embeddings; None for SD 1.5
    guidance: float  # classifier-free guidance scale; CFG runs only above 1

    @property
    def cfg(self) -> bool:
        return self.guidance > 1.0


def encode_prompts(
    pipe: Any, prompt: str, negative_prompt: str | None, guidance: float, device: Any
) -> Conditioning:
    """Embeddings from `pipe.encode_prompt` (any SD 1.5 or SDXL pipeline), once per image."""
    import torch

    cfg = guidance > 1.0
    negative = negative_prompt or None
    if hasattr(pipe, "text_encoder_2"):
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompt=prompt,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=cfg,
            negative_prompt=negative,
        )
        if cfg:
            pe, pooled = torch.cat([npe, pe]), torch.cat([npooled, pooled])
        return Conditioning(pe, pooled, guidance)
    pe, npe = pipe.encode_prompt(prompt, device, 1, cfg, negative)
    return Conditioning(torch.cat([npe, pe]) if cfg else pe, None, guidance)


def stack_embeddings(embeds: Any, guidance: float) -> Conditioning:
    """`Conditioning` from already encoded prompts (`sdenhance.models.prompts.Conditioning`:
    A1111 syntax, LoRAs, embeddings), CFG pairs stacked as [uncond, cond]."""
    import torch

    pe, pooled = embeds.prompt_embeds, embeds.pooled
    if guidance > 1.0:
        pe = torch.cat([embeds.negative_prompt_embeds, pe])
        if pooled is not None:
            pooled = torch.cat([embeds.negative_pooled, pooled])
    return Conditioning(pe, pooled, guidance)


def sdxl_time_ids(height: int, width: int, count: int, device: Any, dtype: Any) -> torch.Tensor:
    """SDXL's micro-conditioning for `count` samples of a tile: original size, crop (0, 0) and
    target size, all the tile's own size in px (what the pipeline gives one image that size)."""
    import torch

    ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=dtype)
    return ids.repeat(count, 1)


def control_crops(
    control: np.ndarray, group: Sequence[tiling.Tile], device: Any, dtype: Any
) -> torch.Tensor:
    """The control image (H, W, 3) in [0, 1] cropped to each latent tile, as (N, 3, h, w).

    A tile that runs past the image's edge (a shifted grid's, which wraps) takes the cells past
    it from the opposite edge, as its latent crop does."""
    import torch

    crops = np.stack([_crop(control, t) for t in group])
    return torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()).to(device, dtype)


def _crop(image: np.ndarray, tile: tiling.Tile) -> np.ndarray:
    f = LATENT_FACTOR
    if tile.y1 * f <= image.shape[0] and tile.x1 * f <= image.shape[1]:
        return image[tile.y0 * f : tile.y1 * f, tile.x0 * f : tile.x1 * f]
    rows = np.arange(tile.y0 * f, tile.y1 * f)
    cols = np.arange(tile.x0 * f, tile.x1 * f)
    return image.take(rows, axis=0, mode="wrap").take(cols, axis=1, mode="wrap")


def guide(eps: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance of [uncond, cond] predictions."""
    uncond, text = eps.chunk(2)
    return uncond + guidance * (text - uncond)


def make_predict(
    unet: Any,
    cond: Conditioning,
    *,
    controlnet: Any = None,
    control: np.ndarray | None = None,
    resemblance: float = 1.0,
    device: Any = None,
    dtype: Any = None,
    speedups: Speedups | None = None,
) -> Predictor:
    """`predict(crops, tiles, t)` -> guided noise predictions (float32) for same-size tiles.

    With `controlnet` (and its `control` image) its residuals at `resemblance` go into the
    UNet; without, the UNet alone runs (plain img2img). `speedups` (`sdenhance.diffusion.
    speedups`) are approximations, all off by default.
    """
    return Predictor(
        unet, cond, controlnet, control, resemblance, device, dtype, speedups or Speedups()
    )


def _rows(kwargs: dict[str, Any], rows: slice) -> dict[str, Any]:
    """The model keyword arguments of some rows of the batch."""
    out = {"encoder_hidden_states": kwargs["encoder_hidden_states"][rows]}
    if "added_cond_kwargs" in kwargs:
        out["added_cond_kwargs"] = {k: v[rows] for k, v in kwargs["added_cond_kwargs"].items()}
    return out


@dataclass
class Predictor:
    """The `PredictFn` of one denoising run; `start_step(i, n)` before each step lets the
    speed-ups that depend on the step (CFG end, feature cache) know where the run is."""

    unet: Any
    cond: Conditioning
    controlnet: Any
    control: np.ndarray | None
    resemblance: float
    device: Any
    dtype: Any
    speedups: Speedups

    def __post_init__(self) -> None:
        self.guided = self.cond.cfg
        self.cache = None
        if self.speedups.cache_interval > 1:
            self.cache = FeatureCache(self.unet, self.speedups.cache_interval)

    def start_step(self, index: int, total: int) -> None:
        self.guided = self.cond.cfg and index < guided_steps(total, self.speedups.cfg_end)
        if self.cache is not None:
            self.cache.start_step(index)

    def __call__(self, crops: torch.Tensor, group: Sequence[tiling.Tile], t: Any) -> torch.Tensor:
        import torch

        n = crops.shape[0]
        reps = 2 if self.guided else 1
        cond = self.cond
        x = torch.cat([crops] * reps).to(self.device, self.dtype)
        pe = cond.prompt_embeds if reps == 2 else cond.prompt_embeds[-1:]
        kwargs: dict[str, Any] = {"encoder_hidden_states": pe.repeat_interleave(n, 0)}
        if cond.pooled is not None:
            pooled = cond.pooled if reps == 2 else cond.pooled[-1:]
            h, w = group[0].height * LATENT_FACTOR, group[0].width * LATENT_FACTOR
            kwargs["added_cond_kwargs"] = {
                "text_embeds": pooled.repeat_interleave(n, 0),
                "time_ids": sdxl_time_ids(h, w, n * reps, self.device, pe.dtype),
            }
        key = tuple(group)
        shallow = self.cache is not None and self.cache.shallow(key, x.shape[0])
        with torch.no_grad():
            residuals = None
            if self.controlnet is not None:
                residuals = self._control(x, t, group, kwargs, shallow)
            if shallow:
                eps = self.cache.run_shallow(key, x, t, skip_residuals=residuals, **kwargs)
            else:
                if residuals is not None:
                    kwargs["down_block_additional_residuals"] = residuals[0]
                    kwargs["mid_block_additional_residual"] = residuals[1]
                call = self.unet if self.cache is None else partial(self.cache.full, key)
                eps = call(x, t, return_dict=False, **kwargs)[0]
        return (guide(eps, cond.guidance) if reps == 2 else eps).float()

    def _control(
        self, x: torch.Tensor, t: Any, group: Sequence[tiling.Tile], kwargs: dict, shallow: bool
    ) -> Any:
        """The ControlNet's residuals for the batch `x`: (down, mid), or the shallow skips'
        residuals alone on a shallow step; zero for the unconditional rows with
        `control_cond_only` (computed for the conditional rows only)."""
        import torch

        half = self.speedups.control_cond_only and self.guided
        rows = slice(x.shape[0] // 2, None) if half else slice(None)
        cx, ckw = x[rows], _rows(kwargs, rows)
        hint = control_crops(self.control, group, self.device, self.controlnet.dtype)
        hint = torch.cat([hint] * (cx.shape[0] // len(group)))
        if shallow:
            down = shallow_controlnet(
                self.controlnet,
                cx,
                t,
                ckw["encoder_hidden_states"],
                hint,
                self.resemblance,
                self.cache.skips,
                ckw.get("added_cond_kwargs"),
            )
            mid = None
        else:
            down, mid = self.controlnet(
                cx,
                t,
                controlnet_cond=hint,
                conditioning_scale=self.resemblance,
                return_dict=False,
                **ckw,
            )
        if half:
            down = [torch.cat([torch.zeros_like(d), d]) for d in down]
            mid = None if mid is None else torch.cat([torch.zeros_like(mid), mid])
        return down if shallow else (down, mid)
