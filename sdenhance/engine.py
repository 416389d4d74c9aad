"""Model resolution, loading and sharing; device, dtype and speed knobs.

A model spec is a local single-file checkpoint, a local diffusers folder, or a hub id resolved
through the Hugging Face cache (offline when `HF_HUB_OFFLINE=1`). Each model loads once per
`Engine`; img2img, ControlNet and inpaint pipelines share its components through `from_pipe`,
always with the engine's dtype so nothing shared is ever cast. Stages never mutate components.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SdenhanceError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sdenhance")

DEFAULTS = {
    "sd15": {
        "model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "controlnet": "lllyasviel/control_v11f1e_sd15_tile",
        "resolution": 512,
    },
    "sdxl": {
        "model": "stabilityai/stable-diffusion-xl-base-1.0",
        "controlnet": "xinsir/controlnet-tile-sdxl-1.0",
        "resolution": 1024,
    },
}
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# name -> (diffusers scheduler class, extra config, A1111 sampler name)
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "dpmpp-2m-karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"}, "DPM++ 2M Karras"),
    "dpmpp-2m": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": False, "algorithm_type": "dpmsolver++"}, "DPM++ 2M"),
    "dpmpp-2m-sde-karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}, "DPM++ 2M SDE Karras"),
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun"),
    "pndm": ("PNDMScheduler", {}, "PLMS"),
}
DEFAULT_SCHEDULER = "dpmpp-2m-karras"



@dataclass(frozen=True)
class EngineConfig:
    """Which models to load and how. Shared by every command that runs a model."""

    model: str | None = None  # hub id, diffusers folder or single .safetensors; None = default
    controlnet: str | None = None  # tile ControlNet; None = the family's default
    inpaint_model: str | None = None  # dedicated 9-channel inpainting model, optional
    model_config: str | None = None  # diffusers folder or hub id with configs for single-file loads
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | fp32 | fp16 | bf16
    offload: str = "none"  # none | model | sequential
    vae_tiling: bool = False
    attention_slicing: bool = False
    allow_pickle: bool = False


DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "fp32", "fp16", "bf16")
OFFLOADS = ("none", "model", "sequential")


def check_config(cfg: EngineConfig) -> None:
    """Validate an engine configuration before anything loads."""
    from .errors import SdenhanceError

    base = cfg.device.split(":", 1)[0]
    if base not in DEVICES or (":" in cfg.device and not cfg.device.split(":", 1)[1].isdigit()):
        raise SdenhanceError(f"`--device` must be auto, cpu, cuda, cuda:N or mps; got {cfg.device!r}")
    if cfg.dtype not in DTYPES:
        raise SdenhanceError(f"`--dtype` must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
    if cfg.offload not in OFFLOADS:
        raise SdenhanceError(f"`--offload` must be one of {', '.join(OFFLOADS)}; got {cfg.offload!r}")
    if cfg.offload != "none" and base == "cpu":
        raise SdenhanceError("`--offload` moves models off a GPU; it has no use with `--device cpu`")


# ---------------------------------------------------------------------------------------------
# user defaults


def user_config_path() -> Path:  # model precedence: flag > SDENHANCE_* env > this file > default
    """`SDENHANCE_CONFIG`, else $XDG_CONFIG_HOME/sdenhance/config.toml."""
    env = os.environ.get("SDENHANCE_CONFIG")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "sdenhance" / "config.toml"


def user_defaults() -> dict[str, Any]:
    """Defaults from the user config file (`model`, `controlnet`, `sdxl_model`...), if any."""
    path = user_config_path()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SdenhanceError(f"config file {path} is not valid TOML: {exc}") from None
    allowed = {"model", "controlnet", "inpaint_model", "model_config", "device", "dtype"}
    unknown = set(data) - allowed
    if unknown:
        raise SdenhanceError(
            f"config file {path}: unknown key `{sorted(unknown)[0]}`; allowed: {', '.join(sorted(allowed))}"
        )
    return data


# ---------------------------------------------------------------------------------------------
# resolution


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "TRUE", "yes", "ON", "on"}


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec points and what it is."""

    spec: str
    kind: str  # folder | single_file
    path: Path  # the diffusers folder (a hub snapshot for hub ids) or the checkpoint file
    family: str  # sd15 | sdxl
    role: str  # pipeline | controlnet
    inpaint: bool = False
    repo_id: str | None = None
    revision: str | None = None

    def describe(self, role: str) -> dict[str, Any]:
        """Flat metadata entries: `{role}`, `{role}_hash` (single files: A1111's short SHA-256),
        `{role}_family`, `{role}_revision` (hub snapshots)."""
        out: dict[str, Any] = {role: self.repo_id or self.spec, f"{role}_family": self.family}
        if self.revision:
            out[f"{role}_revision"] = self.revision
        if self.kind == "single_file":
            from .checkpoints import short_hash

            out[f"{role}_hash"] = short_hash(self.path)
        return out


