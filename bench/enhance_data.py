"""The images of the `enhance` benchmark: real photos, text pages and illustrations, degraded.

Photos come from scikit-image's bundled set (not `rocket` and `camera`, whose files carry the
8-px grid of an earlier JPEG; `coins` and `page` do too and are labelled so) and the example photos
shipped inside gradio's package (JPEGs, shrunk 2× with area averaging so their own 8-px blocks
are gone); text pages
are rendered with Pillow's bundled font; illustrations are flat-colour drawings and photos
turned into cartoons (bilateral smoothing, k-means palette, dark outlines). Every degradation
is seeded, so the cases are the same on every run.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = (
    "the of and to in is was for on that with as by at from this are be an or it which image "
    "noise colour sharp detail photo light scale model upscale pixel tile filter blur text report "
    "page figure table method result value measure quality number section chapter"
).split()


@dataclass(frozen=True)
class Source:
    """A clean image and what it shows (the labels that do not depend on the degradation)."""

    name: str
    rgb: np.ndarray
    kind: str  # photo, text, illustration
    faces: bool = False
    grey: bool = False
    jpeg_origin: bool = False  # its file already carries JPEG blocks


@dataclass(frozen=True)
class Degradation:
    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    labels: frozenset[str] = field(default_factory=frozenset)
    colour_only: bool = False  # skipped on greyscale sources


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def add_noise(rgb: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise of `sigma` 8-bit levels, independent per channel (the same in every
    channel of a greyscale image, as film grain in a black-and-white scan)."""
    rng = np.random.default_rng(seed)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return _u8(rgb + rng.normal(0.0, sigma, rgb.shape[:2])[..., None])
    return _u8(rgb + rng.normal(0.0, sigma, rgb.shape))


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A line of `length` px at `angle` degrees (counter-clockwise from x), normalised."""
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    centre = ((length - 1) / 2.0, (length - 1) / 2.0)
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D(centre, angle, 1.0), (length, length))
    return k / k.sum()


def motion_blur(rgb: np.ndarray, length: int, angle: float) -> np.ndarray:
    return cv2.filter2D(rgb, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def colour_cast(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    return _u8(rgb.astype(np.float32) * np.asarray(gains, np.float32))


def sepia(rgb: np.ndarray) -> np.ndarray:
    """An aged print: luma toned brown, contrast lowered towards a raised black."""
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    y = 40.0 + 0.7 * y
    return _u8(y[..., None] * np.array([1.07, 0.95, 0.74], np.float32))


DEGRADATIONS = (
    Degradation("clean", lambda x: x),
    Degradation("noise σ5", lambda x: add_noise(x, 5), frozenset({"noise"})),
    Degradation("noise σ10", lambda x: add_noise(x, 10), frozenset({"noise"})),
    Degradation("noise σ20", lambda x: add_noise(x, 20), frozenset({"noise"})),
    Degradation("blur σ1.5", lambda x: gaussian_blur(x, 1.5), frozenset({"blur"})),
    Degradation("blur σ2.5", lambda x: gaussian_blur(x, 2.5), frozenset({"blur"})),
    Degradation("motion 9 px", lambda x: motion_blur(x, 9, 30.0), frozenset({"blur"})),
    Degradation("JPEG q15", lambda x: jpeg(x, 15), frozenset({"jpeg"})),
    Degradation("JPEG q30", lambda x: jpeg(x, 30), frozenset({"jpeg"})),
    Degradation("downscale ×3", lambda x: downscale(x, 3)),
    Degradation("warm cast", lambda x: colour_cast(x, (1.15, 1.0, 0.8)), frozenset({"cast"}), True),
    Degradation(
        "cool cast", lambda x: colour_cast(x, (0.82, 0.97, 1.15)), frozenset({"cast"}), True
    ),
    Degradation("sepia print", sepia, frozenset({"old_photo"}), True),
    Degradation("overexposed", lambda x: colour_cast(x, (1.6, 1.6, 1.6)), frozenset({"clipping"})),
)


def labels(source: Source, degradation: Degradation) -> frozenset[str]:
    """The findings that should be present in `source` after `degradation`."""
    out = set(degradation.labels)
    if source.jpeg_origin and degradation.name in ("clean", "overexposed"):
        out.add("jpeg")
    if source.faces:
        out.add("faces")
    if source.kind == "text":
        out.add("text")
    if source.kind == "illustration":
        out.add("illustration")
    if source.kind == "photo" and source.grey:
        out.add("old_photo")
    return frozenset(out)


# --- sources --------------------------------------------------------------------------------


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    im = getattr(data, name)()
    if name == "stereo_motorcycle":
        im = im[0]
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    return np.ascontiguousarray(im[..., :3])


def _gradio_images() -> dict[str, np.ndarray]:
    """Photos shipped inside the gradio package, if it is installed (shrunk 2×)."""
    try:
        import gradio
    except ImportError:
        return {}
    folder = os.path.join(os.path.dirname(gradio.__file__), "media_assets", "images")
    out = {}
    for stem in ("cheetah", "lion", "tower"):
        for path in glob.glob(os.path.join(folder, stem + ".jp*g")):
            out[stem] = downscale(np.asarray(Image.open(path).convert("RGB")), 2)
    return out


def text_page(
    seed: int, *, size=(512, 640), font_px=16, fg=(20, 20, 20), bg=(250, 248, 240)
) -> np.ndarray:
    """A page of random words under a heading, in Pillow's bundled font."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(im)
    y = 20
    head = ImageFont.load_default(size=int(font_px * 1.8))
    draw.text((24, y), " ".join(rng.choice(WORDS, 3)).title(), fill=fg, font=head)
    y += int(font_px * 3)
    font = ImageFont.load_default(size=font_px)
    while y < size[1] - 2 * font_px:
        line = ""
        while True:
            word = str(rng.choice(WORDS))
            if draw.textlength(f"{line} {word}", font=font) > size[0] - 48:
                break
            line = f"{line} {word}".strip()
        draw.text((24, y), line, fill=fg, font=font)
        y += int(font_px * 1.5) + (font_px if rng.random() < 0.15 else 0)
    return np.asarray(im)


