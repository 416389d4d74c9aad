"""Offline face detection: OpenCV's LBP cascade by default, ONNX models as plug-ins."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.ops.faces import Face, box_overlaps, suppress_overlaps, to_rgb_u8


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB uint8 array of shape (H, W, 3).

    It returns candidate faces in that array's pixels with its own scores; `detect_faces` does
    the rest (scaling, score and size thresholds, merging, sorting). A detector may carry a
    ``min_score`` attribute: the threshold `detect_faces` uses when the caller gives none,
    since scores of different detectors mean different things.
    """

    def __call__(self, rgb_u8: np.ndarray) -> list[Face]: ...


@functools.lru_cache(maxsize=4)
def _cascade(path: str) -> Any:
    from skimage.feature import Cascade

    return Cascade(path)


def _default_cascade_path() -> str:
    import skimage.data

    getter = getattr(skimage.data, "lbp_frontal_face_cascade_filename", None)
    if getter is not None:
        return str(getter())
    return str(Path(skimage.data.__file__).parent / "lbpcascade_frontalface_opencv.xml")


# Chai & Ngan's skin region in YCrCb (8-bit): wide enough for light to dark skin.
_SKIN_CR = (133, 173)


_SKIN_CB = (77, 127)


class LbpFaceDetector:
    """scikit-image's LBP frontal-face cascade, with grouping and a skin check on colour images.

    The cascade fires many times around a face and now and then on texture. One scan moves
    the window in ×`scale_factor` steps; `passes` scans of the image resized by
    ``scale_factor ** (-k / passes)`` fill in the sizes between, so a true face is hit at
    every window size near its own and stray textures are not. Hits with IoU above 0.4 are
    grouped (OpenCV's ``minNeighbors`` idea); a group's box is the mean of its hits and its
    score the hits per pass. On colour images a group whose centre is mostly not skin
    coloured is dropped: LBP codes ignore contrast, so a dim reflection that looks like a face
    to the cascade passes (the helmet visor in scikit-image's astronaut photo scores like the
    face). Greyscale images skip that check.

    Parameters
    ----------
    scale_factor : float
        Window growth per step of one scan, > 1.
    passes : int
        Scans at interleaved image scales; time grows linearly with it.
    skin_check : bool
        Drop groups with too little skin colour in colour images.
    cascade : str or None
        Path to an OpenCV LBP cascade XML file; None = scikit-image's frontal-face cascade.
    """

    # hits per pass: the astronaut's face scores 8-17 at sizes 30-400 px; the best non-face
    # groups of scikit-image's other photos score 1-2.5 once the skin check has run
    min_score = 4.0

    def __init__(
        self,
        *,
        scale_factor: float = 1.2,
        passes: int = 3,
        skin_check: bool = True,
        cascade: str | None = None,
    ) -> None:
        if scale_factor <= 1.0 or passes < 1:
            raise SdenhanceError(
                f"LBP detector needs `scale_factor` > 1 and `passes` ≥ 1; got {scale_factor}, "
                f"{passes}"
            )
        self.scale_factor = scale_factor
        self.passes = passes
        self.skin_check = skin_check
        self.cascade = cascade or _default_cascade_path()

    def __call__(self, rgb_u8: np.ndarray) -> list[Face]:
        grey = cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        hits = self._hits(grey)
        if len(hits) == 0:
            return []
        faces = self._group(hits)
        if self.skin_check and _is_colour(rgb_u8):
            faces = [f for f in faces if _skin_fraction(rgb_u8, f) >= 0.3]
        return faces

    def _hits(self, grey: np.ndarray) -> np.ndarray:
        """Raw cascade windows of all passes as (N, 4) float boxes in `grey`'s pixels."""
        cascade = _cascade(self.cascade)
        window = max(int(cascade.window_width), int(cascade.window_height))
        h, w = grey.shape
        boxes = []
        for k in range(self.passes):
            s = self.scale_factor ** (-k / self.passes)
            sw, sh = round(w * s), round(h * s)
            if min(sw, sh) < window:
                break
            img = grey if k == 0 else cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA)
            found = cascade.detect_multi_scale(
                img=img,
                scale_factor=self.scale_factor,
                step_ratio=1,
                min_size=(window, window),
                max_size=(min(sw, sh), min(sw, sh)),
                min_neighbor_number=1,
                intersection_score_threshold=2.0,  # > 1: no grouping inside scikit-image
            )
            for d in found:
                c, r, dw, dh = d["c"], d["r"], d["width"], d["height"]
                boxes.append((c / s, r / s, (c + dw) / s, (r + dh) / s))
        return np.array(boxes, dtype=np.float64).reshape(-1, 4)

    def _group(self, hits: np.ndarray) -> list[Face]:
        """Union hits with IoU > 0.4 into faces: mean box, score = hits per pass."""
        parent = np.arange(len(hits))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        iou, _ = box_overlaps(hits)
        for i, j in zip(*np.nonzero(np.triu(iou > 0.4, k=1)), strict=True):
            parent[root(i)] = root(j)
        roots = np.array([root(i) for i in range(len(hits))])
        faces = []
        for r in np.unique(roots):
            members = hits[roots == r]
            x0, y0, x1, y1 = members.mean(axis=0)
            faces.append(
                Face(round(x0), round(y0), round(x1), round(y1), len(members) / self.passes)
            )
        return faces


