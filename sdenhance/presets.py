"""Presets: `prompts/*.toml` -> a validated `Preset` (prompt, negative prompt, stage defaults).

A preset is a flat TOML table; unknown keys are errors naming the file and the key. Bundled
presets ship inside the package (`sdenhance.data.prompts`); user presets live in
`$SDENHANCE_HOME/prompts/` (default `~/.config/sdenhance/prompts/`) and win over bundled ones
of the same name; any `.toml` file can be given by path.

    name = "portrait"                      # optional: defaults to the file's stem
    description = "Faces: gentle, identity-preserving"
    prompt = "portrait photo, natural skin texture"
    negative_prompt = "plastic skin, deformed"
    creativity = 0.3
    strength = 0.3                         # img2img / inpaint / facefix
    loras = ["add_detail:0.6"]             # NAME_OR_PATH[:WEIGHT], as --lora
    embeddings = ["EasyNegative"]          # as --embedding
    clip_skip = 2
    fast = true                            # the speed-ups of `--fast` (docs/speed.md)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from sdenhance.errors import SdenhanceError
from sdenhance.io.safe_text import short

# stages a preset applies to; `strength` means denoising strength only for these
PRESET_STAGES = ("upscale", "img2img", "inpaint", "facefix")
_STRENGTH_STAGES = ("img2img", "inpaint", "facefix")
_CHECK_STAGES = ("upscale", "img2img")  # present in every build: values are checked against them


def home_dir() -> Path:
    """`$SDENHANCE_HOME`, else `$XDG_CONFIG_HOME/sdenhance` (default `~/.config/sdenhance`)."""
    from sdenhance.models.config import user_dir

    return user_dir()


def bundled_dir(kind: str) -> Path:
    """The folder of bundled `prompts` or `pipelines`: package data in an installed wheel
    (`sdenhance.data.<kind>`, a namespace package), else the source tree (editable installs)."""
    try:
        found = importlib.resources.files(f"sdenhance.data.{kind}")
        if isinstance(found, Path) and found.is_dir():
            return found
        for entry in found.iterdir():  # a namespace package gives a MultiplexedPath
            if entry.name.endswith(".toml"):
                return Path(str(entry)).parent
    except (ImportError, OSError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parent.parent / kind


def search_dirs(kind: str) -> list[tuple[str, Path]]:
    """(source, folder) pairs searched for `kind` files, user folder first."""
    return [("user", home_dir() / kind), ("bundled", bundled_dir(kind))]


def looks_like_path(spec: str) -> bool:
    return spec.endswith(".toml") or os.sep in spec or "/" in spec


def find_files(kind: str) -> dict[str, tuple[str, Path]]:
    """name -> (source, path) of every `kind` file; a user file shadows a bundled one."""
    found: dict[str, tuple[str, Path]] = {}
    for source, folder in search_dirs(kind):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, (source, path))
    return dict(sorted(found.items()))


def locate(kind: str, spec: str, what: str) -> Path:
    """The file for a name or path of `kind` (`prompts`/`pipelines`); unknown names suggest one."""
    if looks_like_path(spec) or Path(spec).is_file():
        path = Path(spec).expanduser()
        if not path.is_file():
            raise SdenhanceError(f"{what} file not found: {spec}")
        if path.suffix.lower() != ".toml":
            raise SdenhanceError(
                f"{spec} is not a {what}: give a {what} name (`sdenhance {what}s` lists them) or a "
                ".toml file"
            )
        return path
    files = find_files(kind)
    if spec in files:
        return files[spec][1]
    close = difflib.get_close_matches(spec, list(files), n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(files) or 'none'}"
    user = home_dir() / kind
    raise SdenhanceError(
        f"unknown {what} `{spec}`; {hint} (or add {user / (spec + '.toml')}, or give a .toml path)"
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a table: a regular file of bounded size, UTF-8, nested a few levels."""
    from sdenhance.io.paths import require_file
    from sdenhance.io.safe_text import MAX_TOML_BYTES, load_toml

    info = require_file(path, "file", "a TOML file")
    if info.st_size > MAX_TOML_BYTES:
        raise SdenhanceError(f"{path}: {info.st_size:,} bytes is too large for a TOML file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SdenhanceError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return load_toml(data)
    except ValueError as exc:
        raise SdenhanceError(f"{path}: {exc}") from None


def pydantic_error(path: Path, exc: ValidationError, prefix: str = "") -> SdenhanceError:
    """The first pydantic error as one line naming the file, the key and the fix."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f"{path}: {prefix}"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        model = exc.title
        allowed = _ALLOWED.get(model, [])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean `{close[0]}`?" if close else "allowed: " + ", ".join(allowed)
        return SdenhanceError(f"{where}unknown key `{loc}`; {hint}")
    if err["type"] == "missing":
        return SdenhanceError(f"{where}`{loc}` is required; add it to the file")
    return SdenhanceError(f"{where}`{loc}`: {err['msg']}; got {short(repr(err.get('input')), 80)}")


_ALLOWED: dict[str, list[str]] = {}


def _allowed(cls: type[BaseModel]) -> type[BaseModel]:
    _ALLOWED[cls.__name__] = [k for k in cls.model_fields if k != "path"]
    return cls


@_allowed
class Preset(BaseModel):
    """A named starting point: prompt, negative prompt and stage defaults (None = stage default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    description: str = ""
    prompt: str | None = None
    negative_prompt: str | None = None
    creativity: float | None = None
    resemblance: float | None = None
    guidance: float | None = None
    steps: int | None = None
    scheduler: str | None = None
    color_fix: str | None = None
    blend: float | None = None
    upscaler: str | None = None
    strength: float | None = None
    loras: list[str] | None = None
    embeddings: list[str] | None = None
    clip_skip: int | None = None
    fast: bool | None = None
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The file this preset came from."""
        return self._path

    def values(self) -> dict[str, Any]:
        """The settings it gives (no name/description, nothing left unset)."""
        return {
            k: v
            for k, v in self.model_dump().items()
            if k not in ("name", "description") and v is not None
        }

    def defaults(self, stage: str = "upscale") -> dict[str, Any]:
        """Option values for `stage`: only keys its `Options` has, `strength` only where it is
        a denoising strength (img2img, inpaint, facefix)."""
        if stage not in PRESET_STAGES:
            raise SdenhanceError(
                f"preset `{self.name}` cannot apply to the `{stage}` stage; "
                f"presets apply to {', '.join(PRESET_STAGES)}"
            )
        fields = {f.name for f in dataclasses.fields(_stage_options(stage))}
        out = {k: v for k, v in self.values().items() if k in fields}
        if stage not in _STRENGTH_STAGES:
            out.pop("strength", None)
        return out


def tidy_prompt(text: str) -> str:
    """Drop empty comma-separated parts left by an empty variable ("$prompt, detailed")."""
    return re.sub(r",(\s*,)+", ",", text).strip(" ,\t\n")


def join_prompts(*parts: str | None) -> str:
    """Prompts joined with ", ": empty parts dropped, repeated comma-separated parts kept once
    (an sdenhance output's prompt already holds the preset's words)."""
    seen: dict[str, str] = {}
    for part in parts:
        for piece in (part or "").split(","):
            piece = piece.strip()
            if piece:
                seen.setdefault(piece.lower(), piece)
    return ", ".join(seen.values())


def _stage_options(stage: str) -> type:
    from sdenhance.stages import get_stage

    try:
        return get_stage(stage).Options
    except ImportError:
        raise SdenhanceError(f"the `{stage}` stage is not available in this build") from None


def named_after_file(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """A copy of a TOML table whose `name` is its file's stem (filled in when missing; one
    that differs is refused, so a name always finds its file)."""
    data = dict(data)
    name = data.setdefault("name", path.stem)
    if name != path.stem:
        raise SdenhanceError(
            f"{path}: `name` is {name!r} but the file is {path.name}; rename one so they match"
        )
    return data


def parse_preset(data: dict[str, Any], path: Path) -> Preset:
    """A `Preset` from a TOML table; values are checked against the stages' own bounds."""
    data = named_after_file(data, path)
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(path, exc) from None
    from sdenhance.stages import build_options

    for stage in _CHECK_STAGES:
        build_options(stage, preset.defaults(stage), where=str(path))
    preset._path = path
    return preset


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """The preset called `name_or_path` (user folder, then bundled) or in that `.toml` file."""
    path = locate("prompts", os.fspath(name_or_path), "preset")
    return parse_preset(read_toml(path), path)


def list_presets() -> list[tuple[Preset, str]]:
    """Every preset found, with its source (`user` or `bundled`), sorted by name."""
    return [(parse_preset(read_toml(path), path), source) for source, path in _iter("prompts")]


def _iter(kind: str) -> Iterator[tuple[str, Path]]:
    yield from find_files(kind).values()
