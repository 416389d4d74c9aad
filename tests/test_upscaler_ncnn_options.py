"""ncnn's CPU options: sdenhance's defaults stay within 1/255 of float32 direct convolution.

The reference turns winograd and sgemm off (plain direct convolution in float32); the defaults
(`NCNN_OPTIONS`: winograd, sgemm, packing on; fp16 and bf16 off) must not move any output value
by more than 1/255 on a real photo. `bench/realesrgan.py` measures every option's speed.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from sdenhance.upscalers.ncnn import NCNN_OPTIONS, _ncnn_net, ncnn_runner

REFERENCE = (("use_winograd_convolution", False), ("use_sgemm_convolution", False))


@pytest.mark.parametrize("name", ["realesrgan-x4plus", "realesr-animevideov3-x4"])
def test_defaults_match_fp32_direct_convolution(name):
    arr = data.astronaut()[150:198, 180:228].astype(np.float32) / 255.0  # a face: 48² px
    try:
        ref = ncnn_runner(name, 1, REFERENCE)(arr.copy()).copy()
        got = ncnn_runner(name, 1)(arr.copy())
    finally:
        _ncnn_net.cache_clear()  # the reference net is only for this test
    assert got.shape == ref.shape == (192, 192, 3)
    assert np.abs(got - ref).max() <= 1 / 255
    assert np.abs(got - ref).mean() < 0.05 / 255  # the same image, not just close enough


def test_low_precision_storage_is_off_so_every_cpu_gives_the_same_output():
    # ncnn's own defaults turn fp16 storage and arithmetic on wherever a CPU has them (ARM);
    # bf16 storage moves x4plus's output by several levels (bench/realesrgan.py)
    low = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage")
    assert all(NCNN_OPTIONS[k] is False for k in low)
    net, _ = _ncnn_net("realesr-animevideov3-x4", 1)
    assert not any(getattr(net.opt, k) for k in low)
    assert net.opt.use_winograd_convolution and net.opt.use_sgemm_convolution