def _missing(spec: str, role: str, looked: str) -> SdenhanceError:
    flag = "--controlnet" if role == "controlnet" else "--model"
    return SdenhanceError(
        f"{role} `{spec}` not found: {looked}",
        hint=f"pass {flag} PATH to a diffusers folder or .safetensors file, go online once "
        "(unset HF_HUB_OFFLINE) to download it, or use --creativity 0 for Real-ESRGAN alone",
    )


def _folder_info(folder: Path, role: str) -> tuple[str, bool, str]:
    """(family, inpaint, role) of a diffusers folder, from its configs."""
    index = folder / "model_index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        unet_cfg = folder / "unet" / "config.json"
        unet = json.loads(unet_cfg.read_text()) if unet_cfg.is_file() else {}
        sdxl = "XL" in data.get("_class_name", "") or "text_encoder_2" in data
        return ("sdxl" if sdxl else "sd15"), unet.get("in_channels", 4) == 9, "pipeline"
    config = folder / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if "ControlNet" in data.get("_class_name", ""):
            sdxl = data.get("addition_embed_type") == "text_time" or data.get("cross_attention_dim") == 2048
            return ("sdxl" if sdxl else "sd15"), False, "controlnet"
    raise SdenhanceError(
        f"folder {folder} is not a diffusers {role} (no model_index.json or ControlNet config.json)",
        hint="point at the folder that holds model_index.json, or at a .safetensors file",
    )


def resolve(spec: str, *, role: str = "pipeline", allow_pickle: bool = False) -> ResolvedModel:
    """Find `spec` on disk or in the HF cache (downloading only when online); never loads weights."""
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        from . import checkpoints

        suffix = path.suffix.lower()
        given = path  # errors name the user's file, not its converted copy
        if checkpoints.is_pickle(path):  # by content: a renamed pickle is still a pickle
            if not allow_pickle:
                raise SdenhanceError(
                    f"{path} is a pickle checkpoint, which can run code when loaded; refused",
                    hint="convert it to .safetensors, or pass --allow-pickle to load it weights-only",
                )
            path = checkpoints.convert_pickle_to_safetensors(path, hub_cache_dir().parent / "sdenhance-converted")
        elif suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
            raise SdenhanceError(f"{path}: unsupported checkpoint type `{suffix}`; use .safetensors")
        checkpoints.check_safetensors(path)
        info = checkpoints.inspect_checkpoint(path)
        checkpoints.expect_kind(info, role, given)
        return ResolvedModel(spec, "single_file", path, info.family, role, info.inpaint)
    if path.is_dir():
        family, inpaint, found_role = _folder_info(path, role)
        if found_role != role:
            raise SdenhanceError(f"{path} is a {found_role}, but a {role} was expected here")
        return ResolvedModel(spec, "folder", path, family, role, inpaint)
    if os.sep in spec and not _HUB_ID.match(spec) or spec.endswith((".safetensors", ".ckpt")):
        raise SdenhanceError(f"model file not found: {spec}")
    if not _HUB_ID.match(spec):
        raise _missing(spec, role, "not a file, a folder or a hub id (org/name)")
    return _resolve_hub(spec, role)


