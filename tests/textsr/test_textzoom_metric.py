"""TextZoom's PSNR and SSIM (plugins/textsr/textzoom_metric.py) against independent computations written out here
(numpy, no torch convolution), and against BasicSR's metrics on the same inputs: the differences the protocol makes.

Fixed inputs: three 32x128 RGB "HR" crops (smooth random fields with sharp strokes, seed 0) and their x2 bicubic
round trips with different noise levels per image, so per-image PSNRs spread and Jensen's gap is visible."""
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

import plugins  # noqa: F401  (registrations)
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY
from plugins.textsr.split_validation import BatchGroups, is_per_batch
from plugins.textsr.textzoom_metric import calculate_textzoom_psnr, calculate_textzoom_ssim


@pytest.fixture(scope='module')
def pair():
    """(sr, hr): float64 (3, 32, 128, 3) on the 0-255 scale; sr leaves [0, 255] a little, as a tanh output can."""
    rng = np.random.default_rng(0)
    hr = torch.from_numpy(rng.random((3, 3, 8, 32)))
    hr = torch.nn.functional.interpolate(hr, size=(32, 128), mode='bilinear', align_corners=False)
    hr[:, :, 10:22, 20:24] = 0.05  # strokes
    hr[:, :, 14:16, 40:100] = 0.95
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.5, mode='bicubic', align_corners=False)
    sr = torch.nn.functional.interpolate(lr, scale_factor=2, mode='bicubic', align_corners=True)
    sr = sr + torch.from_numpy(rng.normal(0, 1, sr.shape)) * torch.tensor([0.01, 0.04, 0.12]).view(3, 1, 1, 1)
    return (sr.numpy().transpose(0, 2, 3, 1) * 255, hr.numpy().transpose(0, 2, 3, 1) * 255)


def independent_ssim_map(a: np.ndarray, b: np.ndarray, valid_only: bool = False) -> np.ndarray:
    """SSIM map of one (H, W) channel on the 0-255 scale: 11x11 Gaussian (sigma 1.5) windows over a zero-padded
    image, explicit window sums (``valid_only``: only the windows that lie inside the image)."""
    x = np.arange(11) - 5
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    if not valid_only:
        a, b = np.pad(a, 5), np.pad(b, 5)
    wa, wb = sliding_window_view(a, (11, 11)), sliding_window_view(b, (11, 11))
    mu_a, mu_b = (wa * w).sum((-1, -2)), (wb * w).sum((-1, -2))
    var_a = (wa * wa * w).sum((-1, -2)) - mu_a ** 2
    var_b = (wb * wb * w).sum((-1, -2)) - mu_b ** 2
    cov = (wa * wb * w).sum((-1, -2)) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def test_textzoom_psnr_pools_the_mse_of_the_batch_in_float(pair):
    sr, hr = pair
    pooled = 10 * np.log10(255 ** 2 / np.mean((sr - hr) ** 2))
    assert calculate_textzoom_psnr(sr, hr, crop_border=0) == pytest.approx(pooled, abs=1e-9)
    per_image = [calculate_textzoom_psnr(s, h, crop_border=0) for s, h in zip(sr, hr)]
    assert per_image == pytest.approx([10 * np.log10(255 ** 2 / np.mean((s - h) ** 2)) for s, h in zip(sr, hr)])
    # CHW order, a 4th (mask) channel dropped as TextZoom's [:, :3]
    chw = np.concatenate([sr, np.zeros_like(sr[..., :1])], -1).transpose(0, 3, 1, 2)
    chw_hr = np.concatenate([hr, np.ones_like(hr[..., :1])], -1).transpose(0, 3, 1, 2)
    assert calculate_textzoom_psnr(chw, chw_hr, 0, input_order='CHW') == pytest.approx(pooled, abs=1e-9)
    assert calculate_textzoom_psnr(hr, hr, 0) == float('inf')
    # BasicSR's protocol on the same images: per 8-bit image (clamped, rounded), then averaged
    basicsr = np.mean([calculate_psnr(np.clip(s, 0, 255).round().astype(np.uint8), h.round().astype(np.uint8), 0)
                       for s, h in zip(sr, hr)])
    assert np.mean(per_image) - pooled > 1.0  # Jensen: the mean of PSNRs exceeds the PSNR of the pooled MSE
    assert basicsr - pooled > 1.0  # 22.49 vs 20.99 dB here


