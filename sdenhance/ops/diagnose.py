"""Diagnosis: what is wrong with an image, before choosing how to treat it.

`diagnose` turns the measures of `image_stats` into eleven named findings, each with its value,
the threshold it is compared with, a verdict and a confidence. The names are part of the
command-line contract (`sdenhance enhance --json`): size, noise, blur, jpeg, faces, text,
illustration, old_photo, cast, clipping, ai_generated.

Thresholds were set on the `bench/enhance.py` set (real photos, text pages and illustrations
under controlled noise, blur, JPEG, downscaling, casts and toning), where the table of
precision and recall per finding is measured. Face boxes and generation metadata come in from
the caller (this module stays free of detectors and file readers); without them the `faces`
and `ai_generated` findings say they were not looked at.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops import image_stats as st

FINDINGS = (
    "size",
    "noise",
    "blur",
    "jpeg",
    "faces",
    "text",
    "illustration",
    "old_photo",
    "cast",
    "clipping",
    "ai_generated",
)

# name: (threshold, present when the value is above it (True) or below it (False), unit)
THRESHOLDS: dict[str, tuple[float, bool, str]] = {
    "size": (1.0, True, "× to target"),
    "noise": (2.5, True, "σ, of 255"),
    "blur": (1.2, True, "σ, px"),
    "jpeg": (0.3, True, "block excess"),
    "faces": (1.0, True, "faces"),
    "text": (0.1, True, "line area"),
    "illustration": (0.75, True, "palette share"),
    "old_photo": (6.0, False, "colour spread"),
    "cast": (10.0, True, "°"),
    "clipping": (0.02, True, "share"),
    "ai_generated": (0.5, True, ""),
}
MOTION_RATIO = 1.7  # softest / sharpest direction above which a blur reads as motion
COLOURFUL = 8.0  # colour spread an illustration has at least (greyscale art is old_photo's)


class FaceBox(Protocol):
    x0: int
    y0: int
    x1: int
    y1: int
    score: float


@dataclass(frozen=True)
class Finding:
    """One question about the image and its answer.

    `value` is compared with `threshold` (present when above it, or below it for `old_photo`);
    None means it could not be measured. `confidence` in [0.5, 1] grows with the distance of
    the value from the threshold (0 when not measured). `detail` carries what a treatment needs
    (the blur's PSF, the scale, face boxes).
    """

    name: str
    value: float | None
    threshold: float
    present: bool
    confidence: float
    unit: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def above(self) -> bool:
        return THRESHOLDS[self.name][1]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "value": None if self.value is None else round(float(self.value), 4),
            "threshold": self.threshold,
            "present": self.present,
            "confidence": round(self.confidence, 3),
        }
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Diagnosis:
    """Every finding about one image, in `FINDINGS` order, and the time they took."""

    size: tuple[int, int]
    findings: tuple[Finding, ...]
    seconds: float = 0.0

    def __getitem__(self, name: str) -> Finding:
        for finding in self.findings:
            if finding.name == name:
                return finding
        raise KeyError(name)

    def present(self, name: str) -> bool:
        return self[name].present

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "seconds": round(self.seconds, 3),
            "findings": [f.to_dict() for f in self.findings],
        }


def confidence(value: float | None, threshold: float) -> float:
    """0.5 at the threshold, towards 1 as the value moves away from it by a factor (×2 → 0.94);
    0 when the value is unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0.0
    if value <= 0.0 or threshold <= 0.0:
        return 1.0 if value != threshold else 0.5
    return 0.5 + 0.5 * math.tanh(2.0 * abs(math.log(value / threshold)))


def _finding(
    name: str, value: float | None, *, present: bool | None = None, **detail: Any
) -> Finding:
    threshold, above, unit = THRESHOLDS[name]
    if value is not None and isinstance(value, float) and math.isnan(value):
        value = None
    if present is None:
        present = value is not None and (value >= threshold if above else value <= threshold)
        if name == "size":
            present = value is not None and value > threshold
    return Finding(name, value, threshold, present, confidence(value, threshold), unit, detail)


def diagnose(
    rgb: np.ndarray,
    *,
    target: int = 2048,
    faces: Sequence[FaceBox] | None = None,
    metadata: Any = None,
) -> Diagnosis:
    """Diagnose an image.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    target : int
        Long side, in px, the image should reach (the `size` finding's scale).
    faces : sequence of face boxes (x0, y0, x1, y1, score) in `rgb` pixels, or None
        None = faces were not looked for.
    metadata : object with `source` and `prompt` attributes (an `ImageMetadata`), or None
        The generation metadata already read from the image's file.

    Returns
    -------
    Diagnosis
    """
    start = time.perf_counter()
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise SdenhanceError(
            f"`rgb` must be a uint8 array of shape (H, W, 3); got {rgb.dtype} {rgb.shape}"
        )
    if not isinstance(target, int) or isinstance(target, bool) or not 16 <= target <= 65536:
        raise SdenhanceError(
            f"`target` must be a whole number of px from 16 to 65536; got {target!r}"
        )
    h, w = rgb.shape[:2]
    tiles = st.detail_tiles(rgb)
    work = st.work_copy(rgb, 1024)

    found = {
        "size": _finding("size", target / max(h, w), width=w, height=h, target=target),
        "noise": _finding("noise", st.noise_sigma(tiles)),
        "blur": _blur_finding(st.edge_blur(tiles)),
        "jpeg": _finding("jpeg", st.blockiness(tiles)),
        "faces": _faces_finding(faces, (w, h)),
    }
    text_area, lines = st.text_line_area(work)
    found["text"] = _finding("text", text_area, lines=lines)
    small = st.work_copy(work, 512)  # colour statistics need no more
    spread, tint = st.colour_spread(small)
    found["illustration"] = _illustration(st.palette_share(small), spread, found["text"])
    found["old_photo"] = _old_photo(spread, tint, st.tone_range(small), found["text"])
    gains = st.grey_edge_gains(small)
    found["cast"] = _finding(
        "cast", st.cast_angle(gains), gains=[round(float(g), 4) for g in gains]
    )
    high, low = st.clipped_shares(small)
    found["clipping"] = _finding(
        "clipping", max(high, low), highlights=round(high, 4), shadows=round(low, 4)
    )
    found["ai_generated"] = _ai_finding(metadata)
    return Diagnosis((w, h), tuple(found[n] for n in FINDINGS), time.perf_counter() - start)


def _blur_finding(blur: st.EdgeBlur) -> Finding:
    if math.isnan(blur.sigma):
        return _finding("blur", None, edges=blur.edges)
    ratio = blur.sigma_max / max(blur.sigma_min, 1e-3)
    detail: dict[str, Any] = {"edges": blur.edges, "sigma_median": round(blur.sigma, 3)}
    if ratio >= MOTION_RATIO:
        # the softest gradient direction is the direction of travel
        detail.update(kind="motion", angle=blur.angle, anisotropy=round(ratio, 2))
    else:
        detail.update(kind="gaussian")
    return _finding("blur", blur.sigma_max, **detail)


def _faces_finding(faces: Sequence[FaceBox] | None, size: tuple[int, int]) -> Finding:
    if faces is None:
        return Finding(
            "faces", None, THRESHOLDS["faces"][0], False, 0.0, "faces", {"looked": False}
        )
    boxes = [[int(f.x0), int(f.y0), int(f.x1), int(f.y1)] for f in faces]
    largest = max((max(b[2] - b[0], b[3] - b[1]) for b in boxes), default=0)
    finding = _finding(
        "faces", float(len(boxes)), boxes=boxes, largest=round(largest / min(size), 3)
    )
    best = max((float(f.score) for f in faces), default=0.0)
    # the detector's own certainty: LBP scores count hits per pass, 4 is its floor
    return replace(finding, confidence=0.5 + 0.5 * math.tanh(best / 8.0) if boxes else 0.75)


def _illustration(share: float, spread: float, text: Finding) -> Finding:
    finding = _finding("illustration", share, colour_spread=round(spread, 2))
    if finding.present and (spread < COLOURFUL or text.present):
        reason = "text" if text.present else "monochrome"
        return replace(finding, present=False, detail={**finding.detail, "vetoed_by": reason})
    return finding


def _old_photo(spread: float, tint: float, tones: float, text: Finding) -> Finding:
    finding = _finding("old_photo", spread, tint=round(tint, 2), tone_range=round(tones, 1))
    if finding.present and text.present:
        return replace(finding, present=False, detail={**finding.detail, "vetoed_by": "text"})
    return finding


def _ai_finding(metadata: Any) -> Finding:
    if metadata is None:
        return Finding("ai_generated", None, 0.5, False, 0.0, "", {"looked": False})
    prompt = getattr(metadata, "prompt", None)
    source = getattr(metadata, "source", None)
    if isinstance(prompt, str) and prompt.strip() and source:
        return Finding(
            "ai_generated", 1.0, 0.5, True, 1.0, "", {"source": source, "prompt": prompt[:300]}
        )
    # no generator metadata proves little: it is stripped by most sites and editors
    return Finding("ai_generated", 0.0, 0.5, False, 0.5, "", {})
