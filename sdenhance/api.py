"""The Python API: `Enhancer` and `apply_stage`.

An `Enhancer` holds one engine configuration; models load on first use and are shared by every
call made through it. Images go in as PIL images or paths and come out as PIL images that carry
their run record in `image.info["sdenhance"]` (a result fed to the next call extends it) and
what the input carried (ICC profile, EXIF, XMP); `enhancer.save(image, path)` writes them all.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

from PIL import Image

from sdenhance.io.convert import join_alpha, split_alpha
from sdenhance.io.load import as_image
from sdenhance.io.save_params import RECORD_KEY
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context, ProgressFn, apply_stage, build_options

__all__ = ["Enhancer", "apply_stage", "as_image", "build_options", "join_alpha", "split_alpha"]

ImageLike = Image.Image | str | os.PathLike


def _input_record(image: ImageLike, source: Image.Image) -> dict[str, Any]:
    """The record a call continues: the input result's own, or a new one naming the file."""
    if isinstance(image, Image.Image):
        record = image.info.get(RECORD_KEY)
        return record if isinstance(record, dict) else {}
    from sdenhance.io.digest import input_record

    return {"input": input_record(image)}


def _warn_unused(stage: str, opts: Any, given: dict[str, Any]) -> None:
    """Say which of the options given have no effect with the others (once per call)."""
    from sdenhance.stages import get_stage
    from sdenhance.stages.records import unused_options

    unused, why = unused_options(get_stage(stage), opts, given)
    if unused:
        logging.getLogger("sdenhance").warning("no effect: %s (%s)", ", ".join(unused), why)


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
        `controlnet="none"` upscales with the model alone (tile img2img).
    device, dtype : str
        "auto" picks cuda > mps > cpu and fp16 on CUDA, fp32 on CPU.
    seed : int, optional
        Default seed for every call; a call's own `seed=` wins.
    progress : callable(label, done, total), optional
        Called as work advances.
    **engine_options
        Further `EngineConfig` fields (vae, offload, vae_tiling, allow_pickle, config...).
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
        self,
        *,
        seed: int | None = None,
        images: dict[str, Image.Image] | None = None,
        record: dict[str, Any] | None = None,
    ) -> Context:
        """A fresh per-image context that shares this enhancer's engine; `record` (a previous
        result's) is continued, so a chain of calls records every step."""
        ctx = Context(engine_config=self.config, seed=self.seed if seed is None else seed)
        if self.progress is not None:
            ctx.progress = self.progress
        ctx._engine = self._engine
        ctx.images.update(images or {})
        ctx.record.update(copy.deepcopy(record or {}))
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
        """Run stage `stage` on `image` with `options` (validated before any model loads).

        The result carries its run record in `result.info["sdenhance"]`.
        """
        if stage == "upscale" and "resemblance" in options:
            from sdenhance.stages.tile_upscale import refuse_resemblance

            refuse_resemblance(self.config)
        opts = build_options(stage, options)
        _warn_unused(stage, opts, options)
        source = as_image(image)
        ctx = self.context(
            seed=seed,
            images={k: as_image(v) for k, v in (images or {}).items()},
            record=_input_record(image, source),
        )
        out = apply_stage(stage, source, opts, ctx)
        return self._finish(out, ctx)

    def _finish(self, out: Image.Image, ctx: Context) -> Image.Image:
        if ctx._engine is not None:
            self._engine = ctx._engine
        self.last_record = ctx.record
        out.info[RECORD_KEY] = copy.deepcopy(ctx.record)
        return out

    def save(
        self,
        image: Image.Image,
        path: str | os.PathLike,
        *,
        quality: int | None = None,
        strip_metadata: bool = False,
        to_srgb: bool = False,
    ) -> Path:
        """Write a result atomically with its metadata: the run record (A1111 infotext and
        JSON, read back by `sdenhance info` and `sdenhance run --from`) and the input's ICC
        profile, EXIF and XMP. The format follows the suffix (png, jpg, webp, avif, tif);
        `quality` 1-100 for the lossy ones, `strip_metadata` writes none of it, `to_srgb`
        converts the pixels from their profile to sRGB. Returns the path written."""
        from sdenhance.io.save import save_image

        record = image.info.get(RECORD_KEY)
        return save_image(
            image,
            path,
            metadata=record if isinstance(record, dict) else None,
            quality=quality,
            strip_metadata=strip_metadata,
            to_srgb=to_srgb,
        )

    def img2img(self, image: ImageLike, **options: Any) -> Image.Image:
        """Refine `image` at `strength` with `prompt`/`negative_prompt`."""
        return self.run("img2img", image, **options)

    def upscale(self, image: ImageLike, **options: Any) -> Image.Image:
        """Generative tiled upscale (`scale` or `width`/`height`, `creativity`,
        `resemblance`...)."""
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

    def expand(self, image: ImageLike, **options: Any) -> Image.Image:
        """Outpaint: grow the canvas (`left`/`right`/`top`/`bottom` px, or `aspect` or
        `width`/`height` with `anchor`) and paint the new area with `prompt`; original pixels
        beyond the `seam` band stay bit-identical."""
        return self.run("expand", image, **options)

    def colorfix(self, image: ImageLike, reference: ImageLike, **options: Any) -> Image.Image:
        """Give `image` the colours of `reference` (`method` local|wavelet|lab|hist|adain)."""
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

        source = as_image(image)
        ctx = self.context(seed=seed, record=_input_record(image, source))
        out = run_recipe(recipe, source, ctx=ctx, overrides=overrides)
        return self._finish(out, ctx)

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
