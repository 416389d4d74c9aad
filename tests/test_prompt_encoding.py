"""Prompt encoding on the tiny models: A1111 weighting, chunks, BREAK, clip skip, SDXL pooled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdenhance import Enhancer, testing
from sdenhance.models.prompts import encode


@pytest.fixture(scope="module")
def pipes():
    return {family: testing.build_pipeline(family) for family in ("sd15", "sdxl")}


def plain(pipe, text, *, hidden=None):
    """The encoder's own reading of `text` in one 77-token window (for comparisons)."""
    tok = pipe.tokenizer
    ids = tok(text, padding="max_length", max_length=77, return_tensors="pt").input_ids
    out = pipe.text_encoder(ids, output_hidden_states=True)
    return out.last_hidden_state[0] if hidden is None else out.hidden_states[hidden][0]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_plain_prompts_match_diffusers_bit_for_bit(pipes, family):
    pipe = pipes[family]
    ours = encode(pipe, "a photo of a cat", "blurry", guidance=True)
    if family == "sd15":
        pe, npe = pipe.encode_prompt("a photo of a cat", "cpu", 1, True, "blurry")
    else:
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompt="a photo of a cat",
            device="cpu",
            num_images_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt="blurry",
        )
        assert torch.equal(ours.pooled, pooled) and torch.equal(ours.negative_pooled, npooled)
    assert torch.equal(ours.prompt_embeds, pe) and torch.equal(ours.negative_prompt_embeds, npe)


def test_weight_one_is_no_weight_and_weights_follow_a1111(pipes):
    pipe = pipes["sd15"]
    base = encode(pipe, "a cat", None, guidance=False).prompt_embeds[0]
    assert torch.equal(encode(pipe, "a (cat:1.0)", None, guidance=False).prompt_embeds[0], base)
    weighted = encode(pipe, "a (cat:1.5)", None, guidance=False).prompt_embeds[0].double()
    # A1111: token vectors × weight, then the whole chunk × one factor restoring its mean
    z = plain(pipe, "a cat").double()
    n_a = len(pipe.tokenizer("a ", add_special_tokens=False).input_ids)
    n_cat = len(pipe.tokenizer("cat", add_special_tokens=False).input_ids)
    w = torch.ones(77, dtype=torch.float64)
    w[1 + n_a : 1 + n_a + n_cat] = 1.5
    scaled = z * w[:, None]
    ratio = weighted / scaled  # one factor for every element of the chunk
    assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-3)
    assert torch.isclose(weighted.mean(), z.mean(), atol=1e-6 * z.abs().mean().item())
    cat = slice(1 + n_a, 1 + n_a + n_cat)
    # the weighted words grew 1.5× against the rest of the chunk
    grown = weighted[cat].norm() / weighted[0].norm() / (z[cat].norm() / z[0].norm())
    assert grown.item() == pytest.approx(1.5, rel=1e-4)


def test_long_prompts_are_chunked_and_break_starts_a_chunk(pipes):
    pipe = pipes["sd15"]
    words = " ".join(["cat"] * 80)
    long = encode(pipe, words, "x", guidance=True)
    assert long.prompt_embeds.shape == (1, 154, 32) == long.negative_prompt_embeds.shape
    assert long.chunks == 2
    # the negative is padded with the encoding of an empty chunk
    assert torch.equal(long.negative_prompt_embeds[0, 77:], plain(pipe, ""))
    changed = encode(pipe, words + " dog", "x", guidance=True).prompt_embeds
    assert torch.equal(changed[0, :77], long.prompt_embeds[0, :77])
    assert not torch.equal(changed[0, 77:], long.prompt_embeds[0, 77:])
    parted = encode(pipe, "a cat BREAK a dog", None, guidance=False).prompt_embeds[0]
    assert parted.shape == (154, 32)
    assert torch.equal(parted[:77], plain(pipe, "a cat"))
    assert torch.equal(parted[77:], plain(pipe, "a dog"))


def test_clip_skip_reads_an_earlier_layer_with_the_final_norm(pipes):
    pipe = pipes["sd15"]
    skipped = encode(pipe, "a cat", None, guidance=False, clip_skip=2).prompt_embeds[0]
    expected = pipe.text_encoder.final_layer_norm(plain(pipe, "a cat", hidden=-2))
    assert torch.equal(skipped, expected)
    assert not torch.allclose(skipped, plain(pipe, "a cat"), atol=1e-3)
    assert torch.equal(
        encode(pipe, "a", None, guidance=False, clip_skip=1).prompt_embeds[0], plain(pipe, "a")
    )


def test_sdxl_long_prompts_concatenate_both_encoders_and_pool_the_first_chunk(pipes):
    pipe = pipes["sdxl"]
    words = " ".join(["cat"] * 80)
    cond = encode(pipe, words, "", guidance=True)
    assert cond.prompt_embeds.shape == (1, 154, 96)
    first = encode(pipe, " ".join(["cat"] * 75), "", guidance=True)
    assert torch.equal(cond.pooled, first.pooled)  # pooled: CLIP-G's first chunk
    # an empty negative gives zeros, as the pipeline's force_zeros_for_empty_prompt says
    assert not cond.negative_prompt_embeds.any() and not cond.negative_pooled.any()


def test_a_word_past_token_75_changes_the_picture(models, photo):
    enh = Enhancer(models["sd15"])
    words = ", ".join(["a photo"] * 40)  # well past 75 tokens
    kw = {"strength": 0.6, "steps": 3, "seed": 2}
    a = np.asarray(enh.img2img(photo, prompt=words + ", cat", **kw), dtype=np.int16)
    again = np.asarray(enh.img2img(photo, prompt=words + ", cat", **kw), dtype=np.int16)
    b = np.asarray(enh.img2img(photo, prompt=words + ", dog", **kw), dtype=np.int16)
    assert np.array_equal(a, again)  # deterministic: any difference comes from the last word
    assert np.abs(a - b).max() > 0
    assert enh.last_record["prompt_chunks"] >= 2