def test_textzoom_ssim_is_the_zero_padded_gaussian_ssim(pair):
    sr, hr = pair
    maps = [independent_ssim_map(s[..., c], h[..., c]) for s, h in zip(sr, hr) for c in range(3)]
    assert maps[0].shape == (32, 128)  # every pixel, the 5-pixel border included
    expected = np.mean(maps)
    assert calculate_textzoom_ssim(sr, hr, crop_border=0) == pytest.approx(expected, abs=1e-9)
    one = calculate_textzoom_ssim(sr[0], hr[0], crop_border=0)
    assert one == pytest.approx(np.mean(maps[:3]), abs=1e-9)
    # BasicSR's SSIM is the valid region only (22 of 32 rows, 118 of 128 columns), per image, then averaged
    basicsr = np.mean([calculate_ssim(s, h, crop_border=0) for s, h in zip(sr, hr)])
    valid = np.mean([independent_ssim_map(s[..., c], h[..., c], valid_only=True) for s, h in zip(sr, hr)
                     for c in range(3)])
    assert independent_ssim_map(sr[0, ..., 0], hr[0, ..., 0], valid_only=True).shape == (22, 118)
    assert basicsr == pytest.approx(valid, abs=1e-6)
    assert expected - basicsr > 0.02  # the border windows, zero padded on both images, score high


def test_textzoom_metrics_accept_basicsrs_arguments(pair):
    sr, hr = pair
    cropped = calculate_textzoom_psnr(sr, hr, crop_border=2)
    assert cropped == pytest.approx(10 * np.log10(255 ** 2 / np.mean((sr[:, 2:-2, 2:-2] - hr[:, 2:-2, 2:-2]) ** 2)))
    y = calculate_textzoom_psnr(sr, hr, 0, test_y_channel=True)
    from basicsr.metrics.metric_util import to_y_channel
    ys, yh = np.stack([to_y_channel(s) for s in sr]), np.stack([to_y_channel(h) for h in hr])
    assert y == pytest.approx(10 * np.log10(255 ** 2 / np.mean((ys - yh) ** 2)))
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_textzoom_ssim(sr, hr[:2], 0)
    for name in ('calculate_textzoom_psnr', 'calculate_textzoom_ssim'):
        assert METRIC_REGISTRY.get(name) and is_per_batch({'type': name})
    assert not is_per_batch({'type': 'calculate_psnr'})


def test_validation_groups_images_into_textzoom_batches(pair):
    """The validation loop's groups: full batches of ``batch_size`` in order, the rest last (drop_last=False), and the
    unweighted mean of the group figures (TextZoom's sum(metric_dict['psnr']) / len(...))."""
    sr, hr = pair
    five_sr, five_hr = np.concatenate([sr, sr[:2] * 0.9]), np.concatenate([hr, hr[:2]])
    groups = BatchGroups({'psnr': {'type': 'calculate_textzoom_psnr', 'crop_border': 0, 'batch_size': 2},
                          'psnr_all': {'type': 'calculate_textzoom_psnr', 'crop_border': 0}})
    for i in range(5):  # BasicSR's validation loader: one image at a time
        groups.add(five_sr[i:i + 1], five_hr[i:i + 1])
    result = groups.close()

    def psnr(a, b):
        return 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))
    by_two = np.mean([psnr(five_sr[0:2], five_hr[0:2]), psnr(five_sr[2:4], five_hr[2:4]), psnr(five_sr[4:], five_hr[4:])])
    assert result['psnr'] == pytest.approx(by_two)
    assert result['psnr_all'] == pytest.approx(psnr(five_sr, five_hr))  # 5 < 1024: one group, the pooled MSE
    assert abs(result['psnr'] - result['psnr_all']) > 0.1
