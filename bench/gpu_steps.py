"""Sections 1, 2 and 7 of bench/gpu.py: one denoising step of one tile, outside the stage."""

from __future__ import annotations

import copy
import importlib.util
import math
import time
from typing import Any

from harness import best_of


def sync(device: Any) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def best_ms(fn: Any, run: Any) -> float:
    """Best of `repeats` calls after `warmup` calls, in ms, the GPU synchronised around each."""
    for _ in range(run.settings.warmup):
        fn()
    return 1000 * best_of(fn, run.settings.repeats, run.device)


def dtype_name(dtype: Any) -> str:
    return {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}[str(dtype).split(".")[-1]]


# ---------------------------------------------------------------------------------------------
# one denoising step of one tile, outside the stage


def tile_inputs(run: Any, latent: int, dtype: Any) -> dict[str, Any]:
    """The CFG pair of one latent tile, its prompt embeddings and its ControlNet-tile image."""
    import torch

    cross = run.engine.base.unet.config.cross_attention_dim
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(2, 4, latent, latent, generator=g)
    emb = torch.randn(2, 77, cross, generator=g)
    ctrl = torch.rand(2, 3, latent * 8, latent * 8, generator=g)
    return {k: v.to(run.device, dtype) for k, v in (("x", x), ("emb", emb), ("ctrl", ctrl))}


def unet_only(unet: Any, inp: dict[str, Any]) -> Any:
    import torch

    with torch.no_grad():
        return unet(inp["x"], 500, encoder_hidden_states=inp["emb"], return_dict=False)[0]


def unet_step(unet: Any, controlnet: Any, inp: dict[str, Any]) -> Any:
    """ControlNet, then the UNet with its residuals: what the stage runs per tile batch."""
    import torch

    with torch.no_grad():
        down, mid = controlnet(
            inp["x"],
            500,
            encoder_hidden_states=inp["emb"],
            controlnet_cond=inp["ctrl"],
            conditioning_scale=0.6,
            return_dict=False,
        )
        return unet(
            inp["x"],
            500,
            encoder_hidden_states=inp["emb"],
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]


def dtypes(run: Any) -> None:
    import torch

    s, engine = run.settings, run.engine
    own = dtype_name(engine.dtype)
    px = s.step_latent * 8
    t = run.report.table(
        f"1. One denoising step of a {px}² tile, by dtype",
        ["dtype", "UNet ms", "UNet + ControlNet ms", "tile steps / s", f"speed vs {own}"],
    )
    names = ["fp16", "bf16", "fp32"] if run.cuda else ["fp32", "bf16"]
    names.sort(key=lambda n: n != own)
    kinds = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    times: dict[str, float] = {}

    def one(name: str) -> list[Any]:
        unet, cn = engine.base.unet, engine.controlnet
        if kinds[name] != engine.dtype:
            unet, cn = copy.deepcopy(unet).to(kinds[name]), copy.deepcopy(cn).to(kinds[name])
        inp = tile_inputs(run, s.step_latent, kinds[name])
        alone = best_ms(lambda: unet_only(unet, inp), run)
        both = best_ms(lambda: unet_step(unet, cn, inp), run)
        times[name] = both
        return [alone, both, 1000 / both, times.get(own, math.nan) / both]

    for name in names:
        run.measure(t, name, lambda n=name: one(n), need=30)
        run.free()
    run.report.note(
        t,
        f"Batch 2 (the CFG pair of one tile), latent {s.step_latent}² ({px}² px), t = 500, best "
        f"of {s.repeats} after {s.warmup} warm-up calls, synchronised around each call; "
        "ControlNet at conditioning scale 0.6. The other dtypes are copies of the loaded models. "
        "`--dtype auto` picks fp16 on a GPU.",
    )


