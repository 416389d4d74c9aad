"""Re-run records, option values and config files: untrusted, checked before anything runs.

A run record travels inside an image anyone can edit; `--set` values and `config.toml` come
from users. Each is checked as strictly as a recipe: known keys only, every value of its type
and within bounds, sizes within the pixel limit, and names that cannot become paths.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
import skimage
from bounded import bounded
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.errors import SdenhanceError
from sdenhance.io import limits
from sdenhance.options import MAX_TEXT
from sdenhance.recipes import Recipe
from sdenhance.rerun import parse_record
from sdenhance.stages import STAGES, build_options, get_stage
from sdenhance.upscalers.upscale import check_budget, upscale

GOOD = {
    "version": "0.1.0",
    "steps": [{"stage": "colorfix", "options": {"method": "lab"}}],
    "seed": 3,
    "models": {"dtype": "float32"},
    "input": {"name": "a.png", "sha256": "0123456789abcdef"},
    "size_in": [64, 48],
    "size_out": [64, 48],
}


def astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).crop((100, 60, 164, 108))


def with_record(path: Path, record: dict) -> Path:
    info = PngInfo()
    info.add_text("sdenhance", json.dumps(record))
    astronaut().save(path, pnginfo=info)
    return path


# --------------------------------------------------------------------------------------------
# run records

BAD_RECORDS = {
    "input a relative path": (
        {"input": {"name": "../x/photo.png"}},
        "`input.name`: the input must be a bare file name",
    ),
    "input an absolute path": (
        {"input": {"name": "/etc/passwd"}},
        "`input.name`: the input must be a bare file name",
    ),
    "input '..'": ({"input": {"name": ".."}}, "bare file name"),
    "input a number": ({"input": {"name": 7}}, "`input.name`: Input should be a valid string"),
    "options a list": (
        {"steps": [{"stage": "blend", "options": [["opacity", 1]]}]},
        "`steps.1.options`: Input should be a valid dictionary",
    ),
    "options text": (
        {"steps": [{"stage": "blend", "options": "opacity=1"}]},
        "`steps.1.options`: Input should be a valid dictionary",
    ),
    "step text": ({"steps": ["blend"]}, "`steps.1`: Input should be a valid dictionary"),
    "steps a table": ({"steps": {"stage": "blend"}}, "`steps`: Input should be a valid list"),
    "too many steps": (
        {"steps": [{"stage": "blend"}] * 33},
        "`steps`: List should have at most 32 items",
    ),
    "seed 2^32": ({"seed": 2**32}, "`seed`: Input should be less than 4294967296"),
    "seed negative": ({"seed": -1}, "`seed`: Input should be greater than or equal to 0"),
    "seed text": ({"seed": "7"}, "`seed`: Input should be a valid integer"),
    "seed true": ({"seed": True}, "`seed`: Input should be a valid integer"),
    "size over the limit": (
        {"size_out": [30000, 30000]},
        "`size_out`: 30000×30000 is over the limit of 400 MP",
    ),
    "size side too long": (
        {"size_in": [70000, 1]},
        "`size_in.1`: Input should be less than or equal to 65535",
    ),
    "size of three": ({"size_in": [1, 2, 3]}, "`size_in`: List should have at most 2 items"),
    "unknown key": ({"exec": "rm -rf /"}, "unknown key `exec`"),
    "unknown step key": ({"steps": [{"stage": "blend", "run": 1}]}, "unknown key `steps.1.run`"),
    "unknown input key": ({"input": {"name": "a.png", "path": "/x"}}, "unknown key `input.path`"),
    "dtype": ({"models": {"dtype": "float64"}}, "`models`: `dtype` must be one of float32"),
    "model a table of tables": ({"models": {"model": {"spec": {"x": 1}}}}, "`models.model"),
    "prompt too long": (
        {"prompt": "x" * (MAX_TEXT + 1)},
        "`prompt`: String should have at most 65536 characters",
    ),
}


@pytest.mark.parametrize("change, message", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_records_are_one_line_naming_the_field(change, message):
    error = bounded(parse_record, {**GOOD, **change}, "out.png")
    assert isinstance(error, SdenhanceError)
    assert str(error).startswith("out.png: its sdenhance metadata ")
    assert message in str(error)


def test_a_good_record_parses_and_its_options_are_checked_like_a_recipe():
    record = parse_record(GOOD, "out.png")
    assert record.seed == 3 and record.input.name == "a.png"
    assert Recipe.from_record(record, "out.png").validate()[0].options.method == "lab"
    bad_option = {**GOOD, "steps": [{"stage": "resize", "options": {"scale": 1e308}}]}
    with pytest.raises(
        SdenhanceError, match="step 1 \\(resize\\): `scale` must be > 0.0 and ≤ 64.0"
    ):
        Recipe.from_record(bad_option, "out.png").validate()
    huge = {**GOOD, "steps": [{"stage": "resize", "options": {"width": 30000, "height": 30000}}]}
    with pytest.raises(SdenhanceError, match="output 30000×30000 is over the limit of 400 MP"):
        Recipe.from_record(huge, "out.png").validate()  # before any image is read


def test_run_from_reads_and_writes_only_beside_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "x").mkdir()
    astronaut().save(tmp_path / "x" / "photo.png")
    runner = CliRunner()
    for name in ("../x/photo.png", str(tmp_path / "x" / "photo.png")):
        made = with_record(tmp_path / "sub" / "made.png", {**GOOD, "input": {"name": name}})
        result = runner.invoke(app, ["run", "--from", str(made)])
        assert result.exit_code == 2 and "must be a bare file name" in result.stderr
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["photo.png"]
    # a bare name that is not beside the output is not looked for elsewhere (here: the cwd)
    astronaut().save(tmp_path / "a.png")
    made = with_record(tmp_path / "sub" / "made.png", GOOD)
    result = runner.invoke(app, ["run", "--from", str(made)])
    assert (
        result.exit_code == 2
        and "give the original input (a.png is not beside it)" in result.stderr
    )
    astronaut().save(tmp_path / "sub" / "a.png")
    result = runner.invoke(app, ["run", "--from", str(made)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "sub" / "a_rerun.png")


# --------------------------------------------------------------------------------------------
# every number bounded


def _numeric_fields():
    for stage in STAGES:
        cls = get_stage(stage).Options
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
            if kinds & {int, float} and f.metadata.get("choices") is None:
                yield stage, f


@pytest.mark.parametrize(
    "stage, field", list(_numeric_fields()), ids=lambda v: getattr(v, "name", v)
)
def test_every_numeric_option_has_both_bounds(stage, field):
    meta = field.metadata
    assert meta.get("ge") is not None or meta.get("gt") is not None
    assert meta.get("le") is not None or meta.get("lt") is not None
    for value in (10**5000, -(10**5000), 1e308, float("inf"), float("nan")):
        error = bounded(build_options, stage, {field.name: value})
        assert isinstance(error, SdenhanceError), (field.name, value)
        assert len(str(error)) < 300


SETS = {
    "5000 digits": "1" * 5000,
    "1e308": "1e308",
    "10^20": "10^20",
    "10**400": str(10**400),
    "-10**400": str(-(10**400)),
    "deep list": "[" * 3000,
    "closed deep list": "[" * 500 + "]" * 500,
    "two values": "1\nsteps = 2",
    "inline table": "{a = {b = {c = 1}}}",
    "huge text": "x" * 100_000,
    "nan": "nan",
    "inf": "inf",
}


@pytest.mark.parametrize("value", SETS.values(), ids=SETS.keys())
@pytest.mark.parametrize("key", ["scale", "resize.width", "1.height", "upscaler"])
def test_set_values_are_user_errors(tmp_path, key, value):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[steps]]\nstage = "resize"\noptions = { scale = 2 }\n')
    from sdenhance.recipes import load_recipe

    error = bounded(load_recipe(recipe).validate, [f"{key}={value}"])
    assert isinstance(error, SdenhanceError), error
    assert len(str(error)) - len(str(recipe)) < 300


def test_text_options_are_bounded():
    error = bounded(build_options, "upscale", {"prompt": "a fox, " * 20_000})
    assert str(error) == "upscale: `prompt` is 140,000 characters long; the limit is 65,536"


# --------------------------------------------------------------------------------------------
# output sizes and memory before the work


def test_resize_to_a_size_over_the_limit_is_refused_before_any_pixel(tmp_path):
    error = bounded(lambda: upscale(astronaut(), size=(30000, 30000), upscaler="lanczos"))
    assert str(error).startswith("output 30000×30000 is over the limit of 400 MP")
    with pytest.raises(SdenhanceError, match="over the limit of 400 MP"):
        build_options("resize", {"width": 20001, "height": 20000})
    build_options("resize", {"width": 20000, "height": 20000})  # the limit itself is allowed


def test_a_job_that_cannot_fit_in_free_memory_is_refused_with_the_numbers(monkeypatch):
    monkeypatch.setattr(limits, "free_memory", lambda: 8 * 2**30)
    with pytest.raises(SdenhanceError) as caught:
        check_budget((1000, 1000), (20000, 20000), [], None)  # 400 MP: the size limit itself
    assert str(caught.value) == (
        "upscaling to 20000×20000 needs about 14.9 GiB of memory but 8.0 GiB is free "
        "(use a smaller scale, or upscale in two passes)"
    )
    monkeypatch.setattr(limits, "free_memory", lambda: 64 * 2**30)
    check_budget((1000, 1000), (20000, 20000), [], None)
    # a model pass that overshoots the target counts at its own size
    with pytest.raises(SdenhanceError, match="needs about 59.9 GiB"):
        check_budget((5000, 5000), (19000, 19000), [(20000, 20000)] * 1 + [(40000, 40000)], None)
    monkeypatch.setattr(limits, "free_memory", lambda: 2**20)
    error = bounded(lambda: upscale(astronaut(), 4.0, upscaler="lanczos"))
    assert str(error).startswith("upscaling to 256×192 needs about 2 MiB of memory but 1 MiB is")


# --------------------------------------------------------------------------------------------
# config files

CONFIGS = {
    "model a number": (
        b"model = 3\n",
        "`model` must be text (a hub id, diffusers folder or .safetensors file); got 3",
    ),
    "controlnet a table": (b"[controlnet]\nx = 1\n", "`controlnet` must be text"),
    "device a list": (b'device = ["cpu"]\n', "`device` must be text"),
    "device unknown": (
        b'device = "tpu"\n',
        "`device` must be auto, cpu, cuda, cuda:N or mps; got 'tpu'",
    ),
    "dtype unknown": (b'dtype = "fp8"\n', "`dtype` must be one of auto, fp32, fp16, bf16"),
    "empty model": (b'model = ""\n', "`model` must be text"),
    "latin-1": (b'model = "caf\xe9"\n', "not UTF-8 text (byte 12 is 0xe9)"),
    "utf-16": ('model = "x"\n'.encode("utf-16"), "not UTF-8 text (byte 0 is 0xff)"),
    "unknown key": (b'modle = "x"\n', "unknown key `modle`; allowed: controlnet, device, dtype"),
    "syntax": (b"model = \n", "not valid TOML (Invalid value (at line 1, column 9))"),
    "deep": (b"model = " + b"[" * 2000, "nested more than 64 levels deep"),
    "5000 digits": (b"model = " + b"9" * 5000, "not valid TOML (Exceeds the limit"),
}


@pytest.mark.parametrize("data, message", CONFIGS.values(), ids=CONFIGS.keys())
def test_config_errors_name_the_key_and_the_file_before_any_work(
    tmp_path, monkeypatch, data, message
):
    config = tmp_path / "config.toml"
    config.write_bytes(data)
    monkeypatch.setenv("SDENHANCE_CONFIG", str(config))
    astronaut().save(tmp_path / "a.png")
    result = CliRunner().invoke(
        app, ["upscale", str(tmp_path / "a.png"), "--creativity", "0", "--upscaler", "lanczos"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: config file {config}: ")
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "a_upscale.png").exists()


def test_a_config_that_is_a_fifo_is_refused_not_read(tmp_path, monkeypatch):
    import os

    os.mkfifo(tmp_path / "config.toml")
    monkeypatch.setenv("SDENHANCE_CONFIG", str(tmp_path / "config.toml"))
    from sdenhance.models.config import user_defaults

    error = bounded(user_defaults)
    assert (
        str(error)
        == f"config file {tmp_path / 'config.toml'} is a FIFO (named pipe), not a TOML file; refused"
    )


def test_a_good_config_is_still_read(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('model = "org/model"\ndevice = "cuda:1"\ndtype = "bf16"\n')
    monkeypatch.setenv("SDENHANCE_CONFIG", str(config))
    from sdenhance.models.config import user_defaults

    assert user_defaults() == {"model": "org/model", "device": "cuda:1", "dtype": "bf16"}
