"""The two consoles (results to stdout, progress and messages to stderr) and logging through Rich."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

out_console = Console(highlight=False, soft_wrap=True)  # results: paths, JSON


err_console = Console(stderr=True, highlight=False)  # progress and messages


def setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("sdenhance")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=err_console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
