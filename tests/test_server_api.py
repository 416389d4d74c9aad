"""The own API (`/api/v1`) through httpx: every endpoint, the token, the limits, the errors."""

from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi import APIRouter, Request
from PIL import Image
from serverkit import (
    QUICK,
    SLOW,
    files_in,
    png_bytes,
    served,
    slow_image,
    wait_http,
    wait_running,
)

from sdenhance.server.security import check_bind, is_loopback, token_matches


def submit(client, image: bytes, *, name="in.png", headers=None, **fields):
    data = {k: json.dumps(v) if k == "options" else v for k, v in fields.items()}
    return client.post(
        "/api/v1/jobs", files={"image": (name, image, "image/png")}, data=data, headers=headers
    )


@pytest.fixture
def api(tmp_path):
    with served(tmp_path / "out", capacity=2) as (client, queue):
        yield client, queue, tmp_path / "out"


def test_a_stage_job_runs_end_to_end_and_serves_its_png(api):
    client, _, out = api
    r = submit(client, png_bytes(24, 16), name="../../etc/cat.png", seed="5", **QUICK)
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running")
    job = r.json()["id"]
    status = wait_http(client, job)
    assert status["status"] == "done" and status["has_result"] and status["label"] == "resize"
    result = client.get(f"/api/v1/jobs/{job}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(result.content)) as im:
        assert im.size == (48, 32)
        record = json.loads(im.text["sdenhance"])
    assert record["input"]["name"] == "cat.png"  # the client's path is reduced to a name
    assert record["job"] == job
    assert files_in(out) == [f"{job}-resize.png"]
    assert client.get("/api/v1/jobs").json()[-1]["id"] == job


def test_a_recipe_job_takes_set_overrides(api):
    client, _, _ = api
    r = client.post(
        "/api/v1/jobs",
        files={"image": ("in.png", png_bytes(24, 16), "image/png")},
        data={"recipe": "old-photo", "set": ["creativity=0", "scale=2", "upscaler=lanczos"]},
    )
    assert r.status_code == 202, r.text
    status = wait_http(client, r.json()["id"])
    assert status["status"] == "done" and status["kind"] == "recipe"
    with Image.open(io.BytesIO(client.get(f"/api/v1/jobs/{status['id']}/result").content)) as im:
        record = json.loads(im.text["sdenhance"])
    assert im.size == (48, 32) and record["recipe"] == "old-photo"
    assert [s["stage"] for s in record["steps"]] == ["denoise", "upscale", "colorfix"]


def test_extra_images_go_to_their_roles(api):
    client, _, _ = api
    ref = png_bytes(8, 8, seed=9)
    r = client.post(
        "/api/v1/jobs",
        files={
            "image": ("in.png", png_bytes(24, 16), "image/png"),
            "reference": ("ref.png", ref, "image/png"),
        },
        data={"stage": "colorfix", "options": json.dumps({"method": "lab"})},
    )
    assert wait_http(client, r.json()["id"])["status"] == "done"
    mask = Image.new("L", (24, 16))
    mask.paste(255, (4, 4, 12, 12))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    r = client.post(
        "/api/v1/jobs",
        files={
            "image": ("in.png", png_bytes(24, 16), "image/png"),
            "mask": ("m.png", buf.getvalue()),
        },
        data={"stage": "remove", "options": json.dumps({"refine": False})},
    )
    assert wait_http(client, r.json()["id"])["status"] == "done"


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"stage": "upscale", "options": {"creativity": 2}},
            "`creativity` must be ≥ 0.0 and ≤ 1.0; got 2",
        ),
        ({"stage": "upscale", "options": {"upscaler": "/models/x.pth"}}, "looks like a file path"),
        ({"stage": "upscale", "options": "[1]"}, "`options` must be a JSON object"),
        ({"recipe": "nope"}, "recipe"),
        ({}, "give either a `stage` (with `options`) or a `recipe`"),
    ],
)
def test_option_errors_are_422_with_the_cli_message(api, fields, message):
    client, queue, _ = api
    if fields.get("options") == "[1]":
        r = client.post(
            "/api/v1/jobs",
            files={"image": ("a.png", png_bytes())},
            data={"stage": "upscale", "options": "[1]"},
        )
    else:
        r = submit(client, png_bytes(), **fields)
    assert r.status_code == 422 and message in r.json()["detail"]
    assert queue.jobs() == []


def test_bad_json_options_are_422(api):
    client, _, _ = api
    r = client.post(
        "/api/v1/jobs",
        files={"image": ("a.png", png_bytes())},
        data={"stage": "resize", "options": "{"},
    )
    assert r.status_code == 422 and "`options` is not valid JSON" in r.json()["detail"]


def test_a_bad_image_fails_its_job_with_one_line_and_the_next_job_runs(api):
    client, _, _ = api
    bad = submit(client, b"\x89PNG\r\n\x1a\n truncated", **QUICK).json()["id"]
    good = submit(client, png_bytes(), **QUICK).json()["id"]
    failed = wait_http(client, bad)
    assert failed["status"] == "failed" and "\n" not in failed["error"]
    assert failed["error"].startswith("cannot read image")
    assert wait_http(client, good)["status"] == "done"
    r = client.get(f"/api/v1/jobs/{bad}/result")
    assert r.status_code == 409 and "failed" in r.json()["detail"]


