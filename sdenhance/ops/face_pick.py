"""Faces one by one: the order `facefix` numbers them in, which ones it repaints, each one's
prompt, and a drawing of the detections so a user can pick them by number.

As in ADetailer, a prompt holds one part per face separated by ``[SEP]``: the repainted faces
take the parts in order and the last part serves every face after it, so one prompt without
``[SEP]`` serves all. Faces are numbered from 1 in the chosen order; ``faces="1,3"`` repaints
the first and third, and then ``"a [SEP] b"`` gives face 1 ``a`` and face 3 ``b``.
"""

from __future__ import annotations

import cv2
import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.faces import Face

ORDERS = ("confidence", "left-right", "largest")
SEP = "[SEP]"
MAX_PICK = 64  # no image has more faces worth repainting than `max_faces` allows (64)

PICKED = (255, 214, 0)  # amber: repainted
SKIPPED = (150, 150, 150)  # grey: found, not picked
INK = (0, 0, 0)


def order_faces(found: list[Face], order: str) -> list[Face]:
    """`found` numbered in `order`: confidence (score, then area, high first), left-right (by box
    centre, then top-down) or largest (area, high first, then left-right)."""
    if order == "confidence":
        return sorted(found, key=lambda f: (-f.score, -f.width * f.height, f.center))
    if order == "left-right":
        return sorted(found, key=lambda f: (f.center[0], f.center[1]))
    if order == "largest":
        return sorted(found, key=lambda f: (-f.width * f.height, f.center[0], f.center[1]))
    raise SdenhanceError(f"unknown face order `{order}`; use one of {', '.join(ORDERS)}")


def parse_picks(text: str) -> tuple[int, ...]:
    """``"3, 1"`` -> ``(1, 3)``: face numbers from 1, each once, ascending; ``""`` -> () (all)."""
    if not text.strip():
        return ()
    picks = set()
    for part in (p.strip() for p in text.split(",")):
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_PICK:
            raise SdenhanceError(
                f"`faces` takes face numbers 1–{MAX_PICK} separated by commas (e.g. 1,3); "
                f"got {text!r}"
            )
        picks.add(int(part))
    return tuple(sorted(picks))


def split_prompts(text: str) -> list[str]:
    """The ``[SEP]``-separated parts of a prompt, stripped (one part without ``[SEP]``)."""
    return [part.strip() for part in text.split(SEP)]


def prompt_for(parts: list[str], k: int, default: str) -> str:
    """Part `k` (0-based) of a split prompt, the last part past the end; empty -> `default`."""
    part = parts[min(k, len(parts) - 1)]
    return part or default


def draw_detections(rgb: np.ndarray, found: list[Face], picked: set[int]) -> np.ndarray:
    """A copy of `rgb` with each face's box and a label ``N  score`` drawn on it.

    Face N is ``found[N - 1]``; boxes of faces in `picked` are amber, the others grey. The
    label sits on a filled tag above the box (inside it when the box touches the top); nothing
    else is drawn, so every other pixel is the input's.
    """
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    line = max(2, round(min(h, w) / 300))
    font_scale = max(0.45, min(h, w) / 900)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for n, face in enumerate(found, 1):
        colour = PICKED if n in picked else SKIPPED
        cv2.rectangle(out, (face.x0, face.y0), (face.x1 - 1, face.y1 - 1), colour, line)
        text = f"{n}  {face.score:.3g}"
        (tw, th), base = cv2.getTextSize(text, font, font_scale, 1 + line // 2)
        tag_h = th + base + 2 * line
        top = face.y0 - tag_h if face.y0 >= tag_h else face.y0
        x1 = min(w, face.x0 + tw + 2 * line)
        cv2.rectangle(out, (face.x0, top), (x1 - 1, top + tag_h - 1), colour, -1)
        origin = (face.x0 + line, top + line + th)
        cv2.putText(out, text, origin, font, font_scale, INK, 1 + line // 2, cv2.LINE_AA)
    return out
