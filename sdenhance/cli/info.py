"""`sdenhance info`: what an image is and how it was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sdenhance.cli.common import out_console
from sdenhance.io.safe_text import terminal_json

app = typer.Typer()


def _print(text: str) -> None:
    # prompts hold "[...]" and ":name:" that Rich would read as markup or emoji codes, and may
    # hold terminal escapes: the console prints literally and shows control characters escaped
    out_console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)


@app.command()
def info(
    image: Annotated[
        Path,
        typer.Argument(
            help="Image file (PNG, JPEG, WebP, AVIF, HEIC or TIFF).", show_default=False
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    """Show an image's size, mode, format, alpha, notes and generation metadata
    (prompt, A1111 parameters, ComfyUI graph, Midjourney parameters, sdenhance record)."""
    from sdenhance.io.exif_carry import describe_carried
    from sdenhance.io.load import load_image

    loaded = load_image(image)
    meta = loaded.metadata
    width, height = loaded.size
    summary: dict[str, Any] = {
        "path": str(loaded.path),
        "format": loaded.format,
        "width": width,
        "height": height,
        "mode": loaded.source_mode,
        "alpha": loaded.alpha is not None,
        "notes": loaded.notes,
        **describe_carried(loaded.image.info),
        **meta.to_dict(),
    }
    if as_json:
        _print(terminal_json(summary, default=str))  # exact values, escapes where needed
        return

    _print(f"path:     {loaded.path}")
    _print(f"format:   {loaded.format}")
    _print(f"size:     {width}x{height}")
    _print(f"mode:     {loaded.source_mode}")
    _print(f"alpha:    {'yes' if loaded.alpha is not None else 'no'}")
    for key, label in (("icc_profile", "profile"), ("camera", "camera"), ("taken", "taken")):
        if summary[key]:
            _print(f"{label + ':':9} {summary[key]}")
    for note in loaded.notes:
        _print(f"note:     {note}")
    if meta.source:
        _print(f"metadata: {meta.source}")
    if meta.prompt:
        _print(f"prompt:   {meta.prompt}")
    if meta.negative_prompt:
        _print(f"negative prompt: {meta.negative_prompt}")
    if meta.parameters:
        _print("parameters:")
        for key, value in meta.parameters.items():
            if key not in ("Prompt", "Negative prompt"):
                _print(f"  {key}: {value}")
    if meta.midjourney and meta.midjourney.get("params"):
        _print("midjourney parameters:")
        for key, value in meta.midjourney["params"].items():
            _print(f"  --{key} {value}".rstrip())
    if meta.comfy_prompt or meta.comfy_workflow:
        parts = [
            name
            for name, value in (("prompt", meta.comfy_prompt), ("workflow", meta.comfy_workflow))
            if value
        ]
        _print(f"comfyui:  {' and '.join(parts)} graph present (see --json)")
    if meta.sdenhance:
        _print("sdenhance record:")
        record = dict(meta.sdenhance)
        if isinstance(record.get("mask"), dict) and "png" in record["mask"]:  # base64, not text
            record["mask"] = {**record["mask"], "png": "(stored, see --json)"}
        for line in terminal_json(record, indent=2, default=str).splitlines():
            _print(f"  {line}")


@app.command()
def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    """Show the device, dtype, attention backend, library versions, optional extras, the
    bundled Real-ESRGAN models and the diffusion models found in the Hugging Face cache."""
    from sdenhance.models.doctor import EXTRAS, doctor_report
    from sdenhance.upscalers.registry import upscaler_names

    report = doctor_report()
    report["upscalers"] = upscaler_names()
    if as_json:
        out_console.print_json(json.dumps(report))
        return
    for key in (
        "device",
        "cuda",
        "dtype",
        "attention",
        "torch",
        "diffusers",
        "transformers",
        "hf_cache",
        "offline",
    ):
        if report.get(key) is not None:
            _print(f"{key:13} {report[key]}")
    if "cpu_bf16_speedup" in report:
        native = (
            "native bf16: auto picks bf16"
            if report["cpu_native_bf16"]
            else "no native bf16: auto picks fp32"
        )
        _print(f"{'cpu':13} {native} (probe: bf16 {report['cpu_bf16_speedup']}× vs fp32)")
    extras = ", ".join(
        f"{name} ({'yes' if present else 'no: pip install sdenhance[' + EXTRAS[name] + ']'})"
        for name, present in report["extras"].items()
    )
    _print(f"{'extras':13} {extras}")
    _print(f"{'upscalers':13} {', '.join(report['upscalers'])}")
    if report["models"]:
        for m in report["models"]:
            _print(
                f"{'model':13} {m['id']} ({m['family']}, "
                f"{m['role']}{', inpainting' if m['inpaint'] else ''})"
            )
    else:
        _print(
            f"{'models':13} none in the cache; defaults download on first use (or pass --model "
            "PATH)"
        )
    for family, d in report["defaults"].items():
        _print(f"{'default ' + family:13} {d['model']} + {d['controlnet']}")
