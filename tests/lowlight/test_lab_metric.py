"""The lab's evaluation protocol (plugins/lowlight/lab_metric.py, which calls scikit-image as the lab's
``net/metrics.py`` does): PSNR and SSIM pinned against a computation written here from SSIM's definition with
skimage's defaults, and against skimage called as the lab called it, on fixed inputs padded as the lab's loader pads
them; the figures that differ from BasicSR's metrics on the same inputs; the dataset padding; and the seed's
parameter count."""
import glob

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import plugins  # noqa: F401
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from plugins.lowlight.backbone7x7_arch import Backbone7x7
from plugins.lowlight.guided_filter import AdaptiveNorm
from plugins.lowlight.lab_metric import calculate_lowlight_lab_psnr, calculate_lowlight_lab_ssim
from plugins.lowlight.lowlight_dataset import LowLightPairedDataset


def _pair():
    """A fixed 40x50 8-bit pair: a noisy ramp and a dimmer, less noisy one (40x50 pads to 48x64)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 40 * 50 * 3).reshape(40, 50, 3)
    a = np.clip(ramp + rng.normal(0, 20, ramp.shape), 0, 255).round().astype(np.uint8)
    b = np.clip(ramp * 0.8 + 20 + rng.normal(0, 10, ramp.shape), 0, 255).round().astype(np.uint8)
    return a, b


def _skimage_as_the_lab(a, b):
    """The lab's net/metrics.py on the pair its loader padded (tools.pad_pil: numpy reflect to 16): float images in
    [0, 1], skimage's defaults (compare_ssim(multichannel=True, data_range=1) is structural_similarity today)."""
    pad = lambda im: np.pad(im, ((0, -im.shape[0] % 16), (0, -im.shape[1] % 16), (0, 0)), 'reflect')  # noqa: E731
    a, b = pad(a).astype(np.float64) / 255., pad(b).astype(np.float64) / 255.
    assert a.shape == (48, 64, 3)
    return (peak_signal_noise_ratio(b, a, data_range=1),
            structural_similarity(a, b, channel_axis=2, data_range=1))


