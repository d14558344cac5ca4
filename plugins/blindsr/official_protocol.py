"""The official CMDSR test protocol (``guanghaoyin/CMDSR``: ``data_loader.py::SRDataSet``,
``tools/data_preprocess.py``), step by step, for ``FixedDegradationDataset(protocol: official)``.

How the official code makes a test LR image (``SRDataSet._create_degradation_file``) from a uint8 HR image:

1. blur: ``scipy.ndimage.convolve(hr, fspecial_gaussian(7, 2.6), mode='wrap')`` on the **uint8** array, so the
   result is written back into uint8 by truncation (scipy casts, it does not round), with periodic ("wrap")
   borders (``blur_wrap``);
2. resize: ``imresize_np(x, 1/4)``, MATLAB's antialiased bicubic, float, not rounded (``resize_matlab``, which is
   BasicSR's ``basicsr.utils.matlab_functions.imresize``: the same weights, indices, symmetric padding and order of
   passes as the official ``imresize_np``, in float32 both);
3. noise: ``add_noise``: ``x + np.random.normal(0, level, x.shape)``, clipped to [0, 255] and cast to uint8,
   truncating again (``add_noise_truncate``; the official noise is unseeded, ours is seeded per image);
4. the LR is saved as PNG and read back (uint8).

The support set (``SRDataSet.__getitem__`` with ``is_meta``): ``support_size`` crops of ``hr_crop_size // scale``
LR pixels at positions drawn with Python's ``random.randrange`` (x, then y) over the test LR image itself
(``random_support_patches``; the test options leave ``is_train`` at its default True, so the crops are random:
the training script's validation uses 48 x 48, ``hr_crop_size`` 192; ``Test_CMDSR.py``'s defaults give 32 x 32,
``hr_crop_size`` 128).

Our default protocol (``protocol: ours``) differs: reflection-padded blur, ``F.interpolate`` bicubic without
antialiasing, rounding rather than truncation, and a support set cut on a regular grid (deterministic). The
figures of the difference on the same inputs are in docs/blindsr.md.
"""
import random
from typing import Optional

import numpy as np
import torch
from scipy import ndimage

from basicsr.utils.matlab_functions import imresize

PROTOCOLS = ('ours', 'official')


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)`` (the official ``fspecial_gaussian``): ``(size, size)`` float64
    summing to 1, entries below ``eps * max`` set to zero."""
    half = (size - 1) / 2.
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = np.exp(-(x * x + y * y) / (2. * sigma * sigma))
    kernel[kernel < np.finfo(np.float64).eps * kernel.max()] = 0
    return kernel / kernel.sum()


def blur_wrap(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The official blur: ``scipy.ndimage.convolve`` of every channel of a uint8 ``(H, W, C)`` image with ``kernel``
    ``(k, k)``, periodic borders, on the uint8 array itself, so scipy writes the float sums back into uint8 by
    truncation (a kernel >= 0 summing to 1 keeps them in [0, 255])."""
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f'blur_wrap takes a uint8 (H, W, C) image, got {img.dtype} of shape {img.shape}')
    return ndimage.convolve(img, kernel[..., None], mode='wrap')


def resize_matlab(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's antialiased bicubic ``imresize`` (the official ``imresize_np``) of an ``(H, W, C)`` image of any
    range, output float32 ``(ceil(H * scale), ceil(W * scale), C)`` not rounded, via BasicSR's ``imresize``."""
    return imresize(img.astype(np.float32), scale)


def add_noise_truncate(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """The official ``add_noise(..., noise_type='gaussian')``: ``img + N(0, level)`` (float64), clipped to [0, 255]
    and cast to uint8 (truncation). ``rng`` makes it reproducible (the official code draws from numpy's global
    state)."""
    noisy = img.astype(np.float64) + rng.normal(0., float(level), img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def official_test_lr(hr: np.ndarray, scale: int, blur_sigma: float, kernel_size: int, noise: float,
                     rng: np.random.Generator) -> np.ndarray:
    """The official test LR of a uint8 ``(H, W, C)`` HR image (H, W multiples of ``scale``): wrap-mode blur with
    truncation (none for ``blur_sigma`` 0), MATLAB bicubic 1/scale, Gaussian noise with truncation (level 0: the
    truncation alone, as the official ``add_noise`` with level 0). Returns uint8 ``(H / scale, W / scale, C)``."""
    out = hr
    if blur_sigma > 0:
        out = blur_wrap(out, fspecial_gaussian(kernel_size, blur_sigma))
    out = resize_matlab(out, 1. / scale)
    return add_noise_truncate(out, noise, rng)


def random_support_patches(lr: torch.Tensor, count: int, patch: int, seed: int,
                           where: Optional[str] = None) -> torch.Tensor:
    """``count`` ``patch`` x ``patch`` crops of ``lr`` ``(C, h, w)`` at random positions (Python's ``random`` seeded
    with ``seed``; x then y with ``randrange``, as the official ``_get_single_patch``) -> ``(count, C, p, p)``."""
    c, h, w = lr.shape
    if h < patch or w < patch:
        raise ValueError(f'{where or "image"}: the LR image is {h}x{w}, smaller than support_patch {patch}')
    rand = random.Random(seed)
    crops = []
    for _ in range(count):
        x = rand.randrange(0, w - patch + 1)
        y = rand.randrange(0, h - patch + 1)
        crops.append(lr[:, y:y + patch, x:x + patch])
    return torch.stack(crops)
