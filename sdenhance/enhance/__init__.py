"""`enhance`: diagnose an image, plan its treatment as a recipe, run it.

`plan` holds the rules from a diagnosis to a recipe (and the recipe's TOML); `run` finds the
faces and the generation metadata the diagnosis needs, decides offline or diffusion, and runs
the plan. The diagnosis itself is pure maths in `sdenhance.ops.diagnose`.
"""
