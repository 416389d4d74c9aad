"""Pre-upscalers: PIL resampling, the bundled Real-ESRGAN models through ncnn, optional spandrel models."""