def test_cancel_a_running_job_and_a_full_queue_answers_429(api):
    client, queue, out = api
    first = submit(client, slow_image(), **SLOW).json()["id"]
    wait_running(queue, first)
    queued = [submit(client, png_bytes(seed=i), **QUICK) for i in range(2)]
    assert [r.status_code for r in queued] == [202, 202]
    refused = submit(client, png_bytes(), **QUICK)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "the queue is full (2 jobs waiting)" in refused.json()["detail"]
    r = client.delete(f"/api/v1/jobs/{first}")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    assert wait_http(client, first)["status"] == "cancelled"
    assert client.get(f"/api/v1/jobs/{first}/result").status_code == 409
    for r in queued:
        assert wait_http(client, r.json()["id"])["status"] == "done"
    assert files_in(out) == sorted(f"{r.json()['id']}-resize.png" for r in queued)


def test_events_stream_progress_then_the_end(api):
    client, _, _ = api
    job = submit(client, slow_image(), **SLOW).json()["id"]
    with client.stream("GET", f"/api/v1/jobs/{job}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [block for block in text.split("\n\n") if block.startswith("event:")]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"}
    payloads = [json.loads(block.split("data: ", 1)[1]) for block in events]
    assert payloads[-1]["status"] == "done" and max(p["progress"]["step"] for p in payloads) == 4


def test_unknown_jobs_are_404(api):
    client, _, _ = api
    for method, path in [
        ("GET", "/api/v1/jobs/nope"),
        ("GET", "/api/v1/jobs/nope/result"),
        ("GET", "/api/v1/jobs/nope/events"),
        ("DELETE", "/api/v1/jobs/nope"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404 and r.json()["detail"] == "no job 'nope'"


def test_listings_and_health(api):
    client, _, _ = api
    health = client.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["model_loaded"] is False
    assert health["queue"] == {"queued": 0, "running": 0, "capacity": 2}
    names = {p["name"] for p in client.get("/api/v1/presets").json()}
    assert {"portrait", "anime", "landscape"} <= names
    recipes = {r["name"]: r for r in client.get("/api/v1/recipes").json()}
    assert recipes["old-photo"]["details"]["steps"][0]["stage"] == "denoise"
    ups = {u["name"]: u["details"] for u in client.get("/api/v1/upscalers").json()}
    assert ups["realesrgan-x4plus"]["a1111_name"] == "R-ESRGAN 4x+" and ups["lanczos"]["scale"] == 1
    scheds = {
        s["name"]: s["details"]["a1111_name"] for s in client.get("/api/v1/schedulers").json()
    }
    assert scheds["euler-a"] == "Euler a"
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/jobs", "/sdapi/v1/img2img", "/sdapi/v1/extra-single-image"} <= set(
        spec["paths"]
    )
    assert client.get("/docs").status_code == 200


# --- the token and the limits -------------------------------------------------------------


def test_every_route_needs_the_token_when_one_is_set(tmp_path):
    with served(tmp_path, token="s3cret") as (client, _):
        for path in ("/api/v1/health", "/sdapi/v1/samplers", "/docs", "/openapi.json"):
            r = client.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert (
            client.get("/api/v1/health", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/api/v1/health", headers=ok).status_code == 200
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert (
            client.get(
                "/sdapi/v1/samplers", headers={"Authorization": f"Basic {basic}"}
            ).status_code
            == 200
        )
        r = submit(client, png_bytes(), **QUICK)
        assert r.status_code == 401
        job = submit(client, png_bytes(), headers=ok, **QUICK).json()["id"]
        assert wait_http(client, job, headers=ok)["status"] == "done"


def test_token_comparison():
    assert token_matches("Bearer abc", "abc") and token_matches("bearer  abc ", "abc")
    assert not token_matches("Bearer abcd", "abc") and not token_matches("abc", "abc")
    assert not token_matches("Basic !!notbase64", "abc")
    assert token_matches("Basic " + base64.b64encode(b"u:abc").decode(), "abc")


def test_only_loopback_binds_without_a_token():
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(Exception, match="set `--token`"):
            check_bind(host, None)
        check_bind(host, "t0ken")
    with pytest.raises(Exception, match="empty"):
        check_bind("127.0.0.1", " ")


def test_request_bodies_over_the_limit_are_413(tmp_path):
    with served(tmp_path, max_body=20_000) as (client, queue):
        big = png_bytes(200, 200, seed=1)  # ~120 kB of noise
        r = submit(client, big, **QUICK)
        assert r.status_code == 413 and "limit of 20,000 bytes" in r.json()["detail"]

        def chunks():  # no Content-Length: cut off while streaming
            yield b"x" * 15_000
            yield b"x" * 15_000

        r = client.post(
            "/sdapi/v1/png-info", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert queue.jobs() == [] and client.get("/api/v1/health").status_code == 200


def test_extra_routes_share_the_app_its_queue_and_its_token(tmp_path):
    from starlette.testclient import TestClient

    from sdenhance.server import JobQueue, ServerSettings, create_app

    router = APIRouter()

    @router.get("/ui/queue")
    def ui_queue(request: Request) -> dict:
        return request.app.state.queue.counts()

    def add_page(app) -> None:
        app.add_api_route("/ui/hello", lambda: {"hello": "ui"})

    queue = JobQueue(None, outputs=tmp_path, capacity=3)
    web = create_app(
        ServerSettings(outputs=tmp_path, token="t"), queue=queue, extra_routes=[router, add_page]
    )
    try:
        with TestClient(web) as client:
            assert client.get("/ui/queue").status_code == 401
            auth = {"Authorization": "Bearer t"}
            assert client.get("/ui/queue", headers=auth).json()["capacity"] == 3
            assert client.get("/ui/hello", headers=auth).json() == {"hello": "ui"}
    finally:
        queue.close()
