"""Recipes: parsing, `$var`s, `--set`, errors with file/step/key/fix, runs on tiny models, re-runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.io.load import read_metadata
from sdenhance.recipes import Recipe, list_recipes, load_recipe, parse_sets, run_recipe

EXAMPLES_IMAGE = Path(__file__).resolve().parent.parent / "examples" / "images" / "chelsea.png"
BUNDLED = ["midjourney-4x", "portrait-restore", "old-photo", "landscape-creative", "text-crisp"]
# tiny settings for every step that has them (bare `--set` keys)
TINY = {"steps": "2", "upscaler": "lanczos", "tile": "64", "overlap": "16", "vae_tile": "128"}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]


def write(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def photo_file(path, size=(64, 48), seed=0, parameters: str | None = None):
    arr = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    info = None
    if parameters is not None:
        info = PngInfo()
        info.add_text("parameters", parameters)
    Image.fromarray(arr).save(path, pnginfo=info)
    return path


def pixels(path):
    return np.asarray(Image.open(path))


SAMPLE = """
description = "two steps"
[vars]
creativity = 0.3
[[steps]]
stage = "upscale"
options = { scale = 2, creativity = "$creativity", prompt = "$prompt, detailed" }
[[steps]]
stage = "blend"
options = { opacity = 0.7 }
"""


# ---------------------------------------------------------------------------------------------
# parsing and resolving (no models)


def test_every_bundled_recipe_validates_and_is_listed():
    found = {r.name: (r, s) for r, s in list_recipes()}
    assert set(BUNDLED) <= set(found)
    for name in BUNDLED:
        recipe, source = found[name]
        assert source == "bundled" and recipe.description
        steps = recipe.validate(TINY)
        assert [s.index for s in steps] == list(range(1, len(recipe.steps) + 1))
    mj = load_recipe("midjourney-4x").validate()
    assert [s.stage for s in mj] == ["upscale", "upscale", "colorfix"]
    assert mj[0].options.creativity > mj[1].options.creativity  # decaying creativity
    portrait = load_recipe("portrait-restore").validate()
    assert [s.stage for s in portrait] == ["denoise", "upscale", "facefix"] and portrait[
        1
    ].options.blend == 0.8
    assert portrait[2].options.strength == 0.3 and portrait[2].options.blend == 0.85  # the preset's


def test_variables_placeholders_and_set_grammar(tmp_path):
    recipe = load_recipe(write(tmp_path, "two", SAMPLE))
    assert recipe.name == "two" and recipe.variables() == {"creativity": [1], "prompt": [1]}
    steps = recipe.validate({"prompt": "a fox"})
    assert steps[0].options.creativity == 0.3 and steps[0].options.prompt == "a fox, detailed"
    assert steps[0].options.scale == 2.0 and isinstance(steps[0].options.scale, float)
    # an empty prompt leaves no stray comma
    assert recipe.validate({"prompt": ""})[0].options.prompt == "detailed"
    # var, bare option on every step that has it, stage.option, N.option; later kinds win
    steps = recipe.validate(
        parse_sets(
            [
                "prompt=x",
                "creativity=0.5",
                "steps=3",
                "upscale.steps=4",
                "1.guidance=2",
                "2.opacity=0.25",
                "tile=64",
                "overlap=16",
                "width=none",
            ]
        )
    )
    up, blend = steps[0].options, steps[1].options
    assert (up.creativity, up.steps, up.guidance, up.tile, up.width) == (0.5, 4, 2.0, 64, None)
    with pytest.raises(
        SdenhanceError, match=r"two.toml: step 1 \(upscale\): `overlap` must be smaller"
    ):
        recipe.validate({"prompt": "", "tile": "64"})
    assert blend.opacity == 0.25
    assert (
        recipe.validate(["prompt=x", "1.creativity=0.9", "creativity=0.1"])[0].options.creativity
        == 0.9
    )
    # text options keep text from --set as written (no TOML reading)
    assert recipe.validate({"prompt": "true"})[0].options.prompt == "true, detailed"


def test_braced_and_escaped_placeholders(tmp_path):
    recipe = load_recipe(
        write(
            tmp_path,
            "esc",
            """
