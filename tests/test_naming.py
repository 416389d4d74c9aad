"""Output naming that never surprises: each rule of `-o`, real seeds, honest resumes."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.io.load import read_metadata

runner = CliRunner()


def inputs(folder, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        path = folder / f"img{i}.png"
        Image.fromarray((rng.random((16, 24, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def upscale(*args):
    return runner.invoke(app, ["upscale", *args, "--creativity", "0", "--upscaler", "lanczos"])


def test_one_file_for_several_inputs_is_refused_before_any_work(tmp_path):
    srcs = inputs(tmp_path / "in")
    result = upscale(*srcs, "-o", str(tmp_path / "same.png"))
    assert result.exit_code == 2
    assert "names one file but 2 inputs" in result.stderr
    assert f"-o {tmp_path / 'same'}/" in result.stderr and "{stem}" in result.stderr  # the fixes
    assert not list(tmp_path.glob("same*")) and not result.stdout


def test_a_name_without_image_suffix_is_a_folder_to_create(tmp_path):
    srcs = inputs(tmp_path / "in", 1)
    result = upscale(*srcs, "-o", str(tmp_path / "new" / "folder"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "folder" / "img0_upscale.png").is_file()


def test_names_that_cannot_be_outputs_are_refused(tmp_path):
    srcs = inputs(tmp_path / "in", 1)
    (tmp_path / "notes.txt").write_text("mine")
    refused = upscale(*srcs, "-o", str(tmp_path / "notes.txt"))
    assert refused.exit_code == 2 and "neither a folder nor an image" in refused.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    gif = upscale(*srcs, "-o", str(tmp_path / "out.gif"))
    assert gif.exit_code == 2 and "cannot write .gif" in gif.stderr


def test_seed_in_a_template_is_the_seed_that_ran(tmp_path):
    srcs = inputs(tmp_path / "in")
    mask = np.zeros((16, 24), np.uint8)
    mask[4:10, 6:14] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    args = ["remove", *srcs, "--mask", str(tmp_path / "m.png"), "--no-refine"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out" / "{stem}_{seed}.png")])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").glob("*.png"))
    assert len(written) == 2
    for path in written:
        seed = read_metadata(path).sdenhance["seed"]  # patchmatch's fill is seeded
        assert path.stem.split("_")[-1] == str(seed)


def test_rerun_skips_same_settings_once_and_refuses_other_settings(tmp_path):
    srcs = inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert upscale(*srcs, "-o", str(out)).exit_code == 0
    record = read_metadata(out / "img0_upscale.png").sdenhance
    assert len(record["fingerprint"]) == 16
    again = upscale(*srcs, "-o", str(out))
    assert again.exit_code == 0, again.output
    skips = [line for line in again.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skips) == 2 and "skipped 2" in again.stderr  # each skip said once, then the sum
    # a flag that has no effect at creativity 0 changes nothing: still the same settings
    assert upscale(*srcs, "-o", str(out), "--prompt", "a cat").exit_code == 0
    other = upscale(*srcs, "-o", str(out), "--scale", "3")
    assert other.exit_code == 3 and "failed 2" in other.stderr  # reported, not skipped
    assert Image.open(out / "img0_upscale.png").size == (48, 32)  # and left as it was
    single = upscale(srcs[0], "-o", str(out / "img0_upscale.png"), "--scale", "3")
    assert single.exit_code == 2
    assert "img0_upscale.png exists, made with other settings; use --overwrite" in single.stderr
    forced = upscale(*srcs, "-o", str(out), "--scale", "3", "--overwrite")
    assert forced.exit_code == 0 and Image.open(out / "img0_upscale.png").size == (72, 48)


def test_rerun_on_a_changed_input_is_refused(tmp_path):
    srcs = inputs(tmp_path / "in", 1)
    assert upscale(*srcs, "-o", str(tmp_path / "o.png")).exit_code == 0
    Image.new("RGB", (24, 16), "red").save(srcs[0])
    again = upscale(*srcs, "-o", str(tmp_path / "o.png"))
    assert again.exit_code == 2 and "made from another input" in again.stderr


def test_format_names_the_suffix_and_must_agree_with_a_file_name(tmp_path):
    srcs = inputs(tmp_path / "in")
    result = upscale(*srcs, "--format", "webp", "--quality", "80", "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "img0_upscale.webp",
        "img1_upscale.webp",
    ]
    clash = upscale(srcs[0], "--format", "jpg", "-o", str(tmp_path / "x.png"))
    assert clash.exit_code == 2 and "--format jpg" in clash.stderr
    assert not (tmp_path / "x.png").exists()
    lossless = upscale(srcs[0], "--quality", "80", "-o", str(tmp_path / "y.png"))
    assert lossless.exit_code == 0 and "--quality has no effect on PNG" in lossless.stderr