def _resolve_hub(repo_id: str, role: str) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        if hub_offline():
            raise _missing(repo_id, role, f"not in the Hugging Face cache {cache} and HF_HUB_OFFLINE is set") from None
        patterns = ["*.json", "*.txt", "*.safetensors", "*.model"]
        try:
            log.info("downloading %s from the Hugging Face hub", repo_id)
            folder = Path(snapshot_download(repo_id, cache_dir=cache, allow_patterns=patterns,
                                            ignore_patterns=["*.fp16.safetensors", "*non_ema*", "*.ckpt"]))
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise _missing(repo_id, role, f"not in the cache {cache} and the download failed ({type(exc).__name__})") from None
    family, inpaint, found_role = _folder_info(folder, role)
    if found_role != role:
        raise SdenhanceError(f"hub model {repo_id} is a {found_role}, but a {role} was expected here")
    return ResolvedModel(repo_id, "folder", folder, family, role, inpaint, repo_id=repo_id, revision=folder.name)


# ---------------------------------------------------------------------------------------------
# device and dtype


def pick_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SdenhanceError(f"`--device {name}` asked for, but torch sees no CUDA device", hint="use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SdenhanceError("`--device mps` asked for, but MPS is not available", hint="use --device cpu or auto")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """Measured fp32/bf16 time ratio of a conv+matmul block on this CPU (>1: bf16 faster).

    A diagnostic for `doctor` only: too noisy on a shared machine to choose the dtype with.
    """
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(1, 64, 64, 64)
    a, b = torch.randn(256, 512), torch.randn(512, 512)

    def bench(dtype: torch.dtype) -> float:
        c, xx, aa, bb = conv.to(dtype), x.to(dtype), a.to(dtype), b.to(dtype)
        with torch.no_grad():
            c(xx), aa @ bb  # warm-up
            t0 = time.perf_counter()
            for _ in range(3):
                c(xx)
                aa @ bb
            return time.perf_counter() - t0

    return bench(torch.float32) / max(bench(torch.bfloat16), 1e-9)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX), read from its flags.

    A property of the machine, not a timing: the same machine always picks the same dtype, so
    a seed reproduces. Where bf16 is native the real SD 1.5 UNet runs 1.58× faster in bf16
    than fp32 (bench/RESULTS.md, bench 6); elsewhere bf16 is emulated and slower.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp16 on GPUs; on CPU bf16 where the CPU has native bf16, else fp32; explicit names win."""
    import torch

    if name == "fp32":
        return torch.float32
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if device.type == "cpu":
            raise SdenhanceError("`--dtype fp16` is not supported on CPU", hint="use fp32 or bf16")
        return torch.float16
    if device.type in ("cuda", "mps"):
        return torch.float16
    env = os.environ.get("SDENHANCE_CPU_DTYPE")
    if env in ("fp32", "bf16"):
        return pick_dtype(env, device)
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def make_scheduler(name: str, base_config: Any):
    """A fresh scheduler `name` built from a pipeline's scheduler config (never shared state)."""
    import diffusers

    if name not in SCHEDULERS:
        raise SdenhanceError(f"`--scheduler` must be one of {', '.join(SCHEDULERS)}; got {name!r}")
    cls_name, extra, _ = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(base_config, **extra)


def attention_backend(device: torch.device) -> str:
    if device.type == "cuda" and importlib.util.find_spec("xformers") is not None:
        return "xformers"
    return "sdpa"


# ---------------------------------------------------------------------------------------------
# the engine


def warn_long_prompts(tokenizer: Any, *prompts: str | None) -> None:
    """Say so when a prompt is longer than the text encoder reads (never cut silently)."""
    limit = tokenizer.model_max_length - 2  # start and end tokens
    for prompt in prompts:
        if not prompt:
            continue
        ids = tokenizer(prompt, add_special_tokens=False, truncation=False).input_ids
        if len(ids) > limit:
            dropped = tokenizer.decode(ids[limit:]).strip()
            log.warning(
                "prompt is %d tokens; the text encoder reads the first %d, so this part is ignored: %r "
                "(shorten the prompt or put the key words first)",
                len(ids), limit, dropped[:80],
            )


@functools.lru_cache(maxsize=1)
def _dtype_keyword() -> str:
    """diffusers ≥ 0.42 takes `dtype=` and warns on `torch_dtype=`; older releases know only the latter."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


def _dtype_kwargs(dtype: Any) -> dict[str, Any]:
    return {_dtype_keyword(): dtype}


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
            self._resolved["model"] = resolve(spec, role="pipeline", allow_pickle=self.config.allow_pickle)
        return self._resolved["model"]

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def native_resolution(self) -> int:
        return DEFAULTS[self.family]["resolution"]

    def describe(self) -> dict[str, Any]:
        """Model ids and hashes for the output's metadata (only what has been loaded)."""
        out: dict[str, Any] = {}
        for role, resolved in self._resolved.items():
            out.update(resolved.describe(role))
        out["device"] = str(self.device)
        out["dtype"] = str(self.dtype).replace("torch.", "")
        return out

    # -- loading ----------------------------------------------------------------------------------
    def _load_pipeline(self, resolved: ResolvedModel, inpaint: bool):
        import diffusers
        from huggingface_hub.errors import HfHubHTTPError

        xl = resolved.family == "sdxl"
        if inpaint:
            cls = diffusers.StableDiffusionXLInpaintPipeline if xl else diffusers.StableDiffusionInpaintPipeline
        else:
            cls = diffusers.StableDiffusionXLImg2ImgPipeline if xl else diffusers.StableDiffusionImg2ImgPipeline
        kwargs: dict[str, Any] = _dtype_kwargs(self.dtype)
        if not xl:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        t0 = time.perf_counter()
        try:
            if resolved.kind == "single_file":
                config = self.config.model_config or user_defaults().get("model_config")
                if config:
                    config = str(resolve(config, role="pipeline").path)
                pipe = cls.from_single_file(
                    str(resolved.path), config=config, cache_dir=hub_cache_dir(), local_files_only=hub_offline(), **kwargs
                )
            else:
                pipe = cls.from_pretrained(str(resolved.path), local_files_only=True, **kwargs)
        except SdenhanceError:
            raise
        except (OSError, ValueError, HfHubHTTPError) as exc:  # LocalEntryNotFoundError is an OSError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = None
            if resolved.kind == "single_file":
                hint = (
                    "a single-file checkpoint needs its family's configs: go online once, or pass "
                    "--model-config with a diffusers folder of the same family"
                )
            raise SdenhanceError(f"could not load {resolved.spec}: {first}", hint=hint) from None
        self.load_seconds += time.perf_counter() - t0
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe)
        return pipe

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
            pipe = cls.from_pipe(source, **_dtype_kwargs(self.dtype), **kwargs)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def img2img(self, scheduler: str | None = DEFAULT_SCHEDULER):
        import diffusers

        cls = diffusers.StableDiffusionXLImg2ImgPipeline if self.family == "sdxl" else diffusers.StableDiffusionImg2ImgPipeline
        return self._derive(("img2img", scheduler), cls, self.base, scheduler)

    @property
    def controlnet(self):
        """The tile ControlNet (the family's default unless configured)."""
        if "controlnet" not in self._pipes:
            import diffusers

            spec = (
                self.config.controlnet
                or os.environ.get("SDENHANCE_CONTROLNET")
                or user_defaults().get("controlnet")
                or DEFAULTS[self.family]["controlnet"]
            )
            resolved = resolve(spec, role="controlnet", allow_pickle=self.config.allow_pickle)
            if resolved.family != self.family:
                raise SdenhanceError(
                    f"ControlNet {spec} is for {resolved.family.upper()} but the model {self.model.spec} is {self.family.upper()}",
                    hint="pass a --controlnet of the same family",
                )
            self._resolved["controlnet"] = resolved
            t0 = time.perf_counter()
            try:
                if resolved.kind == "single_file":
                    net = diffusers.ControlNetModel.from_single_file(
                        str(resolved.path), **_dtype_kwargs(self.dtype), cache_dir=hub_cache_dir(), local_files_only=hub_offline()
                    )
                else:
                    net = diffusers.ControlNetModel.from_pretrained(str(resolved.path), **_dtype_kwargs(self.dtype), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise SdenhanceError(f"could not load ControlNet {spec}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            self.load_seconds += time.perf_counter() - t0
            if self.config.offload == "none":
                net.to(self.device)
            self._pipes["controlnet"] = net
        return self._pipes["controlnet"]

    def controlnet_img2img(self, scheduler: str | None = DEFAULT_SCHEDULER):
        import diffusers

        cls = (
            diffusers.StableDiffusionXLControlNetImg2ImgPipeline
            if self.family == "sdxl"
            else diffusers.StableDiffusionControlNetImg2ImgPipeline
        )
        return self._derive(("controlnet", scheduler), cls, self.base, scheduler, controlnet=self.controlnet)

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
                resolved = resolve(spec, role="pipeline", allow_pickle=self.config.allow_pickle) if spec else self.model
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
        cls = diffusers.StableDiffusionXLInpaintPipeline if family == "sdxl" else diffusers.StableDiffusionInpaintPipeline
        return self._derive(("inpaint", scheduler, source is not self._pipes.get("base")), cls, source, scheduler)

    def generator(self, seed: int):
        """A CPU generator: the same seed gives the same noise on every device."""
        import torch

        return torch.Generator("cpu").manual_seed(int(seed))


# ---------------------------------------------------------------------------------------------
# doctor

EXTRAS = {"xformers": "cuda", "controlnet_aux": "aux", "spandrel": "upscalers", "onnxruntime": "onnx"}


def cached_models() -> list[dict[str, Any]]:
    """Diffusers pipelines and ControlNets found in the Hugging Face cache."""
    found = []
    root = hub_cache_dir()
    if not root.is_dir():
        return found
    for repo in sorted(root.glob("models--*")):
        for snap in sorted((repo / "snapshots").glob("*")):
            try:
                family, inpaint, role = _folder_info(snap, "pipeline")
            except (SdenhanceError, OSError, ValueError):
                continue
            name = repo.name[len("models--"):].replace("--", "/")
            found.append({"id": name, "family": family, "role": role, "inpaint": inpaint})
            break
    return found


def doctor_report() -> dict[str, Any]:
    """What this machine offers: device, dtype, attention, versions, extras, cached models."""
    import diffusers
    import torch
    import transformers

    device = pick_device("auto")
    report: dict[str, Any] = {
        "device": str(device),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "dtype": str(pick_dtype("auto", device)).replace("torch.", ""),
        "attention": attention_backend(device),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "hf_cache": str(hub_cache_dir()),
        "offline": hub_offline(),
        "extras": {name: importlib.util.find_spec(name) is not None for name in EXTRAS},
        "models": cached_models(),
        "defaults": {fam: {k: v for k, v in d.items() if k != "resolution"} for fam, d in DEFAULTS.items()},
        "config_file": str(user_config_path()) if user_config_path().is_file() else None,
    }
    if device.type == "cpu":
        report["cpu_native_bf16"] = cpu_has_native_bf16()
        report["cpu_bf16_speedup"] = round(cpu_bf16_speedup(), 2)
    return report
