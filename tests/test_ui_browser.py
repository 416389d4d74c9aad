"""The web UI in a real, headless Chromium (Playwright driving Debian's `chromium`).

One server (the UI app on uvicorn, a tiny random-weight SD 1.5 model, a token) and one page
for the module: upload real photos, paint mask strokes with the mouse, run Remove (offline
fill) and Inpaint, download the results and check them pixel by pixel against the strokes;
upscale with creativity 0 and measure the before/after view; trigger option and image errors;
cancel a running job; and check the page never asked any host but the server. Screenshots of
every tab go to the module's output folder; with SDENHANCE_UI_SCREENSHOT=1 one is also copied
to docs/ui.png for the README.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright import sync_api  # a dev dependency, installed by `make test`
from serverkit import files_in, uvicorn_thread
from skimage import data

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
expect = sync_api.expect

TOKEN = "browser-test-token-0123456789"
BRUSH = 24  # image px
ENDED = re.compile(r"^(Done|Failed|Cancelled|Idle)$")
DOCS_SHOT = Path(__file__).resolve().parents[1] / "docs" / "ui.png"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real photos as files the page can upload, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    out["chelsea"] = folder / "chelsea.png"
    Image.fromarray(data.chelsea()).save(out["chelsea"])
    out["two-faces"] = folder / "two-faces.png"  # the astronaut twice, side by side
    half = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS))
    Image.fromarray(np.concatenate([half, half], axis=1)).save(out["two-faces"])
    out["not-an-image"] = folder / "notes.png"
    out["not-an-image"].write_text("not a picture at all\n")
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, models):
    """The UI app behind a token, on a queue with the tiny SD 1.5 model, on 127.0.0.1."""
    from sdenhance.models.config import EngineConfig
    from sdenhance.server import JobQueue, ServerSettings
    from sdenhance.ui.app import create_ui_app

    outputs = tmp_path_factory.mktemp("ui-outputs")
    queue = JobQueue(EngineConfig(model=models["sd15"], device="cpu"), outputs=outputs)
    app = create_ui_app(ServerSettings(outputs=outputs, token=TOKEN), queue=queue)
    try:
        with uvicorn_thread(app) as url:
            yield {"url": url, "outputs": outputs}
    finally:
        queue.close()


@pytest.fixture(scope="module")
def ui(server, tmp_path_factory):
    """A page on the server (logged in through the prompt), every request it makes recorded."""
    shots = tmp_path_factory.mktemp("ui-screenshots")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True
        )
        requests: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(60_000)
        yield {"page": page, "requests": requests, "shots": shots, "errors": errors, **server}
        context.close()
        browser.close()


# -- helpers ---------------------------------------------------------------------------------


def upload(page, path: Path) -> None:
    page.set_input_files("#image-file", str(path))
    expect(page.locator("#image-info")).to_contain_text(f"{path.name} · ")


def set_option(page, stage: str, name: str, value) -> None:
    """Type a value into an option's box as a user would (then leave the box)."""
    box = page.locator(f"[data-stage={stage}] [name={name}]")
    if box.is_hidden():
        page.locator(f"[data-stage={stage}] details.advanced > summary").click()
    if isinstance(value, bool):
        box.set_checked(value)
    elif box.evaluate("e => e.tagName") == "SELECT":
        box.select_option(str(value))
    else:
        box.fill(str(value))
        box.press("Tab")


def paint(page, strokes: list[tuple[tuple[int, int], tuple[int, int]]], size: int) -> None:
    """Paint straight strokes (image px) with the mouse on the mask canvas."""
    page.locator("#brush-size").fill(str(size))
    canvas = page.locator("#mask-canvas")
    box = canvas.bounding_box()
    width, height = canvas.evaluate("c => [c.width, c.height]")

    def at(x, y):
        return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height

    for start, end in strokes:
        page.mouse.move(*at(*start))
        page.mouse.down()
        page.mouse.move(*at(*end), steps=12)
        page.mouse.up()


