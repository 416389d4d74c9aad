"""The core never imports the optional extras (torchvision, xformers, controlnet-aux, spandrel)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import sdenhance
for mod in pkgutil.walk_packages(sdenhance.__path__, "sdenhance."):
    if not mod.name.endswith("__main__"):
        importlib.import_module(mod.name)
from sdenhance import testing
testing.build_pipeline("sd15")  # builds diffusers/transformers objects too
from sdenhance.cli import app
from typer.testing import CliRunner
CliRunner().invoke(app, ["doctor", "--json"])
banned = [m for m in ("torchvision", "xformers", "controlnet_aux", "spandrel", "onnxruntime") if m in sys.modules]
print(",".join(banned) or "clean")
"""


def test_no_optional_extra_is_imported_by_the_core():
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "clean"
