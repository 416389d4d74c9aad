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
from sdenhance.errors import SdenhanceError, cli_names


class _Group(TyperGroup):
    """Maps user errors to one line + exit 2 and interrupts to exit 130, for every command."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        quiet_libraries()
        with cli_names():  # messages name options as flags here, as keywords in the API
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
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
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        from sdenhance._version import __version__

        typer.echo(f"sdenhance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """Generative upscaling, inpainting and colour-true post-processing with Stable Diffusion."""


def _register() -> None:
    from sdenhance.cli import (
        color,
        enhance,
        expand,
        facefix,
        img2img,
        info,
        inpaint,
        recipes,
        serve,
        ui,
        upscale,
    )

    stages = (upscale, enhance, img2img, inpaint, expand, facefix, color)
    for module in (*stages, recipes, info, serve, ui):
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
