"""The CLI: --lora, --embedding, --clip-skip, --vae recorded, and `run --from` reproducing them."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.io.load import read_metadata
from sdenhance.testing.networks import save_embedding, save_lora, save_vae


def test_run_from_reproduces_loras_embeddings_and_a_weighted_long_prompt(
    models, photo, tmp_path, user_home
):
    save_lora(user_home / "loras" / "detail.safetensors", "sd15", "kohya", seed=1)
    save_lora(tmp_path / "style.safetensors", "sd15", "diffusers", seed=2)
    save_embedding(user_home / "embeddings" / "shiny.safetensors", "sd15", seed=3)
    save_embedding(tmp_path / "dull.safetensors", "sd15", seed=4)
    vae = save_vae(tmp_path / "vae", "sd15", seed=9)
    src = tmp_path / "in.png"
    photo.save(src)
    prompt = (
        "masterpiece, (a shiny tabby cat:1.3), [blurry], "
        + ", ".join(f"detail {i}" for i in range(40))  # past 75 tokens
        + " BREAK sunny window <lora:detail:0.8>"
    )
    out = tmp_path / "out.png"
    args = [
        "img2img", str(src), "-o", str(out), "--model", models["sd15"], "--vae", str(vae),
        "--prompt", prompt, "--negative-prompt", "dull, (ugly:1.2)",
        "--lora", f"{tmp_path / 'style.safetensors'}:0.5",
        "--embedding", str(tmp_path / "dull.safetensors"), "--clip-skip", "2",
        "--strength", "0.6", "--steps", "3", "--seed", "5",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    record = meta.sdenhance
    assert {e["name"]: e["weight"] for e in record["loras"]} == {"style": 0.5, "detail": 0.8}
    assert sorted(e["name"] for e in record["embeddings"]) == ["dull", "shiny"]
    assert record["prompt_chunks"] >= 3 and record["models"]["vae"] == str(vae)
    params = meta.parameters
    assert params["Clip skip"] == "2" and params["VAE"] == "vae"
    hashes = {e["name"]: e["hash"] for e in record["loras"]}
    assert params["Lora hashes"] == f"style: {hashes['style']}, detail: {hashes['detail']}"
    assert params["TI hashes"].count(":") == 2

    rerun = tmp_path / "rerun.png"
    result = CliRunner().invoke(app, ["run", "--from", str(out), "-o", str(rerun)])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(Image.open(rerun)), np.asarray(Image.open(out)))
    assert read_metadata(rerun).sdenhance["loras"] == record["loras"]

    # the same name now another file: the rerun says its pixels will differ
    save_lora(user_home / "loras" / "detail.safetensors", "sd15", "kohya", seed=7)
    again = tmp_path / "again.png"
    result = CliRunner().invoke(app, ["run", "--from", str(out), "-o", str(again)])
    assert result.exit_code == 0, result.output
    assert "the LoRA `detail` is another file now" in " ".join(result.output.split())
    assert not np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))
