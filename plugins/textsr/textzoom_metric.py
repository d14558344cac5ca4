"""PSNR and SSIM as TextZoom's evaluation computes them, registered in BasicSR's ``METRIC_REGISTRY``.

Written from TextZoom's ``src/utils/ssim_psnr.py`` and ``src/interfaces/super_resolution.py`` (``eval``/``test``):

* Both run on the float network output, first three channels (the mask channel dropped), neither clamped nor
  rounded to 8 bits: the SR image is TSRN's tanh output, the HR image is in [0, 1].
* PSNR of a batch: ``20 log10(255 / sqrt(MSE))`` with the MSE pooled over every pixel, channel and image of the
  batch (on the 0-255 scale); ``inf`` for an MSE of 0.
* SSIM of a batch: an 11x11 Gaussian window (sigma 1.5) applied per channel with **zero padding** of 5 pixels
  (``F.conv2d(..., padding=5)``), so the SSIM map covers every pixel, C1 = 0.01^2, C2 = 0.03^2 (for [0, 1]
  images), and the mean of the map over all pixels, channels and images.
* A split's figure is the unweighted mean of the per-batch figures, with the test loader's batch size (TextZoom's
  README test command: ``--batch_size=1024``; its loader shuffles, ``drop_last=False``).

BasicSR's ``calculate_psnr`` / ``calculate_ssim`` differ: they are averaged per 8-bit image (a mean of per-image
PSNRs is higher than the PSNR of the pooled MSE: Jensen), and BasicSR's SSIM keeps only the *valid* region of the
11x11 window, dropping 5 rows and columns on each side (10 of the 32 rows of a TextZoom HR crop).

The functions take BasicSR's arguments (``img``, ``img2``, ``crop_border``, ``input_order``, ``test_y_channel``;
images on the 0-255 scale, BGR as ``tensor2img`` gives them) and compute TextZoom's formula on what they are given:
one image ``(H, W, C)`` or a batch ``(N, H, W, C)`` (``input_order: CHW`` for ``(C, H, W)`` / ``(N, C, H, W)``),
uint8 or float. "Per batch" in our validation loop: BasicSR's validation loaders deliver one image at a time, so
:class:`~plugins.textsr.split_validation.SplitValidationMixin` collects the float SR and HR images of a split in
groups of the metric's ``batch_size`` (default 1024, TextZoom's), in loader order, calls the metric once per group
(the last group holds the rest, as ``drop_last=False``) and reports the unweighted mean of the group figures --
TextZoom's computation, except that TextZoom's groups are a random shuffle and ours are deterministic. A split of at
most ``batch_size`` images (TextZoom's are 1,619 / 1,411 / 1,343; the synthetic ones 50 or 64) is one group: for
PSNR, the PSNR of the split's pooled MSE. ``batch_size: 1`` gives the per-image mean of float PSNR / padded SSIM.
"""
from typing import Tuple

import numpy as np
import torch
from torch.nn import functional as F

from basicsr.metrics.metric_util import to_y_channel
from basicsr.utils.registry import METRIC_REGISTRY

TEXTZOOM_BATCH = 1024  # TextZoom's README: python3 main.py --batch_size=1024 --test ...
WINDOW, SIGMA = 11, 1.5
CHUNK = 256  # images per step of the SSIM filtering (bounds memory for batches of 1024)


def per_batch(fn):
    """Mark a metric as computed over a batch of images: the text SR validation loop calls it once per group of
    ``batch_size`` float images (see the module doc) instead of once per 8-bit image."""
    fn.per_batch = True
    return fn


