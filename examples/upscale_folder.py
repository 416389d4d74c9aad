"""Upscale every image in a folder with a named preset, keeping the run record in each output.

    python examples/upscale_folder.py PHOTOS/ OUT/ --preset portrait --scale 2

The model comes from --model, else $SDENHANCE_MODEL, else SD 1.5 from the Hugging Face hub
(downloaded once); the tile ControlNet likewise from --controlnet / $SDENHANCE_CONTROLNET.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sdenhance import Enhancer
from sdenhance.batch import expand_inputs
from sdenhance.io.save import save_image
from sdenhance.presets import load_preset


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder (or glob) of images")
    parser.add_argument("out", help="folder for the results")
    parser.add_argument("--preset", default="general", help="preset name or .toml path")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=os.environ.get("SDENHANCE_MODEL"))
    parser.add_argument("--controlnet", default=os.environ.get("SDENHANCE_CONTROLNET"))
    # smaller/faster settings (the preset's or the stage's defaults otherwise)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--tile", type=int)
    parser.add_argument("--overlap", type=int)
    parser.add_argument("--upscaler")
    args = parser.parse_args(argv)

    preset = load_preset(args.preset)
    options = preset.defaults("upscale")  # prompt, creativity, resemblance, colour fix...
    options["scale"] = args.scale
    for key in ("steps", "tile", "overlap", "upscaler"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)

    enhancer = Enhancer(args.model, controlnet=args.controlnet, seed=args.seed)  # models load once
    written = []
    for path in expand_inputs([args.folder]):
        image = enhancer.upscale(path, **options)
        out = Path(args.out) / f"{path.stem}_{preset.name}.png"
        save_image(image, out, metadata=enhancer.last_record, protect=[path])
        print(out)
        written.append(out)
    return written


if __name__ == "__main__":
    main()
