"""The `sdenhance` run record of an output, read back for `run --from`: untrusted input.

The record travels inside an image anyone can edit, so it is checked as strictly as a recipe
file before it drives anything: only known keys, every field of its type, step options as
tables (then validated by each stage's options like a recipe's), a seed in [0, 2^32), sizes
within the pixel limit, and the input's name a bare file name that can only be looked up
beside the output (never a path that reads or writes elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sdenhance.errors import SdenhanceError
from sdenhance.io.limits import MAX_OUTPUT_PIXELS
from sdenhance.io.mask_record import MAX_EMBED
from sdenhance.ops.expand_windows import MAX_WINDOWS
from sdenhance.options import MAX_SIDE, MAX_TEXT, shown

MAX_STEPS = 32
Short = Annotated[str, Field(max_length=4096)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
Scalar = str | int | float | bool | None
Coordinate = Annotated[int, Field(ge=0, le=MAX_SIDE)]
BoxList = Annotated[list[Coordinate], Field(min_length=4, max_length=4)]
DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecordInput(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")] | None = None

    @field_validator("name")
    @classmethod
    def _bare(cls, name: str) -> str:
        if name in (".", "..") or any(c in name for c in "/\\\x00") or Path(name).is_absolute():
            raise ValueError("the input must be a bare file name, not a path")
        return name


class RecordMask(RecordInput):
    """The mask of an inpaint/remove output (`sdenhance.io.mask_record`), `png` when small."""

    png: Annotated[str, Field(max_length=MAX_EMBED * 4 // 3 + 4)] | None = None


class RecordExpand(_Strict):
    """What an expansion made: its canvas, the original's box on it, the windows painted."""

    canvas: Annotated[list[Side], Field(min_length=2, max_length=2)]
    box: BoxList
    windows: Annotated[list[BoxList], Field(max_length=MAX_WINDOWS)] = Field(default_factory=list)


class RecordNetwork(_Strict):
    """A LoRA or embedding a run used: its name, weight (LoRAs) and A1111 short hash."""

    name: Annotated[str, Field(min_length=1, max_length=255)]
    weight: float | int | None = None
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{1,64}$")] | None = None


class _Entries(_Strict):
    """What a stage records about its own run: the same keys in a step and at the top level."""

    models: dict[Annotated[str, Field(max_length=64)], Scalar | dict[str, Scalar]] = Field(
        default_factory=dict
    )
    size_in: Annotated[list[Side], Field(min_length=2, max_length=2)] | None = None
    size_out: Annotated[list[Side], Field(min_length=2, max_length=2)] | None = None
    tiles: Annotated[int, Field(ge=0)] | None = None
    seconds: Annotated[float, Field(ge=0)] | None = None
    memory_fallback: dict[str, int | None] | None = None
    faces: list[dict[str, Any]] | None = None
    inpaint_crops: list[dict[str, Any]] | None = None
    expand: RecordExpand | None = None
    reference: Short | None = None
    original: Short | None = None
    mask: RecordMask | None = None
    loras: Annotated[list[RecordNetwork], Field(max_length=64)] | None = None
    embeddings: Annotated[list[RecordNetwork], Field(max_length=64)] | None = None
    prompt_chunks: Annotated[int, Field(ge=1, le=64)] | None = None
    bits: Annotated[int, Field(ge=1, le=32)] | None = None
    deblur: Annotated[list[dict[str, Any]], Field(max_length=MAX_STEPS)] | None = None
    enhance: dict[str, Any] | None = None  # the diagnosis and plan, informational

    @field_validator("size_in", "size_out")
    @classmethod
    def _within_limit(cls, size: list[int] | None) -> list[int] | None:
        if size is not None and size[0] * size[1] > MAX_OUTPUT_PIXELS:
            raise ValueError(
                f"{size[0]}×{size[1]} is over the limit of {MAX_OUTPUT_PIXELS // 1_000_000} MP"
            )
        return size


class RecordStep(_Entries):
    stage: Annotated[str, Field(max_length=64)]
    options: dict[Annotated[str, Field(max_length=64)], Any] = Field(default_factory=dict)
    generative: bool | None = None


class RunRecord(_Entries):
    """Every key an sdenhance output's record may hold; anything else is refused."""

    steps: Annotated[list[RecordStep], Field(min_length=1, max_length=MAX_STEPS)]
    version: Annotated[str, Field(max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None
    input: RecordInput | None = None
    prompt: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    negative_prompt: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    recipe: Annotated[str, Field(max_length=255)] | None = None
    prompt_source: Annotated[str, Field(max_length=32)] | None = None
    fingerprint: Annotated[str, Field(max_length=128)] | None = None

    @field_validator("models")
    @classmethod
    def _model_values(cls, models: dict[str, Any]) -> dict[str, Any]:
        for key, value in models.items():
            if isinstance(value, str) and len(value) > 4096:
                raise ValueError(f"`{key}` is longer than any model name or path")
        dtype = models.get("dtype")
        if dtype is not None and not (isinstance(dtype, str) and dtype in DTYPES):
            raise ValueError(f"`dtype` must be one of {', '.join(DTYPES)}; got {shown(dtype)}")
        return models

    def model(self, role: str) -> str | None:
        """The recorded model of `role` (`model`, `controlnet`, `inpaint_model`), if any."""
        value = self.models.get(role)
        if isinstance(value, dict):  # older records: {"spec": ...}
            value = value.get("spec")
        return value if isinstance(value, str) and value.strip() else None

    def input_beside(self, output: Path) -> Path | None:
        """The recorded input looked up beside `output` (the only place it is looked for)."""
        if self.input is None:
            return None
        path = output.parent / self.input.name
        return path if os.path.isfile(path) else None


def parse_record(record: Any, source: str | os.PathLike[str]) -> RunRecord:
    """A validated `RunRecord`, or one user error naming the file, the field and the problem."""
    if not isinstance(record, dict) or not record.get("steps"):
        raise SdenhanceError(
            f"{source}: its sdenhance metadata lists no steps; only sdenhance outputs can be re-run"
        )
    try:
        return RunRecord.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p + 1 if isinstance(p, int) else p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise SdenhanceError(
                f"{source}: its sdenhance metadata has an unknown key `{where[:60]}`; "
                "it was not written by this version of sdenhance, or was edited"
            ) from None
        message = err["msg"].removeprefix("Value error, ")
        raise SdenhanceError(
            f"{source}: its sdenhance metadata is invalid: `{where}`: {message}; "
            f"got {shown(err.get('input'))}"
        ) from None
