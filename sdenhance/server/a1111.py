"""The AUTOMATIC1111 API subset under `/sdapi/v1`, so A1111 clients work unchanged.

Generation calls are synchronous, as in A1111: the request queues a job in the same queue as
`/api/v1` and answers when it ends, with the result as base64 PNG (its metadata included).
"""

# no `from __future__ import annotations`: FastAPI reads the route functions' annotations,
# and those name FastAPI's types, imported inside `build_router` (the web framework is an extra)

import asyncio
import base64
import html
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.server import a1111_map as amap
from sdenhance.server import a1111_models as m
from sdenhance.server.jobs import TERMINAL, JobQueue
from sdenhance.server.routes_v1 import queue_of
from sdenhance.server.specs import JobSpec

WAIT_POLL_S = 0.05


def model_spec(config: Any) -> str:
    """The base model the engine will load, by the engine's own precedence."""
    from sdenhance.models.config import DEFAULTS, user_defaults

    return (
        getattr(config, "model", None)
        or os.environ.get("SDENHANCE_MODEL")
        or user_defaults().get("model")
        or DEFAULTS["sd15"]["model"]
    )


def _model_title(config: Any) -> str:
    return Path(model_spec(config).rstrip("/\\")).name


# --- jobs: spool, run, answer -----------------------------------------------------------------


def _spooled(queue: JobQueue, payloads: dict[str, tuple[Any, str]], build) -> tuple[JobSpec, Path]:
    """Decode base64 payloads (role -> (text, field name)) into a spool folder, then build the
    spec from the files and the input's header size; the folder goes if anything fails."""
    spool = queue.spool_dir()
    size = None
    try:
        files = {}
        for role, (text, what) in payloads.items():
            data = amap.decode_image(text, what)
            files[role] = spool / role
            files[role].write_bytes(data)
            if role == "image":
                size = amap.header_size(data)
        return build(files, size), spool
    except BaseException:
        shutil.rmtree(spool, ignore_errors=True)
        raise


async def _wait(queue: JobQueue, job_id: str) -> dict[str, Any]:
    while True:
        snap = queue.status(job_id)
        if snap["status"] in TERMINAL:
            return snap
        await asyncio.sleep(WAIT_POLL_S)


def _encoded_result(queue: JobQueue, job_id: str) -> tuple[str, dict[str, Any]]:
    """The result file as base64 and its run record."""
    from sdenhance.io.load import read_metadata

    path = queue.result_path(job_id)
    data = path.read_bytes()
    meta = read_metadata(path)
    record = dict(meta.sdenhance or {})
    record["infotext"] = meta.raw_parameters or ""
    return base64.b64encode(data).decode("ascii"), record


async def _outcome(queue: JobQueue, job_id: str) -> tuple[str | None, dict[str, Any], dict]:
    """Wait for the job: (base64 PNG or None if interrupted, run record, status)."""
    from starlette.concurrency import run_in_threadpool

    snap = await _wait(queue, job_id)
    if snap["status"] == "failed":
        raise SdenhanceError(snap["error"] or "the job failed")
    if snap["status"] == "cancelled":
        return None, {}, snap
    image, record = await run_in_threadpool(_encoded_result, queue, job_id)
    return image, record, snap


# --- generation -------------------------------------------------------------------------------


def _html_info(label: str, warnings: list[str]) -> str:
    lines = [label, *(f"warning: {w}" for w in warnings)]
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


# --- reading images ---------------------------------------------------------------------------


def _png_info(queue: JobQueue, text: str) -> dict[str, Any]:
    from sdenhance.io.load import read_metadata

    spool = queue.spool_dir()
    try:
        path = spool / "image"
        path.write_bytes(amap.decode_image(text, "image"))
        try:
            meta = read_metadata(path)
        except SdenhanceError as exc:
            raise SdenhanceError(str(exc).replace(str(path), "image")) from None
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    items = {
        key: value
        for key, value in (
            ("sdenhance", meta.sdenhance),
            ("prompt", meta.comfy_prompt),
            ("workflow", meta.comfy_workflow),
            ("midjourney", meta.midjourney),
        )
        if value
    }
    return {"info": meta.raw_parameters or "", "items": items, "parameters": meta.parameters or {}}


