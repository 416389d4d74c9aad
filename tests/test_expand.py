"""The expand stage (outpainting): sizes for every way of asking, the original exact beyond the
seam band and feathered inside it, windows painted outward (a stand-in painter records them),
alpha, SD 1.5 and SDXL tiny models, and bad options refused before any model loads."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from skimage import data

from sdenhance import Enhancer, SdenhanceError
from sdenhance.stages import expand as expand_stage
from sdenhance.stages import inpaint

FAST = {"steps": 2, "seed": 1}
OFFLINE = Enhancer("nobody/missing")  # any model load would fail: these runs need none


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# --- sizes and placement, without a model (strength 0: the fill is the result) ------------------


@pytest.mark.parametrize(
    ("ask", "size", "box"),
    [
        ({"right": 32}, (128, 80), (0, 0, 96, 80)),
        ({"left": 10, "top": 20, "right": 30, "bottom": 40}, (136, 140), (10, 20, 106, 100)),
        ({"aspect": "16:9"}, (142, 80), (23, 0, 119, 80)),
        ({"aspect": "1:1", "anchor": "top"}, (96, 96), (0, 0, 96, 80)),
        ({"aspect": "9:16", "anchor": "bottom"}, (96, 171), (0, 91, 96, 171)),
        ({"width": 200}, (200, 80), (52, 0, 148, 80)),
        ({"height": 101, "anchor": "bottom-right"}, (96, 101), (0, 21, 96, 101)),
        ({"width": 150, "height": 120, "anchor": "top-left"}, (150, 120), (0, 0, 96, 80)),
        ({"width": 150, "height": 120, "anchor": "right"}, (150, 120), (54, 20, 150, 100)),
    ],
)
def test_every_way_of_asking_gives_the_exact_size_and_place(photo, ask, size, box) -> None:
    out = OFFLINE.expand(photo, strength=0.0, fill="mirror", **ask)
    assert out.size == size
    assert np.array_equal(arr(out.crop(box)), arr(photo))  # at strength 0 nothing else changes
    assert OFFLINE.last_record["expand"] == {"canvas": list(size), "box": list(box)}


@pytest.mark.parametrize("fill", ["blur", "mirror", "noise", "patchmatch", "telea"])
def test_fills_give_the_new_area_the_images_colours(photo, fill) -> None:
    out = arr(OFFLINE.expand(photo, right=48, bottom=24, strength=0.0, fill=fill, seed=3))
    new = np.ones(out.shape[:2], bool)
    new[:80, :96] = False
    border = arr(photo)[-16:, -16:].reshape(-1, 3).mean(axis=0)
    assert np.abs(out[new].reshape(-1, 3).mean(axis=0) - border).max() < 40
    assert np.array_equal(out[:80, :96], arr(photo))
    if fill == "mirror":  # the column past the edge is the edge column again
        assert np.array_equal(out[:80, 96], arr(photo)[:, 95])
    if fill in ("noise", "patchmatch"):  # seeded
        again = OFFLINE.expand(photo, right=48, bottom=24, strength=0.0, fill=fill, seed=3)
        assert np.array_equal(arr(again), out)


def test_alpha_is_kept_on_the_original_and_opaque_on_the_new_area(photo) -> None:
    alpha = np.full((80, 96), 255, np.uint8)
    alpha[:, :30] = 0
    alpha[10:20, 50:60] = 128
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    out = OFFLINE.expand(rgba, left=16, top=8, strength=0.0)
    assert out.mode == "RGBA" and out.size == (112, 88)
    got = np.asarray(out)[..., 3]
    assert np.array_equal(got[8:, 16:], alpha)
    assert np.all(got[:8] == 255) and np.all(got[:, :16] == 255)


# --- the windows, with a stand-in painter -------------------------------------------------------


class StandInEngine:
    """An engine whose inpainting pipeline declares `native` px; nothing in it runs."""

    def __init__(self, native: int) -> None:
        unet = SimpleNamespace(config=SimpleNamespace(sample_size=native // 8))
        self.pipe = SimpleNamespace(unet=unet, vae_scale_factor=8)
        self.config = SimpleNamespace(allow_pickle=False)

    def inpaint(self, scheduler: str | None = None):
        return self.pipe

    def generator(self, seed):
        return None

    def describe(self):
        return {"model": "stand-in"}


@pytest.fixture
def painted(monkeypatch):
    """Each window the stage paints: its box, the image it was given and its mask; window n
    paints itself in grey 20 + 40 n."""
    calls = []

    def paint(pipe, image, region, job, opts, generator, progress, cond):
        calls.append(SimpleNamespace(box=job.box, image=image.copy(), region=region > 0))
        return np.full_like(image, 20 + 40 * (len(calls) - 1))

    @contextmanager
    def no_prompts(*args, **kwargs):
        yield None, {}

    monkeypatch.setattr(inpaint, "repaint", paint)
    monkeypatch.setattr(expand_stage, "conditioned", no_prompts)
    return calls


def test_a_512_to_1536_expansion_is_painted_outward_each_window_seeing_the_last(painted):
    astronaut = Image.fromarray(data.astronaut())  # 512 × 512
    enh = Enhancer()
    enh._engine = StandInEngine(512)
    out = enh.expand(astronaut, width=1536, seed=0)
    assert out.size == (1536, 512)
    boxes = [call.box for call in painted]
    assert boxes == [
        (224, 0, 736, 512),
        (800, 0, 1312, 512),
        (0, 0, 512, 512),
        (1024, 0, 1536, 512),
    ]
    assert enh.last_record["expand"]["windows"] == [list(b) for b in boxes]
    # the first windows see the original beyond the seam band on their inner side
    src = arr(astronaut)
    assert np.array_equal(arr(Image.fromarray(painted[0].image))[:, 320:], src[:, 32:224])
    assert np.array_equal(painted[1].image[:, :192].astype(np.int16), src[:, 288:480])
    # the outer windows see what the inner ones painted (grey 20 and 60) where they overlap
    assert np.all(painted[2].image[:, 224:512] == 20)
    assert np.all(painted[3].image[:, :288] == 60)
    # every new pixel and every band pixel was in some window's mask
    covered = np.zeros((512, 1536), bool)
    for call in painted:
        x0, y0, x1, y1 = call.box
        covered[y0:y1, x0:x1] |= call.region
    assert covered[:, :543].all() and covered[:, 993:].all()  # the band: 31 px, d < 32
    # the original beyond the 32 px bands is bit-identical; the result is the windows' greys
    result = arr(out)
    assert np.array_equal(result[:, 543:993], src[:, 31:481])
    assert np.all(result[:, :224] == 100) and np.all(result[:, 1312:] == 140)


def test_windows_blend_into_each_other_without_an_edge(painted):
    enh = Enhancer()
    enh._engine = StandInEngine(512)
    out = arr(enh.expand(Image.fromarray(data.astronaut()), width=1536, seed=0))
    # where window 3 (grey 100) meets window 1 (grey 20) the value ramps between them
    row = out[100, 200:330, 0]
    assert row[0] == 100 and row[-1] == 20 and np.all(np.diff(row) <= 0)
    assert len(set(row.tolist())) > 20  # a ramp, not a step


def test_seam_zero_keeps_the_original_whole(painted, photo):
    enh = Enhancer()
    enh._engine = StandInEngine(64)
    out = enh.expand(photo, left=40, seam=0, seed=0)
    assert np.array_equal(arr(out)[:, 40:], arr(photo))
    assert painted  # and no window's mask reaches into the original (canvas x ≥ 40)
    assert not any(call.region[:, max(0, 40 - call.box[0]) :].any() for call in painted)


# --- tiny models -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_tiny_models_repaint_the_new_area_and_feather_the_seam(models, photo, family) -> None:
    enh = Enhancer(models[family])
    out = enh.expand(photo, right=32, bottom=16, prompt="a cat on a sofa", **FAST)
    assert out.size == (128, 96)
    got, src = arr(out), arr(photo)
    # beyond the 32 px band along the right and bottom edges: bit-identical
    assert np.array_equal(got[:49, :65], src[:49, :65])
    # inside the band: the change grows towards the edge
    near = np.abs(got[:40, 88:96] - src[:40, 88:96]).mean()
    far = np.abs(got[:40, 66:72] - src[:40, 66:72]).mean()
    assert near > 2 * far and far > 0
    # the new area is painted, not the fill
    fill = arr(OFFLINE.expand(photo, right=32, bottom=16, strength=0.0))
    assert np.abs(got[:, 96:] - fill[:, 96:]).mean() > 5
    record = enh.last_record
    assert record["models"]["model_family"] == family
    assert record["expand"]["canvas"] == [128, 96] and len(record["expand"]["windows"]) >= 2
    assert record["steps"][-1]["stage"] == "expand" and record["prompt"] == "a cat on a sofa"


def test_same_seed_same_output(models, photo) -> None:
    enh = Enhancer(models["sd15"])
    a = enh.expand(photo, left=24, **FAST)
    b = enh.expand(photo, left=24, **FAST)
    c = enh.expand(photo, left=24, steps=2, seed=2)
    assert np.array_equal(arr(a), arr(b)) and np.abs(arr(a) - arr(c)).mean() > 0.5


def test_a_seam_deeper_than_half_a_window_is_refused(models, photo) -> None:
    with pytest.raises(SdenhanceError, match="`seam` must be at most half.*32 px"):
        Enhancer(models["sd15"]).expand(photo, right=32, seam=40, **FAST)


# --- options refused before any model loads ----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({}, "expand needs a new size"),
        ({"right": 8, "aspect": "16:9"}, "one way to size"),
        ({"width": 200, "left": 4}, "one way to size"),
        ({"aspect": "wide"}, "`aspect` must be W:H"),
        ({"width": 50}, "smaller than the image"),
        ({"aspect": "6:5"}, "already has that aspect"),
        ({"right": 65535, "bottom": 65535}, "over the limit"),
        ({"width": 30000, "height": 30000}, "over the limit"),
        ({"right": -1}, "`right`"),
        ({"seam": 300}, "`seam`"),
        ({"fill": "smear"}, "`fill`"),
        ({"anchor": "middle", "width": 200}, "`anchor`"),
        ({"right": 8, "strength": 2}, "`strength`"),
        ({"right": 8, "rigth": 8}, "did you mean `right`"),
    ],
)
def test_bad_options_are_refused_before_loading(photo, values, words) -> None:
    with pytest.raises(SdenhanceError, match=words):
        OFFLINE.expand(photo, **values)


def test_target_size_plans_the_canvas_before_running(photo) -> None:
    from sdenhance.stages import build_options

    plan = expand_stage.target_size
    assert plan((96, 80), build_options("expand", {"aspect": "2:1"})) == (160, 80)
    assert plan((96, 80), build_options("expand", {"left": 4, "bottom": 6})) == (100, 86)


def test_a_canvas_that_would_not_fit_in_free_memory_is_refused(photo, monkeypatch) -> None:
    from sdenhance.io import limits

    monkeypatch.setattr(limits, "free_memory", lambda: 2**20)  # 1 MiB free
    with pytest.raises(SdenhanceError, match="expanding to 1096×80 needs about"):
        OFFLINE.expand(photo, right=1000, strength=0.0)
