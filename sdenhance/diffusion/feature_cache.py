"""UNet feature caching across steps: DeepCache's idea (Ma, Fang and Wang, CVPR 2024).

Adjacent denoising steps change a UNet's deep features little. Every `interval` steps the whole
UNet runs and the input of its last up block (the deep features) is kept; on the steps between,
only the shallow path runs: the time embedding, `conv_in`, the first down block (whose outputs
are the last up block's skip connections), the last up block on the kept features, and the
output convolutions. A ControlNet then runs its shallow path too: the residuals of those skips.

Our own code rather than the `deepcache` package: its one release (0.1.1, 2023) replaces the
forward of a whole diffusers pipeline's UNet as diffusers laid it out then, and keeps one cache
per model, while tiles need one per tile group and call the UNet (and ControlNet) directly.
Interval 1 never takes the shallow path: every call is the model's own forward.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def supports(model: Any) -> bool:
    """Whether the shallow path below computes what `model`'s own forward computes there: an
    SD 1.5 / SDXL style UNet or ControlNet (no class labels, no timestep condition, no
    encoder projection, no input centring); anything else runs whole every step."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "down_blocks") or not hasattr(model, "time_proj"):
        return False
    return (
        getattr(model, "class_embedding", None) is None
        and getattr(model, "encoder_hid_proj", None) is None
        and config.get("addition_embed_type") in (None, "text_time")
        and not config.get("time_cond_proj_dim")
        and not config.get("center_input_sample", False)
        and not config.get("global_pool_conditions", False)
    )


def embeddings(model: Any, sample: torch.Tensor, timestep: Any, added: dict | None) -> Any:
    """The time embedding (plus SDXL's text-time one) as `model.forward` computes it.

    The UNet's own helpers serve the ControlNet too: both name these layers alike.
    """
    from diffusers import UNet2DConditionModel as U

    emb = model.time_embedding(U.get_time_embed(model, sample=sample, timestep=timestep), None)
    if model.config.get("addition_embed_type") == "text_time":
        emb = emb + U.get_aug_embed(
            model, emb=emb, encoder_hidden_states=None, added_cond_kwargs=added
        )
    act = getattr(model, "time_embed_act", None)
    return act(emb) if act is not None else emb


def placed(model: Any, sample: torch.Tensor) -> None:
    """Run the accelerate hook `--offload` put on `model` before touching its blocks: the
    shallow path calls them directly, and model offload moves a model only in its `forward`."""
    hook = getattr(model, "_hf_hook", None)
    if hook is not None:
        hook.pre_forward(model, sample)


def _block(block: Any, hidden: torch.Tensor, emb: Any, text: Any, cak: Any, **kw: Any) -> Any:
    if getattr(block, "has_cross_attention", False):
        kw.update(encoder_hidden_states=text, cross_attention_kwargs=cak)
    return block(hidden_states=hidden, temb=emb, **kw)


def shallow_unet(
    unet: Any,
    deep: torch.Tensor,
    sample: torch.Tensor,
    timestep: Any,
    encoder_hidden_states: torch.Tensor,
    *,
    added_cond_kwargs: dict | None = None,
    skip_residuals: Sequence[torch.Tensor] | None = None,
    cross_attention_kwargs: dict | None = None,
) -> torch.Tensor:
    """The UNet's output from its shallow path on `sample`, `deep` standing in for the input of
    its last up block; `skip_residuals` are a ControlNet's residuals of those skips."""
    placed(unet, sample)
    emb = embeddings(unet, sample, timestep, added_cond_kwargs)
    h = unet.conv_in(sample)
    cak = cross_attention_kwargs
    _, res = _block(unet.down_blocks[0], h, emb, encoder_hidden_states, cak)
    up = unet.up_blocks[-1]
    skips = ((h, *res))[: len(up.resnets)]  # the down block's own downsample feeds deeper
    if skip_residuals is not None:
        skips = tuple(s + r for s, r in zip(skips, skip_residuals, strict=True))
    out = _block(
        up, deep, emb, encoder_hidden_states, cak, res_hidden_states_tuple=skips, upsample_size=None
    )
    if unet.conv_norm_out is not None:
        out = unet.conv_act(unet.conv_norm_out(out))
    return unet.conv_out(out)