def _as_batch(img: np.ndarray, input_order: str, crop_border: int, test_y_channel: bool) -> np.ndarray:
    """``(N, H, W, C)`` float64 on the 0-255 scale, at most 3 channels (TextZoom's ``[:, :3]``), cropped and
    converted to Y as BasicSR's metrics do."""
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'input_order must be HWC or CHW, got {input_order!r}')
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        arr = arr[None]
    elif arr.ndim != 4:
        raise ValueError(f'expected an image (H, W[, C]) or a batch (N, H, W, C), got shape {arr.shape}')
    if input_order == 'CHW':
        arr = arr.transpose(0, 2, 3, 1)
    arr = arr[..., :3]
    if crop_border:
        arr = arr[:, crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        arr = np.stack([to_y_channel(a) for a in arr])
        arr = arr[..., None] if arr.ndim == 3 else arr
    return arr


def _pair(img, img2, crop_border, input_order, test_y_channel) -> Tuple[np.ndarray, np.ndarray]:
    a = _as_batch(img, input_order, crop_border, test_y_channel)
    b = _as_batch(img2, input_order, crop_border, test_y_channel)
    if a.shape != b.shape:
        raise ValueError(f'image shapes differ: {a.shape} vs {b.shape}')
    return a, b


@METRIC_REGISTRY.register()
@per_batch
def calculate_textzoom_psnr(img, img2, crop_border: int = 0, input_order: str = 'HWC', test_y_channel: bool = False,
                            batch_size: int = TEXTZOOM_BATCH, **kwargs) -> float:
    """TextZoom's PSNR of one image or of a batch: ``20 log10(255 / sqrt(MSE))``, MSE pooled over the batch.

    Args:
        img, img2: ``(H, W, C)`` or ``(N, H, W, C)`` (``CHW`` orders with ``input_order``), 0-255 scale, uint8 or
            float (not clamped: TextZoom scores the raw tanh output). Channels after the third are ignored.
        crop_border, input_order, test_y_channel: as BasicSR's ``calculate_psnr`` (TextZoom: 0, RGB).
        batch_size: how many images the validation loop pools per call (TextZoom's test batch: 1024). Not used
            by the computation itself, which pools whatever it is given.
    Returns:
        PSNR in dB (``inf`` when the images are equal).
    """
    a, b = _pair(img, img2, crop_border, input_order, test_y_channel)
    mse = np.mean((a - b) ** 2)
    return float('inf') if mse == 0 else float(20 * np.log10(255.0 / np.sqrt(mse)))


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """``(size, size)`` float64 Gaussian window summing to 1 (the outer product of the normalised 1-D one)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """TextZoom's SSIM map of ``(N, C, H, W)`` images on the 0-255 scale: per-channel Gaussian statistics with
    zero padding (same size as the input). C1 = (0.01 x 255)^2, C2 = (0.03 x 255)^2, the [0, 1] constants rescaled."""
    channels = a.shape[1]
    window = gaussian_window().to(a)[None, None].expand(channels, 1, WINDOW, WINDOW)

    def blur(x):
        return F.conv2d(x, window, padding=WINDOW // 2, groups=channels)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = blur(a), blur(b)
    s11, s22, s12 = blur(a * a) - mu1 ** 2, blur(b * b) - mu2 ** 2, blur(a * b) - mu1 * mu2
    return ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))


@METRIC_REGISTRY.register()
@per_batch
def calculate_textzoom_ssim(img, img2, crop_border: int = 0, input_order: str = 'HWC', test_y_channel: bool = False,
                            batch_size: int = TEXTZOOM_BATCH, **kwargs) -> float:
    """TextZoom's SSIM of one image or of a batch: the mean of the zero-padded Gaussian SSIM map over all pixels,
    channels and images. Arguments as :func:`calculate_textzoom_psnr`."""
    a, b = _pair(img, img2, crop_border, input_order, test_y_channel)
    total = 0.0
    for start in range(0, len(a), CHUNK):  # same-size images: the batch mean is the mean of chunk sums
        ta = torch.from_numpy(a[start:start + CHUNK].transpose(0, 3, 1, 2).copy())
        tb = torch.from_numpy(b[start:start + CHUNK].transpose(0, 3, 1, 2).copy())
        total += float(ssim_map_zero_padded(ta, tb).sum())
    return total / a.size
