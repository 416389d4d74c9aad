"""Generation metadata: AUTOMATIC1111 infotext, ComfyUI graphs, Midjourney text, our record.

Written on save so other tools show the settings and `sdenhance run --from` can reproduce a
result; read on load so an input's original prompt can be offered as the default.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger("sdenhance")
_EXIF_IFD = 0x8769

_USER_COMMENT = 0x9286
_IMAGE_DESCRIPTION = 0x010E

# --------------------------------------------------------------------------------------------
# Data


@dataclass
class ImageMetadata:
    """Generation metadata found in an image, by the tool that wrote it.

    `parameters` is the parsed A1111 infotext (`parse_infotext`), `raw_parameters` its text;
    `comfy_prompt`/`comfy_workflow` are ComfyUI's API graph and UI graph; `sdenhance` is our own
    run record; `midjourney` holds the prompt, `--` parameters and job id of a Midjourney image.
    """

    parameters: dict[str, str] | None = None
    raw_parameters: str | None = None
    comfy_prompt: dict | None = None
    comfy_workflow: dict | None = None
    sdenhance: dict | None = None
    midjourney: dict | None = None

    @property
    def prompt(self) -> str | None:
        """The prompt: from our record, else A1111, else ComfyUI, else Midjourney."""
        return self._text("prompt", "Prompt", "positive")

    @property
    def negative_prompt(self) -> str | None:
        """The negative prompt, looked up in the same order as `prompt`."""
        return self._text("negative_prompt", "Negative prompt", "negative")

    def _text(self, ours: str, a1111: str, comfy: str) -> str | None:
        candidates = [
            _record_text(self.sdenhance, ours) if self.sdenhance else None,
            (self.parameters or {}).get(a1111),
            _comfy_text(self.comfy_prompt, comfy) if self.comfy_prompt else None,
            (self.midjourney or {}).get(ours),
        ]
        return next((c for c in candidates if isinstance(c, str) and c.strip()), None)

    @property
    def source(self) -> str | None:
        """Which tool's metadata the prompt comes from (sdenhance, a1111, comfyui, midjourney)."""
        for name, value in (
            ("sdenhance", self.sdenhance),
            ("a1111", self.parameters),
            ("comfyui", self.comfy_prompt or self.comfy_workflow),
            ("midjourney", self.midjourney),
        ):
            if value:
                return name
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (for `sdenhance info --json`)."""
        return {
            "source": self.source,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            **dataclasses.asdict(self),
        }



# --------------------------------------------------------------------------------------------
# A1111 infotext

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
"""Our scheduler names -> the sampler names A1111 writes."""

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
    main = next((s for s in reversed(steps) if s.get("stage") in _DIFFUSION_STAGES), {})
    options: Mapping[str, Any] = main.get("options") or {}
    models: Mapping[str, Any] = record.get("models") or {}
    fields: dict[str, str] = {
        "Prompt": _clean_prompt(_record_text(record, "prompt")),
        "Negative prompt": _clean_prompt(_record_text(record, "negative_prompt")),
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
    if controlnet is not None or options.get("resemblance") is not None:
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
    if steps:
        put("Stages", " > ".join(str(s.get("stage", "?")) for s in steps))
    size_in = record.get("size_in")
    if isinstance(size_in, (list, tuple)) and len(size_in) == 2:
        put("Original size", f"{size_in[0]}x{size_in[1]}")
    put("Version", f"sdenhance {record.get('version') or _version()}")
    return fields


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


_KEY_RE = re.compile(r"\s*(\w[\w \-/.]*?)\s*:\s*")


def _scan_pairs(line: str) -> list[tuple[str, str]]:
    """`Key: value` pairs of a parameters line; junk between commas is skipped."""
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    while pos < end:
        match = _KEY_RE.match(line, pos)
        if match is None:
            comma = line.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        value, pos = _scan_value(line, match.end())
        pairs.append((match.group(1), value))
    return pairs


def _scan_value(line: str, pos: int) -> tuple[str, int]:
    """One value from `pos`: a JSON string, a JSON object/list, or text up to the next comma."""
    end = len(line)
    if pos < end and line[pos] == '"':
        i = pos + 1
        while i < end and line[i] != '"':
            i += 2 if line[i] == "\\" else 1
        after = _skip_spaces(line, i + 1)
        if i < end and (after >= end or line[after] == ","):
            raw = line[pos : i + 1]
            try:
                return str(json.loads(raw)), after + 1
            except ValueError:
                return raw, after + 1
    if pos < end and line[pos] in "{[":
        try:
            _, stop = json.JSONDecoder().raw_decode(line, pos)
        except ValueError:
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


def _record_text(record: Mapping[str, Any] | None, key: str) -> str | None:
    """A prompt from a run record: top level, else the first step that has one."""
    if not record:
        return None
    value = record.get(key)
    if isinstance(value, str) and value.strip():
        return value
    for step in record.get("steps") or []:
        options = step.get("options") if isinstance(step, Mapping) else None
        value = (options or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _version() -> str:
    from . import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# Reading metadata


def metadata_from_pil(im: Image.Image) -> ImageMetadata:
    """Metadata from an opened PIL image's text chunks, EXIF and XMP."""
    meta = ImageMetadata()
    info = im.info
    texts = {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)}
    if isinstance(texts.get("sdenhance"), str):
        meta.sdenhance = _json_dict(texts["sdenhance"])
    if texts.get("parameters"):
        meta.raw_parameters = texts["parameters"]
    if texts.get("prompt"):
        meta.comfy_prompt = _json_dict(texts["prompt"])
    if texts.get("workflow"):
        meta.comfy_workflow = _json_dict(texts["workflow"])
    try:
        exif = im.getexif()
    except Exception:
        log.debug("unreadable EXIF block ignored", exc_info=True)
        exif = None
    if exif:
        if meta.raw_parameters is None:
            try:
                comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
            except Exception:
                comment = None
            text = _decode_user_comment(comment)
            if text and text.strip():
                meta.raw_parameters = text
        description = exif.get(_IMAGE_DESCRIPTION)
        if isinstance(description, str):
            read_description(description, meta)
        for tag, prefix, attr in (
            (0x0110, "prompt:", "comfy_prompt"),
            (0x010F, "workflow:", "comfy_workflow"),
        ):
            value = exif.get(
                tag
            )  # ComfyUI's WebP/JPEG: "prompt:{...}" in Model, "workflow:{...}" in Make
            if isinstance(value, str) and value.startswith(prefix) and getattr(meta, attr) is None:
                setattr(meta, attr, _json_dict(value[len(prefix) :]))
    if meta.raw_parameters is None:
        comment = info.get("comment")  # JPEG COM segment, used by some tools
        if isinstance(comment, bytes):
            comment = comment.decode("utf-8", "replace")
        if isinstance(comment, str) and "Steps: " in comment:
            meta.raw_parameters = comment
    if meta.raw_parameters:
        meta.parameters = parse_infotext(meta.raw_parameters)
    if meta.midjourney is None and isinstance(texts.get("Description"), str):
        meta.midjourney = parse_midjourney(texts["Description"])
    if meta.midjourney is None and isinstance(info.get("xmp"), (bytes, str)):
        meta.midjourney = parse_midjourney(_xmp_description(info["xmp"]) or "")
    return meta


