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
contrastive signal would be meaningless (shared/docs/references.md, A.2). ``gt_usm: true`` does as Real-ESRNet
(``RealESRNetModel`` with ``gt_usm: True``, Real-ESRGAN's ``train_realesrnet_x4plus.yml``): the HR patches are
sharpened first with BasicSR's ``USMSharp`` (radius 50, weight 0.5, threshold 10), the LR is made from the
sharpened HR and the sharpened HR is the training target. Default false (ours): LR and target from the HR as read.

Two ways to run the same degradations (``datasets:train:degrade_on`` of ``TaskDegradationDataset``):

* in the data workers, one task at a time: ``sample()`` then ``apply(hr, params, scale)`` on ``(P, 3, H, W)``;
* on the model's device, a batch of tasks at a time: the worker only draws (``sample()``, then ``encode(params)``:
  kernels and numbers that the DataLoader collates), and ``degrade_tasks(hr, batch, scale)`` degrades
  ``(T, P, 3, H, W)`` in ``CMDSRModel.feed_data``, as BasicSR's ``RealESRGANModel`` does. Blurs there are one
  depthwise convolution over all tasks, split into two 1-D passes where a task's kernel has rank 1 (isotropic and
  axis-aligned Gaussians, no blur); the result equals ``apply`` with the same draws to float precision
  (``tests/blindsr/test_device_degradation.py``).

Everything is torch on any device (``DiffJPEG`` is built on the device of the images, never with ``.cuda()``).
Images are RGB in [0, 1].
"""
import math
import random
from typing import Callable, Dict, List, Optional, Sequence

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
    jpeg_range2=[30, 95], gt_usm=False)
RESIZE_MODES = ['area', 'bilinear', 'bicubic']


def _merged(defaults: Dict, opt: Dict, where: str) -> Dict:
    unknown = sorted(set(opt) - set(defaults) - {'type'})
    if unknown:
        raise ValueError(f'{where}: unknown degradation option(s) {unknown}; known: {sorted(defaults)}')
    return {**defaults, **{k: v for k, v in opt.items() if k != 'type'}}


_JPEGERS: Dict[torch.device, torch.nn.Module] = {}  # one DiffJPEG per device (it holds only constant tables)


def _jpeg(img: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG-compress ``(P, 3, H, W)`` in [0, 1] at one quality with BasicSR's DiffJPEG, on the images' device.

    (DiffJPEG reads each image's quality on the host: one small sync per image on a GPU, as in BasicSR's
    ``RealESRGANModel``.)"""
    if img.device not in _JPEGERS:
        from basicsr.utils.diffjpeg import DiffJPEG
        _JPEGERS[img.device] = DiffJPEG(differentiable=False).to(img.device)
    return _JPEGERS[img.device](img.clamp(0, 1), quality=img.new_full((img.shape[0], ), float(quality)))


_SHARPENERS: Dict[torch.device, torch.nn.Module] = {}  # one USMSharp per device (it holds a constant kernel)


def usm_sharpen(img: torch.Tensor) -> torch.Tensor:
    """BasicSR's ``USMSharp()`` (unsharp masking, radius 50: a 51 x 51 Gaussian; weight 0.5, threshold 10) of
    ``(N, 3, H, W)`` in [0, 1] (H, W > 25) on the images' device, as Real-ESRNet sharpens its GT."""
    if img.device not in _SHARPENERS:
        from basicsr.utils.img_process_util import USMSharp
        _SHARPENERS[img.device] = USMSharp().to(img.device)
    return _SHARPENERS[img.device](img.contiguous())


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


def separable_factors(kernel: np.ndarray, rtol: float = 1e-6) -> Optional[np.ndarray]:
    """``(2, k)`` float32 ``[column, row]`` with ``outer(column, row) == kernel`` when ``kernel`` ``(k, k)`` has rank 1
    (isotropic or axis-aligned Gaussians, a delta), to ``rtol`` of its largest singular value; else None."""
    u, s, vt = np.linalg.svd(np.asarray(kernel, dtype=np.float64))
    if s[0] == 0 or s[1] > rtol * s[0]:
        return None
    column, row = u[:, 0] * math.sqrt(s[0]), vt[0] * math.sqrt(s[0])
    if column.sum() < 0:  # both signs flipped: the same product, positive factors for a positive kernel
        column, row = -column, -row
    return np.stack([column, row]).astype(np.float32)


