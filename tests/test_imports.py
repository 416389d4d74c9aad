"""The core never imports the optional extras (torchvision, xformers, controlnet-aux, spandrel,
onnxruntime, and the `serve` extra's FastAPI, Starlette, uvicorn and python-multipart)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import sdenhance
# every module imports without the extras: the server and UI import FastAPI inside the
# functions that build the app and its routers
for mod in pkgutil.walk_packages(sdenhance.__path__, "sdenhance."):
    if not mod.name.endswith("__main__"):
        importlib.import_module(mod.name)
from sdenhance import testing
testing.build_pipeline("sd15")  # builds diffusers/transformers objects too
from sdenhance.cli import app
from typer.testing import CliRunner
CliRunner().invoke(app, ["doctor", "--json"])
CliRunner().invoke(app, ["serve", "--help"])
CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])  # refused before the server loads
CliRunner().invoke(app, ["ui", "--help"])
CliRunner().invoke(app, ["ui", "--host", "0.0.0.0"])
extras = ("torchvision", "xformers", "controlnet_aux", "spandrel", "onnxruntime")
web = ("fastapi", "starlette", "uvicorn", "multipart", "python_multipart")
banned = [m for m in extras + web if m in sys.modules]
print(",".join(banned) or "clean")
"""


def test_no_optional_extra_is_imported_by_the_core():
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "clean"
