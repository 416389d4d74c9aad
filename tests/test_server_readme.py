"""The README's server section runs: its `sdenhance serve` line parses, and its `curl` lines
work, as written, against a live server on 127.0.0.1 (real HTTP, the real `curl`)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image
from serverkit import served, uvicorn_thread
from typer.testing import CliRunner

from sdenhance.cli import app

ROOT = Path(__file__).resolve().parent.parent
SECTION = (ROOT / "README.md").read_text().split("## HTTP server\n", 1)[1].split("\n## ", 1)[0]
README_URL = "http://127.0.0.1:7860"


def block(lang: str) -> str:
    return re.findall(rf"```{lang}\n(.*?)```", SECTION, flags=re.S)[0]


def test_the_serve_line_uses_real_options():
    (line,) = [ln for ln in block("console").splitlines() if ln.startswith("sdenhance serve")]
    result = CliRunner().invoke(app, [*shlex.split(line)[1:], "--help"])  # --help: parse only
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_the_curl_examples_run_as_written(tmp_path):
    lines = [ln for ln in block("sh").splitlines() if ln.startswith("curl ")]
    assert len(lines) == 4 and all(README_URL in ln for ln in lines)
    photo = Image.open(ROOT / "examples/images/chelsea.png").convert("RGB").resize((40, 28))
    photo.save(tmp_path / "photo.png")

    with served(tmp_path / "out") as (client, _), uvicorn_thread(client.app) as url:

        def sh(line: str, job: str = "") -> str:
            line = line.replace(README_URL, url).replace("JOB_ID", job)
            done = subprocess.run(
                ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, (line, done.stderr)
            return done.stdout

        job = json.loads(sh(lines[0]))["id"]
        deadline = time.monotonic() + 60
        while json.loads(sh(lines[1], job))["status"] != "done":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.1)
        sh(lines[2], job)
        sh(lines[3])
    for name in ("photo_x2.png", "photo_a1111.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size == (80, 56) and "sdenhance" in im.text