def attention(run: Any) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from sdenhance.models.device import attention_backend

    engine, s = run.engine, run.settings
    unet, cn = engine.base.unet, engine.controlnet
    t = run.report.table(
        f"2. Attention, one {dtype_name(engine.dtype)} step as in 1",
        ["attention", "UNet + ControlNet ms", "speed vs SDPA"],
    )
    inp = tile_inputs(run, s.step_latent, engine.dtype)
    saved = (unet.attn_processors, cn.attn_processors)
    times: dict[str, float] = {}

    def one(label: str, set_processor: Any) -> list[Any]:
        try:
            for model in (unet, cn):
                set_processor(model)
            ms = best_ms(lambda: unet_step(unet, cn, inp), run)
        finally:
            unet.set_attn_processor(dict(saved[0]))
            cn.set_attn_processor(dict(saved[1]))
        times[label] = ms
        return [ms, times.get("sdpa", math.nan) / ms]

    run.measure(
        t,
        "PyTorch SDPA (`AttnProcessor2_0`)",
        lambda: one("sdpa", lambda m: m.set_attn_processor(AttnProcessor2_0())),
        need=10,
    )
    if importlib.util.find_spec("xformers") is None:
        run.report.add(t, ["xformers", "not installed"])
    else:
        run.measure(
            t,
            "xformers",
            lambda: one("xformers", lambda m: m.enable_xformers_memory_efficient_attention()),
            need=10,
        )
    run.measure(
        t,
        "classic (`AttnProcessor`: matmul, softmax, matmul)",
        lambda: one("classic", lambda m: m.set_attn_processor(AttnProcessor())),
        need=15,
    )
    run.report.note(
        t,
        f"The engine picks **{attention_backend(engine.device)}** here (xformers when it is "
        "installed on CUDA, else PyTorch SDPA). Each row sets the processor on the loaded UNet "
        "and ControlNet, times the step of section 1, and puts the engine's processors back.",
    )


# ---------------------------------------------------------------------------------------------
# torch.compile


def compiled(run: Any) -> None:
    import torch

    s, unet = run.settings, run.engine.base.unet
    first, second = s.compile_latents
    t = run.report.table(
        f"7. `torch.compile` (UNet alone, {dtype_name(run.engine.dtype)}, batch 2)",
        ["variant", "first call s", "steady ms", "speed vs eager"],
    )
    inp = tile_inputs(run, first, run.engine.dtype)
    eager: list[float] = []
    fast: list[Any] = []

    def eager_row() -> list[Any]:
        eager.append(best_ms(lambda: unet_only(unet, inp), run))
        return [None, eager[0], 1.0]

    def compiled_row(latent: int) -> list[Any]:
        if not fast:
            torch._dynamo.reset()
            fast.append(torch.compile(unet, backend=s.compile_backend))
        x = inp if latent == first else tile_inputs(run, latent, run.engine.dtype)
        t0 = time.perf_counter()
        unet_only(fast[0], x)
        sync(run.device)
        took = time.perf_counter() - t0
        ms = best_ms(lambda: unet_only(fast[0], x), run)
        ref = eager[0] if latent == first and eager else math.nan
        return [took, ms, ref / ms]

    run.measure(t, f"eager, {first * 8}² tile", eager_row, need=10)
    run.measure(
        t,
        f"compiled ({s.compile_backend}), {first * 8}² tile",
        lambda: compiled_row(first),
        need=180,
    )
    took = t.rows[-1][1] if isinstance(t.rows[-1][1], float) else 180
    run.measure(
        t,
        f"compiled, then a {second * 8}² tile (recompiles)",
        lambda: compiled_row(second),
        need=1.2 * took,
    )
    torch._dynamo.reset()
    run.report.note(
        t,
        f"`torch.compile(unet, backend={s.compile_backend!r})`, default mode. *First call*: "
        "tracing and compiling, what the first tile of a run would wait. The tile grid shrinks "
        "tiles to fit each image (`fit_tile`), so other image sizes meet other tile shapes: the "
        "last row is the recompile a new shape costs.",
    )
