"""Task-grouped degradations: ONE set of degradation parameters is sampled per task and applied to every patch of
that task (query and support alike), so the ConditionNet can learn what the patches of a task share.

Two families, chosen by ``type`` in the dataset's ``degradation`` options:

``paper`` (CMDSR's ``data_loader.py`` / ``tools/data_preprocess.py``):
    Gaussian blur of the HR patch (``kernel_size`` 15, sigma = 0.2 + U{0..38}/10, i.e. 0.2-4.0 in steps of 0.1;
    anisotropic with ``aniso_prob``: sigma_x, sigma_y in the same range and a rotation in [0, pi)), bicubic
    downsampling (``F.interpolate(mode='bicubic')``, which is OpenCV's INTER_CUBIC used by the official code),
    Gaussian noise of level U{noise_range} (on [0, 255]), optional JPEG (``jpeg_prob``, quality U[jpeg_range]),
    8-bit rounding.

``realesrgan`` (Real-ESRGAN's second-order pipeline, ``basicsr/models/realesrgan_model.py::feed_data`` with the
options of ``train_realesrnet_x4plus.yml``): blur (iso/aniso/generalised/plateau or sinc kernels of
``basicsr.data.degradations``), random resize, Gaussian/Poisson noise, JPEG, then the same again, and the final
sinc filter with JPEG in either order. BasicSR draws kernels per sample and noise levels / JPEG qualities per
sample and shuffles samples through a pool; here every draw is made once per task and there is no pool, or the
contrastive signal would be meaningless (shared/docs/references.md, A.2).

Everything runs on torch tensors on any device (``DiffJPEG`` is built on the device of the images, never with
``.cuda()``). Images are ``(P, 3, H, W)`` RGB in [0, 1].
"""
import math
import random
from typing import Dict, Optional

import numpy as np
import torch
from torch.nn import functional as F

from basicsr.data.degradations import (bivariate_Gaussian, circular_lowpass_kernel, generate_poisson_noise_pt,
                                       random_mixed_kernels)
from basicsr.utils.img_process_util import filter2D

PAPER_DEFAULTS = dict(kernel_size=15, sigma_range=[0.2, 4.0], sigma_step=0.1, aniso_prob=0.0, noise_range=[0, 75],
                      jpeg_prob=0.0, jpeg_range=[30, 80])
