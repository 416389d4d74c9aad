"""AUTOMATIC1111 requests -> sdenhance job specs: names, fields and scripts mapped.

A1111 clients send A1111's upscaler and sampler names, its inpaint fields and the "Ultimate SD
upscale" / "SD upscale" script arguments; each is mapped to our stages and options where the
meaning is the same. A field we cannot honour is never misread: it is ignored and named in the
response's warnings. Unknown upscalers, samplers we lack substitutes for, and unknown scripts
are errors (A1111 refuses them too).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from sdenhance.errors import SdenhanceError
from sdenhance.io.infotext import UPSCALER_NAMES
from sdenhance.recipes import RecipeStep
from sdenhance.server.a1111_models import ExtrasBaseRequest, Img2ImgRequest
from sdenhance.server.specs import JobSpec, stage_steps
from sdenhance.upscalers.registry import REGISTRY

# A1111 names of models we do not ship -> (our nearest, why it differs)
_SUBSTITUTES = {
    "ESRGAN_4x": "realesrgan-x4plus",
    "R-ESRGAN General 4xV3": "realesrgan-x4plus",
    "R-ESRGAN General WDN 4xV3": "realesrgan-x4plus",
    "R-ESRGAN 2x+": "realesrgan-x4plus",
}
_EXACT = {
    **{a1111: ours for ours, a1111 in UPSCALER_NAMES.items()},
    "R-ESRGAN AnimeVideo": "realesr-animevideov3-x4",
}


def upscaler_listing() -> list[tuple[str, str | None, int]]:
    """(A1111-style name, our id or None, scale) in the order `/sdapi/v1/upscalers` lists
    them; "None" first, as in A1111, so script `upscaler_index` values mean the same."""
    rows: list[tuple[str, str | None, int]] = [("None", None, 1)]
    rows += [(UPSCALER_NAMES.get(i.name, i.name), i.name, i.scale) for i in REGISTRY]
    return rows


def resolve_upscaler(name: str | None, warnings: list[str]) -> str | None:
    """Our upscaler id for an A1111 (or our own) name; None for "None"."""
    if name is None or name.strip().lower() in ("", "none"):
        return None
    if name in REGISTRY:
        return name
    lowered = {k.lower(): v for k, v in _EXACT.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    subs = {k.lower(): v for k, v in _SUBSTITUTES.items()}
    if name.lower() in subs:
        warnings.append(f"upscaler `{name}` is not installed here; used `{subs[name.lower()]}`")
        return subs[name.lower()]
    known = ", ".join(n for n, _, _ in upscaler_listing())
    raise SdenhanceError(f"upscaler `{name}` not found; this server has: {known}")


def resolve_sampler(sampler: str | None, schedule: str | None, warnings: list[str]) -> str | None:
    """Our scheduler for A1111's `sampler_name` (+ the separate `scheduler` of A1111 ≥ 1.9)."""
    from sdenhance.models.schedulers import SCHEDULERS

    if not sampler:
        return None
    name = sampler.strip()
    kind = (schedule or "").strip().lower()
    if kind == "karras" and not name.lower().endswith("karras"):
        name += " Karras"
    elif kind not in ("", "automatic", "karras"):
        warnings.append(f"scheduler `{schedule}` is not supported; the sampler's own schedule ran")
    by_name = {a1111.lower(): ours for ours, (_, _, a1111) in SCHEDULERS.items()}
    by_name.update({ours: ours for ours in SCHEDULERS})
    if name.lower() in by_name:
        return by_name[name.lower()]
    warnings.append(f"sampler `{sampler}` is not available; used the default (DPM++ 2M Karras)")
    return None


