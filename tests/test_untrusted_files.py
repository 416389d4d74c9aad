"""Files that are not what they claim, and outputs the file system cannot take.

Inputs: FIFOs, sockets and devices are refused before anything opens them; a JPEG or PNG
header that claims more pixels than its data could encode is refused before decoding.
Outputs: templates are plain substitutions that never add a path part, de-duplicated names
never take another input's name, every OS error on writing is one user error (or one
failure row in a batch), checked before the work where it can be known, and temp files a
killed process left behind are recognised and swept by the next write in that folder.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage
from bounded import bounded
from PIL import Image
from typer.testing import CliRunner

from sdenhance.batch import plan, unique_names
from sdenhance.cli import app
from sdenhance.errors import SdenhanceError
from sdenhance.io import atomic
from sdenhance.io.bombs import min_data_bytes
from sdenhance.io.load import load_image, read_metadata
from sdenhance.io.paths import fill_template, output_problem, safe_part
from sdenhance.io.save import save_image


def astronaut(size: tuple[int, int] | None = None) -> Image.Image:
    photo = Image.fromarray(skimage.data.astronaut())
    return photo.resize(size) if size else photo.crop((100, 60, 164, 108))


def noise(path: Path, size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------------------------
# inputs that are not files


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # stat follows the link: a character device


@pytest.mark.parametrize(
    "make, what",
    [
        (_fifo, "a FIFO \\(named pipe\\)"),
        (_socket, "a socket"),
        (_device, "a character device"),
    ],
    ids=["fifo", "socket", "device"],
)
def test_non_files_are_refused_before_reading(tmp_path, make, what):
    path = tmp_path / "in.png"
    keep = make(path)
    result = bounded(load_image, path)  # a FIFO would block `open` forever
    assert isinstance(result, SdenhanceError)
    assert result.args[0] == f"input {path} is {what.replace(chr(92), '')}, not an image; refused"
    assert isinstance(bounded(read_metadata, path), SdenhanceError)
    cli = CliRunner().invoke(app, ["info", str(path)])
    assert cli.exit_code == 2 and cli.stderr.startswith(f"error: input {path} is ")
    if keep is not None:
        keep.close()


# --------------------------------------------------------------------------------------------
# headers that claim more than the data holds


def _patched_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    astronaut().save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_jpeg_claiming_far_more_pixels_than_its_data_is_refused(tmp_path):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(_patched_jpeg(9000, 9000))  # ~1 KB under a header of 81 MP
    assert path.stat().st_size < 3000
    with Image.open(path) as im:  # what Pillow alone does: 81 MP of grey filler, no error
        im.load()
        assert im.size == (9000, 9000)
    error = bounded(load_image, path)
    assert isinstance(error, SdenhanceError)
    assert "corrupt JPEG header: 9000x9000 needs at least 237,445 bytes" in str(error)


@pytest.mark.parametrize(
    "mode, options",
    [
        ("L", {"progressive": True, "optimize": True}),
        ("RGB", {"progressive": True, "optimize": True}),
        ("RGB", {"subsampling": 0}),
        ("RGB", {}),
    ],
)
def test_the_flattest_real_jpeg_is_within_the_bound(tmp_path, mode, options):
    """Uniform grey at quality 1, optimised Huffman tables: the smallest a real JPEG of its
    size gets. It is still about twice the 1-bit-per-block bound, and loads."""
    path = tmp_path / "flat.jpg"
    Image.new(mode, (2000, 1500), 128).save(path, quality=1, **options)
    with Image.open(path) as im:
        ratio = path.stat().st_size / min_data_bytes(im)
    assert ratio > 1.5
    assert load_image(path).size == (2000, 1500)


def test_png_claiming_more_than_deflate_can_hold_is_refused(tmp_path):
    import zlib

    path = tmp_path / "bomb.png"
    astronaut().save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 9000, 9000)  # within the 100 MP cap
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    error = bounded(load_image, path)
    assert "corrupt PNG header: 9000x9000 needs at least" in str(error)
    flat = tmp_path / "flat.png"
    Image.new("1", (6000, 6000), 0).save(flat)  # the flattest PNG: still within the bound
    with Image.open(flat) as im:
        assert flat.stat().st_size >= min_data_bytes(im)
    assert load_image(flat).size == (6000, 6000)


# --------------------------------------------------------------------------------------------
# templates


@pytest.mark.parametrize(
    "template, reason",
    [
        ("out/{stem:>9000000000}.png", "`{stem:>9000000000}` is not a plain field"),
        ("out/{stem!r}.png", "`{stem!r}` is not a plain field"),
        ("out/{index[0]}.png", "`{index[0]}` is not a plain field"),
        ("out/{stem.__class__}.png", "`{stem.__class__}` is not a plain field"),
        ("out/{nope}.png", "unknown field `{nope}`"),
        ("out/{stem.png", "unmatched brace"),
    ],
)
def test_templates_are_plain_substitutions(template, reason):
    error = bounded(plan, [Path("a.png")], template, "op")
    assert isinstance(error, SdenhanceError) and reason in str(error)
    assert "fields: {stem}, {op}, {index}, {ext}" in str(error)


def test_substituted_values_never_add_path_parts():
    assert safe_part("..") == "__" and safe_part(".") == "_" and safe_part("a/b\\c\nd") == "a_b_c_d"
    assert safe_part(".hidden") == ".hidden" and safe_part("a..b") == "a..b"
    items = plan([Path("in/...png"), Path("in/.png.png")], "out/{stem}/x.png", "op")
    assert [str(i.output) for i in items] == ["out/__/x.png", "out/.png/x.png"]
    assert fill_template("{{stem}}-{stem}", {"stem": "a"}) == "{stem}-a"
    assert [i.output.name for i in plan([Path("...png")], None, "op")] == ["___op.png"]


def test_a_stem_of_dots_stays_inside_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    astronaut().save(tmp_path / "...png", format="PNG")
    result = CliRunner().invoke(
        app, ["colorfix", "...png", "-r", "...png", "-o", "out/{stem}/x.png"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "__" / "x.png").is_file() and not (tmp_path / "x.png").exists()


def test_deduplicated_names_never_take_another_inputs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i, spec in enumerate(("d1/a.png", "d2/a.png", "a_2.png", "d3/a.png")):
        (tmp_path / spec).parent.mkdir(exist_ok=True)
        astronaut().rotate(30 * i).save(tmp_path / spec)  # four different images
    wanted = [Path("out/a.png"), Path("out/a.png"), Path("out/a_2.png"), Path("out/a.png")]
    assert [str(p) for p in unique_names(wanted)] == [
        "out/a.png",
        "out/a_3.png",  # a_2 is another input's own name
        "out/a_2.png",
        "out/a_4.png",
    ]
    inputs = ["d1/a.png", "d2/a.png", "a_2.png", "d3/a.png"]
    result = CliRunner().invoke(app, ["colorfix", *inputs, "-r", "a_2.png", "-o", "out/{stem}.png"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a.png", "a_2.png", "a_3.png", "a_4.png"]  # four inputs, four results
    made_from = {
        p.name: read_metadata(p).sdenhance["input"]["sha256"] for p in (tmp_path / "out").iterdir()
    }
    assert len(set(made_from.values())) == 4


# --------------------------------------------------------------------------------------------
# checks before writing, and OS errors while writing


def test_a_name_too_long_is_refused_before_the_work(tmp_path, monkeypatch):
    import sdenhance.io.load as load

    monkeypatch.chdir(tmp_path)
    astronaut().save(tmp_path / "a.png")
    loads = []
    real = load.load_image
    monkeypatch.setattr(load, "load_image", lambda *a, **k: loads.append(a) or real(*a, **k))
    template = "out/{stem}" + "x" * 300 + ".png"
    result = CliRunner().invoke(app, ["colorfix", "a.png", "-r", "a.png", "-o", template])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write out/a" + "x" * 20)
    assert "is 305 bytes; the file system allows 255" in result.stderr
    assert len(loads) == 1  # the reference only: the input was never loaded
    assert not (tmp_path / "out").exists()


def test_output_problem_names_each_knowable_cause(tmp_path, monkeypatch):
    assert output_problem(tmp_path / "new" / "deeper" / "ok.png") is None
    assert "is 301 bytes" in output_problem(tmp_path / ("y" * 297 + ".png"))
    assert "longer than the file system allows" in output_problem(
        tmp_path.joinpath(*["z" * 200] * 25, "a.png")
    )
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert output_problem(tmp_path / "a.png") == f"the folder {tmp_path} is not writable"


def test_a_read_only_folder_is_one_error_line(tmp_path, monkeypatch):
    astronaut().save(tmp_path / "a.png")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root may write anywhere: the folder answers as it would to a user
        real = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, *a, **k: (
                False if Path(path) == ro and mode & os.W_OK else real(path, mode, *a, **k)
            ),
        )
    result = CliRunner().invoke(
        app,
        [
            "colorfix",
            str(tmp_path / "a.png"),
            "-r",
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / "ro" / "x.png"),
        ],
    )
    assert result.exit_code == 2 and "is not writable" in result.stderr


OS_ERRORS = [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.ENAMETOOLONG, errno.EFBIG]


@pytest.mark.parametrize("code", OS_ERRORS, ids=[errno.errorcode[c] for c in OS_ERRORS])
@pytest.mark.parametrize("when", ["create", "write", "fsync", "rename"])
def test_every_os_error_on_writing_is_one_user_error(tmp_path, monkeypatch, code, when):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    def write(f):
        f.write(b"partial data")
        if when == "write":
            fail()

    if when == "create":
        monkeypatch.setattr(atomic.tempfile, "mkstemp", fail)
    elif when == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", fail)
    elif when == "rename":
        monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(SdenhanceError) as caught:
        atomic.write_atomic(target, write)
    words = "disk quota exceeded" if code == errno.EDQUOT else os.strerror(code)
    assert str(caught.value) == f"cannot write {target}: {words}"
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp file left


def _with_file_size_limit(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_a_full_disk_in_a_real_process_is_one_line_and_a_failure_row_in_a_batch(tmp_path):
    """RLIMIT_FSIZE makes every write past 4 KB fail with EFBIG, as a full disk fails them."""
    for name in ("a.png", "b.png"):
        noise(tmp_path / name, 96)
    command = [sys.executable, "-m", "sdenhance", "colorfix"]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*command, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_with_file_size_limit(4096),
    )
    single = run("a.png", "-r", "b.png", "-o", "out/x.png")
    assert single.returncode == 2
    assert single.stderr == "error: cannot write out/x.png: File too large\n"
    batch = run("a.png", "b.png", "-r", "b.png", "-o", "out/")
    assert batch.returncode == 3 and "Traceback" not in batch.stderr
    assert batch.stderr.count("File too large") == 2 and "2 of 2 failed" in batch.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # nothing partial


# --------------------------------------------------------------------------------------------
# temp files of killed writers


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_stale_temp_files_are_recognised_and_swept(tmp_path):
    old = time.time() - 2 * atomic.STALE_SECONDS
    names = {
        f".sdenhance-{atomic.HOST}-{_dead_pid()}-a1.part": True,  # our host, writer gone
        f".sdenhance-{atomic.HOST}-{os.getpid()}-b2.part": False,  # a writer still running
        ".sdenhance-ffffff-1-c3.part": False,  # another host's, recent: may be in progress
        ".sdenhance-ffffff-1-d4.part": True,  # another host's, a day old
        ".other.part": False,  # not ours
        "sdenhance-e5.part": False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / ".sdenhance-ffffff-1-d4.part", (old, old))
    save_image(astronaut(), tmp_path / "out.png")
    left = {p.name for p in tmp_path.iterdir()} - {"out.png"}
    assert left == {name for name, stale in names.items() if not stale}


def test_a_killed_writer_leaves_a_recognisable_temp_that_the_next_run_removes(tmp_path):
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sdenhance.io.atomic import write_atomic\n"
        "def write(f):\n"
        "    f.write(b'half an image'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        "write_atomic(Path(sys.argv[1]) / 'out.png', write)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(f".sdenhance-{atomic.HOST}-{proc.pid}-") and left.suffix == ".part"
    astronaut().save(tmp_path.parent / f"{tmp_path.name}-in.png")
    src = tmp_path.parent / f"{tmp_path.name}-in.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sdenhance",
            "colorfix",
            str(src),
            "-r",
            str(src),
            "-o",
            str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
