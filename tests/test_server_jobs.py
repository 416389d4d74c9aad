"""The job queue on its own (no HTTP): order, cancel, failures, limits, history, events, and
the checks every job passes before it is queued."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from serverkit import QUICK, SLOW, files_in, png_bytes, slow_image, wait_running

from sdenhance.errors import SdenhanceError
from sdenhance.server import JobQueue, QueueFull
from sdenhance.server.jobs import UnknownJob
from sdenhance.server.specs import (
    check_name,
    check_output_size,
    planned_sizes,
    recipe_steps,
    stage_steps,
)


@pytest.fixture
def queue(tmp_path):
    q = JobQueue(None, outputs=tmp_path / "out", capacity=4, history=8)
    yield q
    q.close()


def test_a_job_runs_and_saves_its_result_with_the_run_record(queue, tmp_path):
    job = queue.submit(images={"image": png_bytes(24, 16)}, input_name="cat.png", seed=7, **QUICK)
    status = queue.wait(job, timeout=30)
    assert status["status"] == "done" and status["error"] is None
    path = queue.result_path(job)
    assert path.parent == tmp_path / "out" and path.name == f"{job}-resize.png"
    with Image.open(path) as im:
        assert im.size == (48, 32)
        record = json.loads(im.text["sdenhance"])
    assert record["job"] == job and record["input"]["name"] == "cat.png"
    assert record["steps"][0]["stage"] == "resize"
    assert "Stages: resize" in Image.open(path).text["parameters"]


def test_cancelling_a_running_job_stops_it_and_saves_nothing(queue, tmp_path):
    job = queue.submit(images={"image": slow_image()}, **SLOW)
    wait_running(queue, job)
    assert queue.cancel(job)["cancel_requested"]
    status = queue.wait(job, timeout=30)
    assert status["status"] == "cancelled"
    assert status["progress"]["step"] < status["progress"]["total"]  # stopped part-way
    assert files_in(tmp_path / "out") == []
    # the worker lives on
    after = queue.submit(images={"image": png_bytes()}, **QUICK)
    assert queue.wait(after, timeout=30)["status"] == "done"


def test_a_queued_job_is_cancelled_at_once_and_never_runs(queue):
    first = queue.submit(images={"image": slow_image()}, **SLOW)
    second = queue.submit(images={"image": png_bytes()}, **QUICK)
    assert queue.cancel(second)["status"] == "cancelled"
    queue.cancel(first)
    assert queue.wait(first, timeout=30)["status"] == "cancelled"
    assert queue.status(second)["started"] is None and queue.result_path(second) is None


def test_a_failing_job_does_not_affect_the_next(queue):
    bad = queue.submit(images={"image": b"this is not an image"}, **QUICK)
    good = queue.submit(images={"image": png_bytes()}, **QUICK)
    failed = queue.wait(bad, timeout=30)
    assert failed["status"] == "failed"
    assert failed["error"].startswith("cannot read image: not an image")
    assert "sdenhance-serve" not in failed["error"]  # the spool path never shows
    assert queue.wait(good, timeout=30)["status"] == "done"


def test_the_pixel_limit_of_the_cli_loader_applies(queue, monkeypatch):
    monkeypatch.setenv("SDENHANCE_MAX_PIXELS", "100")
    job = queue.submit(images={"image": png_bytes(20, 20)}, **QUICK)
    status = queue.wait(job, timeout=30)
    assert status["status"] == "failed" and "larger than the limit of 100 pixels" in status["error"]


def test_outputs_over_the_server_limit_are_refused_before_any_work(tmp_path):
    q = JobQueue(None, outputs=tmp_path, max_pixels=1000)
    try:
        job = q.submit(images={"image": png_bytes(20, 20)}, stage="resize", options={"scale": 2})
        status = q.wait(job, timeout=30)
        assert status["status"] == "failed" and "over this server's limit" in status["error"]
    finally:
        q.close()


def test_a_full_queue_refuses_with_a_retry_hint(tmp_path):
    q = JobQueue(None, outputs=tmp_path, capacity=1)
    try:
        running = q.submit(images={"image": slow_image()}, **SLOW)
        wait_running(q, running)
        q.submit(images={"image": png_bytes()}, **QUICK)
        with pytest.raises(QueueFull) as info:
            q.submit(images={"image": png_bytes()}, **QUICK)
        assert info.value.retry_after >= 1
        assert q.counts() == {"queued": 1, "running": 1, "capacity": 1}
    finally:
        q.close()
    assert files_in(tmp_path) == []


def test_history_is_bounded_and_old_jobs_are_forgotten(tmp_path):
    q = JobQueue(None, outputs=tmp_path, history=3)
    try:
        ids = [q.submit(images={"image": png_bytes(seed=i)}, **QUICK) for i in range(5)]
        for job in ids:
            q.wait(job, timeout=30)
        assert [j["id"] for j in q.jobs()] == ids[2:]
        with pytest.raises(UnknownJob):
            q.status(ids[0])
        assert len(files_in(tmp_path)) == 5  # results stay on disk
    finally:
        q.close()


def test_events_report_every_change_until_the_end(queue):
    job = queue.submit(images={"image": slow_image()}, **SLOW)
    events = list(queue.events(job, timeout=60))
    versions = [e["version"] for e in events]
    assert versions == sorted(set(versions))
    assert events[0]["status"] in ("queued", "running") and events[-1]["status"] == "done"
    steps = [e["progress"]["step"] for e in events if e["status"] == "running"]
    assert max(steps) == 4 and any(e["progress"]["eta_seconds"] for e in events)


def test_close_cancels_the_running_job_and_removes_the_spool(tmp_path):
    q = JobQueue(None, outputs=tmp_path, capacity=2)
    job = q.submit(images={"image": slow_image()}, **SLOW)
    waiting = q.submit(images={"image": png_bytes()}, **QUICK)
    wait_running(q, job)
    q.close(timeout=30)
    assert q.status(job)["status"] == "cancelled" and q.status(waiting)["status"] == "cancelled"
    assert not q._spool_root.exists() and files_in(tmp_path) == []
    with pytest.raises(SdenhanceError, match="shutting down"):
        q.submit(images={"image": png_bytes()}, **QUICK)


def test_images_may_be_pil_images_or_files(queue, tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes(10, 10))
    a = queue.submit(images={"image": Image.open(path).convert("RGB")}, **QUICK)
    b = queue.submit(images={"image": path}, **QUICK)
    assert queue.wait(a, timeout=30)["status"] == queue.wait(b, timeout=30)["status"] == "done"
    assert path.exists()  # a caller's file is read in place, never removed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stage": "upscale", "options": {"upscaler": "../x.pth"}}, "looks like a file path"),
        ({"stage": "facefix", "options": {"detector": "/tmp/f.onnx"}}, "looks like a file path"),
        ({"stage": "upscale", "options": {"upscaler": "x.safetensors"}}, "looks like a file"),
        ({"recipe": "../pipelines/old-photo"}, "must be the name of a recipe"),
        ({"recipe": "old-photo.toml"}, "must be the name of a recipe"),
        ({"recipe": "old-photo", "overrides": ["upscaler=/etc/model.pth"]}, "file path"),
        ({"stage": "upscale", "preset": "/etc/passwd"}, "must be the name of a preset"),
        ({"stage": "nope"}, "unknown stage `nope`"),
        ({"stage": "upscale", "options": {"creativty": 0}}, "did you mean `creativity`"),
        ({"stage": "upscale", "recipe": "old-photo"}, "give either a `stage`"),
        ({"recipe": "old-photo", "preset": "portrait"}, "not `options` or a `preset`"),
        ({"stage": "resize", "seed": 2**32}, "`seed` must be in"),
    ],
)
def test_requests_are_checked_before_they_are_queued(queue, kwargs, message):
    with pytest.raises(SdenhanceError, match=message.replace("(", r"\(")):
        queue.submit(images={"image": png_bytes()}, **kwargs)
    assert queue.jobs() == [] and list(queue._spool_root.iterdir()) == []


def test_names_and_presets_resolve_like_the_cli():
    steps = stage_steps("upscale", {"scale": 3}, preset="portrait")
    assert steps[0].options.scale == 3 and steps[0].options.creativity == 0.3
    recipe, steps = recipe_steps("old-photo", {"creativity": 0.2})
    assert recipe.name == "old-photo" and len(steps) == len(recipe.steps)
    for name in ("old-photo", "a_b+c-1"):
        assert check_name(name, "recipe") == name


def test_planned_sizes_follow_the_stages_that_change_size():
    steps = stage_steps("upscale", {"width": 100})
    steps += [type(steps[0])(2, "resize", stage_steps("resize", {"scale": 0.5})[0].options)]
    assert planned_sizes(steps, (50, 30)) == [(100, 60), (50, 30)]
    check_output_size(steps, (50, 30), 6000)
    with pytest.raises(
        SdenhanceError, match=r"100x60 \(6,000 pixels\), over this server's limit of 5,999 pixels"
    ):
        check_output_size(steps, (50, 30), 5999)