def encode_kernel(kernel: Optional[np.ndarray], size: int) -> Dict:
    """A blur kernel as the DataLoader can collate it: ``weights`` ``(k, k)`` float32 (a delta when ``kernel`` is
    None), ``factors`` ``(2, k)`` (zeros unless ``separable``), ``separable``, ``on`` (False: no blur)."""
    on = kernel is not None
    if not on:
        kernel = np.zeros((size, size), np.float32)
        kernel[size // 2, size // 2] = 1
    factors = separable_factors(kernel)
    return {'weights': np.ascontiguousarray(kernel, dtype=np.float32), 'on': on, 'separable': factors is not None,
            'factors': np.zeros((2, kernel.shape[0]), np.float32) if factors is None else factors}


def _fit_kernels(kernels: torch.Tensor, factors: torch.Tensor, h: int, w: int):
    """``_filter``'s rule for images smaller than the kernel, on ``(T, k, k)`` kernels and ``(T, 2, k)`` factors."""
    k, limit = kernels.shape[-1], 2 * min(h, w) - 1  # limit is odd, as k is
    if k <= limit:
        return kernels, factors
    cut = (k - limit) // 2
    kernels = kernels[:, cut:k - cut, cut:k - cut]
    factors = factors[..., cut:k - cut]
    return kernels / kernels.sum(dim=(1, 2), keepdim=True), factors / factors.sum(dim=2, keepdim=True)


def _depthwise(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Correlate every one of the ``G`` planes of task ``t`` with ``weights[t]``: ``x`` ``(T, G, H, W)``,
    ``weights`` ``(T, kh, kw)`` -> ``(T, G, H - kh + 1, W - kw + 1)``; one grouped convolution for all tasks."""
    t, g = x.shape[:2]
    kh, kw = weights.shape[-2:]
    weight = weights[:, None].expand(t, g, kh, kw).reshape(t * g, 1, kh, kw)
    out = F.conv2d(x.reshape(1, t * g, *x.shape[-2:]), weight, groups=t * g)
    return out.reshape(t, g, *out.shape[-2:])


def blur_tasks(img: torch.Tensor, kernels: torch.Tensor, factors: torch.Tensor,
               separable: Sequence[bool]) -> torch.Tensor:
    """Blur each task's images with the task's kernel, as ``_filter`` (BasicSR's ``filter2D``: reflection padding,
    correlation) does one task at a time, on the device of ``img``.

    Args:
        img: ``(T, N, C, H, W)``.
        kernels: ``(T, k, k)``, k odd.
        factors: ``(T, 2, k)``: ``[column, row]`` of the tasks whose kernel is ``outer(column, row)``.
        separable: per task, True to blur with the two 1-D passes (k + k instead of k * k products per pixel).

    Returns:
        ``(T, N, C, H, W)``.
    """
    t, n, c, h, w = img.shape
    kernels, factors = _fit_kernels(kernels.to(img), factors.to(img), h, w)
    pad = kernels.shape[-1] // 2
    x = F.pad(img.reshape(t, n * c, h, w), (pad, pad, pad, pad), mode='reflect')

    def two_passes(idx):
        return _depthwise(_depthwise(x[idx], factors[idx, 0, :, None]), factors[idx, 1, None, :])

    sep = [i for i in range(t) if separable[i]]
    full = [i for i in range(t) if not separable[i]]
    if not full:
        out = two_passes(slice(None))
    elif not sep:
        out = _depthwise(x, kernels)
    else:
        out = x.new_empty(t, n * c, h, w)
        out[sep] = two_passes(sep)
        out[full] = _depthwise(x[full], kernels[full])
    return out.reshape(t, n, c, h, w)


def _task_values(batch, i: int):
    """Task ``i`` of a collated batch of ``encode`` outputs: tensors indexed (0-d ones as Python numbers), lists
    (strings) indexed, dicts recursed."""
    if isinstance(batch, dict):
        return {k: _task_values(v, i) for k, v in batch.items()}
    if torch.is_tensor(batch):
        value = batch[i]
        return value.item() if value.dim() == 0 else value
    return batch[i]


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

    def encode(self, params: Dict) -> Dict:
        """``params`` as the DataLoader collates them for ``apply_batch``: the blur kernel (``encode_kernel``), the
        noise level and the JPEG quality (0 = none)."""
        size = int(self.opt['kernel_size'])
        return {'type': 'paper', 'blur': encode_kernel(paper_kernel(params, size), size),
                'noise': float(params.get('noise', 0)), 'jpeg': float(params.get('jpeg') or 0)}

    @staticmethod
    def apply_batch(hr: torch.Tensor, batch: Dict, scale: int, generator: torch.Generator = None) -> torch.Tensor:
        """``apply`` for T tasks at once on the device of ``hr`` ``(T, P, 3, H, W)``, with the collated ``encode``
        outputs of the T tasks (on the CPU; nothing is read back from the device) -> ``(T, P, 3, H/s, W/s)``.
        Blur and bicubic run over all tasks at once; noise is drawn task by task (so one ``generator`` gives the
        same noise as ``apply`` called task by task with it), JPEG for the tasks that have it."""
        t, p, c, h, w = hr.shape
        blur = batch['blur']
        out = hr
        if bool(blur['on'].any()):  # tasks without blur have a delta kernel
            out = blur_tasks(hr, blur['weights'], blur['factors'], blur['separable'].tolist())
        out = F.interpolate(out.reshape(t * p, c, h, w), size=(h // scale, w // scale), mode='bicubic',
                            align_corners=False).reshape(t, p, c, h // scale, w // scale)
        for i, (level, quality) in enumerate(zip(batch['noise'].tolist(), batch['jpeg'].tolist())):
            if level > 0:
                out[i] = gaussian_noise(out[i], level, generator=generator)
            if quality:
                out[i] = _jpeg(out[i], quality)
        return quantize(out)

    @staticmethod
    def describe(params: Dict) -> str:
        """A short name for logs and task folders, e.g. ``blur2.6_noise15``."""
        blur = f"blur{params['sigma_x']:g}" if params['sigma_x'] == params['sigma_y'] else \
            f"blur{params['sigma_x']:g}x{params['sigma_y']:g}r{params['theta']:.2f}"
        return blur + f"_noise{params['noise']:g}" + (f"_jpeg{params['jpeg']}" if params.get('jpeg') else '')


def paper_kernel(params: Dict, kernel_size: int) -> Optional[np.ndarray]:
    """The ``(kernel_size, kernel_size)`` Gaussian blur kernel of paper parameters (``sigma_x``, ``sigma_y``,
    ``theta``), float64 summing to 1; None for ``sigma_x`` 0 (no blur)."""
    if params.get('sigma_x', 0) <= 0:
        return None
    sigma_y = params.get('sigma_y', params['sigma_x'])
    return bivariate_Gaussian(kernel_size, params['sigma_x'], sigma_y, params.get('theta', 0.),
                              isotropic=sigma_y == params['sigma_x'])


def apply_paper_degradation(hr: torch.Tensor, params: Dict, scale: int, kernel_size: int = 15,
                            generator: torch.Generator = None) -> torch.Tensor:
    """Blur (Gaussian, ``sigma_x``/``sigma_y``/``theta``; sigma 0 = none) -> bicubic x1/scale -> Gaussian noise
    ``noise`` -> JPEG ``jpeg`` (None = none) -> 8-bit rounding, on ``(P, 3, H, W)`` [0, 1] -> ``(P, 3, H/s, W/s)``.
    ``generator`` makes the noise reproducible (fixed evaluation tasks)."""
    out = hr
    kernel = paper_kernel(params, kernel_size)
    if kernel is not None:
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
        self.where = where

    def prepare_gt(self, hr: torch.Tensor) -> torch.Tensor:
        """The target and the image the LR is made from: ``hr`` ``(P, 3, H, W)``, sharpened with ``gt_usm``."""
        if not self.opt['gt_usm']:
            return hr
        if min(hr.shape[-2:]) <= 25:
            raise ValueError(f'{self.where}: gt_usm needs HR patches larger than 25 pixels (USMSharp pads 25), '
                             f'got {tuple(hr.shape[-2:])}')
        return usm_sharpen(hr)

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
        """Degrade one task's ``(P, 3, H, W)`` HR patches -> ``(P, 3, H/s, W/s)`` (the noise uses torch's global
        generator; ``generator`` is not used)."""
        def blur(img, name):
            return img if params[name] is None else _filter(img, params[name])

        return self._after_first_blur(_filter(hr, params['kernel1']), params, hr.shape[-2:], scale, blur)

    def encode(self, params: Dict) -> Dict:
        """``params`` as the DataLoader collates them for ``apply_batch``: each kernel by ``encode_kernel``
        (the final sinc ``on`` or not), the resize, noise and JPEG draws as they are."""
        enc = {k: v for k, v in params.items() if k not in ('kernel1', 'kernel2', 'sinc')}
        enc.update({name: encode_kernel(params[name], 21) for name in ('kernel1', 'kernel2', 'sinc')})
        return dict(enc, type='realesrgan', gt_usm=bool(self.opt['gt_usm']))

    @classmethod
    def apply_batch(cls, hr: torch.Tensor, batch: Dict, scale: int, generator: torch.Generator = None) -> torch.Tensor:
        """``apply`` for T tasks on the device of ``hr`` ``(T, P, 3, H, W)``, with the collated ``encode`` outputs
        (on the CPU) -> ``(T, P, 3, H/s, W/s)``. The first blur (at HR size, the costliest step) runs over all
        tasks at once; the rest task by task, since each task resizes to its own intermediate size. The noise
        uses torch's generator of ``hr``'s device, task after task (``generator`` is not used, as in ``apply``)."""
        k1 = batch['kernel1']
        first = blur_tasks(hr, k1['weights'], k1['factors'], k1['separable'].tolist())
        out = []
        for i in range(hr.shape[0]):
            params = _task_values(batch, i)

            def blur(img, name, params=params):
                kernel = params[name]
                if not kernel['on']:
                    return img
                return blur_tasks(img[None], kernel['weights'][None], kernel['factors'][None],
                                  [kernel['separable']])[0]

            out.append(cls._after_first_blur(first[i], params, hr.shape[-2:], scale, blur))
        return torch.stack(out)

    @classmethod
    def _after_first_blur(cls, out: torch.Tensor, params: Dict, hw, scale: int,
                          blur: Callable[[torch.Tensor, str], torch.Tensor]) -> torch.Tensor:
        """The pipeline after the first blur; ``blur(img, name)`` applies the task's kernel ``name`` (or none)."""
        h, w = hw
        first, second = params['first'], params['second']
        out = F.interpolate(out, scale_factor=first['resize'], mode=first['resize_mode'])
        out = _jpeg(cls._noise(out, first), first['jpeg'])
        if params['second_blur']:
            out = blur(out, 'kernel2')
        size2 = (max(1, int(h / scale * second['resize'])), max(1, int(w / scale * second['resize'])))
        out = cls._noise(F.interpolate(out, size=size2, mode=second['resize_mode']), second)

        def resize_sinc(x):
            return blur(F.interpolate(x, size=(h // scale, w // scale), mode=params['final_mode']), 'sinc')

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


KINDS = {'paper': PaperDegradation, 'realesrgan': RealESRGANDegradation}


def build_degradation(opt: Optional[Dict], where: str = 'degradation'):
    """``PaperDegradation`` or ``RealESRGANDegradation`` from a ``{type: paper|realesrgan, ...}`` dict."""
    opt = dict(opt or {'type': 'paper'})
    kind = opt.get('type', 'paper')
    if kind not in KINDS:
        raise ValueError(f'{where}: type must be one of {sorted(KINDS)}, got {kind!r}')
    return KINDS[kind](opt, where)


def prepare_gt_tasks(hr: torch.Tensor, batch: Dict) -> torch.Tensor:
    """``prepare_gt`` for a batch of tasks ``(T, P, 3, H, W)`` on its device: sharpened (``usm_sharpen``) when the
    collated ``encode`` outputs say ``gt_usm`` (Real-ESRNet's), else ``hr`` itself."""
    flags = batch.get('gt_usm')
    if flags is None or not bool(torch.as_tensor(flags).any()):
        return hr
    if not bool(torch.as_tensor(flags).all()):
        raise ValueError('a batch of degradation tasks must agree on gt_usm')
    t, p = hr.shape[:2]
    return usm_sharpen(hr.reshape(t * p, *hr.shape[2:])).reshape(hr.shape)


def degrade_tasks(hr: torch.Tensor, batch: Dict, scale: int, generator: torch.Generator = None) -> torch.Tensor:
    """Degrade a batch of tasks on the device of ``hr`` ``(T, P, 3, H, W)`` in [0, 1] with their collated
    ``encode`` outputs (``batch['type']`` names the family) -> ``(T, P, 3, H/scale, W/scale)``, 8-bit values."""
    kinds: List[str] = sorted(set(batch['type']))
    if len(kinds) != 1 or kinds[0] not in KINDS:
        raise ValueError(f'a batch of degradation tasks must be of one known type ({sorted(KINDS)}), got {kinds}')
    return KINDS[kinds[0]].apply_batch(hr, batch, scale, generator)
