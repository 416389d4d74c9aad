"""Pure image maths (numpy/PIL/OpenCV, no torch): tiling, masks, colour, resize, metrics."""
