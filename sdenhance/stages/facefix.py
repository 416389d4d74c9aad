"""Face detailing: repaint each detected face gently, so it gains detail but stays the same person.

Users of generative upscalers complain that faces come out as someone else; they want less
change on faces than elsewhere. So each face is found offline (`ops.faces`), cropped with
context, repainted at the inpainting model's native resolution with a portrait prompt at a low
strength, colour-matched to the face it replaces, and laid over the original through a soft
ellipse at opacity `blend`. Two knobs trade detail for identity: `strength` (how far the
repaint may move from the original face) and `blend` (how much of the repaint is shown). Pixels
outside every face mask are never touched: each paste goes through `composite_exact`.

Strength rule
-------------
A face's strength is ``strength × clamp(native / face_side, 0.6, 1)``, with ``face_side`` the
longer side of its detected box and ``native`` the model's native side (512 SD 1.5, 1024
SDXL). A face up to the native size gets the full strength: its crop is repainted at least at
its own resolution, which is where the model adds detail. A bigger face already carries its
own detail and the identity that lives in it, while its crop is repainted at less than its own
resolution; repainting it as hard would mostly swap real features for invented ones, so its
strength falls in proportion, to no less than 0.6 of the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sdenhance.detectors import faces as detectors
from sdenhance.errors import SdenhanceError
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops import faces
from sdenhance.ops.crops import composite_exact, crop
from sdenhance.options import option
from sdenhance.stages import Context, inpaint

DEFAULT_PROMPT = "a detailed photo of a face, natural skin texture, sharp eyes"
DEFAULT_NEGATIVE = (
    "deformed face, distorted eyes, asymmetric eyes, extra eyes, blurry, plastic skin, "
    "oversmoothed, cartoon, painting, watermark, text"
)
MIN_STRENGTH_FACTOR = 0.6  # the strength rule's floor: big faces keep 60 % of `strength`


@dataclass(frozen=True)
class Options:
    prompt: str = option(DEFAULT_PROMPT, "What each repainted face should look like.")
    negative_prompt: str = option(DEFAULT_NEGATIVE, "What the repainted faces should avoid.")
    strength: float = option(
        0.3,
        "How far each face may move from the original, 0–1 (0.2–0.4 keeps the person; higher "
        "invents more and risks someone else). Lowered for faces larger than the model's "
        "native size: × clamp(native / face side, 0.6, 1).",
        ge=0.0,
        le=1.0,
    )
    blend: float = option(
        0.85,
        "Opacity of the repaint over the original face, 0–1: lower keeps more of the original "
        "person and skin texture, 0 leaves the image unchanged.",
        ge=0.0,
        le=1.0,
    )
    max_faces: int = option(
        8, "Repaint at most this many faces, 1–64 (the most certain ones).", ge=1, le=64
    )
    min_face: int = option(
        32,
        "Ignore faces whose box is smaller than this many px, 1–16384 (tiny faces gain little "
        "and are the likeliest false detections).",
        ge=1,
        le=16384,
    )
    padding: float = option(
        0.5,
        "Context around each face in its crop, in face sizes per side, 0–2; must be at least "
        "`dilate` + `feather` so the soft mask fits in the crop.",
        ge=0.0,
        le=2.0,
    )
    dilate: float = option(
        0.15,
        "Growth of the face ellipse beyond the detected box, in box sides per side, -0.4–1, "
        "to take in chin, forehead and cheeks.",
        ge=-0.4,
        le=1.0,
    )
    feather: float = option(
        0.1,
        "Width of the ellipse's soft edge, in box sides, 0–1 (0: hard edge).",
        ge=0.0,
        le=1.0,
    )
    detector: str = option(
        "lbp",
        "Face detector: lbp (scikit-image's offline cascade, frontal faces) or the path of an "
        "UltraFace-style .onnx face detector (needs onnxruntime).",
    )
    color_match: bool = option(
        True,
        "Match each repainted face's Lab mean and spread to the original face, so skin tone "
        "does not drift.",
    )
    steps: int = option(
        30, "Sampler steps of the full schedule, 1–500 (only strength×steps run).", ge=1, le=500
    )
    guidance: float = option(
        5.0, "Classifier-free guidance scale, 0–30 (1 disables it; 4–7 typical).", ge=0.0, le=30.0
    )
    scheduler: str = option(DEFAULT_SCHEDULER, "Sampler.", choices=tuple(SCHEDULERS))

    def check(self) -> None:
        """The mask must fit in its crop, and the detector must exist, before anything loads."""
        if self.padding < self.dilate + self.feather:
            raise SdenhanceError(
                f"`padding` ({self.padding}) must be ≥ `dilate` + `feather` "
                f"({self.dilate} + {self.feather}) so each face's soft mask fits in its crop"
            )
        check_detector(self.detector)


def check_detector(spec: str) -> None:
    """`spec` names a registered detector or an existing .onnx file (loaded only when run)."""
    path = Path(spec)
    if spec in detectors.DETECTORS or (path.suffix.lower() == ".onnx" and path.is_file()):
        return
    detectors.get_detector(spec)  # raises the error that names what is wrong


def face_strength(strength: float, face: faces.Face, native: int) -> float:
    """The strength rule (module docstring): ``strength × clamp(native / side, 0.6, 1)``."""
    side = max(face.width, face.height)
    return strength * min(1.0, max(MIN_STRENGTH_FACTOR, native / side))


def inpaint_options(opts: Options, strength: float) -> inpaint.Options:
    """The inpaint stage's options for one face's repaint."""
    return inpaint.Options(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        strength=strength,
        steps=opts.steps,
        guidance=opts.guidance,
        scheduler=opts.scheduler,
        color_match=opts.color_match,
    )


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """Repaint each detected face of an RGB image; pixels outside the face masks stay exact."""
    # 1. Detect faces; none (or nothing to change) is not an error
    original = np.asarray(image.convert("RGB"), dtype=np.uint8)
    found = detectors.detect_faces(
        original,
        min_size=opts.min_face,
        max_faces=opts.max_faces,
        detector=detectors.get_detector(opts.detector),
    )
    ctx.record["faces"] = [{"box": list(f.box), "score": round(f.score, 4)} for f in found]
    if not found:
        ctx.log.info("facefix: no faces found; the image is unchanged")
        return image
    if opts.strength == 0 or opts.blend == 0:
        ctx.log.info("facefix: `strength` or `blend` is 0; the image is unchanged")
        return image

    # 2. The inpainting model, its native side and the seed
    engine = ctx.engine
    pipe = engine.inpaint(opts.scheduler)
    native = inpaint.native_resolution(pipe)
    generator = engine.generator(ctx.resolve_seed())

    # 3. Per face: crop with context, repaint at native size, colour-match to the face it
    #    replaces, paste back through mask × blend (each face sees the previous ones' results)
    current = original.copy()
    for n, (face, record) in enumerate(zip(found, ctx.record["faces"], strict=True)):
        mask = faces.face_mask(face, image.size, dilate=opts.dilate, feather=opts.feather)
        box = faces.face_crop(face, image.size, padding=opts.padding, multiple=inpaint.LATENT)
        job = inpaint.crop_job(box, crop(mask, box), native)
        strength = face_strength(opts.strength, face, native)
        label = "facefix" if len(found) == 1 else f"facefix {n + 1}/{len(found)}"
        context = crop(current, box)
        out = inpaint.repaint_matched(
            pipe,
            context,
            (job.blend > 0).astype(np.float32),
            job,
            inpaint_options(opts, strength),
            generator,
            lambda i, total, label=label: ctx.progress(label, i, total),
            reference=context,
            reference_mask=job.blend,
        )
        # 4. Bit-identical wherever this face's mask is 0
        x0, y0, x1, y1 = box
        current[y0:y1, x0:x1] = composite_exact(context, out, job.blend * np.float32(opts.blend))
        record.update(strength=round(strength, 4), crop=list(box), size=list(job.size))

    # 5. Record what ran
    ctx.record.update(
        prompt=opts.prompt, negative_prompt=opts.negative_prompt, models=engine.describe()
    )
    return Image.fromarray(current, "RGB")
