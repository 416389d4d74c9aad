"""Commands of this group (filled in as the stages land)."""

from __future__ import annotations

import typer

app = typer.Typer()
