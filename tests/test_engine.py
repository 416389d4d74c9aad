"""Engine: model resolution in every layout, sharing, device/dtype, schedulers, clear errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError, testing
from sdenhance.cli import app
from sdenhance.models.config import EngineConfig
from sdenhance.models.engine import Engine
from sdenhance.models.resolve import resolve
from sdenhance.models.schedulers import SCHEDULERS, make_scheduler


def test_resolve_folder_families(models):
    assert resolve(models["sd15"]).family == "sd15"
    assert resolve(models["sdxl"]).family == "sdxl"
    assert resolve(models["sd15-inpaint"]).inpaint is True
    assert resolve(models["sd15"]).inpaint is False
    cn = resolve(models["sdxl-controlnet"], role="controlnet")
    assert (cn.family, cn.role) == ("sdxl", "controlnet")


def test_folder_of_wrong_role_is_refused(models):
    with pytest.raises(SdenhanceError, match="controlnet"):
        resolve(models["sd15-controlnet"], role="pipeline")


def test_missing_hub_model_offline_is_one_clear_error(tmp_path):
    with pytest.raises(SdenhanceError) as err:
        resolve("someone/not-here")
    msg = str(err.value)
    # outside the command line the fix is named as the keyword argument
    assert "someone/not-here" in msg and "HF_HUB_OFFLINE" in msg and "model=PATH" in msg
    assert "\n" not in msg
    from sdenhance.errors import cli_names

    with cli_names():
        assert "--model PATH" in str(err.value)


def test_missing_local_file(tmp_path):
    with pytest.raises(SdenhanceError, match="model file .*nope.safetensors does not exist"):
        resolve(str(tmp_path / "nope.safetensors"))


def test_cli_missing_model_exits_2_with_one_line(tmp_path, photo):
    src = tmp_path / "in.png"
    photo.save(src)
    result = CliRunner().invoke(
        app, ["img2img", str(src), "--model", "nobody/nothing", "--seed", "1"]
    )
    assert result.exit_code == 2, result.output
    assert "nobody/nothing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "in_img2img.png").exists()


def test_hub_id_resolves_through_the_cache_offline(models, tmp_path, monkeypatch, photo):
    cache = tmp_path / "hub"
    testing.save_hub_cache(cache, "stable-diffusion-v1-5/stable-diffusion-v1-5", models["sd15"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    engine = Engine(EngineConfig())  # no model given: the SD 1.5 default, from the cache
    assert engine.model.repo_id == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert engine.model.revision == "0" * 40
    out = Enhancer(seed=3).img2img(photo.resize((64, 64)), strength=0.5, steps=2)
    assert out.size == (64, 64)


def test_components_are_loaded_once_and_shared(models):
    engine = Engine(
        EngineConfig(model=models["sd15"], controlnet=models["sd15-controlnet"], device="cpu")
    )
    base = engine.base
    for pipe in (
        engine.img2img("euler-a"),
        engine.img2img("ddim"),
        engine.inpaint(),
        engine.controlnet_img2img(),
    ):
        assert (
            pipe.unet is base.unet
            and pipe.vae is base.vae
            and pipe.text_encoder is base.text_encoder
        )
    assert engine.img2img("euler-a") is engine.img2img("euler-a")
    assert engine.img2img("euler-a").scheduler is not engine.img2img("ddim").scheduler
    assert engine.controlnet_img2img().controlnet is engine.controlnet


def test_sdxl_and_dedicated_inpaint_model(models):
    engine = Engine(EngineConfig(model=models["sdxl"], controlnet=models["sdxl-controlnet"]))
    assert type(engine.base).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert (
        type(engine.controlnet_img2img()).__name__ == "StableDiffusionXLControlNetImg2ImgPipeline"
    )
    sd = Engine(EngineConfig(model=models["sd15"], inpaint_model=models["sd15-inpaint"]))
    assert sd.inpaint().unet.config.in_channels == 9
    assert sd.base.unet.config.in_channels == 4


def test_controlnet_of_other_family_is_refused(models):
    engine = Engine(EngineConfig(model=models["sd15"], controlnet=models["sdxl-controlnet"]))
    with pytest.raises(SdenhanceError, match="same family"):
        _ = engine.controlnet


def test_inpainting_model_as_base_is_refused(models):
    with pytest.raises(SdenhanceError, match="--inpaint-model"):
        _ = Engine(EngineConfig(model=models["sd15-inpaint"])).base


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_builds(models, name):
    engine = Engine(EngineConfig(model=models["sd15"]))
    sched = make_scheduler(name, engine.base.scheduler.config)
    sched.set_timesteps(4)
    assert len(sched.timesteps) >= 4


def test_bad_engine_options():
    for cfg, word in [
        (EngineConfig(device="tpu"), "--device"),
        (EngineConfig(dtype="fp8"), "--dtype"),
        (EngineConfig(device="cpu", offload="model"), "--offload"),
    ]:
        with pytest.raises(SdenhanceError, match=word):
            Engine(cfg)
    with pytest.raises(SdenhanceError, match="fp16"):
        _ = Engine(EngineConfig(device="cpu", dtype="fp16")).dtype


def test_user_config_file_sets_the_default_model(models, tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'model = "{models["sdxl"]}"\n')
    monkeypatch.setenv("SDENHANCE_CONFIG", str(cfg))
    assert Engine(EngineConfig()).family == "sdxl"
    cfg.write_text('modle = "x"\n')
    with pytest.raises(SdenhanceError, match="modle"):
        _ = Engine(EngineConfig()).model


def test_doctor_report_lists_cached_models(models, tmp_path, monkeypatch):
    from sdenhance.models.doctor import doctor_report

    cache = tmp_path / "hub"
    testing.save_hub_cache(cache, "org/tiny", models["sdxl"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    report = doctor_report()
    assert report["device"] == "cpu" and report["attention"] == "sdpa"
    assert {"id": "org/tiny", "family": "sdxl", "role": "pipeline", "inpaint": False} in report[
        "models"
    ]
    assert set(report["extras"]) == {
        "xformers",
        "controlnet_aux",
        "spandrel",
        "onnxruntime",
        "pillow_heif",
    }


def test_shared_components_keep_their_dtype(models):
    import torch

    engine = Engine(EngineConfig(model=models["sd15"], dtype="bf16"))
    engine.img2img("euler")
    engine.inpaint()
    assert engine.base.unet.dtype == torch.bfloat16 and engine.base.vae.dtype == torch.bfloat16


def test_generator_is_seeded_on_cpu(models):
    engine = Engine(EngineConfig(model=models["sd15"]))
    a = engine.generator(7).initial_seed()
    assert a == 7 and np.isclose(
        float(__import__("torch").randn(1, generator=engine.generator(7))),
        float(__import__("torch").randn(1, generator=engine.generator(7))),
    )


# ---------------------------------------------------------------------------------------------
# single-file checkpoints (A1111/Civitai layout) and pickles


@pytest.fixture(scope="module")
def single_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    return {
        fam: testing.save_single_file(root / f"{fam}.safetensors", fam) for fam in ("sd15", "sdxl")
    }


@pytest.mark.parametrize(
    ("family", "repo"),
    [
        ("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0"),
    ],
)
def test_single_file_loads_with_configs_from_the_cache(
    models, single_files, tmp_path, monkeypatch, photo, family, repo
):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    testing.save_hub_cache(cache, repo, models[family])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    engine = Engine(EngineConfig(model=str(single_files[family])))
    assert engine.model.kind == "single_file" and engine.family == family
    out = Enhancer(str(single_files[family]), seed=0).img2img(
        photo.resize((64, 64)), strength=0.5, steps=2
    )
    assert out.size == (64, 64)
    assert engine.base.unet is not None  # loaded offline through the cached configs
    digest = hashlib.sha256(single_files[family].read_bytes()).hexdigest()[:10]
    assert engine.describe()["model_hash"] == digest


def test_single_file_matches_the_folder_it_came_from(models, single_files, photo):
    img = photo.resize((64, 64))
    a = Enhancer(models["sd15"], seed=1).img2img(img, strength=0.6, steps=3)
    b = Enhancer(str(single_files["sd15"]), model_config=models["sd15"], seed=1).img2img(
        img, strength=0.6, steps=3
    )
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_single_file_without_configs_offline_is_one_clear_error(single_files, photo):
    with pytest.raises(SdenhanceError) as err:
        Enhancer(str(single_files["sd15"])).img2img(photo, strength=0.5, steps=2)
    assert "--model-config" in str(err.value) and "\n" not in str(err.value)


def test_model_hash_is_recorded_for_single_files(models, single_files, photo):
    enh = Enhancer(str(single_files["sd15"]), model_config=models["sd15"], seed=1)
    enh.img2img(photo.resize((64, 64)), strength=0.5, steps=2)
    models_rec = enh.last_record["models"]
    assert models_rec["model"] == str(single_files["sd15"]) and len(models_rec["model_hash"]) == 10


def test_pickles_are_refused_unless_allowed_then_loaded_weights_only(models, tmp_path, photo):
    import torch
    from safetensors.torch import load_file

    sf = testing.save_single_file(tmp_path / "m.safetensors", "sd15")
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": load_file(sf)}, ckpt)
    with pytest.raises(SdenhanceError, match="pickle.*--allow-pickle"):
        resolve(str(ckpt))
    renamed = tmp_path / "sneaky.safetensors"  # content decides, not the name
    renamed.write_bytes(ckpt.read_bytes())
    with pytest.raises(SdenhanceError, match="pickle"):
        resolve(str(renamed))
    out = Enhancer(str(ckpt), allow_pickle=True, model_config=models["sd15"], seed=0).img2img(
        photo.resize((64, 64)), strength=0.5, steps=2
    )
    assert out.size == (64, 64)


def test_corrupt_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "cut.safetensors"
    sf = testing.save_single_file(tmp_path / "ok.safetensors", "sd15")
    bad.write_bytes(sf.read_bytes()[:-100])
    with pytest.raises(SdenhanceError, match="corrupt or truncated"):
        resolve(str(bad))


def test_an_inpainting_model_given_as_model_inpaints(models, photo):
    import numpy as np

    from sdenhance import Enhancer

    mask = np.zeros((80, 96), np.uint8)
    mask[20:50, 30:70] = 255
    from PIL import Image

    out = Enhancer(models["sd15-inpaint"], seed=0).inpaint(
        photo, Image.fromarray(mask), strength=0.9, steps=2
    )
    assert out.size == photo.size


def test_inpaint_model_of_another_family_is_refused(models):
    engine = Engine(EngineConfig(model=models["sdxl"], inpaint_model=models["sd15-inpaint"]))
    _ = engine.base
    with pytest.raises(SdenhanceError, match="same family"):
        engine.inpaint()


def test_api_alpha_mask(models):
    import numpy as np
    from PIL import Image

    from sdenhance import Enhancer

    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = 255
    rgba[10:20, 10:30, 3] = 0
    out = Enhancer(models["sd15"], seed=0).inpaint(
        Image.fromarray(rgba), "alpha", strength=0.9, steps=2
    )
    assert out.mode == "RGB" and out.size == (48, 40)
    keep = np.ones((40, 48), bool)
    keep[:33, :43] = False  # the hole grown by 4 and feathered by 8 px
    assert np.array_equal(np.asarray(out)[keep], rgba[..., :3][keep])
    with pytest.raises(SdenhanceError, match="transparency"):
        Enhancer(models["sd15"]).inpaint(Image.fromarray(rgba[..., :3]), "alpha")


def test_cpu_dtype_follows_the_hardware_not_a_timing(monkeypatch):
    import torch

    from sdenhance.models import device as eng

    monkeypatch.delenv("SDENHANCE_CPU_DTYPE", raising=False)
    cpu = torch.device("cpu")
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(eng, "cpu_has_native_bf16", lambda native=native: native)
        assert eng.pick_dtype("auto", cpu) == expected
    monkeypatch.setenv("SDENHANCE_CPU_DTYPE", "fp32")
    assert eng.pick_dtype("auto", cpu) == torch.float32
    assert eng.pick_dtype("bf16", cpu) == torch.bfloat16
