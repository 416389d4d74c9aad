"""Property-based fuzzing of untrusted text: metadata chunks, re-run records, `--set` values,
output templates and config files.

Each case runs through `bounded`: it may succeed or raise a one-line `SdenhanceError`, and it
must finish within a second and allocate less than 64 MB. The strategies build text from the
pieces the parsers react to (separators, quotes, brackets, tags, escapes, control and bidi
characters), repeated into long runs, and JSON from real structures mutated in type and depth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage
from bounded import bounded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.metadata import ImageMetadata, metadata_from_pil
from sdenhance.io.safe_text import terminal_json

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

PIECES = [
    " ",
    "\t",
    "\n",
    "\r",
    ",",
    ":",
    ": ",
    ", ",
    '"',
    "\\",
    '\\"',
    "[",
    "]",
    "{",
    "}",
    "Steps: ",
    "Negative prompt: ",
    "Sampler: ",
    "Size: 512x512",
    "--ar 3:2 ",
    "--no ",
    "-- ",
    "Job ID: ",
    "0a1b2c3d-4e5f",
    "<dc:description>",
    "<rdf:li",
    ">",
    "</rdf:li>",
    "&amp;",
    "\x1b[31m",
    "\x1b]0;t\x07",
    "\u202e",
    "\u2066",
    "\x00",
    "\x7f",
    "\x9b",
    "é",
    "🦊",
    "1e308",
    "9" * 50,
    "null",
    "true",
    "a",
    "word ",
]


# what a run repeats: the units the parsers' old patterns went quadratic on, and more
UNITS = [
    " ",
    "a",
    "a ",
    ", ",
    ":",
    "a:",
    '"',
    "\\",
    "[",
    "{",
    '{"a":',
    "k: [",
    'k: "',
    "\n",
    "<dc:description>",
    "<rdf:li",
    "Job ID:",
    "Job ID: ",
    "--a ",
    "-- ",
    "\x1b[",
    "\u202e",
]


@st.composite
def hostile_text(draw) -> str:
    """A few pieces, a run of one unit repeated up to 60,000 times, a few more pieces."""
    head = "".join(draw(st.lists(st.sampled_from(PIECES), max_size=4)))
    unit = "".join(draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=2)))
    times = draw(st.sampled_from([1, 100, 60_000]))
    tail = "".join(draw(st.lists(st.sampled_from(PIECES), max_size=4)))
    return (head + unit * times + tail)[:300_000]


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def json_text(draw) -> str:
    """Valid JSON, JSON nested far too deep, or hostile text that starts like JSON."""
    kind = draw(st.sampled_from(["value", "deep", "text"]))
    if kind == "value":
        return json.dumps(draw(JSON))
    if kind == "deep":
        depth = draw(st.integers(1, 100_000))
        return draw(st.sampled_from(["[", '{"a":'])) * depth + draw(st.sampled_from(["", "1"]))
    return "{" + draw(hostile_text())


def astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).crop((100, 60, 164, 108))


BASE = astronaut()


# --------------------------------------------------------------------------------------------
# metadata chunks


def _read_and_print(info: dict) -> None:
    """What `load_image` and `info` do with metadata: read it, make the JSON, print it."""
    im = BASE.copy()
    im.info.update(info)
    notes: list[str] = []
    meta = metadata_from_pil(im, notes)
    assert isinstance(meta, ImageMetadata)
    assert notes != ["metadata: unreadable, ignored"], "a reader failed on this input"
    text = terminal_json({**meta.to_dict(), "notes": notes}, default=str)
    assert json.loads(text)["notes"] == notes


@settings(FUZZ)
@given(
    info=st.dictionaries(
        st.sampled_from(["parameters", "Description", "comment"]), hostile_text(), min_size=1
    ),
    graphs=st.dictionaries(st.sampled_from(["sdenhance", "prompt", "workflow"]), json_text()),
    xmp=st.one_of(st.none(), hostile_text()),
)
def test_fuzzed_metadata_chunks(info, graphs, xmp):
    chunks = {**info, **graphs}
    if xmp is not None:
        chunks["xmp"] = xmp.encode("utf-8", "surrogatepass")
    bounded(_read_and_print, chunks)


COMFY_NODE = st.fixed_dictionaries(
    {"class_type": st.sampled_from(["KSampler", "CLIPTextEncode", "SamplerCustomAdvanced", "X"])},
    optional={
        "inputs": st.dictionaries(
            st.sampled_from(["positive", "negative", "text", "guider", "conditioning", "value"]),
            st.one_of(
                st.text(max_size=10), st.tuples(st.text(max_size=12), st.integers()).map(list), JSON
            ),
        )
    },
)


@settings(FUZZ)
@given(graph=st.dictionaries(st.one_of(st.text(max_size=12), st.just("1" * 5000)), COMFY_NODE))
def test_fuzzed_comfyui_graphs(graph):
    bounded(_read_and_print, {"prompt": json.dumps(graph)})


# --------------------------------------------------------------------------------------------
# re-run records

GOOD_RECORD = {
    "version": "0.1.0",
    "steps": [
        {"stage": "resize", "options": {"scale": 2.0, "upscaler": "lanczos"}},
        {"stage": "colorfix", "options": {"method": "lab", "strength": 0.5}},
    ],
    "seed": 7,
    "models": {"dtype": "float32", "model": "org/name"},
    "input": {"name": "a.png", "sha256": "0123456789abcdef"},
    "size_in": [64, 48],
    "size_out": [128, 96],
    "prompt": "a fox",
}
PATHS = [
    ("steps",),
    ("steps", 0),
    ("steps", 0, "options"),
    ("steps", 0, "options", "scale"),
    ("steps", 0, "stage"),
    ("steps", 1, "options", "method"),
    ("seed",),
    ("models",),
    ("models", "dtype"),
    ("input",),
    ("input", "name"),
    ("size_in",),
    ("size_out", 0),
    ("prompt",),
    ("evil",),
    ("steps", 0, "options", "width"),
    ("steps", 0, "extra"),
]
RECORD_VALUES = st.one_of(
    JSON,
    st.sampled_from(
        [
            2**32,
            -1,
            10**30,
            1e308,
            float("inf"),
            "../x.png",
            "/etc/passwd",
            "..",
            "",
            [30000, 30000],
            [0, 0],
            "x" * 100_000,
            [[[[[]]]]],
            {"stage": "resize"},
            "resize",
            "upscale",
            "$x",
        ]
    ),
)


def _set_in(record: dict, path: tuple, value) -> dict:
    node = record
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return record
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)
    ):
        node[path[-1]] = value
    return record


def _rerun(record) -> None:
    from sdenhance.recipes import Recipe

    recipe = Recipe.from_record(record, "out.png")
    recipe.validate()


@settings(FUZZ)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), RECORD_VALUES), min_size=1, max_size=4))
def test_fuzzed_rerun_records(changes):
    record = json.loads(json.dumps(GOOD_RECORD))
    for path, value in changes:
        record = _set_in(record, path, value)
    bounded(_rerun, record)


@settings(FUZZ)
@given(record=JSON)
def test_fuzzed_records_of_any_shape(record):
    bounded(_rerun, record)


# --------------------------------------------------------------------------------------------
# --set values

SET_KEYS = [
    "scale",
    "width",
    "resize.height",
    "1.upscaler",
    "2.strength",
    "method",
    "2.method",
    "nope",
    "3.x",
]
SET_VALUES = st.one_of(
    hostile_text(),
    st.sampled_from(
        ["1" * 5000, "1e308", "10^20", "-0", "nan", "inf", "[" * 3000, "1\nx = 2", '"lanczos"']
    ),
    st.integers().map(str),
    st.floats().map(repr),
)


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "two.toml"
    path.write_text(
        '[[steps]]\nstage = "resize"\noptions = { scale = 2 }\n'
        '[[steps]]\nstage = "colorfix"\noptions = { method = "lab" }\n'
    )
    return path


@settings(FUZZ)
@given(sets=st.lists(st.tuples(st.sampled_from(SET_KEYS), SET_VALUES), min_size=1, max_size=3))
def test_fuzzed_set_values(two_steps, sets):
    from sdenhance.recipes import load_recipe

    recipe = load_recipe(two_steps)
    bounded(recipe.validate, [f"{key}={value}" for key, value in sets])


# --------------------------------------------------------------------------------------------
# output templates

STEMS = ["..", ".", "...", "a/b", "a\\b", "\n", "x" * 300, "p[b]q", "{stem}", "%s", "é", ".hidden"]
TEMPLATE_PIECES = [
    "out/",
    "{stem}",
    "{op}",
    "{index}",
    "{ext}",
    "{seed}",
    "{scale}",
    "{",
    "}",
    "{{",
    "}}",
    "{stem:>9000000000}",
    "{stem!r}",
    "{index[0]}",
    "{stem.x}",
    "{nope}",
    "/",
    ".",
    "..png",
    ".png",
    "x" * 100,
    "\x00",
    "\n",
    "é",
]


@settings(FUZZ)
@given(
    pieces=st.lists(st.sampled_from(TEMPLATE_PIECES), min_size=1, max_size=8),
    stems=st.lists(st.sampled_from(STEMS), min_size=1, max_size=3),
)
def test_fuzzed_output_templates(pieces, stems):
    from sdenhance.batch import plan

    template = "".join(pieces)
    inputs = [Path("in") / f"{stem.replace('/', '_')}.png" for stem in stems]
    result = bounded(lambda: plan(inputs, template, "op", fields={"seed": 7, "scale": 2}))
    if isinstance(result, SdenhanceError):
        return
    literal_up = template.count("..")  # a `..` the user typed stays theirs; none is added
    for item in result:
        assert list(item.output.parts).count("..") <= literal_up
    assert len({item.output for item in result}) == len(result)  # never two inputs, one output


# --------------------------------------------------------------------------------------------
# config files

CONFIG_KEYS = [
    "model",
    "controlnet",
    "inpaint_model",
    "model_config",
    "device",
    "dtype",
    "modle",
    "[x]",
]
TOML_VALUES = [
    '"org/name"',
    '"cpu"',
    '"cuda:1"',
    '"bf16"',
    "3",
    "1e309",
    "true",
    "[]",
    '["a"]',
    "{}",
    "{a = 1}",
    '""',
    '"\\u0000"',
    "'x'",
    '"""a"""',
    "9" * 5000,
    "[" * 500,
    "nan",
    "inf",
]


@st.composite
def config_file(draw) -> bytes:
    kind = draw(st.sampled_from(["toml", "toml", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    lines = [
        f"{draw(st.sampled_from(CONFIG_KEYS))} = {draw(st.sampled_from(TOML_VALUES))}"
        for _ in range(draw(st.integers(0, 4)))
    ]
    text = "\n".join(lines) + "\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, "replace")


@settings(FUZZ)
@given(data=config_file())
def test_fuzzed_config_files(tmp_path, monkeypatch, data):
    from sdenhance.models.config import user_defaults

    config = tmp_path / "config.toml"
    config.write_bytes(data)
    monkeypatch.setenv("SDENHANCE_CONFIG", str(config))
    result = bounded(user_defaults)
    if isinstance(result, SdenhanceError):
        assert str(result).startswith(f"config file {config}")
    else:
        assert all(isinstance(v, str) and v.strip() for v in result.values())
