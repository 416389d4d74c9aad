"""ICC colour profiles: RGB profiles travel with the pixels; other spaces become sRGB via ImageCms.

An RGB image keeps its pixels and its profile (Display P3, Adobe RGB...): the loader hands the
profile on and the saver embeds it again, so an output looks like its input in every
colour-managed viewer. CMYK, Lab and grey-with-profile inputs are converted to sRGB (the stages
work on RGB). `convert_to_srgb` is what `--to-srgb` does to outputs.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageCms

from sdenhance.io.loaded import one_line


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


_PROFILE_SPACES = {"RGB": "RGB ", "L": "GRAY", "CMYK": "CMYK", "LAB": "Lab "}


def _read_profile(icc: bytes, notes: list[str]) -> tuple[ImageCms.ImageCmsProfile | None, str]:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = (ImageCms.getProfileDescription(profile) or "").strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        notes.append(f"ignored an unreadable ICC profile ({one_line(exc)})")
        return None, ""
    return profile, name


def to_rgb(
    im: Image.Image, icc: bytes | None, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    """L/RGB/CMYK/LAB -> RGB, and the ICC profile those RGB pixels are in (None: sRGB).

    An RGB image with an RGB profile keeps both untouched; anything else with a usable profile
    is converted to sRGB through it.
    """
    if im.mode == "LAB":
        notes.append("converted CIELab to sRGB")
        lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        return ImageCms.profileToProfile(im, lab, _srgb_profile(), outputMode="RGB"), None
    profile, name = _read_profile(icc, notes) if icc else (None, "")
    if profile is not None:
        space = profile.profile.xcolor_space
        if space != _PROFILE_SPACES.get(im.mode):
            notes.append(f"ignored an ICC profile for {space.strip()} data on a {im.mode} image")
        elif im.mode == "RGB":
            if not name.lower().startswith("srgb"):
                label = f" '{name}'" if name else ""
                notes.append(f"ICC profile{label} kept: pixels stay in its colour space")
            return im, icc
        else:
            try:
                out = ImageCms.profileToProfile(im, profile, _srgb_profile(), outputMode="RGB")
            except ImageCms.PyCMSError as exc:
                notes.append(f"ignored an ICC profile that could not be applied ({one_line(exc)})")
            else:
                label = f" '{name}'" if name else ""
                notes.append(f"converted {im.mode} to sRGB with the embedded ICC profile{label}")
                return out, None
    if im.mode == "CMYK":
        notes.append("converted CMYK to RGB without a colour profile (approximate colours)")
    return (im if im.mode == "RGB" else im.convert("RGB")), None


def convert_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """RGB or RGBA pixels in profile `icc` -> sRGB (alpha untouched), with ImageCms."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if image.mode == "RGBA":
        rgb = ImageCms.profileToProfile(image.convert("RGB"), profile, _srgb_profile())
        rgb.putalpha(image.getchannel("A"))
        return rgb
    return ImageCms.profileToProfile(image.convert("RGB"), profile, _srgb_profile())


def is_srgb(icc: bytes | None) -> bool:
    """True for no profile or one that describes itself as sRGB."""
    if not icc:
        return True
    profile, name = _read_profile(icc, [])
    return profile is not None and name.lower().startswith("srgb")