def _is_colour(rgb_u8: np.ndarray) -> bool:
    """True unless the image is (nearly) grey: mean channel spread under 6 of 255."""
    small = rgb_u8[:: max(1, rgb_u8.shape[0] // 256), :: max(1, rgb_u8.shape[1] // 256)]
    spread = small.max(axis=2).astype(np.int16) - small.min(axis=2)
    return float(spread.mean()) >= 6.0


def _skin_fraction(rgb_u8: np.ndarray, face: Face) -> float:
    """Share of skin-coloured pixels in the central ellipse of the box (cheeks, nose, mouth)."""
    h, w = rgb_u8.shape[:2]
    x0, y0 = max(face.x0, 0), max(face.y0, 0)
    x1, y1 = min(face.x1, w), min(face.y1, h)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb_u8[y0:y1, x0:x1]), cv2.COLOR_RGB2YCrCb)
    cx, cy = face.center
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inner = ((xx + 0.5 - cx) / face.width) ** 2 + ((yy + 0.5 - cy) / face.height) ** 2 <= 0.35**2
    cr, cb = ycc[..., 1], ycc[..., 2]
    skin = (cr >= _SKIN_CR[0]) & (cr <= _SKIN_CR[1]) & (cb >= _SKIN_CB[0]) & (cb <= _SKIN_CB[1])
    return float(skin[inner].mean()) if inner.any() else 0.0


