"""`sdenhance ui`: its help, the server's bind rule, the browser it opens, and a real process
serving the page and the API."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
from serverkit import free_port
from typer.testing import CliRunner

from sdenhance.cli import app

runner = CliRunner()


def test_help_documents_host_port_token_and_outputs():
    result = runner.invoke(app, ["ui", "--help"], env={"COLUMNS": "4000", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)
    for flag, words in {
        "--host": "needs --token",
        "--port": "TCP port",
        "--token": "Bearer token every request must send",
        "--outputs": "Folder for results",
        "--no-browser": "Do not open the page",
    }.items():
        assert flag in text and words in text, flag


def test_binding_beyond_loopback_needs_a_token(tmp_path):
    result = runner.invoke(app, ["ui", "--host", "0.0.0.0", "--outputs", str(tmp_path)])
    assert result.exit_code == 2
    assert "`--host 0.0.0.0` is reachable from other machines: set `--token`" in result.output


def test_the_browser_opens_the_page_with_the_token_in_its_fragment(tmp_path, monkeypatch):
    from sdenhance.cli import ui

    opened, served = [], []

    def fake_run(web, host, port, verbose, banner, on_start=None):
        served.append((host, port, banner))
        if on_start is not None:
            on_start()

    monkeypatch.setattr(ui, "run_server", fake_run)
    monkeypatch.setattr("webbrowser.open", opened.append)
    args = ["ui", "--port", "7999", "--token", "s3cret", "--outputs", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    assert opened == ["http://127.0.0.1:7999/#token=s3cret"]
    assert "s3cret" not in served[0][2]  # the banner never prints the token
    opened.clear()
    assert runner.invoke(app, [*args, "--no-browser"]).exit_code == 0
    assert opened == []


def test_the_readme_line_uses_real_options(tmp_path, monkeypatch):
    from pathlib import Path

    from sdenhance.cli import ui

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme.split("## Web UI\n", 1)[1].split("\n## ", 1)[0]
    line = re.findall(r"```console\n(sdenhance ui .*?)\n```", section)[0]
    assert "(docs/ui.png)" in section and (root / "docs/ui.png").is_file()
    calls = []
    monkeypatch.setattr(ui, "run_server", lambda *a, **k: calls.append((a, k)))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*line.split()[1:], "--no-browser"])
    assert result.exit_code == 0, result.output
    (web, host, port, *_), _ = calls[0]
    assert (host, port) == ("127.0.0.1", 7860) and (tmp_path / "out").is_dir()


def test_a_real_process_serves_the_page_and_guards_the_api(tmp_path):
    port = free_port()
    env = {**os.environ, "SDENHANCE_TOKEN": "process-token-0123456789"}
    cmd = [sys.executable, "-m", "sdenhance", "ui", "--no-browser", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--outputs", str(tmp_path / "out")], env=env, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                page = httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the UI did not start in 60 s"
                time.sleep(0.2)
        assert page.status_code == 200 and "<title>sdenhance</title>" in page.text
        assert httpx.get(url + "/api/v1/health").status_code == 401
        auth = {"Authorization": "Bearer process-token-0123456789"}
        assert httpx.get(url + "/api/v1/health", headers=auth).json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert f"sdenhance UI on {url}/" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