def _ssim_by_definition(a, b, data_range=1.):
    """SSIM written out with skimage's defaults: per channel, 7x7 box means (an explicit sum over the 49 shifts),
    sample (co)variances (x 49/48), K1 0.01, K2 0.03, the map's 3-pixel border dropped, means over map and channels."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, w = a.shape[:2]

    def box(x):  # mean over each 7x7 window, valid positions only: the map without its border
        return sum(x[i:h - 6 + i, j:w - 6 + j] for i in range(7) for j in range(7)) / 49.

    scores = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = box(x), box(y)
        pairs = ((x, x, mx, mx), (y, y, my, my), (x, y, mx, my))
        vx, vy, cxy = (49 / 48 * (box(p * q) - m * n) for p, q, m, n in pairs)
        scores.append((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean())
    return float(np.mean(scores))


def test_lab_metrics_equal_the_definition_and_skimage_on_the_padded_pair_and_differ_from_basicsr():
    a, b = _pair()
    psnr_ref, ssim_ref = _skimage_as_the_lab(a, b)
    pad = lambda im: np.pad(im, ((0, 8), (0, 14), (0, 0)), 'reflect').astype(np.float64) / 255.  # noqa: E731
    assert ssim_ref == pytest.approx(_ssim_by_definition(pad(a), pad(b)), abs=1e-12)
    psnr = calculate_metric({'img': a, 'img2': b}, {'type': 'calculate_lowlight_lab_psnr'})
    ssim = calculate_metric({'img': a, 'img2': b}, {'type': 'calculate_lowlight_lab_ssim'})
    assert psnr == pytest.approx(psnr_ref, abs=1e-10) and ssim == pytest.approx(ssim_ref, abs=1e-10)
    # the figures (also in docs/lowlight.md): lab protocol vs BasicSR's metrics on the same 40x50 pair
    assert psnr == pytest.approx(19.4850, abs=1e-4) and ssim == pytest.approx(0.39907, abs=1e-5)
    assert calculate_psnr(a, b, crop_border=0) == pytest.approx(19.8167, abs=1e-4)  # unpadded
    assert calculate_ssim(a, b, crop_border=0) == pytest.approx(0.30604, abs=1e-5)  # 11x11 Gaussian, valid region
    # without the padding, the lab's SSIM is skimage's on the image as given; PSNR is then BasicSR's formula
    assert calculate_lowlight_lab_ssim(a, b, divisor=1) == pytest.approx(
        structural_similarity(a, b, channel_axis=2, data_range=255), abs=1e-10)
    assert calculate_lowlight_lab_psnr(a, b, divisor=1) == pytest.approx(calculate_psnr(a, b, 0), abs=1e-10)


def test_lab_metrics_take_basicsrs_arguments():
    a, b = _pair()
    chw = calculate_lowlight_lab_ssim(a.transpose(2, 0, 1), b.transpose(2, 0, 1), 0, input_order='CHW')
    assert chw == pytest.approx(calculate_lowlight_lab_ssim(a, b, 0))
    # float images on the 0-255 scale (the lab's output is not rounded): no rounding inside
    f = a.astype(np.float64) + 0.3
    assert calculate_lowlight_lab_psnr(f, a) == pytest.approx(10 * np.log10(255 ** 2 / 0.09))
    # crop_border after the padding, Y channel as BasicSR's
    cropped = calculate_lowlight_lab_ssim(a, b, crop_border=4, test_y_channel=True)
    from basicsr.metrics.metric_util import to_y_channel
    pad = lambda im: np.pad(im, ((0, 8), (0, 14), (0, 0)), 'reflect')[4:-4, 4:-4]  # noqa: E731
    ref = structural_similarity(to_y_channel(pad(a))[..., 0].astype(np.float64),
                                to_y_channel(pad(b))[..., 0].astype(np.float64), data_range=255)
    assert cropped == pytest.approx(ref, abs=1e-6)
    with pytest.raises(ValueError, match='image shapes differ'):
        calculate_lowlight_lab_psnr(a, b[:-1])


def test_dataset_pads_each_pair_as_the_labs_loader(tmp_path):
    for kind, value in (('low', 30), ('high', 200)):
        (tmp_path / 'eval15' / kind).mkdir(parents=True)
        img = np.random.default_rng(value).integers(0, 256, (37, 50, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / 'eval15' / kind / '1.png'), img)
    opt = {'name': 'lol', 'dataroot': str(tmp_path), 'split': 'eval15', 'phase': 'val', 'pad_to_multiple': 16}
    item = LowLightPairedDataset(opt)[0]
    for key, kind in (('lq', 'low'), ('gt', 'high')):
        rgb = cv2.imread(glob.glob(str(tmp_path / 'eval15' / kind / '*.png'))[0])[..., ::-1]
        padded = np.pad(rgb, ((0, 11), (0, 14), (0, 0)), 'reflect')  # net/tools.py::pad_pil
        assert item[key].shape == (3, 48, 64)
        assert torch.equal(item[key], torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float32) / 255.))
    with pytest.raises(ValueError, match='pad_to_multiple is for validation/test sets'):
        LowLightPairedDataset(dict(opt, phase='train', gt_size=32))


def test_seed_parameter_count_is_the_rgb_guided_variant_without_the_adaptivenorm_scalars():
    """The seed's 427,534: the RGB-guided Backbone7x7 (427,540) counted by a per-leaf-module counter (torchstat,
    the lab's cal_FLOPs.py), which skips the w_0, w_1 scalars of the three AdaptiveNorms (modules with a child)."""
    net = Backbone7x7(guide_rgb_only=True)
    total = sum(p.numel() for p in net.parameters())
    leaves = sum(p.numel() for m in net.modules() if not list(m.children()) for p in m.parameters(recurse=False))
    norms = [m for m in net.modules() if isinstance(m, AdaptiveNorm)]
    assert (total, leaves, len(norms)) == (427_540, 427_534, 3)
    assert total - leaves == sum(m.w_0.numel() + m.w_1.numel() for m in norms)
