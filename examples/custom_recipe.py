"""Run a custom recipe (a TOML file of steps) on images with the Python API.

    python examples/custom_recipe.py photo.png [more.png ...] --set creativity=0.4

The recipe defaults to examples/gentle-detail.toml; the model comes from --model, else
$SDENHANCE_MODEL, else SD 1.5 from the hub.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sdenhance import Enhancer
from sdenhance.io.save import save_image
from sdenhance.recipes import load_recipe, run_recipe

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--recipe", default=str(HERE / "gentle-detail.toml"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="variable or option override, as `sdenhance run --set`",
    )
    parser.add_argument("--out", default=None, help="folder (default: beside each image)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=os.environ.get("SDENHANCE_MODEL"))
    parser.add_argument("--controlnet", default=os.environ.get("SDENHANCE_CONTROLNET"))
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe)
    steps = recipe.validate(args.set)  # every step checked before any model loads
    enhancer = Enhancer(args.model, controlnet=args.controlnet, seed=args.seed)
    written = []
    for name in args.images:
        image = run_recipe(recipe, name, enhancer=enhancer, steps=steps)
        folder = Path(args.out) if args.out else Path(name).parent
        out = folder / f"{Path(name).stem}_{recipe.name}.png"
        save_image(image, out, metadata=enhancer.last_record, protect=[name])
        print(out)
        written.append(out)
    return written


if __name__ == "__main__":
    main()