def stroke_distance(shape, strokes) -> np.ndarray:
    """Distance in px of every pixel centre to the nearest stroke segment."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64) + 0.5
    best = np.full(shape, np.inf)
    for (x0, y0), (x1, y1) in strokes:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        best = np.minimum(best, np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)))
    return best


def run_and_wait(page, outcome: str = "Done") -> None:
    page.click("#run")
    expect(page.locator("#progress-text")).to_have_text(ENDED, timeout=120_000)
    expect(page.locator("#cancel")).to_be_disabled()
    status = page.text_content("#progress-text")
    assert status == outcome, f"{status}: {page.text_content('#run-error')}"


def download(page, folder: Path) -> Path:
    with page.expect_download() as info:
        page.click("#download")
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def shot(ui, name: str) -> None:
    ui["page"].screenshot(path=str(ui["shots"] / f"{name}.png"), full_page=True)


# -- the tests, in the order a user would go -------------------------------------------------


def test_the_token_prompt_then_every_tab(ui, photos):
    page = ui["page"]
    page.goto(ui["url"] + "/")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#login-token", "wrong")
    page.click("#login button")
    expect(page.locator("#login-error")).to_contain_text("token")
    page.fill("#login-token", TOKEN)
    page.click("#login button")
    page.wait_for_selector("#app:not([hidden])")
    upload(page, photos["chelsea"])
    titles = page.locator("nav [role=tab]").all_text_contents()
    assert titles == ["Upscale", "Inpaint", "Remove", "Face fix", "Expand", "Colour fix / blend"]
    for title in titles:
        page.get_by_role("tab", name=title).click()
        shot(ui, "tab-" + title.split()[0].lower())
    # help, range and default of an option come from the stage's Options
    page.get_by_role("tab", name="Upscale").click()
    help_text = page.text_content("[data-stage=upscale] [data-field=creativity] .help")
    assert help_text.startswith("Denoising strength: 0 = the pre-upscaler alone")
    assert "Range: 0–1." in help_text and "Default: 0.35." in help_text
    box = page.locator("[data-stage=upscale] input[type=number][name=creativity]")
    assert (box.get_attribute("min"), box.get_attribute("max")) == ("0", "1")


@pytest.mark.parametrize(
    ("tab", "options", "margin"),
    [("Remove", {"refine": False}, 8 + 3), ("Inpaint", {}, 4 + 8 + 3)],
    ids=["remove", "inpaint"],
)
def test_strokes_change_only_what_they_cover(ui, photos, tmp_path, tab, options, margin):
    """Two mouse strokes; the downloaded result differs under them and is bit-identical
    beyond the strokes grown by the stage's `grow` (and `feather`) and a pixel or three."""
    page = ui["page"]
    upload(page, photos["chelsea"])
    page.get_by_role("tab", name=tab).click()
    stage = tab.lower()
    for name, value in options.items():
        set_option(page, stage, name, value)
    strokes = [((120, 90), (260, 110)), ((300, 200), (360, 260))]
    paint(page, strokes, BRUSH)
    run_and_wait(page)
    if tab == "Inpaint":
        shot(ui, "inpaint-result")
        if os.environ.get("SDENHANCE_UI_SCREENSHOT"):
            shutil.copyfile(ui["shots"] / "inpaint-result.png", DOCS_SHOT)
    result = np.asarray(Image.open(download(page, tmp_path)).convert("RGB"))
    original = data.chelsea()[..., :3]
    assert result.shape == original.shape
    distance = stroke_distance(original.shape[:2], strokes)
    changed = np.any(result != original, axis=-1)
    outside = distance > BRUSH / 2 + margin
    assert not changed[outside].any(), f"{changed[outside].sum()} px changed outside the strokes"
    core = distance < BRUSH / 4
    assert changed[core].mean() > 0.9


def painted(page) -> int:
    """Mask pixels painted (alpha >= 50 %), read from the canvas itself."""
    return page.locator("#mask-canvas").evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] >= 128; return n; }"
    )


