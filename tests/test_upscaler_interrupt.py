"""Ctrl-C answers within a second even in the middle of a Real-ESRGAN tile.

A tile of x4plus runs for seconds inside ncnn, where Python delivers no signal; the extraction
runs in a daemon thread while the main thread waits in short slices (`run_interruptibly`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

CHILD = """
import sys, numpy as np
from PIL import Image
from sdenhance.upscalers.upscale import upscale
img = Image.fromarray((np.random.default_rng(0).random((192, 192, 3)) * 255).astype("uint8"))
upscale(Image.new("RGB", (16, 16)), 4, threads=1)  # net loaded before the clock starts
print("ready", flush=True)
try:
    upscale(img, 4, threads=1, tile=192)  # one tile: seconds inside a single ncnn call
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_sigint_mid_tile_exits_within_a_second(delay):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        assert child.poll() is None, "the upscale finished before the signal: make it longer"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        answer = child.stdout.readline().strip()  # printed by the KeyboardInterrupt handler
        elapsed = time.monotonic() - sent
        child.wait(timeout=30)
    finally:
        child.kill()
    assert answer == "interrupted" and child.returncode == 130, child.stderr.read()[-2000:]
    # the answer, not the interpreter's shutdown, is what the user waits for
    assert elapsed < 1.0, f"took {elapsed:.2f} s to answer Ctrl-C"


def test_a_worker_thread_runs_the_call_directly():
    import threading

    from sdenhance.upscalers.ncnn import run_interruptibly

    seen = []

    def call():
        seen.append(threading.current_thread().name)
        return 7

    worker = threading.Thread(target=lambda: seen.append(run_interruptibly(call)))
    worker.start()
    worker.join()
    assert seen == [worker.name, 7]
    assert run_interruptibly(call) == 7 and seen[-1] == "sdenhance-ncnn"
