"""Generation metadata: AUTOMATIC1111 infotext, ComfyUI graphs, Midjourney text, our record.

Written on save so other tools show the settings and `sdenhance run --from` can reproduce a
result; read on load so an input's original prompt can be offered as the default.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdenhance.io.exif import EXIF_IFD, IMAGE_DESCRIPTION, USER_COMMENT
from sdenhance.io.infotext import parse_infotext, record_text
from sdenhance.io.safe_text import MAX_TEXT_CHARS, UnsafeJSON, load_json

log = logging.getLogger("sdenhance")


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
            record_text(self.sdenhance, ours) if self.sdenhance else None,
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
# Reading metadata: every field is untrusted text, bounded before it is parsed


def metadata_from_pil(im: Image.Image, notes: list[str] | None = None) -> ImageMetadata:
    """Metadata from an opened PIL image's text chunks, EXIF and XMP.

    Metadata never decides whether the pixels can be read: a field that is too long, nested too
    deeply or otherwise unreadable is skipped with a note in `notes`, and a failure of the
    reader itself leaves the metadata empty (logged at debug level) instead of failing the load.
    """
    notes = [] if notes is None else notes
    meta = ImageMetadata()
    try:
        _read_fields(im, meta, notes)
    except Exception:  # metadata is optional; the pixels are what the user asked for
        log.debug("unreadable metadata ignored", exc_info=True)
        notes.append("metadata: unreadable, ignored")
        return ImageMetadata()
    return meta


def _read_fields(im: Image.Image, meta: ImageMetadata, notes: list[str]) -> None:
    info = im.info
    texts = {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)}
    meta.sdenhance = _json_dict(texts.get("sdenhance"), "sdenhance", notes)
    meta.raw_parameters = _bounded(texts.get("parameters") or None, "parameters", notes)
    meta.comfy_prompt = _json_dict(texts.get("prompt") or None, "prompt", notes)
    meta.comfy_workflow = _json_dict(texts.get("workflow") or None, "workflow", notes)
    exif = _exif(im)
    if exif:
        _read_exif(exif, meta, notes)
    if meta.raw_parameters is None:
        comment = info.get("comment")  # JPEG COM segment, used by some tools
        if isinstance(comment, bytes):
            comment = comment.decode("utf-8", "replace")
        if isinstance(comment, str) and "Steps: " in comment:
            meta.raw_parameters = _bounded(comment, "comment", notes)
    if meta.raw_parameters:
        meta.parameters = parse_infotext(meta.raw_parameters)
    description = _bounded(texts.get("Description"), "Description", notes)
    if meta.midjourney is None and description is not None:
        meta.midjourney = parse_midjourney(description)
    if meta.midjourney is None and isinstance(info.get("xmp"), (bytes, str)):
        xmp = info["xmp"]
        xmp = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
        xmp = _bounded(xmp, "XMP", notes, limit=4 * MAX_TEXT_CHARS)
        meta.midjourney = parse_midjourney(_xmp_description(xmp) or "") if xmp else None


def _exif(im: Image.Image) -> Image.Exif | None:
    try:
        return im.getexif()
    except Exception:  # a broken EXIF block must not make the image unreadable
        log.debug("unreadable EXIF block ignored", exc_info=True)
        return None


def _read_exif(exif: Image.Exif, meta: ImageMetadata, notes: list[str]) -> None:
    if meta.raw_parameters is None:
        try:
            comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
        except Exception:
            comment = None
        text = _decode_user_comment(comment)
        if text and text.strip():
            meta.raw_parameters = _bounded(text, "UserComment", notes)
    description = exif.get(IMAGE_DESCRIPTION)
    if isinstance(description, str):
        read_description(description, meta, notes)
    # ComfyUI's WebP/JPEG: "prompt:{...}" in Model, "workflow:{...}" in Make
    for tag, prefix, attr in (
        (0x0110, "prompt:", "comfy_prompt"),
        (0x010F, "workflow:", "comfy_workflow"),
    ):
        value = exif.get(tag)
        if isinstance(value, str) and value.startswith(prefix) and getattr(meta, attr) is None:
            setattr(meta, attr, _json_dict(value[len(prefix) :], attr, notes))


def read_description(text: str, meta: ImageMetadata, notes: list[str] | None = None) -> None:
    """ImageDescription: our JSON ({"sdenhance": ..., "parameters": ...}) or a Midjourney text."""
    notes = [] if notes is None else notes
    if text.lstrip().startswith("{"):
        data = _json_dict(text, "ImageDescription", notes)
        if data is None:
            return
        if isinstance(data.get("sdenhance"), dict) and meta.sdenhance is None:
            meta.sdenhance = data["sdenhance"]
        parameters = data.get("parameters")
        if isinstance(parameters, str) and meta.raw_parameters is None:
            meta.raw_parameters = _bounded(parameters, "parameters", notes)
            meta.parameters = parse_infotext(meta.raw_parameters) if meta.raw_parameters else None
        return
    text = _bounded(text, "ImageDescription", notes)
    if meta.midjourney is None and text is not None:
        meta.midjourney = parse_midjourney(text)


def _bounded(
    text: str | None, field: str, notes: list[str], limit: int = MAX_TEXT_CHARS
) -> str | None:
    """`text`, or None with a note when it is longer than any real metadata text."""
    if text is None or len(text) <= limit:
        return text
    notes.append(
        f"metadata: the `{field}` text ({len(text):,} characters) is over the limit "
        f"of {limit:,}; ignored"
    )
    return None


def _json_dict(text: str | None, field: str, notes: list[str]) -> dict | None:
    if not isinstance(text, str):
        return None
    try:
        value = load_json(text)
    except UnsafeJSON as exc:
        notes.append(f"metadata: the `{field}` JSON is unreadable ({exc}); ignored")
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


_MJ_JOB = "Job ID:"
_MJ_JOB_ID = re.compile(r"[0-9a-fA-F-]{8,}")
_MJ_PARAM_RE = re.compile(r"(?:^|\s)--([a-zA-Z][\w-]*+)")


def parse_midjourney(text: str) -> dict | None:
    """Midjourney's Description text -> {"prompt", "negative_prompt", "params", "job_id"}.

    The prompt is the text before the first `--parameter`; `--no` becomes the negative prompt.
    Returns None for text that does not look like Midjourney's (no parameters, no job id).
    Linear in the text: the job id is split off at the last "Job ID:", and the parameter
    pattern cannot backtrack.
    """
    text = text.strip()
    head, sep, tail = text.rpartition(_MJ_JOB)
    job = tail.strip() if sep and _MJ_JOB_ID.fullmatch(tail.strip()) else None
    if job is not None:
        text = head.rstrip()
    marks = list(_MJ_PARAM_RE.finditer(text))
    if not marks and job is None:
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
        "job_id": job,
    }


def _xmp_description(text: str) -> str | None:
    """The first `rdf:li` of `dc:description` in an XMP packet (a few `find`s: linear)."""
    import html

    start = text.find("<dc:description>")
    item = text.find("<rdf:li", start) if start >= 0 else -1
    open_end = text.find(">", item) if item >= 0 else -1
    close = text.find("</rdf:li>", open_end) if open_end >= 0 else -1
    if close < 0:
        return None
    return html.unescape(text[open_end + 1 : close])


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
        key = item[0]  # node ids are small decimal numbers; anything else sorts last
        number = key.isascii() and key.isdigit() and len(key) < 10
        return (int(key), key) if number else (1 << 30, key)

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
