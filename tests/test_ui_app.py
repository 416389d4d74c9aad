"""The UI's server side: the page loads without the token while the API keeps it, the option
schema is each stage's `Options`, the server enforces the ranges the widgets show, and a
result's info (infotext, record, command) comes from its saved file."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
from PIL import Image
from serverkit import png_bytes, wait_http
from starlette.testclient import TestClient

from sdenhance.server import JobQueue, ServerSettings
from sdenhance.stages import STAGES, get_stage
from sdenhance.ui.app import CSP, create_ui_app

TOKEN = "ui-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path):
    queue = JobQueue(None, outputs=tmp_path / "out")
    (tmp_path / "out").mkdir()
    app = create_ui_app(ServerSettings(outputs=tmp_path / "out", token=TOKEN), queue=queue)
    try:
        with TestClient(app) as c:
            yield c
    finally:
        queue.close()


def test_the_page_loads_without_the_token_and_nothing_else_does(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP
    assert '<script type="module" src="/ui/js/main.js">' in page.text
    script = client.get("/ui/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.head("/ui/style.css").content == b""
    for path in ("/api/v1/stages", "/api/v1/health", "/docs", "/ui/../api/v1/health"):
        assert client.get(path).status_code == 401, path
    assert client.post("/", content=b"x").status_code == 401  # only GET/HEAD of the shell
    assert client.get("/ui/nothing.js").status_code == 401  # unknown paths meet the token
    assert client.get("/api/v1/stages", headers=AUTH).status_code == 200


def test_the_page_calls_no_outside_host(client):
    """Every file of the page names no URL but its own paths (the CSP also forbids it)."""
    from sdenhance.ui.app import shell_files

    for path, (body, _) in shell_files().items():
        text = body.decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


def test_the_schema_is_each_stages_options(client):
    schema = client.get("/api/v1/stages", headers=AUTH).json()
    tab_stages = [s for tab in schema["tabs"] for s in tab["stages"]]
    assert tab_stages == ["upscale", "inpaint", "remove", "facefix", "expand", "colorfix", "blend"]
    assert set(tab_stages) <= set(STAGES)
    for name in tab_stages:
        fields = dataclasses.fields(get_stage(name).Options)
        served = schema["stages"][name]["options"]
        assert [o["name"] for o in served] == [f.name for f in fields]
        for option, field in zip(served, fields, strict=True):
            assert option["help"] == field.metadata["help"]
            default = list(field.default) if isinstance(field.default, tuple) else field.default
        assert option["default"] == default  # JSON has lists where the options hold tuples
    upscale = {o["name"]: o for o in schema["stages"]["upscale"]["options"]}
    assert (upscale["creativity"]["ge"], upscale["creativity"]["le"]) == (0.0, 1.0)
    assert upscale["scale"]["kind"] == "float" and upscale["tile"]["multiple_of"] == 8
    assert upscale["width"]["nullable"] and upscale["width"]["kind"] == "int"
    assert "euler-a" in upscale["scheduler"]["choices"]
    # a free-text field the server restricts to names gets those names as choices
    assert {"lanczos", "realesrgan-x4plus"} <= set(upscale["upscaler"]["choices"])
    remove = {o["name"]: o for o in schema["stages"]["remove"]["options"]}
    assert remove["refine_strength"]["gt"] == 0.0 and remove["refine"]["kind"] == "bool"
    assert schema["stages"]["inpaint"]["roles"] == ["mask"]
    assert schema["stages"]["colorfix"]["roles"] == ["reference"]
    assert schema["presets"]["portrait"]["facefix"]["strength"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"creativity": 1.5}, r"^upscale: `creativity` must be ≥ 0\.0 and ≤ 1\.0; got 1\.5$"),
        ({"tile": 100}, r"^upscale: `tile` must be ≥ 64 .*a multiple of 8; got 100$"),
        ({"upscaler": "../x.pth"}, r"`upscaler` = '\.\./x\.pth' looks like a file path"),
    ],
)
def test_the_server_enforces_what_the_widgets_show(client, options, message):
    response = client.post(
        "/api/v1/jobs",
        headers=AUTH,
        files={"image": ("a.png", png_bytes())},
        data={"stage": "upscale", "options": json.dumps(options)},
    )
    assert response.status_code == 422
    assert re.search(message, response.json()["detail"]), response.json()["detail"]


def test_info_gives_the_saved_infotext_record_and_command(client):
    response = client.post(
        "/api/v1/jobs",
        headers=AUTH,
        files={"image": ("my photo.png", png_bytes(40, 30))},
        data={"stage": "upscale", "options": json.dumps({"creativity": 0, "upscaler": "lanczos"})},
    )
    job = response.json()["id"]
    assert client.get(f"/api/v1/jobs/{job}/info", headers=AUTH).status_code in (200, 409)
    assert wait_http(client, job, headers=AUTH)["status"] == "done"
    info = client.get(f"/api/v1/jobs/{job}/info?image=dir/my%20photo.png", headers=AUTH).json()
    saved = Image.open(io.BytesIO(client.get(f"/api/v1/jobs/{job}/result", headers=AUTH).content))
    assert info["parameters"] == saved.text["parameters"]
    assert "Postprocess upscaler" in info["parameters"]  # creativity 0: no diffusion ran
    assert info["record"] == json.loads(saved.text["sdenhance"])
    assert info["command"] == (
        "sdenhance upscale 'my photo.png' --creativity 0 --upscaler lanczos --no-input-prompt "
        f"-o {job}-upscale-cli.png"
    )
    assert client.get("/api/v1/jobs/nope/info", headers=AUTH).status_code == 404
