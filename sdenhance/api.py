"""The Python API: `Enhancer` and `apply_stage`.

An `Enhancer` holds one engine configuration; models load on first use and are shared by every
call made through it. Images go in as PIL images or paths and come out as PIL images.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from sdenhance.io.convert import join_alpha, split_alpha
from sdenhance.io.load import as_image
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context, ProgressFn, apply_stage, build_options

__all__ = ["Enhancer", "apply_stage", "as_image", "build_options", "join_alpha", "split_alpha"]

ImageLike = Image.Image | str | os.PathLike


def _mask_or_alpha(image: ImageLike, mask: ImageLike) -> tuple[Image.Image, ImageLike]:
    """`mask="alpha"`: the image's transparency is the mask and the result is opaque."""
    if not (isinstance(mask, str) and mask == "alpha"):
        return as_image(image), mask
    from sdenhance.errors import SdenhanceError
    from sdenhance.ops.masks import mask_from_alpha

    rgb, alpha = split_alpha(as_image(image))
    if alpha is None:
        raise SdenhanceError('`mask="alpha"` needs an image with transparency; this one has none')
    return rgb, Image.fromarray((mask_from_alpha(alpha) * 255).astype("uint8"), "L")


class Enhancer:
    """Upscale, inpaint, refine and colour-fix images with one set of models.

    Parameters
    ----------
    model, controlnet, inpaint_model : str, optional
        Hub id, local diffusers folder or single-file checkpoint; None picks the defaults.
    device, dtype : str
        "auto" picks cuda > mps > cpu and fp16 on CUDA, fp32 on CPU.
    seed : int, optional
        Default seed for every call; a call's own `seed=` wins.
    progress : callable(label, done, total), optional
        Called as work advances.
    **engine_options
        Further `EngineConfig` fields (offload, vae_tiling, allow_pickle, config...).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        controlnet: str | None = None,
        inpaint_model: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        seed: int | None = None,
        progress: ProgressFn | None = None,
        **engine_options: Any,
    ) -> None:
        self.config = EngineConfig(
            model=model,
            controlnet=controlnet,
            inpaint_model=inpaint_model,
            device=device,
            dtype=dtype,
            **engine_options,
        )
        self.seed = seed
        self.progress = progress
        self._engine = None
        self.last_record: dict[str, Any] = {}

    @property
    def engine(self):
        """The loaded models (built on first use)."""
        if self._engine is None:
            from sdenhance.models.engine import Engine

            self._engine = Engine(self.config)
        return self._engine

    def context(
        self, *, seed: int | None = None, images: dict[str, Image.Image] | None = None
    ) -> Context:
        """A fresh per-image context that shares this enhancer's engine."""
        ctx = Context(engine_config=self.config, seed=self.seed if seed is None else seed)
        if self.progress is not None:
            ctx.progress = self.progress
        ctx._engine = self._engine
        ctx.images.update(images or {})
        return ctx

    def run(
        self,
        stage: str,
        image: ImageLike,
        *,
        seed: int | None = None,
        images: dict[str, ImageLike] | None = None,
        **options: Any,
    ) -> Image.Image:
        """Run stage `stage` on `image` with `options` (validated before any model loads)."""
        opts = build_options(stage, options)
        ctx = self.context(seed=seed, images={k: as_image(v) for k, v in (images or {}).items()})
        out = apply_stage(stage, as_image(image), opts, ctx)
        if ctx._engine is not None:
            self._engine = ctx._engine
        self.last_record = ctx.record
        return out

    def img2img(self, image: ImageLike, **options: Any) -> Image.Image:
        """Refine `image` at `strength` with `prompt`/`negative_prompt`."""
        return self.run("img2img", image, **options)

    def upscale(self, image: ImageLike, **options: Any) -> Image.Image:
        """Generative tiled upscale (`scale` or `width`/`height`, `creativity`, `resemblance`...)."""
        return self.run("upscale", image, **options)

    def inpaint(self, image: ImageLike, mask: ImageLike, **options: Any) -> Image.Image:
        """Repaint where `mask` is white (or, with `mask="alpha"`, where `image` is
        transparent); every other pixel stays bit-identical."""
        image, mask = _mask_or_alpha(image, mask)
        return self.run("inpaint", image, images={"mask": mask}, **options)

    def remove(self, image: ImageLike, mask: ImageLike, **options: Any) -> Image.Image:
        """Remove the masked object: an offline fill (PatchMatch by default), then an optional
        low-strength inpaint; `mask="alpha"` removes what is transparent."""
        image, mask = _mask_or_alpha(image, mask)
        return self.run("remove", image, images={"mask": mask}, **options)

    def colorfix(self, image: ImageLike, reference: ImageLike, **options: Any) -> Image.Image:
        """Transfer the colours of `reference` onto `image` (`method` wavelet|lab|hist|adain)."""
        return self.run("colorfix", image, images={"reference": reference}, **options)

    def blend(self, image: ImageLike, original: ImageLike, **options: Any) -> Image.Image:
        """Blend `image` over `original` (resampled to fit) at `opacity`."""
        return self.run("blend", image, images={"original": original}, **options)

    def denoise(self, image: ImageLike, **options: Any) -> Image.Image:
        """Classical denoise (before upscaling: never upscale grain)."""
        return self.run("denoise", image, **options)

    def run_recipe(
        self,
        recipe: str | os.PathLike,
        image: ImageLike,
        *,
        overrides: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> Image.Image:
        """Apply a recipe (bundled name, or a .toml path) with this enhancer's models."""
        from sdenhance.recipes import run_recipe

        return run_recipe(recipe, image, enhancer=self, overrides=overrides, seed=seed)

    def facefix(self, image: ImageLike, **options: Any) -> Image.Image:
        """Detect faces and repaint them gently, keeping identity; the rest stays identical."""
        return self.run("facefix", image, **options)

    def diagnose(self, image: ImageLike, *, target: int = 2048):
        """What `enhance` sees in `image`: a `Diagnosis` of named findings (size, noise, blur,
        jpeg, faces, text, illustration, old_photo, cast, clipping, ai_generated)."""
        from sdenhance.enhance.run import diagnose_image

        rgb = split_alpha(as_image(image))[0]
        return diagnose_image(rgb, target=target, metadata=_metadata(image))

    def plan(self, image: ImageLike, *, target: int = 2048, offline: bool = False):
        """The `enhance` plan for `image` (diagnosis, recipe, mode), without running it."""
        from sdenhance.enhance.run import make_plan

        rgb = split_alpha(as_image(image))[0]
        return make_plan(
            rgb,
            target=target,
            offline=offline,
            engine_config=self.config,
            metadata=_metadata(image),
        )

    def enhance(
        self,
        image: ImageLike,
        *,
        target: int = 2048,
        offline: bool = False,
        seed: int | None = None,
    ) -> Image.Image:
        """Diagnose `image`, plan its treatment and run it (offline stages only when `offline`
        or no diffusion model is on this machine); `last_record` holds the diagnosis and steps."""
        from sdenhance.enhance.run import make_plan, run_plan

        source = as_image(image)
        the_plan = make_plan(
            split_alpha(source)[0],
            target=target,
            offline=offline,
            engine_config=self.config,
            metadata=_metadata(image),
        )
        ctx = self.context(seed=seed)
        out = run_plan(source, the_plan, ctx)
        if ctx._engine is not None:
            self._engine = ctx._engine
        self.last_record = ctx.record
        return out


def _metadata(image: ImageLike) -> Any:
    """Generation metadata of a file or a PIL image (its text chunks), for `ai_generated`."""
    from sdenhance.io.load import read_metadata

    return read_metadata(image)