def flat_art(seed: int, size=(512, 512)) -> np.ndarray:
    """Overlapping flat-colour shapes with dark outlines on a two-tone background, drawn at 2×
    and shrunk (anti-aliased edges, as in digital art)."""
    rng = np.random.default_rng(seed)
    w, h = size[0] * 2, size[1] * 2
    palette = [tuple(int(v) for v in c) for c in rng.integers(30, 250, (7, 3))]
    im = Image.new("RGB", (w, h), palette[0])
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, int(h * 0.6), w, h], fill=palette[1])
    for _ in range(18):
        colour = palette[int(rng.integers(2, 7))]
        x0, y0 = int(rng.integers(0, w - 200)), int(rng.integers(0, h - 200))
        x1, y1 = x0 + int(rng.integers(120, 500)), y0 + int(rng.integers(120, 500))
        box = [x0, y0, min(w - 1, x1), min(h - 1, y1)]
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=(15, 15, 20), width=6)
        elif kind == 1:
            draw.rounded_rectangle(box, radius=30, fill=colour, outline=(15, 15, 20), width=6)
        else:
            pts = [(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])]
            draw.polygon(pts, fill=colour, outline=(15, 15, 20), width=6)
    return np.asarray(im.resize(size, Image.Resampling.LANCZOS))


def cartoon(rgb: np.ndarray, colours: int = 8) -> np.ndarray:
    """A photo as cel-shaded art: smoothed, reduced to `colours` flat colours, outlined."""
    smooth = rgb.copy()
    for _ in range(3):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    pixels = smooth.reshape(-1, 3).astype(np.float32)
    _, label, centres = cv2.kmeans(pixels, colours, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    flat = centres[label.ravel()].reshape(rgb.shape).astype(np.uint8)
    g = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 7)
    lines = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    flat[lines == 0] = (20, 20, 20)
    return flat


def sources() -> list[Source]:
    """Every clean image of the benchmark."""
    out = []
    for name in ("coffee", "chelsea", "stereo_motorcycle"):
        out.append(Source(name, _skimage(name), "photo"))
    out.append(Source("coins", _skimage("coins"), "photo", grey=True, jpeg_origin=True))
    out.append(Source("brick", _skimage("brick"), "photo", grey=True))
    astronaut = _skimage("astronaut")
    out.append(Source("astronaut", astronaut, "photo", faces=True))
    out.append(Source("astronaut (face crop)", astronaut[0:320, 100:420], "photo", faces=True))
    out += [Source(name, rgb, "photo") for name, rgb in _gradio_images().items()]
    for i, px in enumerate((12, 16, 22)):
        out.append(Source(f"page {px} px", text_page(i, font_px=px), "text"))
    out.append(
        Source("page, light on dark", text_page(7, fg=(230, 230, 225), bg=(35, 38, 48)), "text")
    )
    out.append(Source("skimage page", _skimage("page"), "text", grey=True, jpeg_origin=True))
    for seed in (1, 2, 3):
        out.append(Source(f"flat art {seed}", flat_art(seed), "illustration"))
    for name in ("chelsea", "coffee", "stereo_motorcycle"):
        out.append(Source(f"cartoon {name}", cartoon(_skimage(name)), "illustration"))
    return out


def cases(selected: list[Source] | None = None):
    """(source, degradation, degraded image, labels) for every source and degradation."""
    for source in selected if selected is not None else sources():
        for deg in DEGRADATIONS:
            if deg.colour_only and (source.grey or source.kind != "photo"):
                continue
            yield source, deg, deg.apply(source.rgb), labels(source, deg)
