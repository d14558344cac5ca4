"""The official CMDSR test protocol (``FixedDegradationDataset(protocol: official)``), each step against an
independent computation on fixed inputs: scipy's wrap-mode convolution on uint8, MATLAB's antialiased bicubic
written as weight matrices from its definition, the truncating noise, the random support crops; and how far the
result is from our default protocol on the same image."""
import math
import random

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

import plugins  # noqa: F401
from plugins.blindsr.cmdsr_dataset import FixedDegradationDataset
from plugins.blindsr.official_protocol import (add_noise_truncate, blur_wrap, fspecial_gaussian, resize_matlab)

torch.set_num_threads(1)


def _image(h=64, w=72, seed=0) -> np.ndarray:
    """A fixed uint8 BGR test image with structure at all scales (smoothed noise plus edges)."""
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.uniform(0, 255, (h, w, 3)), (1.5, 1.5, 0))
    img[:, w // 3:w // 3 + 4] = 250  # a bright bar: strong edges
    img[h // 2:, :6] = 5  # a dark block touching the border: wrap vs reflect shows there
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _cubic(x):
    x = np.abs(x)
    return np.where(x <= 1, 1.5 * x ** 3 - 2.5 * x ** 2 + 1,
                    np.where(x <= 2, -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2, 0.))


def _matlab_matrix(n_in: int, scale: float) -> np.ndarray:
    """MATLAB imresize's bicubic as an ``(ceil(n_in * scale), n_in)`` matrix, from its definition: output pixel
    ``i`` (0-based) sits at input coordinate ``(i + 0.5) / scale - 0.5``; for downscaling the kernel is stretched,
    ``scale * cubic(scale * d)``, over ``4 / scale`` pixels; weights are normalised to sum to 1 and indices beyond
    the border mirror symmetrically (-1 -> 0, n -> n - 1)."""
    n_out = math.ceil(n_in * scale)
    k = (lambda d: scale * _cubic(scale * d)) if scale < 1 else _cubic
    half = 2 / scale if scale < 1 else 2
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        u = (i + 0.5) / scale - 0.5
        taps = np.arange(math.floor(u - half), math.ceil(u + half) + 1)
        weights = k(u - taps)
        weights /= weights.sum()
        for j, wgt in zip(taps, weights):
            j = -j - 1 if j < 0 else 2 * n_in - 1 - j if j >= n_in else j
            m[i, j] += wgt
    return m


def _matlab_resize(img: np.ndarray, scale: float) -> np.ndarray:
    mh, mw = _matlab_matrix(img.shape[0], scale), _matlab_matrix(img.shape[1], scale)
    return np.einsum('ih,hwc,jw->ijc', mh, img.astype(np.float64), mw)


def test_fspecial_gaussian_is_the_normalised_separable_gaussian():
    g = np.exp(-np.arange(-3, 4) ** 2 / (2 * 2.6 ** 2))
    expected = np.outer(g, g) / np.outer(g, g).sum()
    assert np.abs(fspecial_gaussian(7, 2.6) - expected).max() < 1e-15


def _wrap_convolution_truncated(img, kernel):
    """The official blur written out: periodic padding, the flipped kernel (a convolution, not a correlation), a
    float64 sum per pixel and channel, truncated to uint8."""
    k = kernel.shape[0]
    padded = np.pad(img.astype(np.float64), ((k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode='wrap')
    flipped = kernel[::-1, ::-1]
    h, w = img.shape[:2]
    out = sum(flipped[i, j] * padded[i:i + h, j:j + w] for i in range(k) for j in range(k))
    return np.floor(out).astype(np.uint8)


def test_wrap_blur_equals_the_written_out_convolution_truncated_and_differs_from_reflection_at_the_border():
    img = _image()
    kernel = fspecial_gaussian(7, 2.6)
    ours = blur_wrap(img, kernel)
    assert ours.dtype == np.uint8 and np.array_equal(ours, _wrap_convolution_truncated(img, kernel))
    # truncation, not rounding: on average half a grey level below the float convolution
    exact = ndimage.convolve(img.astype(np.float64), kernel[..., None], mode='wrap')
    assert 0.4 < (exact - ours).mean() < 0.6 and (exact - ours).min() >= 0
    # our default protocol's border (reflection) differs only near the border, there by tens of grey levels
    reflect = ndimage.convolve(img.astype(np.float64), kernel[..., None], mode='mirror')
    diff = np.abs(exact - reflect)
    assert diff[3:-3, 3:-3].max() < 1e-9 and diff.max() > 20


@pytest.mark.parametrize('shape', [(64, 72), (30, 47)])
def test_matlab_resize_equals_the_definition_written_as_weight_matrices(shape):
    img = _image(*shape)
    ours = resize_matlab(img, 1 / 4)
    expected = _matlab_resize(img, 1 / 4)
    assert ours.shape == expected.shape == (math.ceil(shape[0] / 4), math.ceil(shape[1] / 4), 3)
    assert np.abs(ours - expected).max() < 1e-4  # float32 against float64 on [0, 255]: 1.7e-5 and 1.8e-5 here
    # antialiasing: far from OpenCV's/F.interpolate's bicubic, which samples without prefiltering
    plain = torch.nn.functional.interpolate(torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float64)),
                                            size=ours.shape[:2], mode='bicubic', align_corners=False)
    plain = plain[0].numpy().transpose(1, 2, 0)
    if shape == (64, 72):
        assert np.abs(plain - expected).mean() > 3  # 5.8 grey levels here


def test_noise_is_added_then_truncated_to_uint8():
    img = np.full((200, 200, 3), 100.7, np.float32)
    assert np.array_equal(add_noise_truncate(img, 0, np.random.default_rng(0)), np.full_like(img, 100, np.uint8))
    noisy = add_noise_truncate(img, 15, np.random.default_rng(0))
    expected = np.clip(img + np.random.default_rng(0).normal(0, 15, img.shape), 0, 255).astype(np.uint8)
    assert np.array_equal(noisy, expected)
    assert abs(noisy.mean() - 100.2) < 0.2 and abs(noisy.std() - 15) < 0.2  # truncation: 0.5 below on average


def _dataset(tmp_path, protocol, noise=15, seed=3):
    cv2.imwrite(str(tmp_path / 'a.png'), _image(200, 208))
    return FixedDegradationDataset({'name': 'set', 'dataroot_gt': str(tmp_path), 'io_backend': {'type': 'disk'},
                                    'scale': 4, 'blur_sigma': 2.6, 'kernel_size': 7, 'noise': noise, 'seed': seed,
                                    'support_size': 20, 'support_patch': 48, 'protocol': protocol})


def test_official_protocol_lr_equals_the_independent_pipeline_and_its_distance_from_ours(tmp_path):
    item = _dataset(tmp_path, 'official')[0]
    hr = cv2.imread(str(tmp_path / 'a.png'))
    blurred = ndimage.convolve(hr, fspecial_gaussian(7, 2.6)[..., None], mode='wrap')
    lr = _matlab_resize(blurred, 1 / 4) + np.random.default_rng(3).normal(0, 15, (50, 52, 3))
    lr = np.clip(lr, 0, 255).astype(np.uint8)[..., ::-1]  # BGR -> RGB
    got = np.round(item['lq'].numpy().transpose(1, 2, 0) * 255).astype(int)
    assert item['lq'].shape == (3, 50, 52) and item['gt'].shape == (3, 200, 208)
    # float32 (BasicSR's imresize) against float64 here: a value within ~1e-4 of an integer may truncate apart
    assert np.abs(got - lr).max() <= 1 and (got != lr).mean() < 1e-3
    # the same image under our default protocol, noise-free so only the protocol differs (figures: docs/blindsr.md)
    official = np.round(_dataset(tmp_path, 'official', noise=0)[0]['lq'].numpy() * 255)
    ours = np.round(_dataset(tmp_path, 'ours', noise=0)[0]['lq'].numpy() * 255)
    diff = np.abs(official - ours)
    assert 1.0 < diff.mean() < 3.0 and diff.max() > 20  # 2.23 and 47 here


def test_official_protocol_support_is_20_seeded_random_48px_crops_of_the_lr(tmp_path):
    ds = _dataset(tmp_path, 'official')
    item, again = ds[0], ds[0]
    support, lq = item['support'], item['lq']
    assert support.shape == (20, 3, 48, 48) and torch.equal(support, again['support'])
    rand = random.Random(3)  # seed + index 0; the official _get_single_patch draws x, then y
    for patch in support:
        x, y = rand.randrange(0, 52 - 48 + 1), rand.randrange(0, 50 - 48 + 1)
        assert torch.equal(patch, lq[:, y:y + 48, x:x + 48])
    other = _dataset(tmp_path, 'official', seed=4)[0]['support']
    assert not torch.equal(other, support)


def test_official_protocol_refuses_what_the_official_test_cannot_do(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), _image())
    opt = {'name': 'set', 'dataroot_gt': str(tmp_path), 'io_backend': {'type': 'disk'}, 'scale': 4,
           'blur_sigma': 2.6, 'protocol': 'official'}
    with pytest.raises(ValueError, match='isotropic blur and noise only'):
        FixedDegradationDataset(dict(opt, jpeg=60))
    with pytest.raises(ValueError, match='protocol must be one of'):
        FixedDegradationDataset(dict(opt, protocol='matlab'))
    with pytest.raises(ValueError, match='smaller than support_patch 48'):
        FixedDegradationDataset(dict(opt, support_patch=48))[0]  # 64x72 HR: a 16x18 LR
