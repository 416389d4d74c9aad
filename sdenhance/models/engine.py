"""Model resolution, loading and sharing; device, dtype and speed knobs.

A model spec is a local single-file checkpoint, a local diffusers folder, or a hub id resolved
through the Hugging Face cache (offline when `HF_HUB_OFFLINE=1`). Each model loads once per
`Engine`; img2img, ControlNet and inpaint pipelines share its components through `from_pipe`,
always with the engine's dtype so nothing shared is ever cast. Stages never mutate components.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdenhance.errors import ModelNotFoundError, SdenhanceError
from sdenhance.models.config import (
    DEFAULTS,
    NO_CONTROLNET,
    EngineConfig,
    check_config,
    controlnet_disabled,
    user_defaults,
)
from sdenhance.models.device import attention_backend, dtype_kwargs, pick_device, pick_dtype
from sdenhance.models.load_checks import check_loaded, load_error, load_errors
from sdenhance.models.resolve import ResolvedModel, hub_cache_dir, hub_offline, resolve
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, make_scheduler

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sdenhance")


# ---------------------------------------------------------------------------------------------
# user defaults


# ---------------------------------------------------------------------------------------------
# resolution


# ---------------------------------------------------------------------------------------------
# device and dtype


# ---------------------------------------------------------------------------------------------
# the engine


def _quiet_libraries() -> None:
    """diffusers/transformers chatter (progress bars, torchvision notes) stays out of stderr."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read at import: before it
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    try:
        import diffusers
        import transformers

        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - logging setup must never stop a run
        pass


