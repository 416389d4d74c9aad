"""ICC colour profiles: bring embedded-profile inputs into sRGB with Pillow's ImageCms."""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageCms

from sdenhance.io.loaded import one_line


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


_PROFILE_SPACES = {"RGB": "RGB ", "L": "GRAY", "CMYK": "CMYK", "LAB": "Lab "}


def to_srgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    """L/RGB/CMYK/LAB -> sRGB RGB through the embedded ICC profile when there is one."""
    if im.mode == "LAB":
        notes.append("converted CIELab to sRGB")
        lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        return ImageCms.profileToProfile(im, lab, _srgb_profile(), outputMode="RGB")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            space = profile.profile.xcolor_space
            name = (ImageCms.getProfileDescription(profile) or "").strip()
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            notes.append(f"ignored an unreadable ICC profile ({one_line(exc)})")
            profile = None
        if profile is not None:
            if space != _PROFILE_SPACES.get(im.mode):
                notes.append(
                    f"ignored an ICC profile for {space.strip()} data on a {im.mode} image"
                )
            elif im.mode == "RGB" and name.lower().startswith("srgb"):
                return im  # already sRGB: keep the pixels exact
            else:
                try:
                    out = ImageCms.profileToProfile(im, profile, _srgb_profile(), outputMode="RGB")
                except ImageCms.PyCMSError as exc:
                    notes.append(
                        f"ignored an ICC profile that could not be applied ({one_line(exc)})"
                    )
                else:
                    label = f" '{name}'" if name else ""
                    notes.append(
                        f"converted {im.mode} to sRGB with the embedded ICC profile{label}"
                    )
                    return out
    if im.mode == "CMYK":
        notes.append("converted CMYK to RGB without a colour profile (approximate colours)")
    return im if im.mode == "RGB" else im.convert("RGB")