def test_mask_tools_erase_undo_clear_and_upload(ui, photos, tmp_path):
    page = ui["page"]
    upload(page, photos["chelsea"])
    page.get_by_role("tab", name="Remove").click()
    page.click("#mask-clear")
    paint(page, [((100, 150), (300, 150))], 20)
    stroke = painted(page)
    assert abs(stroke - (200 * 20 + np.pi * 10**2)) < 0.1 * stroke  # a 20 px wide stroke
    page.check("input[name=mask-tool][value=eraser]")
    paint(page, [((200, 130), (200, 170))], 40)  # rubs out about 40 px of its length
    assert 0.7 * stroke < painted(page) < 0.9 * stroke
    page.click("#mask-undo")
    assert painted(page) == stroke
    page.click("#mask-clear")
    assert painted(page) == 0
    page.click("#mask-undo")
    assert painted(page) == stroke
    page.check("input[name=mask-tool][value=brush]")
    mask = np.zeros((300, 451), np.uint8)
    mask[100:200, 40:240] = 200  # light grey counts as white
    Image.fromarray(mask).save(tmp_path / "mask.png")
    page.set_input_files("#mask-file", str(tmp_path / "mask.png"))
    expect(page.locator("#mask-canvas")).to_be_visible()
    for _ in range(50):  # the upload is read asynchronously
        if painted(page) != stroke:
            break
        page.wait_for_timeout(100)
    assert painted(page) == 100 * 200  # the upload replaced the painted mask
    page.uncheck("#mask-show")
    expect(page.locator("#mask-canvas")).to_be_hidden()
    page.check("#mask-show")
    page.click("#mask-clear")


def test_upscale_shows_both_images_at_their_sizes(ui, photos):
    page = ui["page"]
    upload(page, photos["chelsea"])
    page.get_by_role("tab", name="Upscale").click()
    set_option(page, "upscale", "creativity", 0)
    set_option(page, "upscale", "upscaler", "lanczos")
    run_and_wait(page)
    sizes = page.evaluate(
        "() => ['#before', '#after'].map(s => { const i = document.querySelector(s);"
        "const r = i.getBoundingClientRect(); return [i.naturalWidth, i.naturalHeight,"
        "r.width, r.height, r.x]; })"
    )
    (bw, bh, brw, brh, _), (aw, ah, arw, arh, _) = sizes
    assert (bw, bh, aw, ah) == (451, 300, 902, 600)
    assert (round(brw), round(brh)) == (round(arw), round(arh))  # stacked under the split
    assert abs(arw / arh - 902 / 600) < 0.01
    page.check("#zoom")  # 100 %: the after image pixel for pixel
    assert page.evaluate("document.querySelector('#after').getBoundingClientRect().width") == 902
    page.uncheck("#zoom")
    page.check("input[name=view][value=side]")
    before, after = (page.locator(s).bounding_box() for s in ("#before", "#after"))
    assert before["x"] + before["width"] <= after["x"]
    page.check("input[name=view][value=slider]")
    command = page.text_content("#cli-command")
    assert command.startswith("sdenhance upscale chelsea.png ")
    assert "--creativity 0 --upscaler lanczos" in command
    assert "Postprocess upscaler" in page.text_content("#infotext")  # no diffusion ran
    shot(ui, "upscale-result")
    page.check("[data-stage=upscale] .size-switch [value=exact]")  # the width alone sets it
    set_option(page, "upscale", "width", 500)
    run_and_wait(page)
    w, h = page.evaluate(
        "[document.querySelector('#after').naturalWidth, document.querySelector('#after').naturalHeight]"
    )
    assert w == 500 and abs(h - 300 * 500 / 451) <= 1
    assert "--width 500" in page.text_content("#cli-command")


def test_use_as_input_then_colour_fix_against_the_previous_input(ui):
    page = ui["page"]
    page.click("#use-as-input")
    expect(page.locator("#image-info")).to_contain_text("500×333")
    page.get_by_role("tab", name="Colour fix / blend").click()
    page.click("[data-role=reference] .use-previous")
    run_and_wait(page)
    assert page.text_content("#cli-command").startswith("sdenhance colorfix ")
    assert page.locator("#history li").count() >= 4
    shot(ui, "colour-result")


def test_face_detections_become_picks(ui, photos):
    page = ui["page"]
    upload(page, photos["two-faces"])
    page.get_by_role("tab", name="Face fix").click()
    page.click("#detect-faces")
    page.wait_for_selector("#face-picks label")
    ticks = page.locator("#face-picks input")
    labels = page.locator("#face-picks label").all_text_contents()
    numbers = [re.fullmatch(r" Face (\d) \(score \d+\.\d\d\)", t).group(1) for t in labels]
    assert numbers == ["1", "2"]
    assert page.evaluate("document.querySelector('#after').naturalWidth") == 512
    ticks.first.uncheck()
    assert page.input_value("[data-stage=facefix] [name=faces]") == "2"
    ticks.nth(1).uncheck()
    page.click("#run")
    error = page.locator("[data-stage=facefix] [data-field=faces] .field-error")
    expect(error).to_contain_text("tick at least one face")
    ticks.first.check()
    assert page.input_value("[data-stage=facefix] [name=faces]") == "1"
    expect(error).to_be_empty()
    shot(ui, "facefix-detections")


