"""PSNR and SSIM as the lab evaluates its low-light networks (seed 000), registered in BasicSR's ``METRIC_REGISTRY``.

Written from zhilin007/LightEnhancement ``net/metrics.py``, ``net/data_utils.py`` and ``net/tools.py``:

* The evaluation loader pads both images of a pair, low and normal light, at the bottom and right to a multiple of
  ``--divisor`` (16) with numpy's ``reflect`` (``tools.pad_pil``; LOL's 400x600 becomes 400x608); the network runs
  on the padded low image and the metrics compare the *padded* output with the *padded* target.
* SSIM: ``skimage.measure.compare_ssim(pred, gt, multichannel=True, data_range=1)`` on float HWC images (the
  output clamped to [0, 1], not rounded to 8 bits), which we call too (``structural_similarity``, its name
  today; scikit-image is a dependency): skimage's defaults, a 7x7 *uniform* window, sample
  covariances (``use_sample_covariance=True``: variances times 49/48), K1 = 0.01, K2 = 0.03, the SSIM map's
  border of 3 pixels dropped, the mean over the map, then the mean over the channels.
* PSNR: ``compare_psnr(pred, gt, data_range=1)``: ``10 log10(1 / MSE)`` over all pixels and channels, in float.
* One image per batch; the figure of a set is the mean of the per-image figures.

BasicSR's ``calculate_ssim`` differs: an 11x11 Gaussian window (sigma 1.5), population variances, only the valid
region of the window (5 pixels dropped on each side), and BasicSR's validation computes on the unpadded image.

The functions take BasicSR's arguments (``img``, ``img2`` on the 0-255 scale, ``(H, W, C)`` or ``(C, H, W)`` with
``input_order``, ``crop_border``, ``test_y_channel``) plus ``divisor`` (default 16, the seed's): both images are
reflect-padded at the bottom/right to a multiple of ``divisor`` first, as the lab's loader does; a pair that is
already padded (``pad_to_multiple: 16`` on the validation dataset, see plugins/lowlight/lowlight_dataset.py) is
left as it is. Only with the dataset padding does the network predict the padded strip itself, as the lab's did;
the metrics' own padding reflects the (cropped) output instead. ``LowLightModel`` therefore requires the dataset
padding where these metrics are used. Figures that differ from BasicSR's on the same inputs:
``tests/lowlight/test_lab_metric.py`` and docs/lowlight.md.
"""
import numpy as np
from skimage.metrics import structural_similarity

from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.metrics.metric_util import reorder_image, to_y_channel
from basicsr.utils.registry import METRIC_REGISTRY

LAB_DIVISOR = 16  # the seed's --divisor
WIN = 7  # skimage's default win_size
K1, K2 = 0.01, 0.03
LAB_METRICS = ('calculate_lowlight_lab_psnr', 'calculate_lowlight_lab_ssim')


def pad_to_multiple(img: np.ndarray, divisor: int) -> np.ndarray:
    """``(H, W[, C])`` reflect-padded at the bottom and right to multiples of ``divisor`` (numpy's ``reflect``: the
    edge row is not repeated, as torch's ``reflect`` and the lab's ``pad_pil``)."""
    if not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f'divisor must be a positive integer, got {divisor!r}')
    pad_h, pad_w = -img.shape[0] % divisor, -img.shape[1] % divisor
    if not pad_h and not pad_w:
        return img
    return np.pad(img, ((0, pad_h), (0, pad_w)) + ((0, 0), ) * (img.ndim - 2), mode='reflect')


def _prepare(img, img2, crop_border: int, input_order: str, test_y_channel: bool, divisor: int):
    """Both images as float64 ``(H, W, C)`` on the 0-255 scale: reordered, padded, cropped, Y if asked."""
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f'image shapes differ: {img.shape} and {img2.shape}')
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'input_order must be HWC or CHW, got {input_order!r}')
    out = []
    for im in (img, img2):
        im = pad_to_multiple(reorder_image(im, input_order=input_order), divisor)
        if crop_border:
            im = im[crop_border:-crop_border, crop_border:-crop_border, ...]
        if test_y_channel:
            im = to_y_channel(im)
        out.append(im.astype(np.float64))
    return out


def ssim_uniform(img: np.ndarray, img2: np.ndarray, data_range: float = 255.) -> float:
    """skimage's SSIM with its defaults, as the lab's ``compare_ssim(multichannel=True)`` (now
    ``structural_similarity(channel_axis=2)``): per channel, 7x7 uniform window, sample (co)variances, the map without
    its 3-pixel border averaged; then the mean over channels. Float64 ``(H, W, C)`` images; needs H, W >= 7."""
    if min(img.shape[:2]) < WIN:
        raise ValueError(f'SSIM with a {WIN}x{WIN} window needs images of at least {WIN} pixels, got {img.shape[:2]}')
    return float(structural_similarity(img, img2, win_size=WIN, gaussian_weights=False, use_sample_covariance=True,
                                       K1=K1, K2=K2, data_range=data_range, channel_axis=2))


@METRIC_REGISTRY.register()
def calculate_lowlight_lab_psnr(img, img2, crop_border: int = 0, input_order: str = 'HWC',
                                test_y_channel: bool = False, divisor: int = LAB_DIVISOR, **kwargs) -> float:
    """PSNR (dB) as the lab's evaluation: on the pair padded to a multiple of ``divisor``, in float
    (``10 log10(255^2 / MSE)`` on the 0-255 scale = skimage's ``data_range=1`` on [0, 1]); ``inf`` for equal images.
    """
    a, b = _prepare(img, img2, 0, input_order, False, divisor)  # padded as the lab's loader pads
    return float(calculate_psnr(a, b, crop_border, 'HWC', test_y_channel))  # then BasicSR's PSNR, in float


@METRIC_REGISTRY.register()
def calculate_lowlight_lab_ssim(img, img2, crop_border: int = 0, input_order: str = 'HWC',
                                test_y_channel: bool = False, divisor: int = LAB_DIVISOR, **kwargs) -> float:
    """SSIM as the lab's evaluation (skimage's ``compare_ssim`` defaults, see the module doc) on the pair padded to a
    multiple of ``divisor``; data range 255 (the 0-255 scale BasicSR passes)."""
    a, b = _prepare(img, img2, crop_border, input_order, test_y_channel, divisor)
    return ssim_uniform(a, b, 255.)
