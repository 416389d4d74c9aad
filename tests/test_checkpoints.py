"""Single-file checkpoints: original-layout export round trips through diffusers, header checks,
inspection, pickles and hashes. Offline: the hub is disabled and any socket connect fails."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import socket
import struct
from pathlib import Path
from typing import Any

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sdenhance import testing
from sdenhance.errors import SdenhanceError
from sdenhance.models import hashes, pickles
from sdenhance.models.checkpoint import (
    CheckpointInfo,
    check_safetensors,
    diffusers_config_repo,
    expect_kind,
    inspect_checkpoint,
)
from sdenhance.models.formats import is_pickle
from sdenhance.models.hashes import short_hash
from sdenhance.models.pickles import convert_pickle_to_safetensors, load_pickle_weights
from sdenhance.testing.ldm_layout import save_original_checkpoint, save_original_controlnet

_real_connect = socket.socket.connect


def _no_network(self: socket.socket, address: Any) -> None:
    if self.family == getattr(socket, "AF_UNIX", None):
        return _real_connect(self, address)
    raise AssertionError(f"a test tried to reach the network: {address!r}")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Hub offline with an empty cache in tmp; returns the cache folder.

    huggingface_hub reads HF_HUB_OFFLINE/HF_HUB_CACHE once at import (a user sets them before
    Python starts), so the module constants are patched along with the environment.
    """
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    return cache


# case -> (family, inpaint, the diffusers class that loads it, the config repo diffusers infers)
CASES = {
    "sd15": (
        "sd15",
        False,
        "StableDiffusionImg2ImgPipeline",
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
    ),
    "sdxl": (
        "sdxl",
        False,
        "StableDiffusionXLImg2ImgPipeline",
        "stabilityai/stable-diffusion-xl-base-1.0",
    ),
    "sd15-inpaint": (
        "sd15",
        True,
        "StableDiffusionInpaintPipeline",
        "stable-diffusion-v1-5/stable-diffusion-inpainting",
    ),
    "sdxl-inpaint": (
        "sdxl",
        True,
        "StableDiffusionXLInpaintPipeline",
        "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
    ),
}
COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


class Tiny:
    """One tiny model: the built pipeline, its diffusers folder and its original-layout file."""

    def __init__(self, root: Path, case: str) -> None:
        family, inpaint, _, _ = CASES[case]
        self.pipe = testing.build_pipeline(family, inpaint=inpaint)
        self.folder = testing.save_folder(root / case / "diffusers", family, inpaint=inpaint)
        self.file = save_original_checkpoint(self.pipe, root / case / "model.safetensors")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    built: dict[str, Tiny] = {}
    root = tmp_path_factory.mktemp("tiny")

    def get(case: str) -> Tiny:
        if case not in built:
            built[case] = Tiny(root, case)
        return built[case]

    return get


def assert_same_weights(original: Any, loaded: Any) -> None:
    """Every tensor of every component present, materialised (not meta) and bit-identical."""
    for name in COMPONENTS:
        a = getattr(original, name, None)
        if a is None:
            continue
        sa, sb = a.state_dict(), getattr(loaded, name).state_dict()
        assert sa.keys() == sb.keys(), name
        differ = [k for k in sa if sb[k].is_meta or not torch.equal(sa[k], sb[k])]
        assert not differ, f"{name}: {len(differ)} tensors differ, first {differ[:3]}"


def run_two_steps(pipe: Any, inpaint: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8))
    kwargs: dict[str, Any] = {}
    if inpaint:
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
        kwargs["mask_image"] = Image.fromarray(mask)
    return pipe(
        prompt="a photo of a cat",
        image=image,
        strength=1.0,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        **kwargs,
    ).images