def test_option_and_image_errors_show_next_to_their_field(ui, photos):
    page = ui["page"]
    upload(page, photos["chelsea"])
    page.get_by_role("tab", name="Upscale").click()
    page.check("[data-stage=upscale] .size-switch [value=scale]")
    set_option(page, "upscale", "scale", 40)  # the widget keeps it in range
    assert page.input_value("[data-stage=upscale] input[type=number][name=scale]") == "32"
    set_option(page, "upscale", "scale", 2)
    set_option(page, "upscale", "tile", 100)  # a multiple of 8
    assert page.input_value("[data-stage=upscale] [name=tile]") == "104"
    set_option(page, "upscale", "tile", 64)
    set_option(page, "upscale", "overlap", 64)  # only the server knows: overlap < tile
    page.click("#run")
    error = page.locator("[data-stage=upscale] [data-field=overlap] .field-error")
    error.wait_for()
    assert error.text_content() == "upscale: `overlap` must be smaller than `tile` (64); got 64"
    assert "Traceback" not in page.content()
    set_option(page, "upscale", "overlap", 32)
    page.set_input_files("#image-file", str(photos["not-an-image"]))
    expect(page.locator("#image-info")).to_contain_text("no preview")
    run_and_wait(page, "Failed")
    message = page.text_content("[data-role=image] .field-error")
    assert message.startswith("cannot read image: not an image") and "\n" not in message
    shot(ui, "errors")


def test_cancel_a_running_job(ui, photos):
    page = ui["page"]
    upload(page, photos["chelsea"])
    page.get_by_role("tab", name="Inpaint").click()
    for name, value in {"strength": 1, "steps": 500}.items():
        set_option(page, "inpaint", name, value)
    paint(page, [((150, 100), (250, 120))], BRUSH)
    before = files_in(ui["outputs"])
    history = page.locator("#history li").count()
    page.click("#run")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"\d+/\d+ · ETA"))
    page.click("#cancel")
    # the job stops at its next step; on a loaded machine that can take a few seconds
    expect(page.locator("#progress-text")).to_have_text("Cancelled", timeout=30_000)
    page.wait_for_selector("#run:not([disabled])")
    assert files_in(ui["outputs"]) == before
    assert page.locator("#history li").count() == history


def test_expand_grows_the_canvas_and_keeps_the_original_beyond_the_seam(ui, photos, tmp_path):
    page = ui["page"]
    upload(page, photos["chelsea"])
    page.get_by_role("tab", name="Expand").click()
    set_option(page, "expand", "right", 40)
    set_option(page, "expand", "top", 24)
    set_option(page, "expand", "steps", 4)
    set_option(page, "expand", "seam", 16)
    run_and_wait(page)
    result = np.asarray(Image.open(download(page, tmp_path)).convert("RGB"))
    original = data.chelsea()[..., :3]
    assert result.shape == (300 + 24, 451 + 40, 3)
    # the original sits below the new top rows; beyond the 16 px seam band it is untouched
    np.testing.assert_array_equal(result[24 + 16 :, : 451 - 16], original[16:, : 451 - 16])
    assert np.any(result[:24] != 0) and np.any(result[24:, 451:] != 0)
    assert page.text_content("#cli-command").startswith("sdenhance expand chelsea.png ")


def test_the_page_asked_no_host_but_the_server(ui):
    server = urlsplit(ui["url"]).netloc
    assert ui["requests"], "no requests were recorded"
    foreign = [
        u
        for u in ui["requests"]
        if urlsplit(u).scheme not in ("blob", "data") and urlsplit(u).netloc != server
    ]
    assert foreign == []
    assert ui["errors"] == []
    tabs = {"upscale", "inpaint", "remove", "face", "expand", "colour"}
    assert {f"tab-{t}.png" for t in tabs} <= {p.name for p in ui["shots"].iterdir()}