def read_description(text: str, meta: ImageMetadata) -> None:
    """ImageDescription: our JSON ({"sdenhance": ..., "parameters": ...}) or a Midjourney text."""
    data = _json_dict(text) if text.lstrip().startswith("{") else None
    if data is not None:
        if isinstance(data.get("sdenhance"), dict) and meta.sdenhance is None:
            meta.sdenhance = data["sdenhance"]
        if isinstance(data.get("parameters"), str) and meta.raw_parameters is None:
            meta.raw_parameters = data["parameters"]
            meta.parameters = parse_infotext(data["parameters"])
        return
    if meta.midjourney is None:
        meta.midjourney = parse_midjourney(text)


def _json_dict(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        log.debug("metadata text is not valid JSON: %.60r", text)
        return None
    return value if isinstance(value, dict) else None


def _decode_user_comment(data: Any) -> str | None:
    """EXIF UserComment: 8-byte charset header, then the text (UTF-16 for 'UNICODE').

    A1111 writes big-endian UTF-16; some tools write little-endian, which is recognised by
    where the zero bytes of ASCII characters fall.
    """
    if isinstance(data, str):
        return data
    if not isinstance(data, bytes) or not data:
        return None
    head, body = data[:8], data[8:]
    if head == b"UNICODE\x00":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16", "replace").rstrip("\x00")
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        return body.decode(
            "utf-16-le" if odd_zeros > even_zeros else "utf-16-be", "replace"
        ).rstrip("\x00")
    if head == b"ASCII\x00\x00\x00":
        return body.decode("latin-1").rstrip("\x00")
    if head == b"\x00" * 8:
        return body.decode("utf-8", "replace").rstrip("\x00")
    return data.decode("utf-8", "replace").rstrip("\x00")


_MJ_JOB_RE = re.compile(r"\s*Job ID:\s*([0-9a-fA-F-]{8,})\s*$")
_MJ_PARAM_RE = re.compile(r"(?:^|\s)--([a-zA-Z][\w-]*)")


def parse_midjourney(text: str) -> dict | None:
    """Midjourney's Description text -> {"prompt", "negative_prompt", "params", "job_id"}.

    The prompt is the text before the first `--parameter`; `--no` becomes the negative prompt.
    Returns None for text that does not look like Midjourney's (no parameters, no job id).
    """
    text = text.strip()
    job = _MJ_JOB_RE.search(text)
    if job:
        text = text[: job.start()].rstrip()
    marks = list(_MJ_PARAM_RE.finditer(text))
    if not marks and not job:
        return None
    prompt = text[: marks[0].start()].strip() if marks else text
    params: dict[str, str] = {}
    for i, mark in enumerate(marks):
        stop = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        params[mark.group(1)] = text[mark.end() : stop].strip()
    return {
        "prompt": prompt,
        "negative_prompt": params.get("no") or None,
        "params": params,
        "job_id": job.group(1) if job else None,
    }


def _xmp_description(xmp: bytes | str) -> str | None:
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    match = re.search(r"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", text, re.S)
    if not match:
        return None
    import html

    return html.unescape(match.group(1))


_COMFY_TEXT_INPUTS = (
    "text",
    "text_g",
    "prompt",
    "string",
    "value",
    "populated_text",
    "wildcard_text",
)
_COMFY_PASSTHROUGH = ("conditioning", "conditioning_1", "conditioning_to", "conditioning_from")


def _comfy_text(graph: Mapping[str, Any] | None, polarity: str) -> str | None:
    """Text of the CLIPTextEncode feeding the first sampler's positive/negative input.

    Follows links through conditioning nodes (ControlNet apply, combine, set area...) and
    text-producing nodes (primitives, string nodes), so common graphs resolve.
    """
    if not graph:
        return None

    def node_order(item: tuple[str, Any]) -> tuple[int, str]:
        key = item[0]
        return (int(key), key) if key.isdigit() else (1 << 30, key)

    for _, node in sorted(graph.items(), key=node_order):
        if not isinstance(node, Mapping):
            continue
        inputs = node.get("inputs")
        if "Sampler" not in str(node.get("class_type", "")) or not isinstance(inputs, Mapping):
            continue
        guider = graph.get(str(inputs["guider"][0])) if _is_link(inputs.get("guider")) else None
        if isinstance(guider, Mapping) and isinstance(guider.get("inputs"), Mapping):
            inputs = guider["inputs"]  # SamplerCustomAdvanced: prompts sit on its guider
            if polarity == "positive" and not _is_link(inputs.get("positive")):
                inputs = {"positive": inputs.get("conditioning")}  # BasicGuider has no negative
        link = inputs.get(polarity)
        if _is_link(link):
            return _comfy_follow(graph, link, polarity, depth=0)
    return None


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))


def _comfy_follow(graph: Mapping[str, Any], link: list, polarity: str, depth: int) -> str | None:
    node = graph.get(str(link[0]))
    if depth > 32 or not isinstance(node, Mapping) or not isinstance(node.get("inputs"), Mapping):
        return None
    inputs = node["inputs"]
    for key in _COMFY_TEXT_INPUTS:
        value = inputs.get(key)
        if isinstance(value, str):
            return value
        if _is_link(value):
            return _comfy_follow(graph, value, polarity, depth + 1)
    for key in (polarity, *_COMFY_PASSTHROUGH):
        value = inputs.get(key)
        if _is_link(value):
            return _comfy_follow(graph, value, polarity, depth + 1)
    return None