@dataclass
class Engine:
    """Loaded models for one configuration: each component once, shared by every pipeline."""

    config: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        check_config(self.config)
        self._pipes: dict[Any, Any] = {}
        self._resolved: dict[str, ResolvedModel] = {}
        self._vae: tuple[Any, dict[str, Any]] | None = None  # (module, metadata) once loaded
        self.load_seconds = 0.0
        _quiet_libraries()

    # -- what and where -------------------------------------------------------------------------
    @functools.cached_property
    def device(self) -> torch.device:
        return pick_device(self.config.device)

    @functools.cached_property
    def dtype(self) -> torch.dtype:
        return pick_dtype(self.config.dtype, self.device)

    @property
    def model(self) -> ResolvedModel:
        if "model" not in self._resolved:
            spec = (
                self.config.model
                or os.environ.get("SDENHANCE_MODEL")
                or user_defaults().get("model")
                or DEFAULTS["sd15"]["model"]
            )
            self._resolved["model"] = resolve(
                spec, role="pipeline", allow_pickle=self.config.allow_pickle
            )
        return self._resolved["model"]

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def family_resolution(self) -> int:
        """The family's training size (512 SD 1.5, 1024 SDXL): an upscale's default tile."""
        return DEFAULTS[self.family]["resolution"]

    def describe(self) -> dict[str, Any]:
        """Model ids and hashes for the output's metadata (only what has been loaded)."""
        out: dict[str, Any] = {}
        for role, resolved in self._resolved.items():
            out.update(resolved.describe(role))
        if self._pipes.get("controlnet", False) is None:
            out["controlnet"] = NO_CONTROLNET  # an upscale ran without one: reruns do too
        if self._vae is not None:
            out.update(self._vae[1])
        out["device"] = str(self.device)
        out["dtype"] = str(self.dtype).replace("torch.", "")
        return out

    # -- loading ----------------------------------------------------------------------------------
    def _load_pipeline(self, resolved: ResolvedModel, inpaint: bool):
        import diffusers
        from huggingface_hub.errors import HfHubHTTPError

        xl = resolved.family == "sdxl"
        if inpaint:
            cls = (
                diffusers.StableDiffusionXLInpaintPipeline
                if xl
                else diffusers.StableDiffusionInpaintPipeline
            )
        else:
            cls = (
                diffusers.StableDiffusionXLImg2ImgPipeline
                if xl
                else diffusers.StableDiffusionImg2ImgPipeline
            )
        kwargs: dict[str, Any] = dtype_kwargs(self.dtype)
        if not xl:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        t0 = time.perf_counter()
        try:
            if resolved.kind == "single_file":
                config = self.config.model_config or user_defaults().get("model_config")
                if config:
                    config = str(resolve(config, role="pipeline").path)
                pipe = cls.from_single_file(
                    str(resolved.path),
                    config=config,
                    cache_dir=hub_cache_dir(),
                    local_files_only=hub_offline(),
                    **kwargs,
                )
            else:
                pipe = cls.from_pretrained(str(resolved.path), local_files_only=True, **kwargs)
        except SdenhanceError:
            raise
        except (*load_errors(), HfHubHTTPError) as exc:  # LocalEntryNotFoundError: an OSError
            hint = None
            if resolved.kind == "single_file":
                hint = (
                    "a single-file checkpoint needs its family's configs: go online once, or pass "
                    "--model-config with a diffusers folder of the same family"
                )
            raise load_error(resolved.spec, exc, hint) from None
        check_loaded(pipe, resolved.spec)
        self._swap_vae(pipe)
        self.load_seconds += time.perf_counter() - t0
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe)
        return pipe

    def _swap_vae(self, pipe: Any) -> None:
        """Put the configured VAE (`--vae`, SDENHANCE_VAE, config `vae`) in place of the model's;
        loaded once and shared by every pipeline of this engine."""
        spec = self.config.vae or os.environ.get("SDENHANCE_VAE") or user_defaults().get("vae")
        if not spec:
            return
        from sdenhance.models.vae import check_family, load_vae

        if self._vae is None:
            vae, path = load_vae(
                spec, pipe.vae, dtype=self.dtype, allow_pickle=self.config.allow_pickle
            )
            info: dict[str, Any] = {"vae": spec}
            if path.is_file():
                from sdenhance.models.hashes import short_hash

                info["vae_hash"] = short_hash(path)
            self._vae = (vae, info)
        else:
            check_family(spec, self._vae[0], pipe.vae)
        pipe.register_modules(vae=self._vae[0])

    def _place(self, pipe) -> None:
        """Device, attention and memory knobs: set once at load, never inside a stage."""
        if self.config.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.config.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        if attention_backend(self.device) == "xformers":
            try:
                pipe.enable_xformers_memory_efficient_attention()
            except Exception as exc:  # a broken xformers build must not stop the run
                log.warning("xformers unavailable (%s); using PyTorch SDPA", exc)
        if self.config.attention_slicing:
            pipe.enable_attention_slicing()
        if self.config.vae_tiling:
            pipe.vae.enable_tiling()

    @property
    def base(self):
        """The img2img pipeline of the base model; the components everything else shares."""
        if "base" not in self._pipes:
            if self.model.inpaint:
                raise SdenhanceError(
                    f"{self.model.spec} is an inpainting model (9-channel UNet); it only inpaints",
                    hint="pass it as --inpaint-model and give a regular model as --model",
                )
            self._pipes["base"] = self._load_pipeline(self.model, inpaint=False)
        return self._pipes["base"]

    def _derive(self, key: Any, cls: Any, source: Any, scheduler: str | None, **components: Any):
        if key not in self._pipes:
            kwargs: dict[str, Any] = dict(components)
            if scheduler is not None:
                kwargs["scheduler"] = make_scheduler(scheduler, source.scheduler.config)
            pipe = cls.from_pipe(source, **dtype_kwargs(self.dtype), **kwargs)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def img2img(self, scheduler: str | None = DEFAULT_SCHEDULER):
        import diffusers

        cls = (
            diffusers.StableDiffusionXLImg2ImgPipeline
            if self.family == "sdxl"
            else diffusers.StableDiffusionImg2ImgPipeline
        )
        return self._derive(("img2img", scheduler), cls, self.base, scheduler)

    @property
    def controlnet_model(self) -> ResolvedModel | None:
        """The tile ControlNet resolved (configs only, no weights) and checked against the
        model's family; None with `--controlnet none`, which resolves nothing."""
        if controlnet_disabled(self.config):
            return None
        if "controlnet" not in self._resolved:
            spec = (
                self.config.controlnet
                or os.environ.get("SDENHANCE_CONTROLNET")
                or user_defaults().get("controlnet")
                or DEFAULTS[self.family]["controlnet"]
            )
            resolved = resolve(spec, role="controlnet", allow_pickle=self.config.allow_pickle)
            if resolved.family != self.family:
                raise SdenhanceError(
                    f"ControlNet {spec} is for {resolved.family.upper()} but the model "
                    f"{self.model.spec} is {self.family.upper()}",
                    hint="pass a --controlnet of the same family, or --controlnet none",
                )
            self._resolved["controlnet"] = resolved
        return self._resolved["controlnet"]

    @property
    def controlnet(self):
        """The tile ControlNet (the family's default unless configured); None with
        `--controlnet none`."""
        if "controlnet" not in self._pipes:
            resolved = self.controlnet_model
            self._pipes["controlnet"] = (
                None if resolved is None else self._load_controlnet(resolved)
            )
        return self._pipes["controlnet"]

    def _load_controlnet(self, resolved: ResolvedModel):
        import diffusers

        t0 = time.perf_counter()
        try:
            if resolved.kind == "single_file":
                net = diffusers.ControlNetModel.from_single_file(
                    str(resolved.path),
                    **dtype_kwargs(self.dtype),
                    cache_dir=hub_cache_dir(),
                    local_files_only=hub_offline(),
                )
            else:
                net = diffusers.ControlNetModel.from_pretrained(
                    str(resolved.path), **dtype_kwargs(self.dtype), local_files_only=True
                )
        except load_errors() as exc:
            raise load_error(f"ControlNet {resolved.spec}", exc) from None
        check_loaded(net, f"ControlNet {resolved.spec}")
        self.load_seconds += time.perf_counter() - t0
        if self.config.offload == "none":
            net.to(self.device)
        return net

    def controlnet_img2img(self, scheduler: str | None = DEFAULT_SCHEDULER):
        import diffusers

        cls = (
            diffusers.StableDiffusionXLControlNetImg2ImgPipeline
            if self.family == "sdxl"
            else diffusers.StableDiffusionControlNetImg2ImgPipeline
        )
        if self.controlnet is None:
            raise SdenhanceError("`--controlnet none`: there is no ControlNet pipeline to build")
        return self._derive(
            ("controlnet", scheduler), cls, self.base, scheduler, controlnet=self.controlnet
        )

    def inpaint(self, scheduler: str | None = DEFAULT_SCHEDULER):
        """Inpainting pipeline: the dedicated model when configured (or when `--model` itself
        is a 9-channel inpainting model), else the base model's."""
        import diffusers

        spec = (
            self.config.inpaint_model
            or os.environ.get("SDENHANCE_INPAINT_MODEL")
            or user_defaults().get("inpaint_model")
        )
        if spec or self.model.inpaint:
            if "inpaint_base" not in self._pipes:
                resolved = self._resolve_inpaint(spec) if spec else self.model
                if spec and "model" in self._resolved and resolved.family != self.family:
                    raise SdenhanceError(
                        f"inpainting model {spec} is {resolved.family.upper()} but the model "
                        f"{self.model.spec} is {self.family.upper()}",
                        hint="pass an --inpaint-model of the same family",
                    )
                self._resolved["inpaint_model"] = resolved
                self._pipes["inpaint_base"] = self._load_pipeline(resolved, inpaint=True)
            source = self._pipes["inpaint_base"]
            family = self._resolved["inpaint_model"].family
        else:
            source, family = self.base, self.family
        cls = (
            diffusers.StableDiffusionXLInpaintPipeline
            if family == "sdxl"
            else diffusers.StableDiffusionInpaintPipeline
        )
        return self._derive(
            ("inpaint", scheduler, source is not self._pipes.get("base")), cls, source, scheduler
        )

    def _resolve_inpaint(self, spec: str) -> ResolvedModel:
        try:
            return resolve(spec, role="pipeline", allow_pickle=self.config.allow_pickle)
        except ModelNotFoundError as exc:
            exc.option = "inpaint_model"  # the fix is the option that named it
            raise

    def generator(self, seed: int):
        """A CPU generator: the same seed gives the same noise on every device."""
        import torch

        return torch.Generator("cpu").manual_seed(int(seed))


# ---------------------------------------------------------------------------------------------
# doctor
