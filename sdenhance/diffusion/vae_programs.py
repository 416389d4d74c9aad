"""The AutoencoderKL encoder and decoder written out over whole-image feature maps that are
computed tile by tile (`Canvases`): every GroupNorm normalises with the statistics of the whole
map, every convolution runs per tile with a halo of its neighbours' values.

Everything but the GroupNorms is diffusers' own modules, called in diffusers' order
(`Encoder.forward`, `Decoder.forward`, `ResnetBlock2D`, the mid-block `Attention` as
`AttnProcessor2_0` runs it); the attention takes keys and values from the whole map. So the
result is the untiled VAE's up to float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdenhance.diffusion.group_norm import group_norm
from sdenhance.errors import SdenhanceError

if TYPE_CHECKING:
    from sdenhance.diffusion.canvas import Canvas, Canvases


def resnet(run: Canvases, blk: Any, x: Canvas) -> Canvas:
    """`ResnetBlock2D.forward` without a time embedding: two tiled passes."""
    s1 = run.stats(x, blk.norm1)
    h = run.map(lambda t: blk.conv1(blk.nonlinearity(group_norm(t, blk.norm1, s1))), [x])
    s2 = run.stats(h, blk.norm2)

    def second(ht: Any, xt: Any) -> Any:
        ht = blk.conv2(blk.dropout(blk.nonlinearity(group_norm(ht, blk.norm2, s2))))
        if blk.conv_shortcut is not None:
            xt = blk.conv_shortcut(xt)
        return (xt + ht) / blk.output_scale_factor

    return run.map(second, [h, x], into=x)  # x is read pointwise there: overwritten


def attention(run: Canvases, attn: Any, x: Canvas) -> Canvas:
    """The mid-block's spatial self-attention (`AttnProcessor2_0`), exactly: keys and values of
    every pixel of the map first, then each tile's queries attend over all of them."""
    import torch

    stats = run.stats(x, attn.group_norm)

    def keys_values(t: Any) -> Any:
        h = as_tokens(group_norm(t, attn.group_norm, stats))
        return as_map(torch.cat([attn.to_k(h), attn.to_v(h)], dim=-1), t.shape[-2:])

    kv = run.map(keys_values, [x], halo=0).data.to(run.device, run.dtype)
    inner = kv.shape[1] // 2
    keys, values = (
        as_heads(as_tokens(kv[:, :inner]), attn.heads),
        as_heads(as_tokens(kv[:, inner:]), attn.heads),
    )
    del kv

    def attend(t: Any) -> Any:
        query = attn.to_q(as_tokens(group_norm(t, attn.group_norm, stats)))
        h = attend_chunked(as_heads(query, attn.heads), keys, values).to(query.dtype)
        h = as_map(attn.to_out[1](attn.to_out[0](h)), t.shape[-2:])
        if attn.residual_connection:
            h = h + t
        return h / attn.rescale_output_factor

    return run.map(attend, [x], halo=0, into=x)


def as_tokens(t: Any) -> Any:
    """(1, C, h, w) -> (1, h·w, C)."""
    return t.flatten(2).transpose(1, 2)


def as_map(t: Any, size: Any) -> Any:
    """(1, h·w, C) -> (1, C, h, w)."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *size)


def as_heads(t: Any, heads: int) -> Any:
    """(1, n, C) -> (1, heads, n, C / heads)."""
    return t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2)


def attend_chunked(query: Any, keys: Any, values: Any, budget: int = 1 << 26) -> Any:
    """Scaled dot-product attention of (1, heads, n, d) queries over all keys, in query chunks
    whose score matrices stay under `budget` values; returns (1, n, heads·d)."""
    import torch
    import torch.nn.functional as F

    step = max(1, budget // max(1, keys.shape[-2] * keys.shape[1]))
    out = torch.cat(
        [
            F.scaled_dot_product_attention(query[:, :, i : i + step], keys, values)
            for i in range(0, query.shape[-2], step)
        ],
        dim=2,
    )
    return out.transpose(1, 2).reshape(query.shape[0], query.shape[2], -1)


def mid_block(run: Canvases, mid: Any, x: Canvas) -> Canvas:
    x = resnet(run, mid.resnets[0], x)
    for attn, res in zip(mid.attentions, mid.resnets[1:], strict=True):
        if attn is not None:
            x = attention(run, attn, x)
        x = resnet(run, res, x)
    return x


def norm_out(run: Canvases, part: Any, x: Canvas, then: Any = None) -> Canvas:
    """`conv_norm_out`, `conv_act`, `conv_out` (and `then`, a 1×1 convolution, if given)."""
    stats = run.stats(x, part.conv_norm_out)

    def last(t: Any) -> Any:
        t = part.conv_out(part.conv_act(group_norm(t, part.conv_norm_out, stats)))
        return then(t) if then is not None else t

    return run.map(last, [x])


def encoder(run: Canvases, vae: Any, x: Canvas) -> Canvas:
    """Image in [-1, 1] -> the latent distribution's moments (`Encoder` + `quant_conv`)."""
    enc = vae.encoder
    x = run.map(enc.conv_in, [x])
    for block in enc.down_blocks:
        for res in block.resnets:
            x = resnet(run, res, x)
        for down in block.downsamplers or []:
            x = run.map(down, [x])
    x = mid_block(run, enc.mid_block, x)
    return norm_out(run, enc, x, vae.quant_conv)


def decoder(run: Canvases, vae: Any, z: Canvas) -> Canvas:
    """Unscaled latents -> image in about [-1, 1] (`post_quant_conv` + `Decoder`)."""
    dec = vae.decoder
    first = dec.conv_in
    if vae.post_quant_conv is not None:
        first = lambda t: dec.conv_in(vae.post_quant_conv(t))  # noqa: E731
    x = run.map(first, [z])
    x = mid_block(run, dec.mid_block, x)
    for block in dec.up_blocks:
        for res in block.resnets:
            x = resnet(run, res, x)
        for up in block.upsamplers or []:
            x = run.map(up, [x])
    return norm_out(run, dec, x)


def check_supported(vae: Any) -> None:
    """Refuse a VAE whose blocks are not the ones written out above (every SD 1.5 and SDXL
    VAE's are), instead of computing something else."""
    import torch

    problems = []
    for name in ("encoder", "decoder"):
        part = getattr(vae, name, None)
        if part is None or not hasattr(part, "mid_block"):
            problems.append(f"no {name} of AutoencoderKL's layout")
            continue
        for module in part.modules():
            kind = type(module).__name__
            if kind == "ResnetBlock2D" and (
                module.time_emb_proj is not None
                or module.upsample is not None
                or module.downsample is not None
            ):
                problems.append(f"{name}: a ResnetBlock2D with a time embedding or resampling")
            if kind == "Attention" and (
                module.spatial_norm is not None or module.norm_q is not None
            ):
                problems.append(f"{name}: an attention with spatial or q/k norms")
            if "Norm" in kind and not isinstance(module, torch.nn.GroupNorm | torch.nn.LayerNorm):
                problems.append(f"{name}: a {kind}")
    if problems:
        raise SdenhanceError(
            f"the tiled VAE does not support this VAE ({problems[0]})",
            hint="use an AutoencoderKL VAE of SD 1.5 or SDXL",
        )
