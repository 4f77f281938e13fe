"""Custom ops: each has a readable reference path, a fast CPU path and CUDA kernels."""

from .bias_act import bias_act
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = ["bias_act", "upfirdn2d", "setup_filter", "upsample2d", "downsample2d", "filter2d"]
