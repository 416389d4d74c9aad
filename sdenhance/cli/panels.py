"""Names of the help panels that group every command's options."""

P_PROMPT, P_DIFF, P_SIZE, P_TILE = "Prompt", "Diffusion", "Size", "Tiling"
P_COLOUR, P_MASK, P_FACES, P_OPTIONS = "Colour", "Mask", "Faces", "Options"
P_OUT, P_MODEL, P_PERF = "Output", "Model", "Performance"
P_FAST = "Speed-ups (approximate)"