def test_tiny_sdxl_encoders_differ_in_width(tiny) -> None:
    # diffusers tells SDXL's two text encoders apart in a single file only by their widths
    # (768 vs 1280 in the real model); equal widths load CLIP-L's weights into text_encoder_2
    pipe = tiny("sdxl").pipe
    widths = (pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size)
    assert widths[0] != widths[1], (
        f"sdenhance.testing: both tiny SDXL text encoders are {widths[0]} wide; give "
        "text_encoder_2 its own hidden size, or from_single_file loads CLIP-L into it"
    )


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_with_config_folder(tiny, case: str) -> None:
    import diffusers

    family, inpaint, cls_name, _ = CASES[case]
    model = tiny(case)
    cls = getattr(diffusers, cls_name)
    loaded = cls.from_single_file(str(model.file), config=str(model.folder), local_files_only=True)
    assert_same_weights(model.pipe, loaded)
    # built modules start in train mode; loaded ones in eval mode, which changes the VAE's numerics
    for name in COMPONENTS:
        if getattr(model.pipe, name, None) is not None:
            getattr(model.pipe, name).eval()
    np.testing.assert_array_equal(
        run_two_steps(model.pipe, inpaint), run_two_steps(loaded, inpaint)
    )


@pytest.mark.parametrize(
    ("case", "cls_name"),
    [
        ("sd15", "StableDiffusionPipeline"),
        ("sdxl", "StableDiffusionXLImg2ImgPipeline"),
        ("sd15-inpaint", "StableDiffusionInpaintPipeline"),
        ("sdxl-inpaint", "StableDiffusionXLInpaintPipeline"),
    ],
)
def test_round_trip_through_hub_cache_without_config(
    tiny, offline: Path, case: str, cls_name: str
) -> None:
    """What a user offline gets: diffusers infers the config repo from the keys and finds it cached."""
    import diffusers

    model = tiny(case)
    repo = CASES[case][3]
    testing.save_hub_cache(offline, repo, model.folder)
    loaded = getattr(diffusers, cls_name).from_single_file(str(model.file))
    assert_same_weights(model.pipe, loaded)


def test_offline_without_cached_config_is_a_local_entry_error(tiny) -> None:
    """What the engine must turn into its "model not available offline" message."""
    import diffusers
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(LocalEntryNotFoundError):
        diffusers.StableDiffusionPipeline.from_single_file(str(tiny("sd15").file))


@pytest.mark.parametrize("case", list(CASES))
def test_diffusers_config_repo_is_what_from_single_file_looks_for(tiny, case: str) -> None:
    assert diffusers_config_repo(tiny(case).file) == CASES[case][3]


def test_controlnet_round_trip(tmp_path: Path, offline: Path) -> None:
    from diffusers import ControlNetModel

    controlnet = testing.build_controlnet("sd15")
    path = save_original_controlnet(controlnet, tmp_path / "control.safetensors")
    keys = load_file(path).keys()
    assert all(k.startswith("control_model.") for k in keys)
    for part in (
        "input_hint_block.14.weight",
        "zero_convs.0.0.weight",
        "middle_block_out.0.weight",
    ):
        assert f"control_model.{part}" in keys
    folder = testing.save_controlnet(tmp_path / "folder", "sd15")
    with_config = ControlNetModel.from_single_file(
        str(path), config=str(folder), local_files_only=True
    )
    # no config: diffusers infers lllyasviel/control_v11p_sd15_canny and must find it cached
    assert diffusers_config_repo(path) == "lllyasviel/control_v11p_sd15_canny"
    testing.save_hub_cache(offline, "lllyasviel/control_v11p_sd15_canny", folder)
    from_cache = ControlNetModel.from_single_file(str(path))
    for loaded in (with_config, from_cache):
        sa, sb = controlnet.state_dict(), loaded.state_dict()
        assert sa.keys() == sb.keys()
        assert all(not sb[k].is_meta and torch.equal(sa[k], sb[k]) for k in sa)


