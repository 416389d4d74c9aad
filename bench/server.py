"""What `sdenhance serve` adds per job, on a job that does almost nothing (a Lanczos ×2 of a
small image), so the table shows the server's own cost: the queue, HTTP, multipart or base64,
and the atomic save with metadata. Prints a markdown table; takes well under a minute.

    python bench/server.py [--jobs 100] [--size 128]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OPTIONS = {"scale": 2, "upscaler": "lanczos"}


def png(size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--size", type=int, default=128)
    args = p.parse_args(argv)

    import httpx
    import uvicorn

    from sdenhance.io.load import load_image
    from sdenhance.io.save import save_image
    from sdenhance.server import JobQueue, ServerSettings, create_app
    from sdenhance.stages import Context, apply_stage, build_options

    images = [png(args.size, i) for i in range(args.jobs)]
    out = Path(tempfile.mkdtemp(prefix="sdenhance-bench-serve-"))
    rows = []

    # 1. the same work without a server: load, run the stage, save with metadata
    opts = build_options("resize", OPTIONS)

    def direct(i: int) -> None:
        src = out / f"in-{i}.png"
        src.write_bytes(images[i])
        ctx = Context()
        result = apply_stage("resize", load_image(src).image, opts, ctx)
        save_image(result, out / f"direct-{i}.png", metadata=ctx.record)

    rows.append(("direct: load, stage, save", timed(direct, args.jobs)))

    queue = JobQueue(None, outputs=out, capacity=args.jobs, history=args.jobs)
    # 2. the in-process queue (what a UI on the same app uses)
    rows.append(
        (
            "JobQueue.submit + wait",
            timed(
                lambda i: queue.wait(
                    queue.submit(images={"image": images[i]}, stage="resize", options=OPTIONS)
                ),
                args.jobs,
            ),
        )
    )

    # 3. over real HTTP on 127.0.0.1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerSettings(outputs=out), queue=queue)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def own_api(i: int, c: httpx.Client = client) -> None:
        r = c.post(
            "/api/v1/jobs",
            files={"image": ("a.png", images[i])},
            data={"stage": "resize", "options": json.dumps(OPTIONS)},
        )
        job = r.json()["id"]
        queue.wait(job)  # the server side is done; now the client fetches the result
        assert c.get(f"/api/v1/jobs/{job}/result").status_code == 200

    def a1111(i: int) -> None:
        body = {"image": base64.b64encode(images[i]).decode(), "upscaler_1": "Lanczos"}
        assert client.post("/sdapi/v1/extra-single-image", json=body).status_code == 200

    rows.append(("HTTP /api/v1: upload, job, download", timed(own_api, args.jobs)))
    rows.append(("HTTP /sdapi/v1/extra-single-image", timed(a1111, args.jobs)))

    # 4. ten concurrent clients, throughput
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for _ in range(10)]
    start = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda i: own_api(i, clients[i % 10]), range(args.jobs)))
    wall = time.perf_counter() - start
    rss = psutil.Process().memory_info().rss / 2**20
    server.should_exit = True
    thread.join(10)
    queue.close()

    print(f"## sdenhance serve: per-job cost ({args.jobs} jobs, {args.size}px PNG, Lanczos ×2)\n")
    print("| path | median ms | p90 ms | overhead vs direct, ms |")
    print("|---|---:|---:|---:|")
    base = statistics.median(rows[0][1]) * 1000
    for name, times in rows:
        ms = sorted(t * 1000 for t in times)
        med = statistics.median(ms)
        print(f"| {name} | {med:.1f} | {ms[int(0.9 * len(ms))]:.1f} | {med - base:+.1f} |")
    print(
        f"\n10 concurrent clients: {args.jobs / wall:.1f} jobs/s; process RSS after all: {rss:.0f} MiB"
    )
    print(f"CPU cores: {len(os.sched_getaffinity(0))}; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