class OnnxFaceDetector:
    """An UltraFace-style ONNX face detector run by onnxruntime on the CPU.

    Layout (Linzaer's "Ultra-Light-Fast-Generic-Face-Detector", e.g. ``version-RFB-320.onnx``):
    input float32 (1, 3, H, W) RGB, ``(pixel - 127) / 128``, the whole image resized to W×H
    without keeping its aspect (240×320 unless the model fixes another size); outputs
    ``scores`` (1, N, 2) softmaxed (background, face) and ``boxes`` (1, N, 4) already decoded
    from the priors as ``(x0, y0, x1, y1)`` in [0, 1] of the input. Boxes scoring at least
    ``candidate_score`` are kept after greedy NMS at IoU 0.3 and scaled to image pixels.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    candidate_score : float
        Face probability below which a prior is discarded before NMS.
    """

    min_score = 0.7  # the reference demo's threshold

    def __init__(self, path: str | Path, *, candidate_score: float = 0.3) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise SdenhanceError(
                f"face detector `{path}` needs onnxruntime",
                hint="pip install 'sdenhance[onnx]'",
            ) from None
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise SdenhanceError(f"cannot load face detector `{path}`: {exc}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        dims = list(inp.shape)[2:4]
        fixed = len(dims) == 2 and all(isinstance(d, int) and d > 0 for d in dims)
        self.input_hw = (int(dims[0]), int(dims[1])) if fixed else (240, 320)
        self.candidate_score = candidate_score

    def __call__(self, rgb_u8: np.ndarray) -> list[Face]:
        h, w = self.input_hw
        x = cv2.resize(rgb_u8, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = ((x - 127.0) / 128.0).transpose(2, 0, 1)[None]
        outputs = self.session.run(None, {self.input_name: x})
        return decode_ultraface(outputs, rgb_u8.shape[1], rgb_u8.shape[0], self.candidate_score)


def decode_ultraface(
    outputs: list[np.ndarray], width: int, height: int, candidate_score: float
) -> list[Face]:
    """UltraFace outputs -> faces in a ``width``×``height`` image, after NMS at IoU 0.3.

    ``outputs`` holds ``scores`` (1, N, 2) and ``boxes`` (1, N, 4) in either order (told
    apart by their last axis); boxes are normalised ``(x0, y0, x1, y1)``.
    """
    by_last = {np.asarray(o).shape[-1]: np.asarray(o) for o in outputs}
    if set(by_last) != {2, 4}:
        raise SdenhanceError(
            "face detector outputs must be scores (1, N, 2) and boxes (1, N, 4); got shapes "
            + ", ".join(str(np.asarray(o).shape) for o in outputs)
        )
    scores = by_last[2].reshape(-1, 2)[:, 1]
    boxes = by_last[4].reshape(-1, 4)
    keep = scores >= candidate_score
    faces = []
    for (bx0, by0, bx1, by1), s in zip(boxes[keep], scores[keep], strict=True):
        x0, y0 = max(0, round(float(bx0) * width)), max(0, round(float(by0) * height))
        x1, y1 = min(width, round(float(bx1) * width)), min(height, round(float(by1) * height))
        if x1 > x0 and y1 > y0:
            faces.append(Face(x0, y0, x1, y1, float(s)))
    return suppress_overlaps(faces, iou=0.3, containment=1.0)


DETECTORS: dict[str, Callable[[], FaceDetector]] = {"lbp": LbpFaceDetector}


def register_detector(name: str, factory: Callable[[], FaceDetector]) -> None:
    """Make `factory` available as ``get_detector(name)``; a name is registered once."""
    if name in DETECTORS:
        raise ValueError(f"face detector `{name}` is already registered")
    DETECTORS[name] = factory


def get_detector(spec: str | Path | None = None) -> FaceDetector:
    """The detector for `spec`: a registered name ("lbp", the default) or a ``.onnx`` file."""
    if spec is None:
        spec = "lbp"
    if isinstance(spec, str) and spec in DETECTORS:
        return DETECTORS[spec]()
    path = Path(spec)
    if path.suffix.lower() == ".onnx" or path.exists():
        if not path.is_file():
            raise SdenhanceError(f"face detector file `{path}` not found")
        if path.suffix.lower() != ".onnx":
            raise SdenhanceError(f"face detector file `{path}` is not an .onnx model")
        return OnnxFaceDetector(path)
    raise SdenhanceError(
        f"unknown face detector `{spec}`; use one of {', '.join(sorted(DETECTORS))} "
        "or the path of an .onnx face detector"
    )


def detect_faces(
    image: Image.Image | np.ndarray,
    *,
    min_size: int = 24,
    max_faces: int | None = None,
    min_score: float | None = None,
    detector: FaceDetector | None = None,
    max_side: int = 1024,
) -> list[Face]:
    """Faces in `image`, best first (score, then area), overlaps merged.

    Parameters
    ----------
    image : PIL.Image.Image or ndarray of shape (H, W, 3)
        Float in [0, 1] (or uint8).
    min_size : int
        Smallest face side kept, in `image` pixels. Below ``24 * longest_side / max_side``
        the LBP cascade cannot see a face anyway.
    max_faces : int or None
        Keep at most this many (the best ones).
    min_score : float or None
        Drop weaker faces; None = the detector's ``min_score`` (LBP: 4 hits per pass).
    detector : FaceDetector or None
        None = `get_detector("lbp")`.
    max_side : int
        Detect on a copy whose longest side is at most this, for speed.

    Returns
    -------
    list of Face
        Boxes in `image` pixels, clipped to it.
    """
    # 1. Check inputs
    if min_size < 1:
        raise SdenhanceError(f"`min_size` must be ≥ 1; got {min_size}")
    if max_faces is not None and max_faces < 1:
        raise SdenhanceError(f"`max_faces` must be ≥ 1 or None; got {max_faces}")
    if max_side < 64:
        raise SdenhanceError(f"`max_side` must be ≥ 64; got {max_side}")
    rgb = to_rgb_u8(image)
    detector = detector if detector is not None else get_detector("lbp")
    if min_score is None:
        min_score = float(getattr(detector, "min_score", 0.0))

    # 2. Detect on a copy of bounded size
    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    work = (
        rgb
        if s == 1.0
        else cv2.resize(
            rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
        )
    )
    found = detector(work)

    # 3. Back to image pixels, thresholds, merge, order, cap
    faces = []
    for f in found:
        # outward rounding (never shrink the face), tolerant of division error
        x0, y0 = max(0, math.floor(f.x0 / s + 1e-6)), max(0, math.floor(f.y0 / s + 1e-6))
        x1, y1 = min(w, math.ceil(f.x1 / s - 1e-6)), min(h, math.ceil(f.y1 / s - 1e-6))
        if f.score >= min_score and min(x1 - x0, y1 - y0) >= min_size:
            faces.append(Face(x0, y0, x1, y1, float(f.score)))
    faces = suppress_overlaps(faces)
    return faces if max_faces is None else faces[:max_faces]