def test_sdxl_controlnet_refused_in_original_layout(tmp_path: Path) -> None:
    with pytest.raises(SdenhanceError, match="SDXL ControlNet"):
        save_original_controlnet(testing.build_controlnet("sdxl"), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_original_layout_keys(tiny) -> None:
    sd15 = load_file(tiny("sd15").file)
    assert sd15["model.diffusion_model.input_blocks.0.0.weight"].shape[1] == 4
    assert "model.diffusion_model.input_blocks.2.0.op.weight" in sd15  # downsampler slot
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in sd15  # upsampler, no attention
    assert sd15["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # 1×1 conv form
    assert "first_stage_model.decoder.up.3.upsample.conv.weight" in sd15
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in sd15
    sdxl = load_file(tiny("sdxl").file)
    te2 = tiny("sdxl").pipe.text_encoder_2
    width = te2.config.hidden_size
    in_proj = sdxl["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"]
    assert in_proj.shape == (3 * width, width)
    torch.testing.assert_close(
        in_proj[width : 2 * width],
        te2.state_dict()["text_model.encoder.layers.0.self_attn.k_proj.weight"],
    )
    assert torch.equal(
        sdxl["conditioner.embedders.1.model.text_projection"], te2.text_projection.weight.T
    )
    assert "model.diffusion_model.label_emb.0.0.weight" in sdxl
    assert (
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight" in sdxl
    )


# ----------------------------------------------------------------------------------- inspection


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_tiny_pipelines(tiny, case: str) -> None:
    family, inpaint, _, _ = CASES[case]
    path = tiny(case).file
    info = inspect_checkpoint(path)
    assert (info.family, info.kind, info.inpaint) == (family, "pipeline", inpaint)
    assert info.dtype == "float32"
    assert info.n_tensors == len(load_file(path))
    assert info.size_bytes == path.stat().st_size
    assert info.missing == ()
    expect_kind(info, "pipeline", path)


def test_inspect_controlnets(tmp_path: Path) -> None:
    original = save_original_controlnet(
        testing.build_controlnet("sd15"), tmp_path / "cn.safetensors"
    )
    info = inspect_checkpoint(original)
    assert (info.family, info.kind, info.inpaint, info.layout) == (
        "sd15",
        "controlnet",
        False,
        "original",
    )
    expect_kind(info, "controlnet", original)
    # SDXL ControlNets are published in the diffusers layout (xinsir's tile model among them)
    folder = testing.save_controlnet(tmp_path / "xl", "sdxl")
    info = inspect_checkpoint(folder / "diffusion_pytorch_model.safetensors")
    assert (info.family, info.kind, info.layout) == ("sdxl", "controlnet", "diffusers")


def test_inspect_bare_diffusers_unet_is_unsupported(tiny, tmp_path: Path) -> None:
    tiny("sd15").pipe.unet.save_pretrained(tmp_path / "unet")
    path = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    info = inspect_checkpoint(path)
    assert (info.family, info.kind, info.layout) == (None, "unknown", "diffusers")
    with pytest.raises(SdenhanceError, match="bare diffusers UNet"):
        expect_kind(info, "pipeline", path)


def _fake(
    path: Path, shapes: dict[str, tuple[int, ...]], dtype: torch.dtype = torch.float32
) -> Path:
    save_file({k: torch.zeros(s, dtype=dtype) for k, s in shapes.items()}, path)
    return path


@pytest.mark.parametrize(
    ("shapes", "kind", "family", "detail"),
    [
        (
            {
                "cond_stage_model.model.token_embedding.weight": (4, 2),
                "model.diffusion_model.out.2.bias": (4,),
            },
            "unknown",
            None,
            "SD 2.x",
        ),
        (
            {
                "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (
                    8,
                    1024,
                )
            },
            "unknown",
            None,
            "SD 2.x",
        ),
        (
            {"control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 1024)},
            "unknown",
            None,
            "SD 2.x ControlNet",
        ),
        ({"conditioner.embedders.0.model.text_projection": (4, 4)}, "unknown", None, "refiner"),
        (
            {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 4)},
            "unknown",
            None,
            "LoRA",
        ),
        ({"emb_params": (2, 4)}, "unknown", None, "textual-inversion"),
        (
            {"encoder.conv_in.weight": (4, 3, 3, 3), "decoder.conv_in.weight": (4, 4, 3, 3)},
            "unknown",
            None,
            "VAE",
        ),
        ({"something.else": (2,)}, "unknown", None, "unrecognised weights (something.else"),
        (
            {
                "control_model.input_hint_block.0.weight": (4, 3, 3, 3),
                "control_model.label_emb.0.0.weight": (4, 4),
            },
            "controlnet",
            "sdxl",
            "SDXL ControlNet",
        ),
        (
            {"model.diffusion_model.input_blocks.0.0.weight": (8, 9, 3, 3)},
            "pipeline",
            "sd15",
            "SD 1.5",
        ),
    ],
)
def test_inspect_key_rules(
    tmp_path: Path, shapes: dict, kind: str, family: str | None, detail: str
) -> None:
    info = inspect_checkpoint(_fake(tmp_path / "f.safetensors", shapes))
    assert (info.kind, info.family) == (kind, family)
    assert detail in info.detail


def test_inspect_reports_dominant_dtype_and_missing_parts(tmp_path: Path) -> None:
    path = tmp_path / "half.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(
                8, 4, 3, 3, dtype=torch.float16
            ),
            "model.diffusion_model.out.2.weight": torch.zeros(4, 8, 3, 3, dtype=torch.float16),
            "first_stage_model.encoder.conv_in.bias": torch.zeros(8),
        },
        path,
    )
    info = inspect_checkpoint(path)
    assert (info.family, info.kind, info.dtype, info.inpaint) == (
        "sd15",
        "pipeline",
        "float16",
        False,
    )
    assert info.missing == ("text_encoder",)
    with pytest.raises(SdenhanceError, match="lacks the weights of text_encoder"):
        expect_kind(info, "pipeline", path)


