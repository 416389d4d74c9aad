"""Every stage command's options are its stage's `Options`: same names, help, bounds and defaults."""

from __future__ import annotations

import dataclasses
import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from sdenhance._version import __version__
from sdenhance.cli import app
from sdenhance.cli.stage_options import REPEATED
from sdenhance.stages import get_stage

COMMANDS = [
    "upscale", "img2img", "inpaint", "remove", "facefix", "colorfix", "blend", "denoise", "deblur",
    "expand",
]  # fmt: skip
runner = CliRunner()


def _help_text(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "4000", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    # undo Rich's box drawing and wrapping so sentences can be found whole
    return re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_option_with_its_help_bounds_and_default(command):
    text = _help_text(command)
    for field in dataclasses.fields(get_stage(command).Options):
        flag = REPEATED.get(field.name) or "--" + field.name.replace("_", "-")
        assert flag in text, f"{command}: {flag} missing from --help"
        words = " ".join(field.metadata["help"].split())
        assert words.rstrip(".") in text, f"{command} {flag}: help text differs from Options"
        meta = field.metadata
        if meta.get("choices"):
            assert "One of " + ", ".join(map(str, meta["choices"])) in text
        lo, hi = meta.get("ge", meta.get("gt")), meta.get("le", meta.get("lt"))
        if lo is not None and hi is not None:
            assert f"{lo:g}–{hi:g}" in text, f"{command} {flag}: range"
        elif lo is not None:
            assert f"{lo:g}" in text and ("≥" in text or ">" in text), f"{command} {flag}: lower"
        if meta.get("multiple_of"):
            assert f"a multiple of {meta['multiple_of']}" in text
        default = field.default
        if isinstance(default, bool):
            assert (
                f"{flag}/--no-{flag[2:]}" in get_command(app).commands[command].params[0].opts[0]
                or f"--no-{flag[2:]}" in text
            )
        elif default not in (None, "", ()):
            assert f"Default: {' '.join(str(default).split())}." in text, f"{command} {flag}"


@pytest.mark.parametrize("command", COMMANDS)
def test_no_option_is_declared_twice_and_cli_only_options_are_known(command):
    params = get_command(app).commands[command].params
    names = [p.name for p in params]
    assert len(names) == len(set(names))
    fields = {f.name for f in dataclasses.fields(get_stage(command).Options)}
    cli_only = set(names) - fields
    # what a command adds besides its stage options: inputs, roles, output and engine options
    allowed = {
        "inputs", "mask", "skip_unmasked", "reference", "original", "preset", "seed", "no_input_prompt", "output",
        "overwrite", "verbose", "model", "controlnet", "inpaint_model", "model_config",
        "allow_pickle", "vae", "device", "dtype", "offload", "vae_tiling", "attention_slicing",
        "format", "quality", "strip_metadata", "to_srgb",
    }  # fmt: skip
    assert cli_only <= allowed, cli_only - allowed


def test_a_preset_value_is_not_overridden_by_an_unset_flag(monkeypatch):
    """Flags default to "not given": only what the user typed reaches the options."""
    seen = {}
    import sdenhance.cli.upscale as up

    def fake_process(inputs, output, op, work, **kw):
        seen["opts"] = work

    real = up.build_options

    def spy(stage, values):
        seen["values"] = dict(values)
        return real(stage, values)

    monkeypatch.setattr(up.c, "process_images", fake_process)
    monkeypatch.setattr(up, "build_options", spy)
    result = runner.invoke(app, ["upscale", "x.png", "--creativity", "0.2"])
    assert result.exit_code == 0, result.output
    assert seen["values"] == {"creativity": 0.2}
    # a preset's color_match/creativity survive flags left unset; typed flags win
    result = runner.invoke(app, ["upscale", "x.png", "--preset", "portrait", "--steps", "7"])
    assert result.exit_code == 0, result.output
    from sdenhance.presets import load_preset

    expected = {**load_preset("portrait").defaults("upscale"), "steps": 7}
    assert seen["values"] == expected and expected["creativity"] != 0.35


def test_version_and_short_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"sdenhance {__version__}"
    short = runner.invoke(app, ["upscale", "-h"], env={"COLUMNS": "200"})
    assert short.exit_code == 0 and "--creativity" in short.output


def test_dtype_help_matches_the_engine():
    text = _help_text("upscale")
    assert "bf16 where they compute it natively" in text
