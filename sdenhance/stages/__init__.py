"""Stages: one module per step, each `run(image, opts, ctx) -> image` with a frozen `Options`.

Images in and out are RGB PIL images; alpha is kept aside by the caller (`sdenhance.api`) and
restored afterwards. `ctx` carries the lazily built engine, the seed, progress and the logger;
stages keep no state between calls.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from sdenhance.errors import ModelNotFoundError, SdenhanceError
from sdenhance.io.convert import join_alpha, split_alpha
from sdenhance.options import from_mapping

if TYPE_CHECKING:
    from PIL import Image

    from sdenhance.models.config import EngineConfig
    from sdenhance.models.engine import Engine

# stage name -> module; modules import torch lazily so options can be checked before any load
STAGES: dict[str, str] = {
    "img2img": "sdenhance.stages.img2img",
    "upscale": "sdenhance.stages.tile_upscale",
    "inpaint": "sdenhance.stages.inpaint",
    "remove": "sdenhance.stages.remove",
    "colorfix": "sdenhance.stages.colorfix",
    "blend": "sdenhance.stages.blend",
    "denoise": "sdenhance.stages.denoise",
    "resize": "sdenhance.stages.resize",
    "facefix": "sdenhance.stages.facefix",
    "deblur": "sdenhance.stages.deblur",
    "expand": "sdenhance.stages.expand",
}

ProgressFn = Callable[[str, int, int], None]


def _no_progress(label: str, done: int, total: int) -> None:
    return None


class StageModule(Protocol):
    Options: type

    def run(self, image: Image.Image, opts: Any, ctx: Context) -> Image.Image: ...


def get_stage(name: str) -> ModuleType:
    """The module of stage `name`; an unknown name is a user error listing the known ones."""
    try:
        path = STAGES[name]
    except KeyError:
        raise SdenhanceError(
            f"unknown stage `{name}`; known stages: {', '.join(sorted(STAGES))}"
        ) from None
    return importlib.import_module(path)


@dataclass
class Context:
    """What a stage may use besides its image and options.

    The engine is built on first use, so offline stages (Real-ESRGAN only, colour, remove) never
    load a diffusion model. One context can serve a whole batch: models load once per process.
    """

    engine_config: EngineConfig | None = None
    seed: int | None = None
    progress: ProgressFn = _no_progress
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sdenhance"))
    _engine: Engine | None = field(default=None, repr=False)
    # extra inputs by role: "original" (the run's input), "alpha", "mask", "reference"
    images: dict[str, Image.Image] = field(default_factory=dict)
    # what ran, for the output's metadata: filled by stages, read by the saver
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from sdenhance.models.config import EngineConfig
            from sdenhance.models.engine import Engine

            self._engine = Engine(self.engine_config or EngineConfig())
        return self._engine

    @property
    def allow_pickle(self) -> bool:
        """`--allow-pickle`: every loader that takes a model path honours it, upscalers too."""
        return bool(self.engine_config is not None and self.engine_config.allow_pickle)

    def resolve_seed(self) -> int:
        """The seed for this image: the given one, or a fresh one that is then recorded."""
        if self.seed is None:
            self.seed = random.randrange(0, 2**32)
        self.record["seed"] = self.seed
        return self.seed


def build_options(stage: str, values: dict[str, Any], *, where: str = "") -> Any:
    """Validated options of `stage` from plain values (unknown keys are errors); `fast` fills
    in the speed-ups not given (`stages.fast_options`)."""
    from sdenhance.stages.fast_options import with_fast

    cls = get_stage(stage).Options
    return from_mapping(cls, with_fast(cls, values), where=where or stage)


def preflight(stage: str, opts: Any, ctx: Context) -> None:
    """Stage `stage`'s checks of `opts` (and of `ctx.images` shared by every input) that need
    no input image, if it has any: run once before a batch, so what is wrong for every input
    is refused once. Stages run the same checks themselves, so skipping this loses nothing."""
    module = get_stage(stage)
    check = getattr(module, "preflight", None)
    if check is not None:
        with _offline_way_round(module):
            check(opts, ctx)


@contextmanager
def _offline_way_round(module: ModuleType) -> Iterator[None]:
    """A missing model's error names the stage's own way round it (its `OFFLINE` option)."""
    try:
        yield
    except ModelNotFoundError as exc:
        exc.offline = exc.offline or getattr(module, "OFFLINE", None)
        raise


def apply_stage(stage: str, image: Image.Image, opts: Any, ctx: Context) -> Image.Image:
    """Run one stage with the image convention applied: alpha aside, then restored.

    The step is recorded in `ctx.record` (`stages.records`), and the result carries what the
    input carried for its outputs (ICC profile, EXIF, XMP) in its `info`.
    """
    from sdenhance.io.save_params import CARRIED_KEYS
    from sdenhance.stages.records import record_step

    module = get_stage(stage)
    rgb, alpha = split_alpha(image)
    ctx.images.setdefault("original", rgb)
    if alpha is not None:
        ctx.images.setdefault("alpha", alpha)
    before = dict(ctx.record)
    with _offline_way_round(module):
        out = module.run(rgb, opts, ctx)
    record_step(ctx.record, before, stage, module, opts, (rgb.size, out.size))
    place = getattr(module, "placed_alpha", None)  # a stage that moves the picture places it
    if alpha is not None and place is not None:
        alpha = place(alpha, opts)
    result = join_alpha(out, alpha)
    result.info.update({k: image.info[k] for k in CARRIED_KEYS if k in image.info})
    return result