def test_expect_kind_names_the_mismatch(tiny, tmp_path: Path) -> None:
    xl = inspect_checkpoint(tiny("sdxl").file)
    with pytest.raises(
        SdenhanceError, match=r"is an SDXL checkpoint, not a ControlNet.*--controlnet"
    ):
        expect_kind(xl, "controlnet", tiny("sdxl").file)
    cn_path = save_original_controlnet(
        testing.build_controlnet("sd15"), tmp_path / "cn.safetensors"
    )
    with pytest.raises(
        SdenhanceError, match=r"is an SD 1\.5 ControlNet, not a Stable Diffusion checkpoint"
    ):
        expect_kind(inspect_checkpoint(cn_path), "pipeline", cn_path)
    lora = _fake(tmp_path / "lora.safetensors", {"lora_te_text_model.lora_up.weight": (2, 2)})
    with pytest.raises(SdenhanceError, match="LoRA"):
        expect_kind(inspect_checkpoint(lora), "controlnet", lora)
    message = str(
        pytest.raises(SdenhanceError, expect_kind, inspect_checkpoint(lora), "pipeline", lora).value
    )
    assert "\n" not in message and str(lora) in message


# ------------------------------------------------------------------------------- header checks


def _raw(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x01\x02", "fewer than the 8-byte"),
        (struct.pack("<Q", 1 << 40) + b"{}", "exceeds"),
        (struct.pack("<Q", 64) + b'{"a": 1}', "points past the end"),
        (struct.pack("<Q", 9) + b"{not json", "not valid JSON"),
        (struct.pack("<Q", 6) + b"[1, 2]", "not a JSON object"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "header is not UTF-8"),
    ],
)
def test_check_safetensors_rejects_bad_prefix_and_json(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(
        SdenhanceError, match=f"checkpoint {path} is corrupt or truncated: .*{reason}"
    ):
        check_safetensors(path)


@pytest.mark.parametrize(
    ("header", "data_size", "reason"),
    [
        ({"a": _entry("F32", [4], 0, 16), "b": _entry("F32", [4], 8, 24)}, 24, "overlaps"),
        ({"a": _entry("F32", [4], 0, 8)}, 8, "needs 16 bytes but spans 8"),
        ({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 16, 24)}, 24, "gap of 8 bytes"),
        ({"a": _entry("F32", [2], 0, 8)}, 16, "8 bytes after the last tensor"),
        ({"a": _entry("F32", [4], 0, 16)}, 12, "ends at byte 16 of a 12-byte"),
        ({"a": _entry("Q7", [4], 0, 16)}, 16, "unknown dtype"),
        ({"a": _entry("F32", [-1], 0, 16)}, 16, "invalid shape"),
        (
            {"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}},
            16,
            "invalid data_offsets",
        ),
        ({"a": [1, 2]}, 0, "no dtype/shape/data_offsets"),
        ({"__metadata__": [1], "a": _entry("F32", [1], 0, 4)}, 4, "__metadata__"),
    ],
)
def test_check_safetensors_rejects_bad_tensor_tables(
    tmp_path: Path, header: dict, data_size: int, reason: str
) -> None:
    path = _raw(tmp_path / "bad.safetensors", header, bytes(data_size))
    with pytest.raises(SdenhanceError, match=f"corrupt or truncated: .*{reason}"):
        check_safetensors(path)


def test_check_safetensors_catches_truncated_download(tiny, tmp_path: Path) -> None:
    data = tiny("sd15").file.read_bytes()
    for cut in (1, 1000, len(data) - 20):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:-cut])
        with pytest.raises(SdenhanceError, match="corrupt or truncated"):
            check_safetensors(path)
        with pytest.raises(SdenhanceError, match="corrupt or truncated"):
            inspect_checkpoint(path)


