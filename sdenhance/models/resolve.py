"""Model specs to files: a single checkpoint, a diffusers folder, or a hub id via the HF cache."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdenhance.errors import ModelNotFoundError, SdenhanceError
from sdenhance.models.folders import check_folder, read_config, text_field
from sdenhance.models.formats import PICKLE_SUFFIXES

log = logging.getLogger("sdenhance")


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in {
        "1",
        "true",
        "TRUE",
        "yes",
        "ON",
        "on",
    }


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec points and what it is."""

    spec: str
    kind: str  # folder | single_file
    path: Path  # the diffusers folder (a hub snapshot for hub ids) or the checkpoint file
    family: str  # sd15 | sdxl
    role: str  # pipeline | controlnet
    inpaint: bool = False
    repo_id: str | None = None
    revision: str | None = None

    def describe(self, role: str) -> dict[str, Any]:
        """Flat metadata entries: `{role}`, `{role}_hash` (single files: A1111's short SHA-256),
        `{role}_family`, `{role}_revision` (hub snapshots)."""
        out: dict[str, Any] = {role: self.repo_id or self.spec, f"{role}_family": self.family}
        if self.revision:
            out[f"{role}_revision"] = self.revision
        if self.kind == "single_file":
            from sdenhance.models.hashes import short_hash

            out[f"{role}_hash"] = short_hash(self.path)
        return out


def _missing(spec: str, role: str, looked: str, *, online: bool = True) -> SdenhanceError:
    name = "ControlNet" if role == "controlnet" else "model"
    return ModelNotFoundError(f"{name} `{spec}` not found: {looked}", role=role, online=online)


def _looks_local(spec: str) -> bool:
    """A spec meant as a path on this machine: written as one (./x, ../x, /x, ~/x, a checkpoint
    suffix) or under a folder that exists here (`models/nope` beside a `models` folder)."""
    if spec.startswith((".", "/", "~", os.sep)) or spec.lower().endswith(_CHECKPOINT_SUFFIXES):
        return True
    head = spec.replace(os.sep, "/").split("/", 1)[0]
    return "/" in spec.replace(os.sep, "/") and Path(head).is_dir()


def _missing_path(spec: str, role: str) -> ModelNotFoundError:
    kind = "file" if spec.lower().endswith(_CHECKPOINT_SUFFIXES) else "folder"
    name = "ControlNet" if role == "controlnet" else "model"
    return ModelNotFoundError(
        f"{name} {kind} {spec} does not exist", role=role, online=False, local=True
    )


def folder_info(folder: Path, role: str) -> tuple[str, bool, str]:
    """(family, inpaint, role) of a diffusers folder, from its configs."""
    index = folder / "model_index.json"
    if index.exists():
        data = read_config(index)
        unet_cfg = folder / "unet" / "config.json"
        unet = read_config(unet_cfg) if unet_cfg.exists() else {}
        sdxl = "XL" in text_field(data, "_class_name", index) or "text_encoder_2" in data
        return ("sdxl" if sdxl else "sd15"), unet.get("in_channels", 4) == 9, "pipeline"
    config = folder / "config.json"
    if config.exists():
        data = read_config(config)
        if "ControlNet" in text_field(data, "_class_name", config):
            sdxl = (
                data.get("addition_embed_type") == "text_time"
                or data.get("cross_attention_dim") == 2048
            )
            return ("sdxl" if sdxl else "sd15"), False, "controlnet"
    raise SdenhanceError(
        f"folder {folder} is not a diffusers {role} (no model_index.json or ControlNet "
        "config.json)",
        hint="point at the folder that holds model_index.json, or at a .safetensors file",
    )


def resolve(spec: str, *, role: str = "pipeline", allow_pickle: bool = False) -> ResolvedModel:
    """Find `spec` on disk or in the HF cache (downloading only when online); never loads
    weights."""
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        from sdenhance.models import checkpoint as checkpoints
        from sdenhance.models.formats import is_pickle
        from sdenhance.models.pickles import convert_pickle_to_safetensors

        suffix = path.suffix.lower()
        given = path  # errors name the user's file, not its converted copy
        if is_pickle(path):  # by content: a renamed pickle is still a pickle
            if not allow_pickle:
                raise SdenhanceError(
                    f"{path} is a pickle checkpoint, which can run code when loaded; refused",
                    hint="convert it to .safetensors, or pass --allow-pickle to load it "
                    "weights-only",
                )
            path = convert_pickle_to_safetensors(
                path, hub_cache_dir().parent / "sdenhance-converted"
            )
        elif suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
            raise SdenhanceError(
                f"{path}: unsupported checkpoint type `{suffix}`; use .safetensors"
            )
        checkpoints.check_safetensors(path)
        info = checkpoints.inspect_checkpoint(path)
        checkpoints.expect_kind(info, role, given)
        return ResolvedModel(spec, "single_file", path, info.family, role, info.inpaint)
    if path.is_dir():
        family, inpaint, found_role = folder_info(path, role)
        check_folder(path)
        if found_role != role:
            raise SdenhanceError(f"{path} is a {found_role}, but a {role} was expected here")
        return ResolvedModel(spec, "folder", path, family, role, inpaint)
    if _looks_local(spec):
        raise _missing_path(spec, role)
    if not _HUB_ID.match(spec):
        raise _missing(spec, role, "not a file, a folder or a hub id (org/name)")
    return _resolve_hub(spec, role)


def _resolve_hub(repo_id: str, role: str) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        if hub_offline():
            raise _missing(
                repo_id, role, f"not in the Hugging Face cache {cache} and HF_HUB_OFFLINE is set"
            ) from None
        patterns = ["*.json", "*.txt", "*.safetensors", "*.model"]
        try:
            log.info("downloading %s from the Hugging Face hub", repo_id)
            folder = Path(
                snapshot_download(
                    repo_id,
                    cache_dir=cache,
                    allow_patterns=patterns,
                    ignore_patterns=["*.fp16.safetensors", "*non_ema*", "*.ckpt"],
                )
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise _missing(
                repo_id,
                role,
                f"not in the cache {cache} and the download failed ({type(exc).__name__})",
            ) from None
    family, inpaint, found_role = folder_info(folder, role)
    check_folder(folder)
    if found_role != role:
        raise SdenhanceError(
            f"hub model {repo_id} is a {found_role}, but a {role} was expected here"
        )
    return ResolvedModel(
        repo_id, "folder", folder, family, role, inpaint, repo_id=repo_id, revision=folder.name
    )