[vars]
subject = "fox"
[[steps]]
stage = "img2img"
options = { prompt = "${subject}s cost $$5", strength = 0.2 }
""",
        )
    )
    assert recipe.validate()[0].options.prompt == "foxs cost $5"


@pytest.mark.parametrize(
    "text,sets,words",
    [
        # unknown stage, at load
        (
            '[[steps]]\nstage = "upscal"\n',
            [],
            ["step 1", "unknown stage `upscal`", "did you mean `upscale`"],
        ),
        # typo'd option key inside a step
        (
            '[[steps]]\nstage = "blend"\noptions = { opacity = 1 }\n[[steps]]\nstage = "upscale"\noptions = { creativty = 0.3 }\n',
            [],
            ["step 2 (upscale)", "unknown option `creativty`", "did you mean `creativity`"],
        ),
        # typo'd key of a step table, and of the file
        (
            '[[steps]]\nstage = "blend"\noption = { opacity = 1 }\n',
            [],
            ["step 1", "unknown key `option`", "did you mean `options`"],
        ),
        ('[[step]]\nstage = "blend"\n', [], ["unknown key `step`", "did you mean `steps`"]),
        ('description = "x"\n', [], ["no steps", "[[steps]]"]),
        # missing variables: all of them at once
        (
            '[[steps]]\nstage = "upscale"\noptions = { creativity = "$c", prompt = "$p, $q" }\n',
            [],
            [
                "missing variables `c`, `p`, `q`",
                "--set c=VALUE --set p=VALUE --set q=VALUE",
                "[vars]",
            ],
        ),
        # wrong type and out of bounds, after substitution
        (
            '[vars]\nc = "high"\n[[steps]]\nstage = "upscale"\noptions = { creativity = "$c" }\n',
            [],
            ["step 1 (upscale)", "`creativity` must be a number", "'high'"],
        ),
        (
            '[[steps]]\nstage = "upscale"\noptions = { creativity = 0.3 }\n',
            ["creativity=7"],
            ["step 1 (upscale)", "`creativity` must be ≥ 0.0 and ≤ 1.0", "7"],
        ),
        # bad --set keys
        (
            '[[steps]]\nstage = "upscale"\n',
            ["creativty=0.3"],
            ["`--set creativty`", "did you mean `creativity`"],
        ),
        (
            '[[steps]]\nstage = "upscale"\n',
            ["3.blend=1"],
            ["`--set 3.blend`", "no step 3", "1 to 1"],
        ),
        (
            '[[steps]]\nstage = "upscale"\n',
            ["upscale.blnd=1"],
            ["step 1 (upscale) has no option `blnd`", "did you mean `blend`"],
        ),
        (
            '[[steps]]\nstage = "upscale"\n',
            ["blend.opacity=1"],
            ["no `blend` step", "steps are: upscale"],
        ),
        (
            '[[steps]]\nstage = "upscale"\npreset = "portait"\n',
            [],
            ["step 1 (upscale)", "unknown preset `portait`"],
        ),
        (
            '[[steps]]\nstage = "denoise"\npreset = "portrait"\n',
            [],
            ["step 1 (denoise)", "cannot apply"],
        ),
    ],
)
def test_recipe_errors_name_file_step_key_and_fix(tmp_path, text, sets, words):
    path = write(tmp_path, "bad", text)
    with pytest.raises(SdenhanceError) as info:
        load_recipe(path).validate(sets)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message, message


def test_set_needs_key_equals_value():
    with pytest.raises(SdenhanceError, match=r"`--set creativity`: use KEY=VALUE"):
        parse_sets(["creativity"])
    assert parse_sets(["a=1", "prompt=x=y", "a=2"]) == {"a": "2", "prompt": "x=y"}


def test_user_recipes_shadow_bundled_and_unknown_names_suggest(user_home):
    write(user_home / "pipelines", "text-crisp", '[[steps]]\nstage = "denoise"\n')
    found = {r.name: s for r, s in list_recipes()}
    assert found["text-crisp"] == "user" and load_recipe("text-crisp").steps[0].stage == "denoise"
    with pytest.raises(SdenhanceError, match="unknown recipe `old-foto`; did you mean `old-photo`"):
        load_recipe("old-foto")


def test_from_record_rebuilds_steps():
    record = {"steps": [{"stage": "blend", "options": {"opacity": 0.5}}], "recipe": "mine"}
    recipe = Recipe.from_record(record, "out.png")
    assert recipe.name == "mine" and recipe.validate()[0].options.opacity == 0.5
    with pytest.raises(SdenhanceError, match="out.png: its sdenhance metadata lists no steps"):
        Recipe.from_record({}, "out.png")
    with pytest.raises(SdenhanceError, match="unknown stage `warp`"):
        Recipe.from_record({"steps": [{"stage": "warp"}]}, "out.png")


# ---------------------------------------------------------------------------------------------
# CLI errors: exit 2 before any model loads


@pytest.mark.parametrize(
    "text,sets,words",
    [
        (
            '[[steps]]\nstage = "upscale"\noptions = { creativty = 0.3 }\n',
            [],
            ["step 1 (upscale)", "`creativty`", "did you mean `creativity`"],
        ),
        (
            '[[steps]]\nstage = "sharpen"\n',
            [],
            ["step 1", "unknown stage `sharpen`", "stages are:"],
        ),
        (
            '[[steps]]\nstage = "upscale"\noptions = { prompt = "$subject" }\n',
            [],
            ["missing variable `subject`", "--set subject=VALUE"],
        ),
        (
            '[[steps]]\nstage = "upscale"\n',
            ["--set", "2.blend=0.8"],
            ["`--set 2.blend`", "no step 2"],
        ),
    ],
)
def test_cli_run_bad_recipe_exits_2_before_loading(tmp_path, text, sets, words):
    path = write(tmp_path, "bad", text)
    src = photo_file(tmp_path / "in.png")
    result = CliRunner().invoke(
        app, ["run", str(path), str(src), "--model", "nobody/missing", *sets]
    )
    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr and "not found" not in result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "in_bad.png").exists()


def test_cli_lists_and_shows_recipes():
    runner = CliRunner()
    listed = runner.invoke(app, ["recipes"])
    assert listed.exit_code == 0
    for name in BUNDLED:
        assert name in listed.stdout
    shown = runner.invoke(app, ["recipes", "midjourney-4x"])
    assert (
        shown.exit_code == 0 and "creativity_final" in shown.stdout and "colorfix" in shown.stdout
    )
    as_json = runner.invoke(app, ["recipes", "portrait-restore", "--json"])
    assert as_json.exit_code == 0 and '"stage": "denoise"' in as_json.stdout
    assert runner.invoke(app, ["recipes", "nope"]).exit_code == 2
    not_toml = runner.invoke(app, ["recipes", str(EXAMPLES_IMAGE)])
    assert not_toml.exit_code == 2 and "is not a recipe" in not_toml.stderr
    assert "--set" in runner.invoke(app, ["run", "--help"]).stdout


# ---------------------------------------------------------------------------------------------
# running on tiny models


def test_every_bundled_recipe_runs_on_the_tiny_model(models):
    image = Image.fromarray((np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8))
    enhancer = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"], seed=2)
    sizes = {}
    for name in BUNDLED:
        out = run_recipe(name, image, enhancer=enhancer, overrides=TINY)
        sizes[name] = out.size
        record = enhancer.last_record
        assert record["recipe"] == name
        assert [s["stage"] for s in record["steps"]] == [s.stage for s in load_recipe(name).steps]
        # the steps did work: the result is not the input merely resampled
        plain = np.asarray(image.resize(out.size, Image.Resampling.LANCZOS), dtype=np.int16)
        assert np.abs(np.asarray(out.convert("RGB"), dtype=np.int16) - plain).mean() > 0.5, name
    # the same seed gives the same pixels, step by step as in one call
    again = run_recipe("midjourney-4x", image, enhancer=enhancer, overrides=TINY)
    first = run_recipe("midjourney-4x", image, enhancer=enhancer, overrides=TINY)
    assert np.array_equal(np.asarray(again), np.asarray(first))
    assert sizes["midjourney-4x"] == (256, 192)
    assert all(sizes[n] == (128, 96) for n in BUNDLED if n != "midjourney-4x")


def test_run_recipe_keeps_the_original_and_alpha(models):
    rgba = Image.new("RGBA", (64, 48), (40, 90, 160, 255))
    a = np.asarray(rgba).copy()
    a[:, :20, 3] = 0
    recipe = load_recipe("text-crisp")
    out = run_recipe(
        recipe,
        Image.fromarray(a),
        enhancer=Enhancer(models["sd15"], controlnet=models["sd15-controlnet"], seed=0),
        overrides={**TINY, "1.creativity": "0"},
    )
    assert out.mode == "RGBA" and out.size == (128, 96)
    assert np.asarray(out)[:, :30, 3].max() <= 8


def test_cli_run_batch_and_reproduce_from_metadata(models, tmp_path):
    src = photo_file(tmp_path / "cat.png")
    runner = CliRunner()
    model_args = ["--model", models["sd15"], "--controlnet", models["sd15-controlnet"]]
    first = runner.invoke(
        app,
        [
            "upscale",
            str(src),
            *model_args,
            "--scale",
            "2",
            "--creativity",
            "0.5",
            "--steps",
            "2",
            "--upscaler",
            "lanczos",
            "--tile",
            "64",
            "--overlap",
            "16",
            "--seed",
            "7",
        ],
    )
    assert first.exit_code == 0, first.output
    made = tmp_path / "cat_upscale.png"
    record = read_metadata(made).sdenhance
    assert record["seed"] == 7 and record["input"]["name"] == "cat.png"
    # same steps, seed and models from the metadata -> the same pixels
    again = runner.invoke(
        app, ["run", "--from", str(made), str(src), "-o", str(tmp_path / "again.png")]
    )
    assert again.exit_code == 0, again.output
    assert np.array_equal(pixels(made), pixels(tmp_path / "again.png"))
    # without an input, the original named in the record is found beside the output
    beside = runner.invoke(app, ["run", "--from", str(made)])
    assert beside.exit_code == 0, beside.output
    assert np.array_equal(pixels(made), pixels(tmp_path / "cat_rerun.png"))
    # a different seed differs
    other = runner.invoke(
        app,
        ["run", "--from", str(made), str(src), "--seed", "8", "-o", str(tmp_path / "other.png")],
    )
    assert other.exit_code == 0 and not np.array_equal(pixels(made), pixels(tmp_path / "other.png"))
    # only sdenhance outputs can be re-run
    nometa = runner.invoke(app, ["run", "--from", str(src)])
    assert nometa.exit_code == 2 and "no sdenhance metadata" in nometa.stderr


def test_cli_run_recipe_offers_the_input_prompt(models, tmp_path):
    src = photo_file(
        tmp_path / "fox.png",
        parameters="a red fox in the snow\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1",
    )
    runner = CliRunner()
    args = [
        "run",
        "portrait-restore",
        str(src),
        "--model",
        models["sd15"],
        "--controlnet",
        models["sd15-controlnet"],
        "--seed",
        "1",
        *TINY_ARGS,
    ]
    used = runner.invoke(app, [*args, "-o", str(tmp_path / "used.png")])
    assert used.exit_code == 0, used.output
    record = read_metadata(tmp_path / "used.png").sdenhance
    assert record["steps"][1]["options"]["prompt"].startswith(
        "a red fox in the snow, portrait photo"
    )
    assert record["prompt_source"] == "a1111" and record["recipe"] == "portrait-restore"
    off = runner.invoke(app, [*args, "--no-input-prompt", "-o", str(tmp_path / "off.png")])
    assert off.exit_code == 0, off.output
    assert (
        "fox" not in read_metadata(tmp_path / "off.png").sdenhance["steps"][1]["options"]["prompt"]
    )
    mine = runner.invoke(app, [*args, "--set", "prompt=a cat", "-o", str(tmp_path / "mine.png")])
    assert mine.exit_code == 0, mine.output
    assert (
        read_metadata(tmp_path / "mine.png")
        .sdenhance["steps"][1]["options"]["prompt"]
        .startswith("a cat, portrait")
    )
