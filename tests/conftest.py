"""Shared fixtures: an isolated, offline world and tiny random-weight models built once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, tmp_path, monkeypatch):
    """No network, an empty HF cache, no user config or presets, no launcher ranks: every test."""
    from huggingface_hub import constants

    cache = str(tmp_path_factory.getbasetemp() / "empty-hf-cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    # huggingface_hub reads both once, at import: patch what it read too
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", cache)
    monkeypatch.setenv("SDENHANCE_CONFIG", str(tmp_path_factory.getbasetemp() / "no-config.toml"))
    monkeypatch.delenv("SDENHANCE_MODEL", raising=False)
    monkeypatch.delenv("SDENHANCE_CONTROLNET", raising=False)
    monkeypatch.delenv("SDENHANCE_INPAINT_MODEL", raising=False)
    monkeypatch.setenv("SDENHANCE_CPU_DTYPE", "fp32")  # no micro-benchmark per test run
    monkeypatch.setenv("SDENHANCE_HOME", str(tmp_path / "home"))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def user_home(tmp_path):
    """The (empty) user folder `SDENHANCE_HOME` points at in this test."""
    return tmp_path / "home"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models are dominated by threading overhead: one thread is faster and steadier."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, str]:
    """Tiny models on disk: sd15/sdxl pipelines, their tile ControlNets, an sd15 inpainting model."""
    from sdenhance import testing

    root = tmp_path_factory.mktemp("models")
    out = {}
    for family in ("sd15", "sdxl"):
        out[family] = str(testing.save_folder(root / family, family))
        out[f"{family}-controlnet"] = str(
            testing.save_controlnet(root / f"{family}-controlnet", family)
        )
    out["sd15-inpaint"] = str(testing.save_folder(root / "sd15-inpaint", "sd15", inpaint=True))
    return out


@pytest.fixture
def photo() -> Image.Image:
    """A real photo (scikit-image's chelsea), cropped small for speed."""
    return Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB").crop((100, 50, 196, 130))


def photo_path(name: str) -> Path:
    return SKIMAGE_DATA / name


def random_image(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = (rng.random((h, w, channels)) * 255).astype(np.uint8)
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)


os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
