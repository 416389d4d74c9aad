"""Two consoles (results to stdout, progress and messages to stderr); logging through Rich."""

from __future__ import annotations

import logging

from sdenhance.cli.terminal import SafeConsole, SafeRichHandler

# literal text (no markup), control characters escaped: see cli/terminal.py
out_console = SafeConsole(soft_wrap=True)  # results: paths, JSON


err_console = SafeConsole(stderr=True)  # progress and messages


def setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("sdenhance")
    if not any(isinstance(h, SafeRichHandler) for h in logger.handlers):
        logger.addHandler(SafeRichHandler(console=err_console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
