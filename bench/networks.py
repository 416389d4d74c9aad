"""What A1111 prompts and LoRAs cost on the real SD 1.5 architectures (random weights).

    python bench/networks.py                       # prints the tables, updates bench/RESULTS.md
    python bench/networks.py --results -           # prints only

Prompt encoding: diffusers' own `encode_prompt` (one 77-token window, the rest cut) against
`sdenhance.models.prompts.encode` for the same short prompt, then for prompts of 2 and 4
chunks and a weighted one. LoRA: one UNet forward (CFG pair, 256 px) without a LoRA, with a
rank-32 LoRA on every attention projection through forward hooks (how sdenhance applies them),
and with the same LoRA fused into the weights (no runtime cost: the lower bound), plus what
applying and removing the hooks costs and a check that the UNet is bit-identical afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for folder in (ROOT, BENCH_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from harness import best_of, load_average  # noqa: E402
from random_models import real_text_encoder, real_unet  # noqa: E402

from sdenhance.models import loras  # noqa: E402
from sdenhance.models.prompts import encode  # noqa: E402
from sdenhance.testing import write_tokenizer  # noqa: E402

SECTION = "networks"
TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


class _Pipe:
    """The parts of a pipeline the encoder and the LoRA code read."""

    def __init__(self, unet, tokenizer, text_encoder):
        self.unet, self.tokenizer, self.text_encoder = unet, tokenizer, text_encoder
        self.config = type("C", (), {})()

    def encode_prompt(self, *args, **kwargs):
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline.encode_prompt(self, *args, **kwargs)


def build() -> _Pipe:
    from transformers import CLIPTokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    return _Pipe(real_unet().eval(), tokenizer, real_text_encoder().eval())


def write_lora(pipe: _Pipe, path: Path, rank: int = 32) -> int:
    from safetensors.torch import save_file

    tensors = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(TARGETS):
            key = "lora_unet_" + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, module.in_features) * 0.01
            tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank) * 0.01
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path))
    return len(tensors) // 3


def measure(repeats: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]], dict]:
    pipe = build()
    words = [f"word{i}" for i in range(400)]

    def prompt(tokens: int) -> str:  # each "wordN" is several tokens of the tiny vocabulary
        text, n = [], 0
        for w in words:
            n += len(pipe.tokenizer(w, add_special_tokens=False).input_ids)
            if n > tokens:
                break
            text.append(w)
        return " ".join(text)

    enc = []
    with torch.no_grad():
        short = prompt(60)
        enc.append(
            (
                "diffusers encode_prompt, 1 window (77 tokens)",
                best_of(lambda: pipe.encode_prompt(short, "cpu", 1, True, "blurry"), repeats),
            )
        )
        for label, text in (
            ("sdenhance encode, 1 chunk", short),
            ("sdenhance encode, 2 chunks", prompt(140)),
            ("sdenhance encode, 4 chunks", prompt(290)),
            ("sdenhance encode, 1 chunk, 3 weighted runs", f"({short}:1.2), [x], (y:0.8)"),
        ):
            enc.append(
                (label, best_of(lambda t=text: encode(pipe, t, "blurry", guidance=True), repeats))
            )

    x = torch.randn(2, 4, 32, 32)
    cond = torch.randn(2, 77, 768)

    def forward():
        with torch.no_grad():
            pipe.unet(x, 500, encoder_hidden_states=cond)

    lora_rows = [("UNet forward, no LoRA", best_of(forward, repeats))]
    info: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-lora.safetensors"
        info["layers"] = write_lora(pipe, path)
        lora = loras.ResolvedLora("bench", path, 1.0, "-")
        before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
        t0 = time.perf_counter()
        with loras.applied(pipe, [lora], "sd15"):
            info["apply_s"] = time.perf_counter() - t0
            lora_rows.append(("UNet forward, rank-32 LoRA as hooks", best_of(forward, repeats)))
            t0 = time.perf_counter()
        info["remove_s"] = time.perf_counter() - t0
        info["identical"] = all(
            torch.equal(before[k], v) for k, v in pipe.unet.state_dict().items()
        )
        deltas = loras.plan_deltas(pipe, lora, "sd15")
        with torch.no_grad():
            for d in deltas:
                d.module.weight += d.scale * (d.up @ d.down)
        lora_rows.append(
            ("UNet forward, the same LoRA fused (lower bound)", best_of(forward, repeats))
        )
    return enc, lora_rows, info


def markdown(enc, lora_rows, info, load: str) -> str:
    lines = [
        "## A1111 prompts and LoRAs (`bench/networks.py`)",
        "",
        "Real SD 1.5 UNet (860M) and CLIP-L text encoder (123M), random weights, fp32, CPU, "
        f"best of the runs; load average {load} (2 cores shared: times are upper bounds).",
        "",
        "| prompt encoding (prompt + negative) | s |",
        "|---|---|",
        *[f"| {label} | {s:.3f} |" for label, s in enc],
        "",
        "| UNet, CFG pair, 64×64 latent | s |",
        "|---|---|",
        *[f"| {label} | {s:.2f} |" for label, s in lora_rows],
        "",
        f"LoRA on {info['layers']} attention projections: applying the hooks (reading the file, "
        f"matching layers) {info['apply_s']:.2f} s, removing them {info['remove_s'] * 1000:.2f} "
        f"ms; UNet bit-identical afterwards: {'yes' if info['identical'] else 'NO'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", default=str(BENCH_DIR / "RESULTS.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    enc, lora_rows, info = measure(args.repeats)
    text = markdown(enc, lora_rows, info, load_average())
    print(text)
    if args.results != "-":
        from harness import splice_section

        path = Path(args.results)
        old = path.read_text() if path.is_file() else ""
        path.write_text(splice_section(old, SECTION, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