def test_check_safetensors_accepts_real_files(tiny, tmp_path: Path) -> None:
    header = check_safetensors(tiny("sdxl").file)
    assert header["__metadata__"] == {"format": "pt"}
    assert len(header) - 1 == len(load_file(tiny("sdxl").file))
    # sub-byte and 8-bit dtypes have the sizes safetensors gives them
    path = tmp_path / "f8.safetensors"
    save_file(
        {
            "a": torch.zeros(3, 5, dtype=torch.float8_e4m3fn),
            "b": torch.zeros(2, dtype=torch.bfloat16),
        },
        path,
    )
    check_safetensors(path)


def test_check_safetensors_names_missing_files_and_pickles(tmp_path: Path) -> None:
    with pytest.raises(SdenhanceError, match="not found"):
        check_safetensors(tmp_path / "nope.safetensors")
    torch.save({"w": torch.ones(2)}, tmp_path / "m.ckpt")
    with pytest.raises(SdenhanceError, match="is a pickle.*--allow-pickle"):
        check_safetensors(tmp_path / "m.ckpt")


def test_safetensors_whose_header_length_starts_with_0x80_is_not_a_pickle(tmp_path: Path) -> None:
    # the length prefix is little-endian, so a 128-byte header puts 0x80 at byte 0
    header = {"a": _entry("F32", [1], 0, 4)}
    body = json.dumps(header).encode()
    body += b" " * (128 - len(body))
    path = _raw(tmp_path / "x.safetensors", body, bytes(4))
    assert path.read_bytes()[0] == 0x80
    assert not is_pickle(path)
    check_safetensors(path)
    assert torch.equal(load_file(path)["a"], torch.zeros(1))


# ------------------------------------------------------------------------------------- pickles


def test_pickles_detected_by_content(tmp_path: Path, tiny) -> None:
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    torch.save(weights, tmp_path / "zip.bin")
    torch.save(weights, tmp_path / "legacy.safetensors", _use_new_zipfile_serialization=False)
    assert is_pickle(tmp_path / "zip.bin")
    assert is_pickle(tmp_path / "legacy.safetensors")  # the extension does not matter
    assert not is_pickle(tiny("sd15").file)
    for name in ("zip.bin", "legacy.safetensors"):
        loaded = load_pickle_weights(tmp_path / name)
        assert loaded.keys() == weights.keys() and torch.equal(loaded["w"], weights["w"])


