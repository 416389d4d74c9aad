"""Face detailing: repaint each detected face gently, so it gains detail but stays the same person.

Users of generative upscalers complain that faces come out as someone else; they want less
change on faces than elsewhere. So each face is found offline (`ops.faces`), cropped with
context, repainted at the inpainting model's native resolution with a portrait prompt at a low
strength, colour-matched to the face it replaces, and laid over the original through a soft
ellipse at opacity `blend`. Two knobs trade detail for identity: `strength` (how far the
repaint may move from the original face) and `blend` (how much of the repaint is shown). Pixels
outside every face mask are never touched: each paste goes through `composite_exact`.

Faces one by one (`ops.face_pick`): faces are numbered from 1 in `order`, `faces` picks
which are repainted, and a prompt split by ``[SEP]`` gives each repainted face its own part;
`show` draws the numbered detections instead of repainting, so a user can pick.

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
from sdenhance.diffusion.conditioning import conditioned
from sdenhance.errors import SdenhanceError
from sdenhance.models.config import native_resolution
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops import face_pick, faces
from sdenhance.ops.crops import composite_exact, crop
from sdenhance.ops.repaint_plan import crop_job
from sdenhance.ops.sizes import LATENT_FACTOR
from sdenhance.options import option
from sdenhance.stages import Context, inpaint
from sdenhance.stages.networks import NetworkOptions

DEFAULT_PROMPT = "a detailed photo of a face, natural skin texture, sharp eyes"
DEFAULT_NEGATIVE = (
    "deformed face, distorted eyes, asymmetric eyes, extra eyes, blurry, plastic skin, "
    "oversmoothed, cartoon, painting, watermark, text"
)
MIN_STRENGTH_FACTOR = 0.6  # the strength rule's floor: big faces keep 60 % of `strength`


@dataclass(frozen=True)
class Options(NetworkOptions):
    prompt: str = option(
        DEFAULT_PROMPT,
        "What each repainted face should look like; `a [SEP] b` gives the first repainted face "
        "`a`, the second `b` (in `order`; the last part serves the rest, an empty part the "
        "default prompt).",
    )
    negative_prompt: str = option(
        DEFAULT_NEGATIVE, "What the repainted faces should avoid; `[SEP]` splits it per face too."
    )
    order: str = option(
        "confidence",
        "How faces are numbered for `faces` and the `[SEP]` prompt parts: confidence (surest "
        "first), left-right (by box centre) or largest (biggest box first).",
        choices=face_pick.ORDERS,
    )
    faces: str = option(
        "",
        "Repaint only these faces, numbered from 1 in `order`, comma separated (e.g. 1,3); "
        "empty = every face found. `show` draws the numbers.",
    )
    show: bool = option(
        False,
        "Write the detections drawn on the image (box, number, score; picked faces amber, the "
        "others grey) instead of repainting; loads no model.",
    )
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
    scheduler: str = option(
        DEFAULT_SCHEDULER, "Sampler, by its AUTOMATIC1111-style name.", choices=tuple(SCHEDULERS)
    )

    def check(self) -> None:
        """The mask must fit in its crop, and the detector must exist, before anything loads."""
        super().check()
        if self.padding < self.dilate + self.feather:
            raise SdenhanceError(
                f"`padding` ({self.padding}) must be ≥ `dilate` + `feather` "
                f"({self.dilate} + {self.feather}) so each face's soft mask fits in its crop"
            )
        check_detector(self.detector)
        face_pick.parse_picks(self.faces)


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


def inpaint_options(
    opts: Options, strength: float, prompt: str, negative_prompt: str
) -> inpaint.Options:
    """The inpaint stage's options for one face's repaint."""
    return inpaint.Options(
        prompt=prompt,
        negative_prompt=negative_prompt,
        strength=strength,
        steps=opts.steps,
        guidance=opts.guidance,
        scheduler=opts.scheduler,
        color_match=opts.color_match,
        loras=opts.loras,
        embeddings=opts.embeddings,
        clip_skip=opts.clip_skip,
    )


def pick_faces(found: list[faces.Face], opts: Options, ctx: Context) -> list[int]:
    """The numbers (from 1, in `order`) of the faces to repaint; asked-for numbers not found
    are reported and skipped."""
    picks = face_pick.parse_picks(opts.faces) or tuple(range(1, len(found) + 1))
    missing = [n for n in picks if n > len(found)]
    if missing:
        ctx.log.warning(
            "facefix: face(s) %s asked for, but %d found", ",".join(map(str, missing)), len(found)
        )
    return [n for n in picks if n <= len(found)]


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """Repaint each picked face of an RGB image; pixels outside the face masks stay exact."""
    # 1. Detect faces, number them in `order`, pick; none (or nothing to change) is not an error
    original = np.asarray(image.convert("RGB"), dtype=np.uint8)
    found = detectors.detect_faces(
        original,
        min_size=opts.min_face,
        max_faces=opts.max_faces,
        detector=detectors.get_detector(opts.detector),
    )
    found = face_pick.order_faces(found, opts.order)
    picked = pick_faces(found, opts, ctx)
    records = [
        {"index": n, "box": list(f.box), "score": round(f.score, 4)} for n, f in enumerate(found, 1)
    ]
    ctx.record["faces"] = records
    if not found:
        ctx.log.info("facefix: no faces found; the image is unchanged")
        return image
    if opts.show:
        drawn = face_pick.draw_detections(original, found, set(picked))
        return Image.fromarray(drawn, "RGB")
    if not picked:
        ctx.log.info("facefix: none of the faces asked for was found; the image is unchanged")
        return image
    if opts.strength == 0 or opts.blend == 0:
        ctx.log.info("facefix: `strength` or `blend` is 0; the image is unchanged")
        return image

    # 2. The inpainting model, its native side and the seed
    engine = ctx.engine
    pipe = engine.inpaint(opts.scheduler)
    native = native_resolution(pipe)
    generator = engine.generator(ctx.resolve_seed())
    prompts = face_pick.split_prompts(opts.prompt)
    negatives = face_pick.split_prompts(opts.negative_prompt)

    # 3. Per picked face: crop with context, repaint at native size with its own prompt,
    #    colour-match to the face it replaces, paste back through mask × blend (each face
    #    sees the previous ones' results)
    current = original.copy()
    networks: dict = {}
    guidance = opts.guidance > 1.0
    for k, n in enumerate(picked):
        face, record = found[n - 1], records[n - 1]
        prompt = face_pick.prompt_for(prompts, k, DEFAULT_PROMPT)
        negative = face_pick.prompt_for(negatives, k, DEFAULT_NEGATIVE)
        mask = faces.face_mask(face, image.size, dilate=opts.dilate, feather=opts.feather)
        box = faces.face_crop(face, image.size, padding=opts.padding, multiple=LATENT_FACTOR)
        job = crop_job(box, crop(mask, box), native)
        strength = face_strength(opts.strength, face, native)
        label = "facefix" if len(picked) == 1 else f"facefix {k + 1}/{len(picked)} (face {n})"
        context = crop(current, box)
        face_opts = inpaint_options(opts, strength, prompt, negative)
        # this face's prompt, with its LoRAs applied for this repaint only
        with conditioned(engine, pipe, face_opts, guidance=guidance) as (cond, used):
            out = inpaint.repaint_matched(
                pipe,
                context,
                (job.blend > 0).astype(np.float32),
                job,
                face_opts,
                generator,
                lambda i, total, label=label: ctx.progress(label, i, total),
                reference=context,
                reference_mask=job.blend,
                cond=cond,
            )
        networks.update(used)
        # 4. Bit-identical wherever this face's mask is 0
        x0, y0, x1, y1 = box
        current[y0:y1, x0:x1] = composite_exact(context, out, job.blend * np.float32(opts.blend))
        record.update(strength=round(strength, 4), crop=list(box), size=list(job.size))
        record.update(prompt=prompt, negative_prompt=negative)

    # 5. Record what ran
    ctx.record.update(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        models=engine.describe(),
        **networks,
    )
    return Image.fromarray(current, "RGB")
