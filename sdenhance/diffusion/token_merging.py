"""Token merging (ToMe for SD, Bolya and Hoffman, CVPR Workshops 2023) for one call.

The `tomesd` package (the authors' own, an optional extra: `pip install sdenhance[fast]`)
patches the UNet's transformer blocks to merge similar tokens before self-attention. Models are
shared across calls, so the patch lives only inside `merged_tokens`: on the way out every
block gets its class back and loses what the patch added, and the next exact call computes what
a fresh model computes. Its random choice of merge destinations draws from a generator seeded
from the run's seed (tomesd would fork torch's global one), so a seeded run repeats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sdenhance.errors import SdenhanceError

_ADDED = ("_tome_info", "_parent", "use_ada_layer_norm", "use_ada_layer_norm_zero")


def require_tomesd() -> Any:
    """The `tomesd` module, or a user error saying how to install it."""
    try:
        import tomesd
    except ImportError:
        raise SdenhanceError(
            "token merging needs the `tomesd` package",
            hint="pip install 'sdenhance[fast]', or leave --token-merging at 0",
        ) from None
    return tomesd


@contextlib.contextmanager
def merged_tokens(unet: Any, ratio: float, seed: int = 0) -> Iterator[Any]:
    """`unet` patched to merge `ratio` of the tokens of its full-resolution attention blocks;
    `ratio` 0 leaves it untouched."""
    if ratio <= 0:
        yield unet
        return
    tomesd = require_tomesd()
    import torch

    before = {name: set(vars(m)) for name, m in unet.named_modules()}
    tomesd.apply_patch(unet, ratio=ratio)
    try:
        device = next(unet.parameters()).device
        gen = torch.Generator(device=device if device.type in ("cpu", "cuda") else "cpu")
        unet._tome_info["args"]["generator"] = gen.manual_seed(seed)
        yield unet
    finally:
        tomesd.remove_patch(unet)
        for name, module in unet.named_modules():
            for attr in _ADDED:
                if attr in vars(module) and attr not in before.get(name, ()):
                    delattr(module, attr)