def test_pickle_state_dict_is_unwrapped_and_extras_dropped(tmp_path: Path) -> None:
    torch.save(
        {"state_dict": {"a": torch.ones(2), "step": 3}, "global_step": 7, "epoch": 1},
        tmp_path / "m.ckpt",
    )
    loaded = load_pickle_weights(tmp_path / "m.ckpt")
    assert list(loaded) == ["a"]
    torch.save({"epoch": 1}, tmp_path / "empty.ckpt")
    with pytest.raises(SdenhanceError, match="holds no weights"):
        load_pickle_weights(tmp_path / "empty.ckpt")


class _Exploit:
    """Unpickling this runs a shell command: what a malicious .ckpt does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    payload = {"state_dict": {"w": torch.ones(1)}, "x": _Exploit(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(_Exploit(marker), f, protocol=2)
    assert is_pickle(path)
    with pytest.raises(SdenhanceError, match=f"refusing to unpickle {path}"):
        load_pickle_weights(path)
    with pytest.raises(SdenhanceError, match="refusing to unpickle"):
        convert_pickle_to_safetensors(path, tmp_path / "cache")
    assert not marker.exists()
    assert not (tmp_path / "cache").exists()


def test_truncated_pickle_is_reported_as_corrupt(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(100)}, tmp_path / "m.ckpt")
    data = (tmp_path / "m.ckpt").read_bytes()
    (tmp_path / "m.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(SdenhanceError, match="corrupt or truncated"):
        load_pickle_weights(tmp_path / "m.ckpt")


def test_convert_pickle_checkpoint_loads_like_the_original(
    tiny, tmp_path: Path, monkeypatch
) -> None:
    original = load_file(tiny("sd15").file)
    shared = torch.ones(3)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {**original, "extra.a": shared, "extra.b": shared}}, ckpt)
    out = convert_pickle_to_safetensors(ckpt, tmp_path / "cache")
    assert (
        out.parent == tmp_path / "cache"
        and hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16] in out.name
    )
    converted = load_file(out)
    assert all(torch.equal(converted[k], v) for k, v in original.items())
    assert torch.equal(converted["extra.b"], shared)
    info = inspect_checkpoint(out)
    assert (info.family, info.kind) == ("sd15", "pipeline")
    # a second call reuses the conversion without unpickling again
    monkeypatch.setattr(pickles, "load_pickle_weights", lambda path: pytest.fail("unpickled twice"))
    assert convert_pickle_to_safetensors(ckpt, tmp_path / "cache") == out


# -------------------------------------------------------------------------------------- hashes


def test_short_hash_is_a1111_model_hash(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"abc")
    assert short_hash(path) == "ba7816bf8f"  # SHA-256("abc") = ba7816bf8f01cfea...
    big = tmp_path / "big.safetensors"
    big.write_bytes(os.urandom(3 << 20 | 5))  # several read chunks
    assert short_hash(big) == hashlib.sha256(big.read_bytes()).hexdigest()[:10]


def test_short_hash_is_cached_until_the_file_changes(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"abc")
    first = short_hash(path)

    class NoHash:
        @staticmethod
        def sha256() -> None:
            raise AssertionError("hashed again")

    with monkeypatch.context() as m:
        m.setattr(hashes, "hashlib", NoHash)
        assert short_hash(path) == first
    path.write_bytes(b"abcd")
    assert short_hash(path) == hashlib.sha256(b"abcd").hexdigest()[:10]


def test_checkpoint_info_is_frozen(tiny) -> None:
    info = inspect_checkpoint(tiny("sd15").file)
    assert isinstance(info, CheckpointInfo)
    with pytest.raises(AttributeError):
        info.kind = "controlnet"  # type: ignore[misc]
