"""Metadata and other text from files: parsed in linear time, bounded, printed safely.

The texts below are the worst cases of the parsers' old patterns (long runs of spaces, of
key characters without a colon, of unclosed tags and quotes, deep JSON): each must parse
within the `bounded` guard at the largest size a field may have, and a field that cannot be
read must become a note, never an error that stops the pixels from loading.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import skimage
from bounded import bounded
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.io.infotext import parse_infotext
from sdenhance.io.load import load_image, read_metadata
from sdenhance.io.metadata import ImageMetadata, metadata_from_pil, parse_midjourney
from sdenhance.io.safe_text import (
    MAX_JSON_DEPTH,
    MAX_TEXT_CHARS,
    UnsafeJSON,
    load_json,
    load_toml,
    printable,
    terminal_json,
)

N = MAX_TEXT_CHARS - 16  # the longest text a field may hold: the worst case that is parsed

ESCAPES = "x \x1b]0;owned\x07 \x1b[31mred \u202eevil\u2066 \x9b2J end"


def astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).crop((100, 60, 164, 108))


def png_with(path: Path, **texts: str) -> Path:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value, zip=len(value) > 1000)
    astronaut().save(path, pnginfo=info)
    return path


# --------------------------------------------------------------------------------------------
# linear parsers

INFOTEXTS = {
    "spaces": "a" + " " * N + "b",
    "spaces on the last line": "x\nSteps: 1, " + "a" + " " * N,
    "key characters, no colon": "x\n" + "word " * (N // 5),
    "empty pairs": "x\n" + ", " * (N // 2),
    "colons": "x\n" + "a:" * (N // 2),
    "unclosed quotes": "x\n" + 'k: "' * (N // 4),
    "unclosed lists": "x\n" + "k: [" * (N // 4),
    "nested lists": "x\nSteps: 1, Sampler: a, k: " + "[" * (N - 30),
    "quoted lists": 'x\nk: ["' + 'x, k: [\\"' * (N // 10),
    "escapes": 'x\nk: "' + "\\" * N,
}


@pytest.mark.parametrize("text", INFOTEXTS.values(), ids=INFOTEXTS.keys())
def test_infotext_parser_is_linear(text):
    result = bounded(parse_infotext, text)
    assert isinstance(result, dict) and "Prompt" in result


MIDJOURNEY = {
    "spaces": "x" + " " * N + "y",
    "job id prefixes": "Job ID:" * (N // 7),
    "job id spaces": "Job ID: " + " " * N,
    "dashes": "-- " * (N // 3),
    "parameters": "--a " * (N // 4),
}


@pytest.mark.parametrize("text", MIDJOURNEY.values(), ids=MIDJOURNEY.keys())
def test_midjourney_parser_is_linear(text):
    bounded(parse_midjourney, text)


def test_midjourney_parser_still_reads_prompt_parameters_and_job():
    text = "a red fox --ar 3:2 --no blur, grain --v 6 Job ID: 0a1b2c3d-4e5f-6789"
    parsed = parse_midjourney(text)
    assert parsed == {
        "prompt": "a red fox",
        "negative_prompt": "blur, grain",
        "params": {"ar": "3:2", "no": "blur, grain", "v": "6"},
        "job_id": "0a1b2c3d-4e5f-6789",
    }


XMP = {
    "unclosed descriptions": "<dc:description>" * (N // 16),
    "unclosed items": "<dc:description>" + "<rdf:li" * (N // 7),
    "unclosed item bodies": "<dc:description><rdf:li>" + "a<" * (N // 2),
}


@pytest.mark.parametrize("xmp", XMP.values(), ids=XMP.keys())
def test_xmp_reader_is_linear(xmp):
    im = astronaut()
    im.info["xmp"] = xmp.encode()
    bounded(metadata_from_pil, im)


def test_xmp_description_is_still_read():
    im = astronaut()
    im.info["xmp"] = (
        b'<x:xmpmeta><dc:description><rdf:Alt><rdf:li xml:lang="x-default">a fox --ar 3:2'
        b" Job ID: 0a1b2c3d-4e5f</rdf:li></rdf:Alt></dc:description></x:xmpmeta>"
    )
    meta = metadata_from_pil(im)
    assert meta.midjourney["prompt"] == "a fox" and meta.midjourney["job_id"] == "0a1b2c3d-4e5f"


# --------------------------------------------------------------------------------------------
# JSON and TOML: length and depth


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":' * 900 + "1" + "}" * 900, "[" * (MAX_JSON_DEPTH + 1) + "]" * 65],
    ids=["unclosed 100k deep", "closed 900 deep", "one past the limit"],
)
def test_deep_json_is_refused_quickly(text):
    result = bounded(lambda: pytest.raises(UnsafeJSON, load_json, text))
    assert "nested more than 64 levels" in str(result.value)


def test_json_at_the_depth_limit_and_within_length_is_read():
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert bounded(load_json, deep) is not None
    with pytest.raises(UnsafeJSON, match="more than the 10 allowed"):
        load_json("[1, 2, 3, 4]", max_chars=10)
    with pytest.raises(UnsafeJSON, match="not valid JSON"):
        load_json('{"a": ' + "9" * 5000 + "}")  # past Python's integer-string limit


@pytest.mark.parametrize(
    "data, reason",
    [
        (b'model = "\xff\xfe"', "not UTF-8 text \\(byte 9 is 0xff\\)"),
        (b"a = " + b"[" * 3000, "nested more than 64 levels deep"),
        (b"a = " + b"[" * 65 + b"]" * 65, "nested more than 64 levels deep"),
        (b"a = " + b"1" * 5000, "Exceeds the limit"),
        (b"[x\n", "not valid TOML"),
    ],
    ids=["latin-1", "unclosed deep", "closed deep", "5000 digits", "syntax"],
)
def test_toml_reader_refuses_with_a_reason(data, reason):
    result = bounded(lambda: pytest.raises(ValueError, load_toml, data))
    assert result.match(reason)


# --------------------------------------------------------------------------------------------
# unreadable metadata is a note, never fatal


@pytest.mark.parametrize(
    "field, text, note",
    [
        ("sdenhance", "[" * 100_000, "`sdenhance` JSON is unreadable (nested more than 64"),
        ("prompt", '{"1": ' * 5000, "`prompt` JSON is unreadable"),
        ("workflow", "{" + '"a": 1, ' * 10 + "oops", "`workflow` JSON is unreadable (not valid"),
        ("parameters", "a" + " " * 1_000_000, "`parameters` text (1,000,001 characters) is over"),
        ("Description", "x " * 200_000, "`Description` text (400,000 characters) is over"),
    ],
)
def test_unreadable_metadata_is_a_note_and_the_pixels_load(tmp_path, field, text, note):
    path = png_with(tmp_path / "a.png", **{field: text})
    loaded = bounded(load_image, path)
    assert loaded.size == (64, 48)
    assert any(note in n for n in loaded.notes), loaded.notes
    assert loaded.metadata.prompt is None
    assert bounded(read_metadata, path).source is None


def test_readable_fields_survive_an_unreadable_neighbour(tmp_path):
    params = "a lighthouse at dusk\nSteps: 20, Sampler: Euler a, Seed: 1"
    path = png_with(tmp_path / "a.png", sdenhance="[" * 5000, parameters=params)
    loaded = load_image(path)
    assert loaded.metadata.prompt == "a lighthouse at dusk"
    assert loaded.metadata.parameters["Seed"] == "1"


def test_a_failing_reader_leaves_empty_metadata_and_a_note(monkeypatch):
    import sdenhance.io.metadata as metadata

    def broken(im, meta, notes):
        raise RuntimeError("a bug in a reader")

    monkeypatch.setattr(metadata, "_read_fields", broken)
    notes: list[str] = []
    assert metadata_from_pil(astronaut(), notes) == ImageMetadata()
    assert notes == ["metadata: unreadable, ignored"]


def test_metadata_false_parses_nothing(tmp_path, monkeypatch):
    import sdenhance.io.load as load

    path = png_with(tmp_path / "a.png", parameters="a fox\nSteps: 2, Seed: 3, Sampler: Euler")
    calls = []
    monkeypatch.setattr(load, "metadata_from_pil", lambda *a: calls.append(a) or ImageMetadata())
    loaded = load_image(path, metadata=False)
    assert calls == [] and loaded.metadata == ImageMetadata() and loaded.notes == []
    load_image(path)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["upscale", "--no-input-prompt", "--creativity", "0", "--upscaler", "lanczos"],
        ["upscale", "--prompt", "a fox", "--creativity", "0", "--upscaler", "lanczos"],
        ["colorfix", "-r", "REF"],
        ["blend", "--original", "REF"],
    ],
    ids=["--no-input-prompt", "--prompt", "colorfix", "blend"],
)
def test_commands_that_use_no_input_prompt_do_not_parse_metadata(tmp_path, monkeypatch, args):
    import sdenhance.io.metadata as metadata

    path = png_with(tmp_path / "a.png", parameters="a fox\nSteps: 2, Seed: 3, Sampler: Euler")
    calls = []
    monkeypatch.setattr(metadata, "_read_fields", lambda *a: calls.append(a))
    argv = [args[0], str(path), *[str(path) if a == "REF" else a for a in args[1:]]]
    result = CliRunner().invoke(app, [*argv, "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    assert calls == []


# --------------------------------------------------------------------------------------------
# printing


def test_printable_escapes_controls_and_bidi_but_keeps_text():
    assert printable(ESCAPES) == (
        "x \\x1b]0;owned\\x07 \\x1b[31mred \\u202eevil\\u2066 \\x9b2J end"
    )
    kept = "Ünïcödé 🦊 prompt, [soft light], :3\n\tnext line 👨\u200d👩\u200d👧"
    assert printable(kept) == kept
    assert printable("a\nb", keep="") == "a\\x0ab"


def test_terminal_json_is_the_same_value_with_escapes():
    value = {"prompt": ESCAPES, "sep": "a\u2028b", "tag": "\U000e0041", "del": "\x7f"}
    text = terminal_json(value)
    assert json.loads(text) == value  # exact
    assert text.isascii() and "\x7f" not in text  # nothing a terminal would act on


def test_info_escapes_terminal_controls_and_json_stays_exact(tmp_path):
    path = png_with(tmp_path / "a.png", parameters=ESCAPES + "\nSteps: 20, Sampler: Euler")
    runner = CliRunner()
    text = runner.invoke(app, ["info", str(path)])
    assert text.exit_code == 0, text.output
    assert not any(c in text.stdout for c in "\x1b\x07\u202e\u2066\x9b")
    assert "prompt:   x \\x1b]0;owned\\x07 \\x1b[31mred \\u202eevil" in text.stdout
    as_json = runner.invoke(app, ["info", "--json", str(path)])
    assert json.loads(as_json.stdout)["prompt"] == ESCAPES


@pytest.mark.parametrize("name", ["p[b]q.png", "a[bold red]b[i].png", "[link=x]c:smile:.png"])
def test_file_names_with_markup_print_literally(tmp_path, name):
    astronaut().save(tmp_path / name, format="PNG")
    result = CliRunner().invoke(app, ["colorfix", str(tmp_path / name), "-r", str(tmp_path / name)])
    assert result.exit_code == 0, result.output
    stem = name[: -len(".png")]
    assert result.stdout.strip() == str(tmp_path / f"{stem}_colorfix.png")
    missing = CliRunner().invoke(app, ["info", str(tmp_path / ("no" + name))])
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"error: input not found: {tmp_path / ('no' + name)}"


def test_a_closing_tag_in_a_missing_name_is_printed_not_parsed(tmp_path):
    spec = str(tmp_path / "x[/]y.png")  # `[/]` closes nothing: Rich would raise MarkupError
    astronaut().save(tmp_path / "ref.png")
    result = CliRunner().invoke(app, ["colorfix", spec, "-r", str(tmp_path / "ref.png")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == f"error: no files match {spec}"


def test_error_line_is_one_line_whatever_the_name(tmp_path):
    name = tmp_path / "bad\nname\x1b[2J.png"
    result = CliRunner().invoke(app, ["info", str(name)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr
    assert result.stderr.startswith("error: input not found:") and "bad\\nname\\x1b[2J" in (
        result.stderr
    )


def test_library_warnings_and_records_become_debug_records():
    """In a real process: a warning, a library's log record and torch's notes print nothing
    unless --verbose; our own records still print."""
    code = (
        "import logging, warnings\n"
        "from sdenhance.cli.terminal import quiet_libraries\n"
        "quiet_libraries()\n"
        "warnings.warn('Corrupt EXIF data.  Expecting to read 4 bytes but only got 0.')\n"
        "logging.getLogger('tifffile').warning('<tifffile.TiffTag 270 @42> invalid value')\n"
        "logging.getLogger('PIL.TiffImagePlugin').error('bad IFD')\n"
        "logging.getLogger('sdenhance').warning('our own warning')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.strip() == "our own warning"


def test_corrupt_exif_prints_no_warning_in_a_real_process(tmp_path):
    """A JPEG whose EXIF directory claims more entries than it holds: Pillow warns "Corrupt
    EXIF data", the user sees nothing."""
    import struct

    ifd = struct.pack("<H", 5) + struct.pack("<HHI4s", 0x010E, 2, 4, b"abc\0")
    exif = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd
    astronaut().save(tmp_path / "a.jpg", exif=exif)
    with pytest.warns(UserWarning, match="Corrupt EXIF"):
        Image.open(tmp_path / "a.jpg").getexif()
    done = subprocess.run(
        [sys.executable, "-m", "sdenhance", "info", str(tmp_path / "a.jpg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stderr == ""


def test_record_text_tolerates_any_shape():
    from sdenhance.io.infotext import record_text

    for record in ({"steps": 5}, {"steps": "abc"}, {"steps": [{"options": [1, 2]}]}, {}):
        assert record_text(record, "prompt") is None
    assert record_text({"steps": [{"options": {"prompt": "a fox"}}]}, "prompt") == "a fox"
