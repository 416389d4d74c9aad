"""The per-image work of a one-stage command: load, offer the input's prompt, run, or run deep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdenhance.stages import Context, get_stage
from sdenhance.stages.records import recorded_options


class StageWork:
    """`work(item, ctx)` for `process_images`: one stage on each input.

    Loads the input (alpha kept; or `load(path, ctx)` for inputs that need more, such as a
    mask), offers the prompt stored in its metadata when `input_prompt`, puts the `roles`
    images (reference, original) in the context and runs the stage. A 16-bit input of a pure
    colour stage written to PNG or TIFF stays 16-bit (`deep_roles`: the roles' 16-bit pixels).
    `settings` is what decides the output, for its fingerprint (`extra`, which also goes into
    the record, and `more_settings`, such as the mask given).
    """

    def __init__(
        self,
        stage: str,
        opts: Any,
        *,
        input_prompt: bool = False,
        roles: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        load: Callable[[Any, Context], Any] | None = None,
        deep_roles: dict[str, Any] | None = None,
        more_settings: dict[str, Any] | None = None,
    ) -> None:
        self.stage, self.opts, self.input_prompt = stage, opts, input_prompt
        self.roles, self.extra, self.load = roles or {}, dict(extra or {}), load
        self.deep_roles = deep_roles or {}
        self.more_settings = more_settings or {}

    @property
    def settings(self) -> dict[str, Any]:
        """What decides the output: the options in effect (one that does nothing, such as a
        prompt at creativity 0, changes no output), the input-prompt choice and the roles."""
        options = recorded_options(get_stage(self.stage), self.opts)
        return {
            "stage": self.stage,
            "options": options,
            "input_prompt": self.input_prompt and "prompt" in options,
            **self.extra,
            **self.more_settings,
        }

    def __call__(self, item: Any, ctx: Context) -> tuple[Any, dict[str, Any]]:
        from sdenhance.cli.input_prompt import use_input_prompt
        from sdenhance.io.convert import join_alpha
        from sdenhance.io.load import load_image
        from sdenhance.stages import apply_stage

        ctx.images.update(self.roles)
        if self.load is not None:
            image = self.load(item.input, ctx)
            return apply_stage(self.stage, image, self.opts, ctx), dict(self.extra)
        loaded = load_image(item.input, metadata=self.input_prompt)  # unused: left unread
        if writes_deep(loaded, item.output) and _deep_capable(self.stage, self.opts):
            from sdenhance.stages.deep import run_deep

            out = run_deep([(self.stage, self.opts)], loaded.deep, ctx, self.deep_roles)
            return out, dict(self.extra)
        item_opts = use_input_prompt(loaded, self.opts, ctx, enabled=self.input_prompt)
        image = join_alpha(loaded.image, loaded.alpha)
        return apply_stage(self.stage, image, item_opts, ctx), dict(self.extra)


def writes_deep(loaded: Any, output: Any) -> bool:
    """True when the input has more than 8 bits and the output format keeps 16."""
    from sdenhance.io.formats import DEEP, format_of

    return loaded.deep is not None and format_of(output) in DEEP


def _deep_capable(stage: str, opts: Any) -> bool:
    from sdenhance.stages.deep import deep_capable

    return deep_capable(stage, opts)
