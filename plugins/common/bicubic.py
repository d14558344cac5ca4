"""MATLAB's antialiased bicubic resize (``basicsr.utils.matlab_functions.imresize``) on uint8 images: how SR
benchmarks make their LR images, and the bicubic baseline of every SR table."""
import numpy as np
from basicsr.utils.matlab_functions import imresize


def matlab_bicubic(img: np.ndarray, factor: float) -> np.ndarray:
    """Resize a uint8 image ``(H, W[, C])`` by ``factor`` with MATLAB's antialiased bicubic; uint8 out, rounded."""
    out = imresize(img.astype(np.float64) / 255., factor)
    return np.clip(np.round(out * 255.), 0, 255).astype(np.uint8)


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic downsampling of a uint8 image by an integer ``scale``, as SR benchmarks make LR."""
    return matlab_bicubic(hr, 1 / scale)