# train_realesrnet_x4plus.yml of xinntao/Real-ESRGAN (the values quoted in shared/docs/references.md A.2).
REALESRGAN_DEFAULTS = dict(
    blur_kernel_size=21, kernel_list=['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                      'plateau_aniso'],
    kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob=0.1, blur_sigma=[0.2, 3], betag_range=[0.5, 4],
    betap_range=[1, 2], kernel_list2=['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                      'plateau_aniso'],
    kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob2=0.1, blur_sigma2=[0.2, 1.5], betag_range2=[0.5, 4],
    betap_range2=[1, 2], final_sinc_prob=0.8, resize_prob=[0.2, 0.7, 0.1], resize_range=[0.15, 1.5],
    gaussian_noise_prob=0.5, noise_range=[1, 30], poisson_scale_range=[0.05, 3], gray_noise_prob=0.4,
    jpeg_range=[30, 95], second_blur_prob=0.8, resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.3, 1.2],
    gaussian_noise_prob2=0.5, noise_range2=[1, 25], poisson_scale_range2=[0.05, 2.5], gray_noise_prob2=0.4,
    jpeg_range2=[30, 95])
RESIZE_MODES = ['area', 'bilinear', 'bicubic']


def _merged(defaults: Dict, opt: Dict, where: str) -> Dict:
    unknown = sorted(set(opt) - set(defaults) - {'type'})
    if unknown:
        raise ValueError(f'{where}: unknown degradation option(s) {unknown}; known: {sorted(defaults)}')
    return {**defaults, **{k: v for k, v in opt.items() if k != 'type'}}


def _jpeg(img: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG-compress ``(P, 3, H, W)`` in [0, 1] at one quality with BasicSR's DiffJPEG, on the images' device."""
    from basicsr.utils.diffjpeg import DiffJPEG
    jpeger = DiffJPEG(differentiable=False).to(img.device)
    return jpeger(img.clamp(0, 1), quality=img.new_full((img.shape[0], ), float(quality)))


def gaussian_noise(img: torch.Tensor, sigma: float, gray: bool = False, generator: torch.Generator = None):
    """Additive Gaussian noise of level ``sigma`` (on [0, 255]); ``gray``: one noise plane for the 3 channels.

    (BasicSR's ``generate_gaussian_noise_pt`` cannot make gray noise for more than one image at a time.)"""
    p, c, h, w = img.shape
    noise = torch.randn((p, 1 if gray else c, h, w), generator=generator, device=img.device, dtype=img.dtype)
    return img + noise * (sigma / 255.)


def _filter(img: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """BasicSR's ``filter2D`` with one ``(k, k)`` kernel for all images (it needs a contiguous input).

    Its reflection padding needs ``k // 2 < min(h, w)``: a kernel too large for a small image (Real-ESRGAN's
    21 x 21 kernels after a strong down-resize of a small training patch) is cut to its centre and renormalised.
    """
    limit = 2 * min(img.shape[-2:]) - 1
    if kernel.shape[0] > limit:
        cut = (kernel.shape[0] - limit) // 2 + (1 - limit % 2)
        kernel = kernel[cut:kernel.shape[0] - cut, cut:kernel.shape[1] - cut]
        kernel = kernel / kernel.sum()
    return filter2D(img.contiguous(), torch.from_numpy(np.ascontiguousarray(kernel)).to(img)[None])


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8 bits, as LR images stored as PNG are."""
    return (img.clamp(0, 1) * 255.).round() / 255.


class PaperDegradation:
    """CMDSR's degradation family (see the module docstring). ``sample()`` draws one task's parameters,
    ``apply(hr, params, scale)`` degrades ``(P, 3, H, W)`` HR patches with them."""

    def __init__(self, opt: Optional[Dict] = None, where: str = 'degradation'):
        self.opt = _merged(PAPER_DEFAULTS, opt or {}, where)
        lo, hi = self.opt['sigma_range']
        if not 0 < lo <= hi:
            raise ValueError(f'{where}: sigma_range must be [low, high] with 0 < low <= high, got {[lo, hi]}')
        if int(self.opt['kernel_size']) % 2 == 0:
            raise ValueError(f"{where}: kernel_size must be odd, got {self.opt['kernel_size']}")

    def _sigma(self) -> float:
        lo, hi = self.opt['sigma_range']
        step = self.opt['sigma_step']
        if step:  # the official U{0..38} / 10 grid
            return round(lo + random.randint(0, int(round((hi - lo) / step))) * step, 4)
        return random.uniform(lo, hi)

    def sample(self) -> Dict:
        """One task's parameters: ``sigma_x``, ``sigma_y``, ``theta``, ``noise``, ``jpeg`` (None = off)."""
        sigma_x = self._sigma()
        aniso = random.random() < self.opt['aniso_prob']
        sigma_y, theta = (self._sigma(), random.uniform(0, math.pi)) if aniso else (sigma_x, 0.)
        noise = random.randint(*[int(v) for v in self.opt['noise_range']])
        jpeg = random.randint(*[int(v) for v in self.opt['jpeg_range']]) if random.random() < self.opt['jpeg_prob'] \
            else None
        return {'sigma_x': sigma_x, 'sigma_y': sigma_y, 'theta': theta, 'noise': noise, 'jpeg': jpeg}

    def apply(self, hr: torch.Tensor, params: Dict, scale: int, generator: torch.Generator = None) -> torch.Tensor:
        return apply_paper_degradation(hr, params, scale, int(self.opt['kernel_size']), generator)

    @staticmethod
    def describe(params: Dict) -> str:
        """A short name for logs and task folders, e.g. ``blur2.6_noise15``."""
        blur = f"blur{params['sigma_x']:g}" if params['sigma_x'] == params['sigma_y'] else \
            f"blur{params['sigma_x']:g}x{params['sigma_y']:g}r{params['theta']:.2f}"
        return blur + f"_noise{params['noise']:g}" + (f"_jpeg{params['jpeg']}" if params.get('jpeg') else '')


def apply_paper_degradation(hr: torch.Tensor, params: Dict, scale: int, kernel_size: int = 15,
                            generator: torch.Generator = None) -> torch.Tensor:
    """Blur (Gaussian, ``sigma_x``/``sigma_y``/``theta``; sigma 0 = none) -> bicubic x1/scale -> Gaussian noise
    ``noise`` -> JPEG ``jpeg`` (None = none) -> 8-bit rounding, on ``(P, 3, H, W)`` [0, 1] -> ``(P, 3, H/s, W/s)``.
    ``generator`` makes the noise reproducible (fixed evaluation tasks)."""
    out = hr
    if params.get('sigma_x', 0) > 0:
        sigma_y = params.get('sigma_y', params['sigma_x'])
        kernel = bivariate_Gaussian(kernel_size, params['sigma_x'], sigma_y, params.get('theta', 0.),
                                    isotropic=sigma_y == params['sigma_x'])
        out = _filter(out, kernel)
    h, w = hr.shape[-2:]
    out = F.interpolate(out, size=(h // scale, w // scale), mode='bicubic', align_corners=False)
    if params.get('noise', 0) > 0:
        out = gaussian_noise(out, params['noise'], generator=generator)
    if params.get('jpeg'):
        out = _jpeg(out, params['jpeg'])
    return quantize(out)


class RealESRGANDegradation:
    """Real-ESRGAN's second-order degradation with every random draw made once per task (see module docstring)."""

    def __init__(self, opt: Optional[Dict] = None, where: str = 'degradation'):
        self.opt = _merged(REALESRGAN_DEFAULTS, opt or {}, where)

    def _kernel(self, suffix: str) -> np.ndarray:
        o = self.opt
        size = random.choice([2 * v + 1 for v in range(3, 11)])  # 7..21, as RealESRGANDataset
        if random.random() < o['sinc_prob' + suffix]:
            omega_c = random.uniform(math.pi / 3, math.pi) if size < 13 else random.uniform(math.pi / 5, math.pi)
            kernel = circular_lowpass_kernel(omega_c, size, pad_to=False)
        else:
            kernel = random_mixed_kernels(o['kernel_list' + suffix], o['kernel_prob' + suffix], size,
                                          o['blur_sigma' + suffix], o['blur_sigma' + suffix], [-math.pi, math.pi],
                                          o['betag_range' + suffix], o['betap_range' + suffix], noise_range=None)
        pad = (21 - size) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad))).astype(np.float32)

    def _resize_noise_jpeg(self, suffix: str) -> Dict:
        o = self.opt
        updown = random.choices(['up', 'down', 'keep'], o['resize_prob' + suffix])[0]
        lo, hi = o['resize_range' + suffix]
        factor = random.uniform(1, hi) if updown == 'up' else random.uniform(lo, 1) if updown == 'down' else 1.
        gaussian = random.random() < o['gaussian_noise_prob' + suffix]
        level = random.uniform(*o['noise_range' + suffix]) if gaussian else random.uniform(
            *o['poisson_scale_range' + suffix])
        return {'resize': factor, 'resize_mode': random.choice(RESIZE_MODES), 'gaussian': gaussian, 'level': level,
                'gray': random.random() < o['gray_noise_prob' + suffix],
                'jpeg': random.uniform(*o['jpeg_range' + suffix])}

    def sample(self) -> Dict:
        """One task's draws: kernels, resize factors and modes, noise kinds and levels, JPEG qualities, order."""
        first, second = self._resize_noise_jpeg(''), self._resize_noise_jpeg('2')
        sinc = None
        if random.random() < self.opt['final_sinc_prob']:
            size = random.choice([2 * v + 1 for v in range(3, 11)])
            sinc = circular_lowpass_kernel(random.uniform(math.pi / 3, math.pi), size, pad_to=21).astype(np.float32)
        return {'kernel1': self._kernel(''), 'kernel2': self._kernel('2'), 'first': first, 'second': second,
                'second_blur': random.random() < self.opt['second_blur_prob'], 'sinc': sinc,
                'sinc_first': random.random() < 0.5, 'final_mode': random.choice(RESIZE_MODES)}

    @staticmethod
    def _noise(img: torch.Tensor, step: Dict) -> torch.Tensor:
        if step['gaussian']:
            return gaussian_noise(img, step['level'], step['gray']).clamp(0, 1)
        return (img + generate_poisson_noise_pt(img, step['level'], float(step['gray']))).clamp(0, 1)

    def apply(self, hr: torch.Tensor, params: Dict, scale: int, generator: torch.Generator = None) -> torch.Tensor:
        h, w = hr.shape[-2:]
        first, second = params['first'], params['second']
        out = _filter(hr, params['kernel1'])
        out = F.interpolate(out, scale_factor=first['resize'], mode=first['resize_mode'])
        out = _jpeg(self._noise(out, first), first['jpeg'])
        if params['second_blur']:
            out = _filter(out, params['kernel2'])
        size2 = (max(1, int(h / scale * second['resize'])), max(1, int(w / scale * second['resize'])))
        out = self._noise(F.interpolate(out, size=size2, mode=second['resize_mode']), second)

        def resize_sinc(x):
            x = F.interpolate(x, size=(h // scale, w // scale), mode=params['final_mode'])
            return x if params['sinc'] is None else _filter(x, params['sinc'])

        if params['sinc_first']:
            out = _jpeg(resize_sinc(out), second['jpeg'])
        else:
            out = resize_sinc(_jpeg(out, second['jpeg']))
        return quantize(out)

    @staticmethod
    def describe(params: Dict) -> str:
        f, s = params['first'], params['second']
        kind = lambda st: f"{'g' if st['gaussian'] else 'p'}{st['level']:.2f}"  # noqa: E731
        return f"resize{f['resize']:.2f}_{kind(f)}_q{f['jpeg']:.0f}_resize{s['resize']:.2f}_{kind(s)}_q{s['jpeg']:.0f}"


def build_degradation(opt: Optional[Dict], where: str = 'degradation'):
    """``PaperDegradation`` or ``RealESRGANDegradation`` from a ``{type: paper|realesrgan, ...}`` dict."""
    opt = dict(opt or {'type': 'paper'})
    kinds = {'paper': PaperDegradation, 'realesrgan': RealESRGANDegradation}
    kind = opt.get('type', 'paper')
    if kind not in kinds:
        raise ValueError(f'{where}: type must be one of {sorted(kinds)}, got {kind!r}')
    return kinds[kind](opt, where)
