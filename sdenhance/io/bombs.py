"""Headers that claim more pixels than the file's data can encode: refused before decoding.

A decoder given a short stream under a huge header fills the missing pixels with grey (JPEG)
or fails only after allocating the whole image (PNG): a 3 KB file costs hundreds of megabytes
and seconds. Each format's entropy coder has a hard minimum cost per pixel, so the file size
alone proves such a header false:

- JPEG: every 8×8 block of every component codes at least one Huffman symbol for its DC
  coefficient (in progressive files too: EOB runs only skip AC coefficients), and a Huffman
  symbol is at least 1 bit. So a file needs at least one byte per 8 blocks. (Arithmetic-coded
  JPEGs, which browsers and cameras do not write, could in theory go lower; they are treated
  the same.)
- PNG: deflate cannot compress better than 1032:1 (a 258-byte match per ≥ 2 bits), and the
  raw data is at least one filter byte per row plus one bit per pixel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from PIL import Image

from sdenhance.errors import SdenhanceError

DEFLATE_MAX_RATIO = 1032
BLOCKS_PER_BYTE = 8


def min_data_bytes(im: Image.Image) -> int:
    """The fewest bytes any valid file of `im`'s format and header can have (0: no bound)."""
    width, height = im.size
    if im.format in ("JPEG", "MPO"):
        layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * len(im.getbands())
        hmax = max(h for _, h, _, _ in layers) or 1
        vmax = max(v for _, _, v, _ in layers) or 1
        blocks = sum(
            math.ceil(math.ceil(width * h / hmax) / 8) * math.ceil(math.ceil(height * v / vmax) / 8)
            for _, h, v, _ in layers
        )
        return blocks // BLOCKS_PER_BYTE
    if im.format == "PNG":
        raw = height * (1 + math.ceil(width / 8))  # 1 bit per pixel, one filter byte per row
        return raw // DEFLATE_MAX_RATIO
    return 0


def check_data_size(im: Image.Image, path: Path) -> None:
    """Refuse a header whose size the file is too small to hold (see the module docstring)."""
    need = min_data_bytes(im)
    if need == 0:
        return
    have = os.path.getsize(path)
    if have < need:
        width, height = im.size
        raise SdenhanceError(
            f"cannot read {path}: corrupt {im.format} header: {width}x{height} needs at least "
            f"{need:,} bytes of data but the file has {have:,}"
        )