# --- state and listings -----------------------------------------------------------------------


def build_router() -> Any:
    """These routes as a FastAPI router; FastAPI (the `serve` extra) is imported only here."""
    from fastapi import APIRouter, Request
    from starlette.concurrency import run_in_threadpool

    router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111"])

    @router.post("/img2img", response_model=m.ImageToImageResponse)
    async def img2img(request: Request, req: m.Img2ImgRequest) -> dict[str, Any]:
        """img2img; with `mask`, inpaint; with `script_name` "Ultimate SD upscale" or "SD upscale",
        a seam-free tiled upscale."""
        queue = queue_of(request)
        if not req.init_images:
            raise SdenhanceError("`init_images` is empty; send one base64 image")
        payloads = {"image": (req.init_images[0], "init_images[0]")}
        if req.mask:
            payloads["mask"] = (req.mask, "mask")
        spec, spool = await run_in_threadpool(
            _spooled, queue, payloads, lambda files, size: amap.img2img_spec(req, files, size)
        )
        job_id = queue.submit_spec(spec, spool=spool)
        image, record, snap = await _outcome(queue, job_id)
        parameters = req.model_dump(exclude=set(req.unknown_fields()))
        if not req.include_init_images:
            parameters.update(init_images=None, mask=None)
        seed = record.get("seed", -1)
        info = {
            "prompt": req.prompt or "",
            "all_prompts": [req.prompt or ""],
            "negative_prompt": req.negative_prompt or "",
            "all_negative_prompts": [req.negative_prompt or ""],
            "seed": seed,
            "all_seeds": [seed],
            "width": (record.get("size_out") or [req.width])[0],
            "height": (record.get("size_out") or [None, req.height])[1],
            "sampler_name": req.sampler_name or req.sampler_index,
            "cfg_scale": req.cfg_scale,
            "steps": req.steps,
            "denoising_strength": req.denoising_strength,
            "infotexts": [record["infotext"]] if image else [],
            "job": job_id,
            "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(snap["created"])),
            "interrupted": image is None,
            "warnings": snap["warnings"],
        }
        images = [image] if image and req.send_images is not False else []
        return {"images": images, "parameters": parameters, "info": json.dumps(info)}

    @router.post("/extra-single-image", response_model=m.ExtrasSingleImageResponse)
    async def extra_single_image(
        request: Request, req: m.ExtrasSingleImageRequest
    ) -> dict[str, Any]:
        """Upscale one image with an upscaler (A1111 names such as `R-ESRGAN 4x+` accepted)."""
        queue = queue_of(request)
        spec, spool = await run_in_threadpool(
            _spooled,
            queue,
            {"image": (req.image, "image")},
            lambda files, size: amap.extras_spec(req, files, size),
        )
        job_id = queue.submit_spec(spec, spool=spool)
        image, _, snap = await _outcome(queue, job_id)
        label = "interrupted: no image" if image is None else f"upscaled: job {job_id}"
        return {
            "html_info": _html_info(label, snap["warnings"]),
            "image": image if req.show_extras_results else None,
        }

    @router.post("/extra-batch-images", response_model=m.ExtrasBatchImagesResponse)
    async def extra_batch_images(
        request: Request, req: m.ExtrasBatchImagesRequest
    ) -> dict[str, Any]:
        """Upscale several images, one job each, answered together."""
        queue = queue_of(request)
        if not req.imageList:
            raise SdenhanceError("`imageList` is empty")
        if len(req.imageList) > queue.capacity:
            raise SdenhanceError(f"at most {queue.capacity} images per batch on this server")
        ids: list[str] = []
        try:
            for n, item in enumerate(req.imageList):
                spec, spool = await run_in_threadpool(
                    _spooled,
                    queue,
                    {"image": (item.data, f"imageList[{n}].data")},
                    lambda files, size: amap.extras_spec(req, files, size),
                )
                spec.input_name = Path(item.name.replace("\\", "/")).name[:120] or "upload"
                ids.append(queue.submit_spec(spec, spool=spool))
        except BaseException:
            for job_id in ids:
                queue.cancel(job_id)
            raise
        images, warnings = [], []
        for job_id in ids:
            image, _, snap = await _outcome(queue, job_id)
            warnings += [w for w in snap["warnings"] if w not in warnings]
            if image is not None:
                images.append(image)
        label = f"upscaled {len(images)} of {len(ids)} image(s)"
        return {
            "html_info": _html_info(label, warnings),
            "images": images if req.show_extras_results else [],
        }

    @router.post("/png-info", response_model=m.PNGInfoResponse)
    def png_info(request: Request, req: m.PNGInfoRequest) -> dict[str, Any]:
        """Generation parameters stored in an image (A1111, ComfyUI, Midjourney, sdenhance)."""
        return _png_info(queue_of(request), req.image)

    @router.get("/progress", response_model=m.ProgressResponse)
    def progress(request: Request, skip_current_image: bool = False) -> dict[str, Any]:
        """The running job's progress (0–1) and ETA of its current stage."""
        queue = queue_of(request)
        current, counts = queue.current(), queue.counts()
        p = current["progress"] if current else {}
        state = {
            "skipped": False,
            "interrupted": bool(current and current["cancel_requested"]),
            "stopping_generation": False,
            "job": current["label"] if current else "",
            "job_count": counts["queued"] + counts["running"],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(current["created"]))
            if current
            else "0",
            "job_no": 0,
            "sampling_step": p.get("step", 0),
            "sampling_steps": p.get("total", 0),
        }
        return {
            "progress": p.get("fraction", 0.0),
            "eta_relative": p.get("eta_seconds") or 0.0,
            "state": state,
            "current_image": None,
            "textinfo": p.get("stage") or None,
        }

    @router.post("/interrupt")
    def interrupt(request: Request) -> None:
        """Stop the running job at its next step; nothing partial is saved."""
        queue_of(request).cancel_running()

    @router.get("/samplers", response_model=list[m.SamplerItem])
    def samplers() -> list[dict[str, Any]]:
        from sdenhance.models.schedulers import SCHEDULERS

        return [
            {"name": a1111, "aliases": [ours], "options": {}}
            for ours, (_, _, a1111) in SCHEDULERS.items()
        ]

    @router.get("/upscalers", response_model=list[m.UpscalerItem])
    def upscalers() -> list[dict[str, Any]]:
        """Upscalers by A1111 name where one exists; script `upscaler_index` counts in this list."""
        return [
            {
                "name": name,
                "model_name": ours,
                "model_path": None,
                "model_url": None,
                "scale": scale,
            }
            for name, ours, scale in amap.upscaler_listing()
        ]

    @router.get("/sd-models", response_model=list[m.SDModelItem])
    def sd_models(request: Request) -> list[dict[str, Any]]:
        """The one base model this server runs (switching needs a restart with `--model`)."""
        title = _model_title(queue_of(request).engine_config)
        return [
            {
                "title": title,
                "model_name": title,
                "hash": None,
                "sha256": None,
                "filename": title,
                "config": None,
            }
        ]

    @router.get("/options")
    def get_options(request: Request) -> dict[str, Any]:
        """The settings A1111 clients read; this server's are fixed at start."""
        return {
            "sd_model_checkpoint": _model_title(queue_of(request).engine_config),
            "sd_checkpoint_hash": None,
            "samples_format": "png",
            "CLIP_stop_at_last_layers": 1,
        }

    @router.post("/options")
    def set_options(request: Request, values: dict[str, Any]) -> None:
        """Accepts only the current values: settings cannot change while the server runs."""
        current = get_options(request)
        changed = sorted(k for k, v in values.items() if current.get(k, object()) != v)
        if changed:
            raise SdenhanceError(
                f"options cannot be changed on this server ({', '.join(changed)}); restart "
                "`sdenhance serve` with other flags instead"
            )

    return router
