"""Textual-inversion embeddings and clip skip on the tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdenhance import Enhancer, SdenhanceError, testing
from sdenhance.models.embeddings import gather, load_embedding
from sdenhance.models.prompts import encode
from sdenhance.testing.networks import save_embedding

FAST = {"strength": 0.6, "steps": 3, "seed": 3}


def arr(img):
    return np.asarray(img, dtype=np.int16)


@pytest.fixture(scope="module")
def pipes():
    return {family: testing.build_pipeline(family) for family in ("sd15", "sdxl")}


def test_vectors_replace_the_name_tokens(pipes, tmp_path):
    pipe = pipes["sd15"]
    path = save_embedding(tmp_path / "shiny.safetensors", "sd15", vectors=2)
    emb = load_embedding(path, allow_pickle=False)
    vecs = emb.vectors["single"]
    # what the encoder must see: the prompt's token embeddings with the two vectors spliced in
    tok = pipe.tokenizer
    a = tok("a ", add_special_tokens=False).input_ids
    ids = [tok.bos_token_id, *a, 0, 0] + [tok.eos_token_id] * (75 - len(a) - 2) + [tok.eos_token_id]
    ids_t = torch.tensor([ids])
    layer = pipe.text_encoder.get_input_embeddings()
    inputs = layer(ids_t).clone()
    inputs[0, 1 + len(a) : 3 + len(a)] = vecs
    handle = layer.register_forward_hook(lambda m, args, out: inputs)
    try:
        expected = pipe.text_encoder(ids_t).last_hidden_state[0]
    finally:
        handle.remove()
    got = encode(pipe, "a shiny", None, guidance=False, embeddings={"shiny": [vecs]})
    assert torch.allclose(got.prompt_embeds[0], expected, atol=1e-6)
    plain = encode(pipe, "a shiny", None, guidance=False)
    assert not torch.allclose(plain.prompt_embeds, got.prompt_embeds, atol=1e-3)
    assert not layer._forward_hooks  # gone after the call


def test_layouts_families_and_folders(pipes, tmp_path, user_home):
    folder = user_home / "embeddings"
    save_embedding(folder / "EasyNegative.safetensors", "sd15", seed=1)
    save_embedding(folder / "xlneg.safetensors", "sdxl", seed=1)
    save_embedding(tmp_path / "diff.bin", "sd15", layout="diffusers")  # safetensors content
    pickled = save_embedding(tmp_path / "old.pt", "sd15", seed=2)
    sd15, sdxl = pipes["sd15"], pipes["sdxl"]
    found = gather(["a cat, easynegative"], [], sd15, allow_pickle=False)
    assert list(found) == ["EasyNegative"]
    # an SDXL file named in an SD 1.5 prompt stays text (a warning), given explicitly it fails
    assert gather(["xlneg"], [], sd15, allow_pickle=False) == {}
    with pytest.raises(SdenhanceError, match="does not fit this SD 1.5 model"):
        gather([], ["xlneg"], sd15, allow_pickle=False)
    assert list(gather(["xlneg"], [], sdxl, allow_pickle=False)) == ["xlneg"]
    assert gather([], [str(tmp_path / "diff.bin")], sd15, allow_pickle=False)["diff"]
    with pytest.raises(SdenhanceError, match="pickle.*refused"):
        gather([], [str(pickled)], sd15, allow_pickle=False)
    old = gather([], [str(pickled)], sd15, allow_pickle=True)["old"]
    assert old.vectors["single"].shape == (2, 32)
    with pytest.raises(SdenhanceError, match="embedding `nowhere` not found"):
        gather([], ["nowhere"], sd15, allow_pickle=False)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_an_embedding_changes_the_picture_and_is_recorded(models, photo, user_home, family):
    save_embedding(user_home / "embeddings" / "shiny.safetensors", family, seed=4)
    enh = Enhancer(models[family])
    base = arr(enh.img2img(photo, prompt="a shiny cat", embeddings=("shiny",), **FAST))
    record = enh.last_record["embeddings"]
    assert record[0]["name"] == "shiny" and len(record[0]["hash"]) == 12
    by_name = arr(enh.img2img(photo, prompt="a shiny cat", **FAST))  # found in the folder
    assert np.array_equal(base, by_name)
    (user_home / "embeddings" / "shiny.safetensors").unlink()
    plain = arr(enh.img2img(photo, prompt="a shiny cat", **FAST))
    assert np.abs(plain - base).max() > 0 and "embeddings" not in enh.last_record


def test_clip_skip_changes_the_picture_and_is_recorded(models, photo, tmp_path):
    from sdenhance.io.infotext import format_infotext

    enh = Enhancer(models["sd15"])
    base = arr(enh.img2img(photo, prompt="a cat", **FAST))
    skipped = arr(enh.img2img(photo, prompt="a cat", clip_skip=2, **FAST))
    assert np.abs(skipped - base).max() > 0
    assert enh.last_record["steps"][0]["options"]["clip_skip"] == 2
    assert "Clip skip: 2" in format_infotext(enh.last_record)
