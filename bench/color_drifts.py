"""SD-like colour drifts for the colour-fix benchmark (`bench/colorfix.py`).

Each takes a clean photo P, (H, W, 3) float64 in [0, 1], and a seeded generator, and returns the
drifted colours, not clipped: what a diffusion pass does to colour, from a plain cast to a
locally varying multiplicative mix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LUMA = np.array([0.2125, 0.7154, 0.0721])  # Rec. 709


def _coords(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = p.shape[:2]
    return np.linspace(-1, 1, w)[None, :, None], np.linspace(-1, 1, h)[:, None, None]


def _smooth_field(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-channel random field of std 1 varying over about a fifth of the shorter side."""
    from skimage.filters import gaussian

    field = gaussian(rng.standard_normal(p.shape), sigma=0.12 * min(p.shape[:2]), channel_axis=-1)
    field -= field.mean(axis=(0, 1))
    return field / field.std(axis=(0, 1))


def _luma(p: np.ndarray) -> np.ndarray:
    return (p @ LUMA)[..., None]


def cast(p, rng):
    return p + np.array([0.05, 0.01, -0.04])


def gain(p, rng):
    return p * np.array([1.08, 0.97, 0.85])


def saturation(p, rng):
    y = _luma(p)
    return y + 1.35 * (p - y)


def contrast(p, rng):
    m = _luma(p).mean()
    return m + 1.25 * (p - m)


def dark(p, rng):
    return 0.92 * np.clip(p, 0, 1) ** 1.3


def gradient(p, rng):
    x, y = _coords(p)
    return p * (1 + 0.10 * x * np.array([1.0, 0.4, -1.0])) + 0.04 * y * np.array([-1.0, 0.0, 1.0])


def blotchy(p, rng):
    return p * (1 + 0.08 * _smooth_field(p, rng)) + 0.02 * _smooth_field(p, rng)


def mixed(p, rng):
    x, _ = _coords(p)
    q = 0.97 * np.clip(p, 0, 1) ** 1.15 * np.array([1.04, 1.0, 0.93])
    y = _luma(q)
    q = y + 1.2 * (q - y)
    return q * (1 + 0.05 * _smooth_field(p, rng)) + 0.03 * x * np.array([1.0, 0.0, -1.0])


DRIFTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "cast": cast,
    "gain": gain,
    "saturation": saturation,
    "contrast": contrast,
    "dark": dark,
    "gradient": gradient,
    "blotchy": blotchy,
    "mixed": mixed,
}
