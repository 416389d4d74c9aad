"""Deblur: undo defocus or motion blur offline, with an estimated or given PSF.

A classical Wiener deconvolution (`sdenhance.ops.deblur`), no model: the PSF is a Gaussian
(defocus) or a line (motion) whose size is read from the image's own edges unless given, the
balance follows the measured noise unless given, and ringing is clipped to the local range of
the input. Best before an upscale: Real-ESRGAN enlarges whatever softness it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdenhance.errors import SdenhanceError
from sdenhance.options import option

if TYPE_CHECKING:
    from PIL import Image

    from sdenhance.stages import Context

PSF_KINDS = ("auto", "gaussian", "motion")  # == ops.deblur.KINDS plus auto


@dataclass(frozen=True)
class Options:
    psf: str = option(
        "auto",
        "Blur model: auto (read from the image's edges), gaussian (defocus) or motion (shake).",
        choices=PSF_KINDS,
    )
    sigma: float | None = option(
        None,
        "Gaussian PSF σ in px, 0.3–8; unset: estimated from the image.",
        ge=0.3,
        le=8.0,
    )
    length: float | None = option(
        None, "Motion PSF length in px, 2–41; unset: estimated from the image.", ge=2.0, le=41.0
    )
    angle: float | None = option(
        None,
        "Motion direction in degrees, 0–180 (0 = left-right, 90 = up-down); unset: estimated.",
        ge=0.0,
        le=180.0,
    )
    balance: float | None = option(
        None,
        "Wiener regularisation, 0.0001–1: higher restores less and amplifies less noise; "
        "unset: from the measured noise (0.001 for clean images).",
        ge=0.0001,
        le=1.0,
    )
    overshoot: float = option(
        0.3,
        "Ringing control: how far past the local range of the input a pixel may go, as a "
        "share of that range, 0–10 (0 clips hard, 10 turns clipping off).",
        ge=0.0,
        le=10.0,
    )

    def check(self) -> None:
        if self.psf == "gaussian" and (self.length is not None or self.angle is not None):
            raise SdenhanceError("`length` and `angle` describe a motion PSF; use psf=motion")
        if self.psf == "motion" and self.sigma is not None:
            raise SdenhanceError("`sigma` describes a Gaussian PSF; use psf=gaussian")


def resolve_psf(rgb, opts: Options):
    """The PSF to deconvolve with: the options' own where given, else the image's estimate;
    None when the image reads sharp and nothing was given."""
    from sdenhance.ops import deblur

    given_gaussian = opts.psf == "gaussian" and opts.sigma is not None
    given_motion = opts.psf == "motion" and opts.length is not None and opts.angle is not None
    if given_gaussian:
        return deblur.Psf("gaussian", sigma=opts.sigma)
    if given_motion:
        return deblur.Psf("motion", length=opts.length, angle=opts.angle)
    estimate = deblur.estimate_psf(rgb)
    if estimate is None or opts.psf == "auto" or estimate.kind == opts.psf:
        return _fill(estimate, opts) if estimate is not None else None
    # the kind was forced but the image reads as the other kind: keep its size, force the kind
    if opts.psf == "gaussian":
        return deblur.Psf("gaussian", sigma=max(0.3, min(8.0, estimate.length / 3.46)))
    length, angle = deblur.motion_from_cepstrum(rgb, opts.angle or 0.0, spread=90.0)
    return deblur.Psf("motion", length=float(max(2, length)), angle=angle)


def _fill(psf, opts: Options):
    from dataclasses import replace

    if psf.kind == "motion":
        return replace(
            psf,
            length=opts.length if opts.length is not None else psf.length,
            angle=opts.angle if opts.angle is not None else psf.angle,
        )
    return replace(psf, sigma=opts.sigma if opts.sigma is not None else psf.sigma)


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """`image` deconvolved with its PSF; unchanged when it reads sharp and no PSF is given."""
    import numpy as np

    from sdenhance.io.convert import from_array
    from sdenhance.ops import deblur, image_stats

    # 1. The PSF and the balance: given, or read from the image
    rgb = np.asarray(image.convert("RGB"))
    psf = resolve_psf(rgb, opts)
    if psf is None:
        ctx.log.info("deblur: the image reads sharp; left unchanged")
        ctx.record.setdefault("deblur", []).append({"psf": None})
        return image.copy()
    balance = opts.balance
    if balance is None:
        balance = deblur.auto_balance(image_stats.noise_sigma(image_stats.detail_tiles(rgb)))

    # 2. Deconvolve, with ringing clipped to the input's local range
    out = deblur.deblur_array(
        rgb.astype(np.float32) / 255.0, psf.kernel(), balance=balance, overshoot=opts.overshoot
    )
    ctx.record.setdefault("deblur", []).append(
        {
            "psf": psf.kind,
            "sigma": psf.sigma,
            "length": psf.length,
            "angle": psf.angle,
            "balance": balance,
        }
    )
    return from_array(out)
