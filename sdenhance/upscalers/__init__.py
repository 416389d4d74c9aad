"""Pre-upscalers: PIL resampling, bundled Real-ESRGAN models via ncnn, optional spandrel models."""
