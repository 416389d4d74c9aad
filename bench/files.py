"""What keeping a file's metadata costs: save time and size per output format, kept vs stripped.

    python bench/files.py                 # prints the table, updates bench/RESULTS.md
    python bench/files.py --side 512 --results -

A real photo (scikit-image's rocket.jpg, Adobe RGB profile) enlarged to `side` px, given camera
EXIF and XMP, loaded as a user's file is, and saved to every output format through
`save_image` with its run record: with everything carried, with `strip_metadata`, and as a
16-bit PNG/TIFF from a pure colour stage. Each save is timed (best of `--repeat`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

SECTION = "files"
FORMATS = ("png", "jpg", "webp", "avif", "tif")


def camera_file(folder: Path, side: int) -> Path:
    import skimage

    rocket = Path(skimage.__file__).parent / "data" / "rocket.jpg"
    src = Image.open(rocket)
    big = src.convert("RGB").resize((side, side * 2 // 3), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 12:00:00"
    exif.get_ifd(0x8769)[0x927C] = bytes(range(256)) * 16  # a 4 KB MakerNote
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    path = folder / "camera.jpg"
    big.save(path, quality=95, icc_profile=src.info["icc_profile"], exif=exif, xmp=xmp)
    return path


def timed(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(side: int = 2048, repeat: int = 3) -> list[dict]:
    from sdenhance.io.deep import DeepImage
    from sdenhance.io.formats import avif_supported
    from sdenhance.io.load import load_image
    from sdenhance.io.save import save_image

    record = {"steps": [{"stage": "upscale", "options": {"scale": 2.0, "creativity": 0.0}}]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loaded = load_image(camera_file(folder, side))
        image = loaded.image
        deep = DeepImage(np.asarray(image, np.float32) / 255.0, None, dict(image.info))
        cases = [(fmt, image, False) for fmt in FORMATS if fmt != "avif" or avif_supported()]
        cases += [(fmt, image, True) for fmt, _, _ in list(cases)]
        cases += [("png", deep, False), ("tif", deep, False)]
        for fmt, picture, strip in cases:
            out = folder / f"o.{fmt}"

            def save(picture=picture, out=out, strip=strip):
                save_image(picture, out, metadata=record, strip_metadata=strip)

            seconds = timed(repeat, save)
            rows.append(
                {
                    "format": fmt + (" 16-bit" if isinstance(picture, DeepImage) else ""),
                    "metadata": "stripped" if strip else "kept",  # stripping converts to sRGB
                    "kb": out.stat().st_size / 1024,
                    "ms": seconds * 1000,
                }
            )
    return rows


def markdown(rows: list[dict], side: int, load: str) -> str:
    lines = [
        "## Output files: what keeping the metadata costs",
        "",
        f"`python bench/files.py`: a {side}px photo with an Adobe RGB profile, camera EXIF (with "
        "a 4 KB MakerNote), XMP and a run record, saved by `save_image` (best of 3). A TIFF that "
        "carries an Exif IFD is written uncompressed (libtiff cannot write one). Stripped "
        "files had their Adobe RGB pixels converted to sRGB first (ImageCms), which is in their "
        "time and changes how well they compress. "
        f"Load average {load}.",
        "",
        "| format | metadata | size KB | save ms |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['format']} | {r['metadata']} | {r['kb']:.0f} | {r['ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/files.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=2048, help="width of the test image in px")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--results", default=str(BENCH_DIR / "RESULTS.md"), help="file, or - to print")
    args = p.parse_args(argv)
    from harness import load_average

    before = load_average()
    rows = measure(args.side, args.repeat)
    text = markdown(rows, args.side, f"{before} before, {load_average()} after")
    print(text)
    if args.results != "-":
        from harness import splice_section

        path = Path(args.results)
        old = path.read_text() if path.exists() else ""
        path.write_text(splice_section(old, SECTION, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
