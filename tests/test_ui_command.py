""" "Copy as CLI command": the command built from a result's record, run through the CLI on the
same files, makes the same pixels."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from PIL import Image, ImageFilter
from serverkit import wait_http
from starlette.testclient import TestClient
from typer.testing import CliRunner

from sdenhance.cli import app as cli
from sdenhance.models.config import EngineConfig
from sdenhance.server import JobQueue, ServerSettings
from sdenhance.ui.app import create_ui_app
from sdenhance.ui.command import cli_command

FILES = {"image": "photo.png", "mask": "mask.png", "reference": "ref.png", "original": "orig.png"}


def write_inputs(folder, photo: Image.Image) -> None:
    photo.save(folder / FILES["image"])
    mask = np.zeros((photo.height, photo.width), np.uint8)
    mask[20:45, 30:70] = 255
    Image.fromarray(mask, "L").save(folder / FILES["mask"])
    shifted = np.clip(np.asarray(photo, np.int16) + (25, -10, 5), 0, 255).astype(np.uint8)
    Image.fromarray(shifted).save(folder / FILES["reference"])
    photo.filter(ImageFilter.GaussianBlur(3)).save(folder / FILES["original"])


def served_result(tmp_path, stage, options, roles, engine=None, seed=None):
    """Run `stage` through the UI app; returns (result pixels, its info)."""
    outputs = tmp_path / "outputs"
    outputs.mkdir(exist_ok=True)
    queue = JobQueue(engine, outputs=outputs)
    try:
        with TestClient(create_ui_app(ServerSettings(outputs=outputs), queue=queue)) as client:
            files = {r: (FILES[r], (tmp_path / FILES[r]).read_bytes()) for r in ("image", *roles)}
            data = {"stage": stage, "options": json.dumps(options)}
            if seed is not None:
                data["seed"] = str(seed)
            job = client.post("/api/v1/jobs", files=files, data=data).json()["id"]
            status = wait_http(client, job, timeout=300)
            assert status["status"] == "done", status
            names = {r: FILES[r] for r in ("image", *roles)}
            info = client.get(f"/api/v1/jobs/{job}/info", params=names).json()
            return np.asarray(Image.open(outputs / info["file"])), info
    finally:
        queue.close()


@pytest.mark.parametrize(
    ("stage", "options", "roles"),
    [
        ("upscale", {"scale": 1.5, "creativity": 0, "upscaler": "lanczos"}, ()),
        ("remove", {"method": "telea", "radius": 3, "grow": 4, "refine": False}, ("mask",)),
        ("colorfix", {"method": "lab", "strength": 0.7}, ("reference",)),
        ("blend", {"opacity": 0.4}, ("original",)),
    ],
)
def test_the_command_remakes_an_offline_result(tmp_path, monkeypatch, photo, stage, options, roles):
    write_inputs(tmp_path, photo)
    served, info = served_result(tmp_path, stage, options, roles)
    command = info["command"]
    assert command.startswith(f"sdenhance {stage} photo.png")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    made = np.asarray(Image.open(tmp_path / shlex.split(command)[-1]))
    assert made.shape == served.shape and np.array_equal(made, served)


def test_the_command_remakes_an_inpaint_with_its_seed_and_model(
    tmp_path, monkeypatch, photo, models
):
    write_inputs(tmp_path, photo)
    engine = EngineConfig(model=models["sd15"], device="cpu")
    options = {"strength": 0.6, "steps": 6, "prompt": "a cat's fur, sharp"}
    served, info = served_result(tmp_path, "inpaint", options, ("mask",), engine, seed=1234)
    words = shlex.split(info["command"])
    assert words[words.index("--seed") + 1] == "1234"
    assert words[words.index("--model") + 1] == models["sd15"]
    assert words[words.index("--prompt") + 1] == "a cat's fur, sharp"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [*words[1:], "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / words[-1])), served)


def test_anything_but_one_stage_reruns_from_the_file():
    record = {"steps": [{"stage": "upscale", "options": {}}] * 2, "input": {"name": "a b.png"}}
    assert cli_command(record, output="x.png") == "sdenhance run --from x.png 'a b.png'"
    assert cli_command({"steps": [{"stage": "resize", "options": {}}]}, output="y.png") == (
        "sdenhance run --from y.png INPUT.png"
    )


def test_bool_options_become_their_flag_or_no_flag():
    record = {
        "steps": [{"stage": "inpaint", "options": {"color_match": False, "mask_resize": True}}]
    }
    command = cli_command(record, output="o.png", names={"image": "i.png", "mask": "m.png"})
    assert command == (
        "sdenhance inpaint i.png --mask m.png --no-color-match --mask-resize -o o-cli.png"
    )
