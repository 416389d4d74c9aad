"""AUTOMATIC1111 infotext, written from our run record so other tools show it; parsed back."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SAMPLER_NAMES = {
    "dpmpp-2m-karras": "DPM++ 2M Karras",
    "dpmpp-2m": "DPM++ 2M",
    "dpmpp-sde-karras": "DPM++ SDE Karras",
    "euler": "Euler",
    "euler-a": "Euler a",
    "ddim": "DDIM",
    "unipc": "UniPC",
    "lms": "LMS",
    "heun": "Heun",
    "pndm": "PLMS",
}


UPSCALER_NAMES = {
    "realesrgan-x4plus": "R-ESRGAN 4x+",
    "realesrgan-x4plus-anime": "R-ESRGAN 4x+ Anime6B",
    "lanczos": "Lanczos",
    "bicubic": "Bicubic",
}


# option -> A1111 key; options not listed become "Option name: value" pairs
_OPTION_KEYS = {
    "steps": "Steps",
    "scheduler": "Sampler",
    "guidance": "CFG scale",
    "strength": "Denoising strength",
    "creativity": "Denoising strength",
    "scale": "Hires upscale",
    "upscaler": "Hires upscaler",
}


_NOT_PARAMS = {"prompt", "negative_prompt", "seed", "resemblance", "width", "height"}


# stages whose options describe a diffusion run (denoise's `strength` is not a denoising strength)
_DIFFUSION_STAGES = {"upscale", "img2img", "inpaint", "facefix", "remove"}


_KNOWN_FIRST_KEYS = {
    "Steps",
    "Size",
    "Seed",
    "Sampler",
    "Model",
    "Version",
    "Postprocess upscale by",
}


_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")


def infotext_fields(
    record: Mapping[str, Any], *, size: tuple[int, int] | None = None
) -> dict[str, str]:
    """The infotext of a run record as ordered A1111 fields, every value a string.

    "Prompt" and "Negative prompt" come first, then the parameters line. The diffusion step
    that ran last supplies Steps, Sampler, CFG scale and Denoising strength; its other scalar
    options follow as "Option name: value"; the full record stays in the `sdenhance` JSON.
    """
    steps = [s for s in record.get("steps") or [] if isinstance(s, Mapping)]
    main = main_step(steps)
    options: Mapping[str, Any] = (main or {}).get("options") or {}
    models: Mapping[str, Any] = (main or {}).get("models") or record.get("models") or {}
    if main is None and steps:  # nothing generative ran: no model to name
        models = {}
    fields: dict[str, str] = {
        "Prompt": _clean_prompt(options.get("prompt") or record_text(record, "prompt")),
        "Negative prompt": _clean_prompt(
            options.get("negative_prompt") or record_text(record, "negative_prompt")
        ),
    }

    def put(key: str, value: Any) -> None:
        text = _format_value(value)
        if text is not None and key not in fields:
            fields[key] = text

    put("Steps", options.get("steps"))
    scheduler = options.get("scheduler")
    put(
        "Sampler",
        SAMPLER_NAMES.get(scheduler, scheduler) if isinstance(scheduler, str) else scheduler,
    )
    put("CFG scale", options.get("guidance"))
    put("Seed", record.get("seed", options.get("seed")))
    if (
        size is None
        and isinstance(record.get("size_out"), (list, tuple))
        and len(record["size_out"]) == 2
    ):
        size = tuple(record["size_out"])
    if size is not None:
        put("Size", f"{size[0]}x{size[1]}")
    put("Model hash", models.get("model_hash"))
    put("Model", _model_name(models.get("model")))
    put("VAE hash", models.get("vae_hash"))
    put("VAE", _model_name(models.get("vae")))
    put("Denoising strength", options.get("strength", options.get("creativity")))
    controlnet = _model_name(models.get("controlnet"))
    if models.get("controlnet") == "none":  # `--controlnet none`: no ControlNet, no weight
        pass
    elif controlnet is not None or options.get("resemblance") is not None:
        parts = []
        if controlnet is not None:
            cn_hash = models.get("controlnet_hash")
            parts.append(f"Model: {controlnet}" + (f" [{cn_hash}]" if cn_hash else ""))
        if options.get("resemblance") is not None:
            parts.append(f"Weight: {_format_value(options['resemblance'])}")
        put("ControlNet 0", ", ".join(parts))
    put("Hires upscale", options.get("scale"))
    if options.get("width") is not None and options.get("height") is not None:
        put("Hires resize", f"{options['width']}x{options['height']}")
    upscaler = options.get("upscaler")
    put("Hires upscaler", UPSCALER_NAMES.get(upscaler) or _model_name(upscaler))
    for name, value in options.items():
        if name not in _OPTION_KEYS and name not in _NOT_PARAMS:
            put(_label(name), value)
    for name, value in models.items():
        if name not in ("model", "model_hash", "vae", "vae_hash", "controlnet", "controlnet_hash"):
            put(_label(name), _model_name(value) if isinstance(value, str) else value)
    put("Lora hashes", _hash_list(record.get("loras")))
    put("TI hashes", _hash_list(record.get("embeddings")))
    _postprocess(put, steps)
    if steps:
        put("Stages", " > ".join(str(s.get("stage", "?")) for s in steps))
    if main is not None and len(steps) > 1:
        put("Main step", f"{steps.index(main) + 1} {main.get('stage')}")
    size_in = record.get("size_in")
    if isinstance(size_in, (list, tuple)) and len(size_in) == 2:
        put("Original size", f"{size_in[0]}x{size_in[1]}")
    put("Version", f"sdenhance {record.get('version') or _version()}")
    return fields


def main_step(steps: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The step whose diffusion settings the infotext shows: of the steps that ran a diffusion
    model, the one with the highest denoising strength (the later on a tie); None if none did.
    Records without `generative` (older versions) count every diffusion stage."""

    def ran(step: Mapping[str, Any]) -> bool:
        if "generative" in step:
            return bool(step["generative"])
        return step.get("stage") in _DIFFUSION_STAGES

    def strength(step: Mapping[str, Any]) -> float:
        opts = step.get("options") or {}
        for key in ("creativity", "strength", "refine_strength"):
            if isinstance(opts.get(key), (int, float)):
                return float(opts[key])
        return 0.0

    best = None
    for step in steps:
        if ran(step) and (best is None or strength(step) >= strength(best)):
            best = step
    return best