def decode_image(text: Any, what: str) -> bytes:
    """Base64 image data (a `data:...;base64,` prefix allowed); URLs are never fetched."""
    if not isinstance(text, str) or not text.strip():
        raise SdenhanceError(f"`{what}` is empty; send the image as base64")
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise SdenhanceError(f"`{what}`: URLs are not fetched; send the image as base64")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SdenhanceError(f"`{what}` is not valid base64") from None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the loader will see it (EXIF rotation applied), from the header
    alone; None when the header cannot be read (the job's loader then says why)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)
    except Exception:  # any unreadable header: the loader reports it properly later
        return None
    return (h, w) if turned else (w, h)


# values A1111 clients send by default that change nothing in A1111 either
NEUTRAL = {"eta": 1, "s_noise": 1, "initial_noise_multiplier": 1}


def ignored_fields(req: Any, honoured: set[str]) -> list[str]:
    """A warning for every field given a non-default, non-neutral value we do not act on."""
    out = []
    for name, f in type(req).model_fields.items():
        value = getattr(req, name)
        default = f.get_default(call_default_factory=True)
        if name in honoured or value == default or not value or NEUTRAL.get(name) == value:
            continue
        out.append(f"`{name}` = {value!r} is not supported by sdenhance; ignored")
    out += [f"unknown field `{name}`; ignored" for name in req.unknown_fields()]
    return out


def _numbered(*groups: list[RecipeStep]) -> list[RecipeStep]:
    steps = [s for group in groups for s in group]
    return [RecipeStep(i, s.stage, s.options) for i, s in enumerate(steps, 1)]


# --- img2img ----------------------------------------------------------------------------------

IMG2IMG_HONOURED = {
    "prompt",
    "negative_prompt",
    "seed",
    "sampler_name",
    "scheduler",
    "steps",
    "cfg_scale",
    "width",
    "height",
    "denoising_strength",
    "init_images",
    "mask",
    "mask_blur",
    "mask_blur_x",
    "mask_blur_y",
    "inpainting_fill",
    "inpaint_full_res",
    "inpaint_full_res_padding",
    "inpainting_mask_invert",
    "resize_mode",
    "script_name",
    "script_args",
    "send_images",
    "save_images",
    "include_init_images",
    "sampler_index",
    "do_not_save_samples",
    "do_not_save_grid",
    "override_settings_restore_afterwards",
    "force_task_id",
    # no effect unless another field (warned about) is set, or only for instruct-pix2pix models
    "subseed",
    "seed_resize_from_h",
    "seed_resize_from_w",
    "image_cfg_scale",
    "comments",
}
_FILLS = {0: "blur", 1: "original", 2: "noise"}
_USDU_DEFAULTS = [None, 512, 0, 8, 32, 64, 0.35, 32, 0, True, 0, False, 4, 0, 0, 2048, 2048, 2]


def img2img_spec(
    req: Img2ImgRequest, files: dict[str, Path], size: tuple[int, int] | None
) -> JobSpec:
    """img2img, inpaint (with `mask`) or a tiled upscale (with an upscale script)."""
    warnings = ignored_fields(req, IMG2IMG_HONOURED)
    if len(req.init_images or []) > 1:
        warnings.append(f"only the first of {len(req.init_images)} init_images is used")
    if (req.batch_size or 1) * (req.n_iter or 1) > 1:
        warnings.append("batch_size/n_iter: one image is made per request")
    common = {
        "prompt": req.prompt or "",
        "negative_prompt": req.negative_prompt or "",
        "steps": req.steps or 50,
        "guidance": req.cfg_scale if req.cfg_scale is not None else 7.0,
    }
    scheduler = resolve_sampler(req.sampler_name or req.sampler_index, req.scheduler, warnings)
    if scheduler:
        common["scheduler"] = scheduler
    strength = req.denoising_strength if req.denoising_strength is not None else 0.75
    seed = None if req.seed is None or req.seed == -1 else req.seed
    script = (req.script_name or "").strip().lower()
    if script in ("ultimate sd upscale", "sd upscale"):
        steps = _upscale_script(req, script, common, strength, warnings)
        return JobSpec(steps, files, "upscale", seed=seed, warnings=warnings)
    if script:
        raise SdenhanceError(
            f"script `{req.script_name}` is not available; this server runs "
            "`Ultimate SD upscale` and `SD upscale`"
        )
    width, height = req.width or 512, req.height or 512
    resize = []
    if size != (width, height):
        if req.resize_mode:
            warnings.append(f"resize_mode {req.resize_mode} is not supported; used 0 (just resize)")
        resize = stage_steps("resize", {"width": width, "height": height, "upscaler": "lanczos"})
    if "mask" not in files:
        work = stage_steps("img2img", {**common, "strength": strength})
        return JobSpec(_numbered(resize, work), files, "img2img", seed=seed, warnings=warnings)
    blur = (
        req.mask_blur
        if req.mask_blur is not None
        else max(req.mask_blur_x or 0, req.mask_blur_y or 0)
    )
    fill = _FILLS.get(req.inpainting_fill or 0)
    if fill is None:
        warnings.append(f"inpainting_fill {req.inpainting_fill} is not supported; used 0 (fill)")
        fill = "blur"
    values = {
        **common,
        "strength": strength,
        "feather": blur,
        "grow": 0,
        "fill": fill,
        "area": "masked" if req.inpaint_full_res in (None, True) else "whole",
        "padding": req.inpaint_full_res_padding or 0,
        "mask_resize": True,
    }
    work = stage_steps("inpaint", values)
    prepare = _invert_mask if req.inpainting_mask_invert else None
    return JobSpec(
        _numbered(resize, work), files, "inpaint", seed=seed, warnings=warnings, prepare=prepare
    )


def _invert_mask(images: dict[str, Image.Image]) -> None:
    images["mask"] = ImageOps.invert(images["mask"].convert("L"))


def _upscale_script(
    req: Img2ImgRequest, script: str, common: dict[str, Any], strength: float, warnings: list[str]
) -> list[RecipeStep]:
    """Arguments of "Ultimate SD upscale" or "SD upscale" -> one seam-free tiled upscale."""
    args = list(req.script_args or [])
    rows = upscaler_listing()

    def upscaler_at(index: Any) -> str:
        if not isinstance(index, int) or not 0 <= index < len(rows):
            raise SdenhanceError(f"upscaler_index {index!r} is not in /sdapi/v1/upscalers")
        return rows[index][1] or "lanczos"

    values: dict[str, Any] = {**common, "creativity": strength}
    if script == "sd upscale":
        args += [None, 64, 0, 2.0][len(args) :]
        tile, overlap = max(req.width or 512, req.height or 512), args[1]
        values.update(upscaler=upscaler_at(args[2]), scale=float(args[3]))
    else:
        args += _USDU_DEFAULTS[len(args) :]
        tile_w, tile_h = args[1], args[2] or args[1]
        tile, overlap = max(tile_w, tile_h), args[4]
        if tile_w != tile_h:
            warnings.append(f"tiles are square: {tile}x{tile} instead of {tile_w}x{tile_h}")
        if args[10] == 2:  # redraw "None": the upscaler (and a seams fix) only
            values["creativity"] = 0.0
        if args[13]:
            warnings.append("seams fix skipped: tiles are denoised together, so no seams form")
        values["upscaler"] = upscaler_at(args[8])
        kind = args[14]
        if kind == 1:
            values.update(width=int(args[15]), height=int(args[16]))
        elif kind == 2:
            values["scale"] = float(args[17])
        else:
            values.update(width=req.width or 512, height=req.height or 512)
    values["tile"] = max(64, int(tile) // 8 * 8)
    values["overlap"] = min(max(0, int(overlap)) // 8 * 8, values["tile"] - 8)
    return stage_steps("upscale", values)


# --- extras -----------------------------------------------------------------------------------

EXTRAS_HONOURED = {
    "resize_mode",
    "show_extras_results",
    "upscaling_resize",
    "upscaling_resize_w",
    "upscaling_resize_h",
    "upscaling_crop",
    "upscaler_1",
    "image",
    "imageList",
    "upscale_first",
    "codeformer_weight",
}


def extras_spec(
    req: ExtrasBaseRequest, files: dict[str, Path], size: tuple[int, int] | None
) -> JobSpec:
    """An A1111 "extras" upscale as our `resize` stage (any registered upscaler)."""
    warnings = ignored_fields(req, EXTRAS_HONOURED)
    upscaler = resolve_upscaler(req.upscaler_1, warnings)
    if req.upscaler_2.lower() != "none" and req.extras_upscaler_2_visibility > 0:
        warnings.append("upscaler_2 is not supported; only upscaler_1 ran")
    finish = None
    if upscaler is None:  # A1111 skips the upscale when upscaler_1 is None
        values: dict[str, Any] = {"scale": 1.0}
    elif req.resize_mode == 0:
        values = {"scale": req.upscaling_resize, "upscaler": upscaler}
    else:
        want = (req.upscaling_resize_w, req.upscaling_resize_h)
        if size is None:
            raise SdenhanceError(
                "`image` is not an image in a supported format (PNG, JPEG, WebP, TIFF)"
            )
        by = max(want[0] / size[0], want[1] / size[1])
        cover = (max(want[0], round(size[0] * by)), max(want[1], round(size[1] * by)))
        values = {"width": cover[0], "height": cover[1], "upscaler": upscaler}
        if req.upscaling_crop and cover != want:
            finish = _center_crop(want)
    steps = stage_steps("resize", values)
    return JobSpec(steps, files, "extras", warnings=warnings, finish=finish)


def _center_crop(size: Sequence[int]):
    def crop(image: Image.Image) -> Image.Image:
        left = (image.width - size[0]) // 2
        top = (image.height - size[1]) // 2
        return image.crop((left, top, left + size[0], top + size[1]))

    return crop
