"""The EXIF tag numbers used by the loaders and savers, in one place."""

from __future__ import annotations

USER_COMMENT = 0x9286


IMAGE_DESCRIPTION = 0x010E


SOFTWARE = 0x0131


ORIENTATION = 0x0112


EXIF_IFD = 0x8769


JPEG_MAX_EXIF = 65533  # one APP1 segment