def _postprocess(put: Any, steps: list[Mapping[str, Any]]) -> None:
    """An upscale that ran no diffusion is what A1111 calls a postprocess upscale."""
    for step in reversed(steps):
        opts = step.get("options") or {}
        if step.get("stage") == "upscale" and not step.get("generative", True):
            if opts.get("width") or opts.get("height"):
                size = step.get("size_out") or [opts.get("width"), opts.get("height")]
                put("Postprocess upscale to", f"{size[0]}x{size[1]}")
            else:
                put("Postprocess upscale by", opts.get("scale"))
            upscaler = opts.get("upscaler")
            put("Postprocess upscaler", UPSCALER_NAMES.get(upscaler) or _model_name(upscaler))
            return


def format_infotext(record: Mapping[str, Any], *, size: tuple[int, int] | None = None) -> str:
    """A run record as AUTOMATIC1111 infotext: prompt lines, "Negative prompt: ..." and one
    "Key: value, ..." line, values with `,` `:` or newlines JSON-quoted as A1111 does."""
    fields = infotext_fields(record, size=size)
    prompt = fields.pop("Prompt")
    negative = fields.pop("Negative prompt")
    lines = [prompt] if prompt else []
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items()))
    return "\n".join(lines)


def parse_infotext(text: str) -> dict[str, str]:
    """Parse A1111 infotext into {"Prompt", "Negative prompt", key: value...}, values as text.

    Follows A1111's reader: the last line holds the parameters when it has at least three
    `Key: value` pairs (or starts with a well-known key); earlier lines are the prompt until a
    line starting "Negative prompt:"; quoted values are JSON-unquoted. Sizes stay "WxH" and no
    defaults are filled in. A value that is a JSON object or list is kept whole as text.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    pairs = _scan_pairs(lines[-1])
    first_key = pairs[0][0] if pairs else None
    if len(pairs) >= 3 or (
        first_key in _KNOWN_FIRST_KEYS and lines[-1].lstrip().startswith(f"{first_key}:")
    ):
        lines = lines[:-1]
    else:
        pairs = []
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    result = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in pairs:
        result[key] = value
    return result


# possessive quantifiers: a failed match cannot backtrack, so each attempt stops at the first
# character that cannot be part of a key (a comma included) and the whole scan stays linear
_KEY_RE = re.compile(r"\s*+(\w[\w \-/.]*+)\s*+:\s*+")
_QUOTED_RE = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)


# JSON values tried per line: a real one has a few; each failed try costs up to the line's
# length (the decoder's error message counts lines up to the failure), so the tries are capped
MAX_JSON_VALUES = 64


def _scan_pairs(line: str) -> list[tuple[str, str]]:
    """`Key: value` pairs of a parameters line; junk between commas is skipped."""
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    tries = [MAX_JSON_VALUES]
    while pos < end:
        match = _KEY_RE.match(line, pos)
        if match is None:
            comma = line.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        value, pos = _scan_value(line, match.end(), tries)
        pairs.append((match.group(1).rstrip(), value))
    return pairs


def _scan_value(line: str, pos: int, tries: list[int]) -> tuple[str, int]:
    """One value from `pos`: a JSON string, a JSON object/list, or text up to the next comma."""
    end = len(line)
    quoted = _QUOTED_RE.match(line, pos)
    if quoted is not None:
        after = _skip_spaces(line, quoted.end())
        if after >= end or line[after] == ",":
            try:
                return str(json.loads(quoted.group())), after + 1
            except ValueError:
                return quoted.group(), after + 1
    if pos < end and line[pos] in "{[" and tries[0] > 0:
        tries[0] -= 1
        try:
            _, stop = json.JSONDecoder().raw_decode(line, pos)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            pass
        else:
            after = _skip_spaces(line, stop)
            if after >= end or line[after] == ",":
                return line[pos:stop], after + 1
    comma = line.find(",", pos)
    comma = end if comma < 0 else comma
    return line[pos:comma].strip(), comma + 1


def _skip_spaces(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in " \t":
        pos += 1
    return pos


def _quote(value: str) -> str:
    if any(c in value for c in ",:\n") or value[:1] in ('"', "{", "[") or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def _format_value(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, list, tuple, set)):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (int, str)):
        text = str(value)
        return text if text.strip() else None
    if isinstance(value, np.generic):
        return _format_value(value.item())
    return str(value)


def _hash_list(entries: Any) -> str | None:
    """A1111's "name: hash, name: hash" list of the LoRAs or embeddings a run used."""
    if not isinstance(entries, (list, tuple)):
        return None
    pairs = [
        f"{e['name']}: {e['hash']}"
        for e in entries
        if isinstance(e, Mapping) and isinstance(e.get("name"), str) and e.get("hash")
    ]
    return ", ".join(pairs) or None


def _label(name: str) -> str:
    text = str(name).replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def _model_name(spec: Any) -> str | None:
    """How A1111 names a model: a checkpoint file's stem, a folder's name, a hub id as is."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        return None
    if spec.lower().endswith(_CHECKPOINT_SUFFIXES):
        return Path(spec).stem
    if os.sep in spec and Path(spec).is_dir():
        return Path(spec).name
    return spec


def _clean_prompt(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return "\n".join(line.strip() for line in text.strip().splitlines())


def record_text(record: Mapping[str, Any] | None, key: str) -> str | None:
    """A prompt from a run record: top level, else the first step that has one."""
    if not record:
        return None
    value = record.get(key)
    if isinstance(value, str) and value.strip():
        return value
    steps = record.get("steps")
    for step in steps if isinstance(steps, list) else []:
        options = step.get("options") if isinstance(step, Mapping) else None
        value = options.get(key) if isinstance(options, Mapping) else None
        if isinstance(value, str) and value.strip():
            return value
    return None


def _version() -> str:
    from sdenhance._version import __version__

    return __version__
