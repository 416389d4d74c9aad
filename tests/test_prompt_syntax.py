"""A1111 prompt syntax as pure data: weights, BREAK, LoRA tags and 75-token chunks."""

from __future__ import annotations

import pytest

from sdenhance.ops.prompt_syntax import (
    BREAK,
    CHUNK,
    LoraRef,
    Piece,
    Run,
    chunk_pieces,
    extract_loras,
    parse_attention,
    parse_lora_spec,
    split_embeddings,
    unsupported_syntax,
)


def runs(text):
    return [
        (p.text, pytest.approx(p.weight)) if isinstance(p, Run) else p
        for p in parse_attention(text)
    ]


# the examples A1111 documents for its parser, with the results it documents
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.573),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641),
                (".", 1.1),
            ],
        ),
    ],
)
def test_a1111_documented_examples(text, expected):
    assert runs(text) == expected


def test_weights_brackets_and_break():
    assert runs("(red scarf:1.3), [blurry]") == [
        ("red scarf", 1.3),
        (", ", 1.0),
        ("blurry", 1 / 1.1),
    ]
    assert runs("((a))") == [("a", 1.21)]
    assert runs("[[a]]") == [("a", 1 / 1.21)]
    assert runs("(a:b)") == [("a:b", 1.1)]  # no number: the colon is text
    assert runs("a BREAK b") == [("a", 1.0), BREAK, ("b", 1.0)]
    assert runs("BREAKFAST") == [("BREAKFAST", 1.0)]  # a whole word only
    assert runs("(a BREAK b:2)")[1] is BREAK
    assert runs("") == [("", 1.0)]


def test_unsupported_editing_is_reported():
    assert unsupported_syntax("a [cat:dog:0.5] and [red|blue]") == ["[cat:dog:0.5]", "[red|blue]"]
    assert unsupported_syntax("a (cat:1.2) [blurry]") == []


def test_lora_tags_are_extracted_and_removed():
    text, loras, other = extract_loras(
        "masterpiece, <lora:add_detail:0.8> scarf <LORA:style> <hypernet:x:1> <lyco:loha:0.5:1>"
    )
    assert loras == [LoraRef("add_detail", 0.8), LoraRef("style", 1.0), LoraRef("loha", 0.5)]
    assert other == ["<hypernet:x:1>"]
    assert "<" not in text and "masterpiece," in text and "scarf" in text


def test_lora_specs():
    assert parse_lora_spec("detail:0.6") == LoraRef("detail", 0.6)
    assert parse_lora_spec("detail") == LoraRef("detail", 1.0)
    assert parse_lora_spec("/x/y.safetensors:-1") == LoraRef("/x/y.safetensors", -1.0)
    assert parse_lora_spec(r"C:\loras\a.safetensors") == LoraRef(r"C:\loras\a.safetensors", 1.0)


def test_embedding_names_match_whole_words_case_insensitively():
    parts = split_embeddings("EasyNegative, bad-hands-5, badly, bad", ["easynegative", "bad"])
    assert parts == [
        ("EasyNegative", "easynegative"),
        (", bad-hands-5, badly, ", None),
        ("bad", "bad"),
    ]


def chunk(pieces, **kw):
    return chunk_pieces(pieces, comma=0, placeholder=-1, pad=99, **kw)


def test_chunks_hold_75_tokens_and_break_starts_a_new_one():
    (one,) = chunk([Piece(tuple(range(1, 11)), 1.0)])
    assert len(one.tokens) == CHUNK and one.tokens[:10] == list(range(1, 11))
    assert one.tokens[10:] == [99] * 65 and one.weights[10:] == [1.0] * 65
    two = chunk([Piece((5,) * 80, 1.2)])
    assert len(two) == 2 and two[1].tokens[:5] == [5] * 5 and two[1].weights[0] == 1.2
    parted = chunk([Piece((7,), 1.0), BREAK, Piece((8,), 1.0)])
    assert [c.tokens[0] for c in parted] == [7, 8]
    assert chunk([])[0].tokens == [99] * CHUNK  # an empty prompt is one empty chunk


def test_a_phrase_after_a_late_comma_moves_to_the_next_chunk():
    tokens = (1,) * 70 + (0,) + (2,) * 10  # comma at 70, then a 10-token phrase
    first, second = chunk([Piece(tokens, 1.0)])
    assert first.tokens[:71] == [1] * 70 + [0] and first.tokens[71:] == [99] * 4
    assert second.tokens[:10] == [2] * 10
    # a comma further back than 20 tokens: the chunk is cut at 75 as it is
    tokens = (1,) * 50 + (0,) + (2,) * 30
    first, second = chunk([Piece(tokens, 1.0)])
    assert first.tokens[51:] == [2] * 24 and second.tokens[:6] == [2] * 6


def test_embeddings_are_never_split_across_chunks():
    pieces = [Piece((1,) * 74, 1.0), Piece((), 1.3, "emb", 3)]
    first, second = chunk(pieces)
    assert first.embeddings == [] and first.tokens[74] == 99
    assert second.embeddings == [(0, "emb")] and second.tokens[:3] == [-1] * 3
    assert second.weights[:3] == [1.3] * 3


def test_hostile_prompts_and_names_are_bounded():
    from sdenhance.ops.prompt_syntax import check_size, names_a_path

    check_size("(a:1.2) " * 100)
    with pytest.raises(ValueError, match="characters"):
        check_size("a" * 20_000)
    with pytest.raises(ValueError, match="brackets"):
        check_size("(a" * 600)
    assert names_a_path("../x") and names_a_path("x.safetensors") and names_a_path("~/x")
    assert not names_a_path("add_detail_v1.5")


def test_requests_may_name_loras_but_never_files():
    from sdenhance.errors import SdenhanceError
    from sdenhance.server.specs import stage_steps

    (step,) = stage_steps("img2img", {"loras": ["add_detail_v1.5:0.8"], "prompt": "a"})
    assert step.options.loras == ("add_detail_v1.5:0.8",)
    for bad in (["/etc/x.safetensors"], ["../loras/x:1"], ["x.pt"]):
        with pytest.raises(SdenhanceError, match="looks like a file path"):
            stage_steps("img2img", {"loras": bad})
    with pytest.raises(SdenhanceError, match="looks like a file path"):
        stage_steps("upscale", {"embeddings": ("~/e.safetensors",)})
