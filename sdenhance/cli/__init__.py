"""The `sdenhance` command line: a thin Typer layer over the API.

One module per command group, merged into one flat app. User errors (`SdenhanceError`) become
one line on stderr and exit 2; Ctrl-C exits 130; anything else keeps its traceback.
"""

from __future__ import annotations

import signal
import sys

import click
import typer
from typer.core import TyperGroup

from sdenhance.cli.common import err_console
from sdenhance.cli.terminal import error_line, quiet_libraries
from sdenhance.errors import SdenhanceError


class _Group(TyperGroup):
    """Maps user errors to one line + exit 2 and interrupts to exit 130, for every command."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        quiet_libraries()
        try:
            return super().invoke(ctx)
        except SdenhanceError as exc:
            err_console.print(error_line(str(exc)), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    name="sdenhance",
    help="Generative upscaling, inpainting and colour-true post-processing with Stable Diffusion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _register() -> None:
    from sdenhance.cli import color, facefix, img2img, info, inpaint, recipes, upscale

    for module in (upscale, img2img, inpaint, facefix, color, recipes, info):
        app.add_typer(module.app)


_register()


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: temp files are removed and no partial output remains."""
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except KeyboardInterrupt:  # raised outside a command (e.g. while importing torch)
        sys.exit(130)
