"""`enhance`: the plan's rules, its TOML, the CLI (dry run, JSON, runs, batches) and re-runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from skimage import data
from typer.testing import CliRunner

from sdenhance import Enhancer
from sdenhance.cli import app
from sdenhance.enhance.plan import OFFLINE, SAME_SIZE, plan, recipe_toml, target_size
from sdenhance.enhance.run import diagnose_image, make_plan
from sdenhance.io.load import read_metadata
from sdenhance.ops.deblur import estimate_psf, gaussian_psf
from sdenhance.ops.diagnose import FINDINGS
from sdenhance.recipes import Recipe, Step, load_recipe, parse_recipe

runner = CliRunner()


def save(path: Path, rgb: np.ndarray, parameters: str | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    Image.fromarray(rgb).save(path, pnginfo=info)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def blurred_photo(side: int = 160) -> np.ndarray:
    rgb = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    return np.clip(
        np.rint(cv2.filter2D(rgb.astype(np.float64), -1, gaussian_psf(1.6))), 0, 255
    ).astype(np.uint8)


# --- the plan's rules ---------------------------------------------------------------------------


def test_target_size_keeps_the_aspect_and_never_shrinks():
    assert target_size((400, 300), 2048) == (2048, 1536)
    assert target_size((300, 400), 1000) == (750, 1000)
    assert target_size((3000, 2000), 2048) is None


def test_offline_plan_for_a_small_clean_photo_is_real_esrgan_to_the_target():
    d = diagnose_image(data.chelsea())
    recipe = plan(d, target=1000)
    assert [(s.stage, dict(s.options)) for s in recipe.steps] == [
        ("resize", {"width": 1000, "height": 665, "upscaler": "realesrgan-x4plus"})
    ]


def test_offline_plan_deblurs_a_blurred_input_with_its_psf_in_the_options():
    rgb = blurred_photo()
    d = diagnose_image(rgb)
    assert d.present("blur")
    recipe = plan(d, target=640, psf=estimate_psf(rgb))
    assert [s.stage for s in recipe.steps] == ["deblur", "resize"]
    options = recipe.steps[0].options
    assert options["psf"] == "gaussian" and options["sigma"] == pytest.approx(1.6, abs=0.4)
    noisy = np.clip(
        data.chelsea() + np.random.default_rng(0).normal(0, 12, data.chelsea().shape), 0, 255
    )
    # Real-ESRGAN removes noise better than a denoise before it (measured): no denoise step
    assert [s.stage for s in plan(diagnose_image(noisy.astype(np.uint8)), target=1000).steps] == [
        "resize"
    ]
    assert OFFLINE.denoise_from is None and SAME_SIZE.denoise_from is not None


def test_motion_blur_is_deblurred_only_at_the_image_s_own_size():
    from sdenhance.ops.deblur import motion_psf

    shaken = cv2.filter2D(data.astronaut().astype(np.float64), -1, motion_psf(9, 150.0))
    rgb = np.clip(np.rint(shaken), 0, 255).astype(np.uint8)
    d, psf = diagnose_image(rgb), estimate_psf(rgb)
    assert psf.kind == "motion"
    # before Real-ESRGAN a motion deblur measured worse than none; at its own size, better
    assert [s.stage for s in plan(d, target=1024, psf=psf).steps] == ["resize"]
    assert [s.stage for s in plan(d, target=512, psf=psf).steps] == ["deblur"]


def test_an_image_already_at_the_target_is_cleaned_at_its_own_size():
    noisy = np.clip(
        data.coffee() + np.random.default_rng(1).normal(0, 10, data.coffee().shape), 0, 255
    )
    recipe = plan(diagnose_image(noisy.astype(np.uint8)), target=512)
    assert [s.stage for s in recipe.steps] == ["denoise"]
    assert recipe.steps[0].options["strength"] == pytest.approx(0.45, abs=0.1)
    assert [s.stage for s in plan(diagnose_image(data.coffee()), target=512).steps] == ["resize"]


def test_diffusion_plan_picks_the_preset_from_the_content():
    astronaut = diagnose_image(data.astronaut())
    steps = plan(astronaut, target=1024, diffusion=True).steps
    assert [(s.stage, s.preset) for s in steps] == [
        ("upscale", "portrait"),
        ("facefix", "portrait"),
    ]
    page = np.full((300, 400, 3), 250, np.uint8)
    for y in range(20, 280, 20):
        for x in range(20, 380, 14):
            cv2.rectangle(page, (x, y), (x + 2 + (x * 7 + y) % 6, y + 10), (10, 10, 10), 1)
    text = diagnose_image(page)
    assert text.present("text")
    assert plan(text, target=800, diffusion=True).steps[0].preset == "text"
    grey = diagnose_image(np.repeat(data.camera()[..., None], 3, 2))
    assert [(s.stage, s.preset) for s in plan(grey, target=1024, diffusion=True).steps] == [
        ("upscale", "old-photo"),
        ("colorfix", None),
    ]


def test_diffusion_plan_keeps_the_input_prompt():
    from sdenhance.io.metadata import ImageMetadata

    meta = ImageMetadata(parameters={"Prompt": "a fox in snow"}, raw_parameters="a fox in snow")
    d = diagnose_image(data.chelsea(), metadata=meta)
    steps = plan(d, target=900, diffusion=True, prompt=d["ai_generated"].detail["prompt"]).steps
    assert steps[0].preset == "midjourney-art"
    assert steps[0].options["prompt"].startswith("a fox in snow, masterpiece")


# --- the recipe TOML ----------------------------------------------------------------------------


def test_recipe_toml_round_trips_through_the_recipe_parser(tmp_path):
    odd = 'quote " back \\ slash\nnew line, tab\t, del \x7f, ünïcode 🦊'
    recipe = Recipe(
        "my-plan",
        (
            Step("denoise", {"strength": 0.25, "method": "nlmeans"}),
            Step("upscale", {"width": 640, "height": 480, "prompt": odd}, "portrait"),
            Step("blend", {"opacity": 1}),
        ),
        description="a test",
    )
    path = tmp_path / "my-plan.toml"
    path.write_text(recipe_toml(recipe), encoding="utf-8")
    again = parse_recipe(tomllib.loads(path.read_text(encoding="utf-8")), path)
    assert again.steps == recipe.steps and again.description == "a test"
    again.validate()


# --- the CLI ------------------------------------------------------------------------------------


def test_dry_run_json_names_every_finding_and_writes_nothing(tmp_path):
    src = save(tmp_path / "cat.png", data.chelsea())
    before = sorted(tmp_path.iterdir())
    result = runner.invoke(app, ["enhance", str(src), "--dry-run", "--json", "--target", "1200"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [f["name"] for f in doc["diagnosis"]["findings"]] == list(FINDINGS)
    for f in doc["diagnosis"]["findings"]:
        assert {"name", "value", "threshold", "present", "confidence"} <= set(f)
    assert doc["plan"] == [
        {
            "stage": "resize",
            "options": {"width": 1200, "height": 798, "upscaler": "realesrgan-x4plus"},
        }
    ]
    assert doc["mode"] == "offline"
    # the table and the recipe go to stderr, before anything runs
    assert (
        "finding" in result.stderr
        and "[[steps]]" in result.stderr
        and "not on this machine" in result.stderr
    )
    assert sorted(tmp_path.iterdir()) == before


def test_dry_run_with_a_tiny_diffusion_model_plans_diffusion(models, tmp_path):
    src = save(
        tmp_path / "her.png", cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    )
    result = runner.invoke(
        app,
        [
            "enhance",
            str(src),
            "--dry-run",
            "--json",
            "--target",
            "256",
            "--model",
            models["sd15"],
            "--controlnet",
            models["sd15-controlnet"],
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["mode"] == "diffusion"
    assert doc["plan"][0] == {
        "stage": "upscale",
        "preset": "portrait",
        "options": {"width": 256, "height": 256},
    }
    offline = runner.invoke(
        app,
        [
            "enhance",
            str(src),
            "--dry-run",
            "--json",
            "--target",
            "256",
            "--offline",
            "--model",
            models["sd15"],
            "--controlnet",
            models["sd15-controlnet"],
        ],
    )
    assert json.loads(offline.stdout)["mode"] == "offline"


def test_plan_runs_end_to_end_with_a_tiny_model(models, tmp_path):
    src = save(
        tmp_path / "cat.png", cv2.resize(data.chelsea(), (64, 43), interpolation=cv2.INTER_AREA)
    )
    enhancer = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"], seed=3)
    the_plan = enhancer.plan(src, target=96)
    assert the_plan.mode == "diffusion" and the_plan.recipe.steps[0].stage == "upscale"
    # the preset's full settings run: keep it small by overriding nothing but checking the size
    out = enhancer.enhance(src, target=96)
    assert out.size == (96, 65)
    record = enhancer.last_record
    assert record["enhance"]["mode"] == "diffusion"
    assert [s["stage"] for s in record["steps"]] == [s.stage for s in the_plan.recipe.steps]


def test_enhance_output_records_the_plan_and_run_from_reproduces_it(tmp_path):
    # at its target size already: cleaned in place (Real-ESRGAN's runs are tested elsewhere)
    src = save(tmp_path / "soft.png", blurred_photo(160))
    made = runner.invoke(app, ["enhance", str(src), "--offline", "--target", "160"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "soft_enhance.png"
    record = read_metadata(out).sdenhance
    assert [s["stage"] for s in record["steps"]] == ["deblur"]
    assert record["steps"][0]["options"]["sigma"] is not None  # the PSF is recorded, not re-read
    assert [f["name"] for f in record["enhance"]["diagnosis"]["findings"]] == list(FINDINGS)
    again = runner.invoke(
        app, ["run", "--from", str(out), str(src), "-o", str(tmp_path / "again.png")]
    )
    assert again.exit_code == 0, again.output
    assert np.array_equal(pixels(out), pixels(tmp_path / "again.png"))


def test_saved_recipe_runs_to_the_same_pixels(tmp_path):
    src = save(tmp_path / "soft.png", blurred_photo(120))
    recipe = tmp_path / "plans" / "{stem}-plan.toml"
    made = runner.invoke(
        app, ["enhance", str(src), "--offline", "--target", "120", "--save-recipe", str(recipe)]
    )
    assert made.exit_code == 0, made.output
    saved = tmp_path / "plans" / "soft-plan.toml"
    assert [s.stage for s in load_recipe(saved).steps] == ["deblur"]
    ran = runner.invoke(app, ["run", str(saved), str(src), "-o", str(tmp_path / "ran.png")])
    assert ran.exit_code == 0, ran.output
    assert np.array_equal(pixels(tmp_path / "soft_enhance.png"), pixels(tmp_path / "ran.png"))
    # an existing recipe file is not replaced without --overwrite
    again = runner.invoke(app, ["enhance", str(src), "--dry-run", "--save-recipe", str(recipe)])
    assert again.exit_code == 2 and "exists" in again.stderr


def test_batch_gives_each_image_its_own_plan(tmp_path):
    small = save(
        tmp_path / "a.png", cv2.resize(data.chelsea(), (90, 60), interpolation=cv2.INTER_AREA)
    )
    soft = save(tmp_path / "b.png", blurred_photo(180))
    result = runner.invoke(
        app, ["enhance", str(small), str(soft), "--dry-run", "--json", "--target", "180"]
    )
    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)
    assert [Path(d["input"]).name for d in docs] == ["a.png", "b.png"]
    assert [s["stage"] for s in docs[0]["plan"]] == ["resize"]
    assert [s["stage"] for s in docs[1]["plan"]] == ["deblur"]  # already 180 px: cleaned in place


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    result = runner.invoke(app, ["enhance", str(junk), "--dry-run"])
    assert result.exit_code == 2 and result.stderr.count("error:") == 1
    ok = save(tmp_path / "ok.png", data.chelsea()[:64, :64])
    assert runner.invoke(app, ["enhance", str(ok), "--target", "0"]).exit_code == 2
    both = runner.invoke(app, ["enhance", str(ok), str(junk), "--dry-run", "--json"])
    assert both.exit_code == 3 and len(json.loads(both.stdout)) == 1


def test_api_diagnose_reads_generation_metadata(tmp_path):
    src = save(
        tmp_path / "gen.png", data.chelsea()[:96, :96], parameters="a cat\nSteps: 20, Seed: 1"
    )
    d = Enhancer().diagnose(src)
    assert d.present("ai_generated") and d["ai_generated"].detail["source"] == "a1111"
    assert make_plan(Image.open(src), target=96).mode == "offline"
