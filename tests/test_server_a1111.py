"""The AUTOMATIC1111 API subset (`/sdapi/v1`): the JSON A1111 clients send, A1111's response
shapes, upscaler and sampler names, scripts, and warnings for what cannot be honoured."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from serverkit import files_in, png_bytes, served, wait_running

from sdenhance.server.a1111_map import (
    _EXACT,
    _SUBSTITUTES,
    img2img_spec,
    resolve_sampler,
    upscaler_listing,
)
from sdenhance.server.a1111_models import Img2ImgRequest
from sdenhance.upscalers.registry import upscaler_names
from sdenhance.upscalers.upscale import upscale


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def webuiapi_img2img(image: bytes, **changes) -> dict:
    """The body the `webuiapi` Python client posts for `api.img2img(...)`, defaults included."""
    body = {
        "init_images": ["data:image/png;base64," + b64(image)],
        "resize_mode": 0,
        "denoising_strength": 0.75,
        "mask_blur": 4,
        "inpainting_fill": 0,
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 0,
        "inpainting_mask_invert": 0,
        "initial_noise_multiplier": 1,
        "prompt": "",
        "styles": [],
        "seed": -1,
        "subseed": -1,
        "subseed_strength": 0,
        "seed_resize_from_h": 0,
        "seed_resize_from_w": 0,
        "batch_size": 1,
        "n_iter": 1,
        "steps": 30,
        "cfg_scale": 7.0,
        "image_cfg_scale": 1.5,
        "width": 512,
        "height": 512,
        "restore_faces": False,
        "tiling": False,
        "do_not_save_samples": False,
        "do_not_save_grid": False,
        "negative_prompt": "",
        "eta": 1.0,
        "s_churn": 0,
        "s_tmax": 0,
        "s_tmin": 0,
        "s_noise": 1,
        "override_settings": {},
        "override_settings_restore_afterwards": True,
        "script_args": [],
        "sampler_index": "Euler a",
        "scheduler": "Automatic",
        "include_init_images": False,
        "script_name": None,
        "send_images": True,
        "save_images": False,
        "alwayson_scripts": {},
        "sampler_name": "Euler a",
    }
    body.update(changes)
    return body


@pytest.fixture(scope="module")
def tiny(models, tmp_path_factory):
    """The server on the tiny SD 1.5 model and its tile ControlNet, shared by this module."""
    from sdenhance.models.config import EngineConfig

    out = tmp_path_factory.mktemp("a1111-out")
    cfg = EngineConfig(model=models["sd15"], controlnet=models["sd15-controlnet"], device="cpu")
    with served(out, engine_config=cfg) as (client, queue):
        yield client, queue, out


@pytest.fixture
def offline(tmp_path):
    with served(tmp_path / "out", capacity=4) as (client, queue):
        yield client, queue, tmp_path / "out"


# --- img2img on a tiny model ---------------------------------------------------------------


def test_img2img_answers_a_webuiapi_client_in_a1111s_shape(tiny):
    client, queue, _ = tiny
    body = webuiapi_img2img(
        png_bytes(40, 30),
        prompt="a cat",
        steps=4,
        width=64,
        height=48,
        seed=11,
        denoising_strength=0.5,
        alwayson_scripts={"ADetailer": {"args": []}},
        sd_vae="x",
    )
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"images", "parameters", "info"} and len(out["images"]) == 1
    image = unb64(out["images"][0])
    assert image.size == (64, 48) and "Steps: 4," in image.text["parameters"]
    assert out["parameters"]["prompt"] == "a cat" and out["parameters"]["init_images"] is None
    info = json.loads(out["info"])
    assert info["seed"] == 11 and info["all_seeds"] == [11] and info["width"] == 64
    assert info["infotexts"][0] == image.text["parameters"] and not info["interrupted"]
    assert "Sampler: Euler a" in info["infotexts"][0]
    warned = " | ".join(info["warnings"])
    assert "`alwayson_scripts`" in warned and "unknown field `sd_vae`" in warned
    assert (
        "`eta`" not in warned and "`image_cfg_scale`" not in warned
    )  # webuiapi's neutral defaults
    assert queue.engine_loaded


def test_img2img_with_a_mask_inpaints_and_keeps_the_rest_exact(tiny):
    client, queue, _ = tiny
    engine = queue._engine
    source = png_bytes(48, 40, seed=4)
    mask = Image.new("L", (48, 40))
    mask.paste(255, (8, 8, 24, 24))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    body = webuiapi_img2img(
        source,
        mask=b64(buf.getvalue()),
        mask_blur=0,
        width=48,
        height=40,
        steps=4,
        seed=3,
        inpainting_fill=1,
        inpaint_full_res=False,
    )
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    result = np.asarray(unb64(r.json()["images"][0]).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
    outside = np.asarray(mask) == 0
    assert np.array_equal(result[outside], original[outside])
    assert not np.array_equal(result[~outside], original[~outside])
    assert queue._engine is engine  # models load once per process


def test_ultimate_sd_upscale_script_runs_as_one_tiled_upscale(tiny):
    client, _, _ = tiny
    # A1111 script_args of "Ultimate SD upscale": tile 64x64, padding 16, upscaler index 1
    # (Lanczos in /sdapi/v1/upscalers), seams fix "Band pass", target "Scale from image size" 2
    args = [None, 64, 64, 8, 16, 64, 0.35, 16, 1, True, 0, False, 4, 1, 2, 2048, 2048, 2]
    body = webuiapi_img2img(
        png_bytes(40, 32),
        script_name="Ultimate SD upscale",
        script_args=args,
        steps=4,
        denoising_strength=0.3,
        seed=5,
    )
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    image = unb64(r.json()["images"][0])
    assert image.size == (80, 64)
    record = json.loads(image.text["sdenhance"])
    opts = record["steps"][0]["options"]
    assert record["steps"][0]["stage"] == "upscale" and opts["upscaler"] == "lanczos"
    assert (opts["tile"], opts["overlap"], opts["creativity"]) == (64, 16, 0.3)
    assert any("seams fix" in w for w in json.loads(r.json()["info"])["warnings"])


def test_generation_errors_are_422_with_one_line(offline):
    client, _, _ = offline
    r = client.post("/sdapi/v1/img2img", json={"init_images": []})
    assert r.status_code == 422 and "`init_images` is empty" in r.json()["detail"]
    r = client.post("/sdapi/v1/img2img", json={"init_images": ["@@@"]})
    assert r.status_code == 422 and "not valid base64" in r.json()["detail"]
    r = client.post("/sdapi/v1/img2img", json={"init_images": ["https://example.com/a.png"]})
    assert r.status_code == 422 and "URLs are not fetched" in r.json()["detail"]
    r = client.post(
        "/sdapi/v1/img2img", json={"init_images": [b64(png_bytes())], "script_name": "X/Y/Z plot"}
    )
    assert r.status_code == 422 and "script `X/Y/Z plot` is not available" in r.json()["detail"]
    # no diffusion model installed: the job fails with the engine's one-line message
    r = client.post("/sdapi/v1/img2img", json=webuiapi_img2img(png_bytes(), steps=2))
    assert r.status_code == 422 and "\n" not in r.json()["detail"]


# --- extras: offline upscales ----------------------------------------------------------------


def test_extra_single_image_takes_a1111_upscaler_names(offline):
    client, _, out = offline
    source = png_bytes(16, 12, seed=2)
    body = {"image": b64(source), "upscaler_1": "R-ESRGAN 4x+", "upscaling_resize": 2}
    r = client.post("/sdapi/v1/extra-single-image", json=body)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"html_info", "image"}
    got = np.asarray(unb64(r.json()["image"]).convert("RGB"))
    want = upscale(Image.open(io.BytesIO(source)), size=(32, 24), upscaler="realesrgan-x4plus")
    assert np.array_equal(got, np.asarray(want))
    assert len(files_in(out)) == 1


@pytest.mark.parametrize(
    "changes, size, warning",
    [
        ({"upscaler_1": "Lanczos", "upscaling_resize": 1.5}, (36, 24), None),
        ({"upscaler_1": "None", "upscaling_resize": 3}, (24, 16), None),
        (
            {
                "upscaler_1": "lanczos",
                "resize_mode": 1,
                "upscaling_resize_w": 30,
                "upscaling_resize_h": 30,
            },
            (30, 30),
            None,
        ),
        (
            {
                "upscaler_1": "Lanczos",
                "resize_mode": 1,
                "upscaling_resize_w": 30,
                "upscaling_resize_h": 30,
                "upscaling_crop": False,
            },
            (45, 30),
            None,
        ),
        ({"upscaler_1": "Lanczos", "gfpgan_visibility": 0.5}, (48, 32), "`gfpgan_visibility`"),
        (
            {
                "upscaler_1": "Lanczos",
                "upscaler_2": "R-ESRGAN 4x+",
                "extras_upscaler_2_visibility": 0.3,
            },
            (48, 32),
            "upscaler_2 is not supported",
        ),
    ],
)
def test_extra_single_image_sizes_and_warnings(offline, changes, size, warning):
    client, _, _ = offline
    r = client.post(
        "/sdapi/v1/extra-single-image", json={"image": b64(png_bytes(24, 16)), **changes}
    )
    assert r.status_code == 200, r.text
    assert unb64(r.json()["image"]).size == size
    if warning:
        assert warning in r.json()["html_info"]
    else:
        assert "warning" not in r.json()["html_info"]


def test_unknown_upscalers_are_refused_with_the_list(offline):
    client, _, _ = offline
    body = {"image": b64(png_bytes()), "upscaler_1": "SwinIR 4x"}
    r = client.post("/sdapi/v1/extra-single-image", json=body)
    assert r.status_code == 422
    assert (
        "upscaler `SwinIR 4x` not found" in r.json()["detail"]
        and "R-ESRGAN 4x+" in r.json()["detail"]
    )


def test_extra_batch_images_upscale_each(offline):
    client, _, out = offline
    body = {
        "imageList": [
            {"data": b64(png_bytes(10, 10, seed=1)), "name": "a.png"},
            {"data": b64(png_bytes(12, 8, seed=2)), "name": "C:\\x\\b.png"},
        ],
        "upscaler_1": "R-ESRGAN AnimeVideo",
        "upscaling_resize": 2,
    }
    r = client.post("/sdapi/v1/extra-batch-images", json=body)
    assert r.status_code == 200, r.text
    assert [unb64(i).size for i in r.json()["images"]] == [(20, 20), (24, 16)]
    names = [json.loads(unb64(i).text["sdenhance"])["input"]["name"] for i in r.json()["images"]]
    assert names == ["a.png", "b.png"] and len(files_in(out)) == 2


# --- png-info, progress, interrupt, listings -------------------------------------------------


def test_png_info_reads_a1111_and_sdenhance_metadata(offline):
    client, _, _ = offline
    info = PngImagePlugin.PngInfo()
    text = "a cat\nNegative prompt: a dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8"
    info.add_text("parameters", text)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG", pnginfo=info)
    r = client.post("/sdapi/v1/png-info", json={"image": b64(buf.getvalue())})
    assert r.status_code == 200 and r.json()["info"] == text
    params = r.json()["parameters"]
    assert (
        params["Prompt"] == "a cat"
        and params["Negative prompt"] == "a dog"
        and params["Steps"] == "20"
    )

    up = client.post(
        "/sdapi/v1/extra-single-image", json={"image": b64(png_bytes()), "upscaler_1": "Lanczos"}
    )
    r = client.post("/sdapi/v1/png-info", json={"image": up.json()["image"]})
    assert r.json()["parameters"]["Size"] == "48x32" and r.json()["items"]["sdenhance"]["job"]
    r = client.post("/sdapi/v1/png-info", json={"image": b64(b"not an image")})
    assert r.status_code == 422 and r.json()["detail"].startswith("cannot read image")


def test_progress_and_interrupt_of_a_waiting_a1111_request(offline):
    client, queue, out = offline
    idle = client.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    body = {
        "image": b64(png_bytes(200, 200, seed=3)),
        "upscaler_1": "R-ESRGAN AnimeVideo",
        "upscaling_resize": 2,
    }
    answer = {}
    worker = threading.Thread(
        target=lambda: answer.update(r=client.post("/sdapi/v1/extra-single-image", json=body))
    )
    worker.start()
    try:
        for _ in range(600):  # the request reaches the queue within a few seconds
            if queue.jobs():
                break
            time.sleep(0.05)
        job = queue.jobs()[0]["id"]
        wait_running(queue, job)
        busy = client.get("/sdapi/v1/progress").json()
        assert 0 < busy["progress"] < 1 and busy["state"]["sampling_steps"] == 4
        assert busy["state"]["job"] == "extras" and busy["state"]["job_count"] == 1
        assert client.post("/sdapi/v1/interrupt").status_code == 200
    finally:
        worker.join(60)
    r = answer["r"]
    assert r.status_code == 200 and r.json()["image"] is None
    assert "interrupted" in r.json()["html_info"] and files_in(out) == []


def test_listings_speak_a1111(offline):
    client, _, _ = offline
    samplers = {s["name"]: s for s in client.get("/sdapi/v1/samplers").json()}
    assert samplers["Euler a"]["aliases"] == ["euler-a"] and "DPM++ 2M Karras" in samplers
    ups = client.get("/sdapi/v1/upscalers").json()
    assert ups[0]["name"] == "None" and all(u["model_path"] is None for u in ups)
    by_name = {u["name"]: u for u in ups}
    assert by_name["R-ESRGAN 4x+"]["model_name"] == "realesrgan-x4plus"
    assert by_name["R-ESRGAN 4x+"]["scale"] == 4
    models = client.get("/sdapi/v1/sd-models").json()
    assert models[0]["title"] == "stable-diffusion-v1-5" and set(models[0]) >= {
        "title",
        "filename",
        "hash",
    }
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == "stable-diffusion-v1-5"
    assert (
        client.post(
            "/sdapi/v1/options", json={"sd_model_checkpoint": "stable-diffusion-v1-5"}
        ).status_code
        == 200
    )
    r = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "other.safetensors"})
    assert r.status_code == 422 and "cannot be changed" in r.json()["detail"]


# --- the mapping itself -----------------------------------------------------------------------


def test_every_upscaler_alias_names_a_registered_upscaler():
    names = set(upscaler_names())
    assert set(_EXACT.values()) <= names and set(_SUBSTITUTES.values()) <= names
    assert {"R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B", "Lanczos"} <= set(_EXACT)
    listed = [name for name, _, _ in upscaler_listing()]
    assert len(listed) == len(set(listed))


@pytest.mark.parametrize(
    "sampler, schedule, ours, warns",
    [
        ("Euler a", None, "euler-a", False),
        ("DPM++ 2M", "Karras", "dpmpp-2m-karras", False),
        ("DPM++ 2M Karras", "Automatic", "dpmpp-2m-karras", False),
        ("dpmpp-2m", None, "dpmpp-2m", False),
        ("DPM++ SDE", None, None, True),
        ("Euler", "Exponential", "euler", True),
        (None, None, None, False),
    ],
)
def test_sampler_names(sampler, schedule, ours, warns):
    warnings: list[str] = []
    assert resolve_sampler(sampler, schedule, warnings) == ours
    assert bool(warnings) == warns


def test_inpaint_fields_map_to_inpaint_options():
    req = Img2ImgRequest(
        init_images=["x"],
        mask="y",
        mask_blur_x=6,
        mask_blur_y=2,
        inpainting_fill=2,
        inpaint_full_res=True,
        inpaint_full_res_padding=40,
        inpainting_mask_invert=1,
        width=64,
        height=64,
        denoising_strength=0.6,
        restore_faces=True,
        n_iter=2,
    )
    spec = img2img_spec(req, {"image": "i", "mask": "m"}, (64, 64))
    assert [s.stage for s in spec.steps] == ["inpaint"]
    opts = spec.steps[0].options
    assert (opts.feather, opts.fill, opts.area, opts.padding, opts.strength) == (
        6,
        "noise",
        "masked",
        40,
        0.6,
    )
    assert opts.scheduler == "euler" and opts.grow == 0  # A1111's API default sampler is Euler
    images = {"mask": Image.new("L", (4, 4), 255)}
    spec.prepare(images)
    assert images["mask"].getextrema() == (0, 0)
    assert any("restore_faces" in w for w in spec.warnings)
    assert any("one image is made per request" in w for w in spec.warnings)
    resized = img2img_spec(req, {"image": "i", "mask": "m"}, (100, 50))
    assert [s.stage for s in resized.steps] == ["resize", "inpaint"]
    assert resized.steps[0].options.width == 64 and resized.steps[1].options.mask_resize