def shallow_controlnet(
    controlnet: Any,
    sample: torch.Tensor,
    timestep: Any,
    encoder_hidden_states: torch.Tensor,
    cond: torch.Tensor,
    scale: float,
    count: int,
    added_cond_kwargs: dict | None = None,
) -> list[torch.Tensor]:
    """A ControlNet's first `count` residuals (those of the UNet's shallow skips), as its
    forward computes them; a model the shallow path does not fit runs whole."""
    if not (supports(controlnet) and hasattr(controlnet, "controlnet_cond_embedding")):
        kw = {"added_cond_kwargs": added_cond_kwargs} if added_cond_kwargs else {}
        down, _ = controlnet(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            controlnet_cond=cond,
            conditioning_scale=scale,
            return_dict=False,
            **kw,
        )
        return list(down[:count])
    import torch

    if controlnet.config.get("controlnet_conditioning_channel_order") == "bgr":
        cond = torch.flip(cond, dims=[1])
    placed(controlnet, sample)
    emb = embeddings(controlnet, sample, timestep, added_cond_kwargs)
    h = controlnet.conv_in(sample) + controlnet.controlnet_cond_embedding(cond)
    _, res = _block(controlnet.down_blocks[0], h, emb, encoder_hidden_states, None)
    skips = (h, *res)[:count]
    blocks = controlnet.controlnet_down_blocks[:count]
    return [blk(s) * scale for s, blk in zip(skips, blocks, strict=True)]


class FeatureCache:
    """The deep features of the last full UNet call, one entry per key (a tile group).

    `start_step(i)` before each step; `shallow(key, rows)` says whether this call may take the
    shallow path; `full(...)` runs the UNet whole (through `call`, default the module) and
    keeps its deep features. The counters record how often each path ran.
    """

    def __init__(self, unet: Any, interval: int, call: Any = None) -> None:
        self.unet = unet
        self.call = call or unet
        self.interval = interval if supports(unet) else 1
        self.step = 0
        self.deep: dict[Hashable, torch.Tensor] = {}
        self.full_calls = 0
        self.shallow_calls = 0

    @property
    def skips(self) -> int:
        """How many skip connections (and ControlNet residuals) the shallow path uses."""
        return len(self.unet.up_blocks[-1].resnets)

    def start_step(self, index: int) -> None:
        self.step = index

    def _kept(self, key: Hashable, rows: int) -> torch.Tensor | None:
        """The kept features for `rows` rows: all, or the conditional half once CFG has ended
        (rows are stacked [uncond, cond])."""
        kept = self.deep.get(key)
        if kept is None:
            return None
        if kept.shape[0] == rows:
            return kept
        return kept[rows:] if kept.shape[0] == 2 * rows else None

    def shallow(self, key: Hashable, rows: int) -> bool:
        if self.interval <= 1 or self.step % self.interval == 0:
            return False
        return self._kept(key, rows) is not None

    def full(self, key: Hashable, *args: Any, **kwargs: Any) -> Any:
        """`unet(*args, **kwargs)`, keeping the input of its last up block under `key`."""
        if self.interval <= 1:
            self.full_calls += 1
            return self.call(*args, **kwargs)
        seen: dict[str, torch.Tensor] = {}

        def keep(module: Any, args_: Any, kwargs_: dict) -> None:
            seen["deep"] = kwargs_["hidden_states"] if "hidden_states" in kwargs_ else args_[0]

        hook = self.unet.up_blocks[-1].register_forward_pre_hook(keep, with_kwargs=True)
        try:
            out = self.call(*args, **kwargs)
        finally:
            hook.remove()
        self.deep[key] = seen["deep"]
        self.full_calls += 1
        return out

    def run_shallow(self, key: Hashable, sample: torch.Tensor, timestep: Any, **kw: Any) -> Any:
        deep = self._kept(key, sample.shape[0])
        if deep is None:
            raise AssertionError("run_shallow without kept features: ask `shallow` first")
        tome = getattr(self.unet, "_tome_info", None)
        if tome is not None:  # token merging reads the latent size from a hook of `forward`
            tome["size"] = tuple(sample.shape[2:])
        self.shallow_calls += 1
        return shallow_unet(self.unet, deep, sample, timestep, **kw)
