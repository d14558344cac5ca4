"""Task-grouped datasets for CMDSR (BasicSR ``DATASET_REGISTRY``), HR images from a folder or a BasicSR LMDB.

* ``TaskDegradationDataset`` (training): one item is ONE TASK, i.e. ``patches_per_task`` HR patches and one
  sampled degradation. BasicSR's collation stacks items, so ``batch_size_per_gpu`` is the number of tasks per
  batch and the model receives ``gt (T, P, 3, H, W)`` with either the tasks' degradation draws (``degrade_on:
  device``: the model degrades them on its device) or ``lq (T, P, 3, h, w)`` (``degrade_on: worker``). The model
  uses the two halves of the P patches alternately as query batch and support set (the official recipe: P = 2 x
  support size).
* ``FixedDegradationDataset`` (validation / test): whole images degraded with one FIXED degradation (one
  evaluation task, e.g. blur sigma 2.6 + noise 15 as the paper's Set5 setting, reproducible noise), plus a support
  set cut from the LR image itself. One dataset per task, so BasicSR logs PSNR per degradation task. ``protocol:
  official`` makes the LR and the support set as the official test script does (``official_protocol.py``).

Both reuse the file listing, LMDB reading and cropping of ``plugins.classic.data.BicubicDegradationDataset``.
"""
import random

import numpy as np
import torch

from basicsr.data.transforms import augment
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from ..common.bicubic_dataset import BicubicDegradationDataset
from .degradations import PaperDegradation, apply_paper_degradation, build_degradation
from .official_protocol import PROTOCOLS, official_test_lr, random_support_patches
from .support import self_support_patches

DEGRADE_ON = ('device', 'worker')


@DATASET_REGISTRY.register()
class TaskDegradationDataset(BicubicDegradationDataset):
    """One degradation task per item: ``patches_per_task`` HR crops sharing one sampled degradation.

    Options (besides ``BicubicDegradationDataset``'s ``dataroot_gt``, ``io_backend``, ``scale``, ``gt_size``,
    ``use_hflip``, ``use_rot``):
        patches_per_task (int): P, the patches of a task. The model splits them in two halves of P / 2, each
            used as query batch and as support set (official: P = 40 for support size 20). Default: 40.
        patches_from (str): 'image' (all P crops of one HR image, as the official ``SRMultiGroupRandomTaskDataSet``)
            or 'dataset' (every crop from a random image of the set, more content per task). Default: 'image'.
        degradation (dict): ``{type: paper | realesrgan, ...}``, see ``plugins/blindsr/degradations.py``.
        cache_images (bool): Keep decoded HR images in memory (small sets such as the demo data, where decoding
            the whole image for every task costs more than the crops). Default: false.
        degrade_on (str): 'device': the worker crops and draws the degradation (cheap), ``CMDSRModel.feed_data``
            applies it to the whole batch on the model's device, as BasicSR's RealESRGANModel does. 'worker':
            the worker degrades its task too (the same LR to float precision; docs/blindsr.md has the costs).
            Default: 'device'.

    Returns per item:
        ``gt`` (P, 3, gt_size, gt_size), RGB in [0, 1]; ``lq_path``/``gt_path`` the HR path (or LMDB key) of the
        first crop; ``task`` a name of the degradation; and ``degradation`` (the draws, ``encode``'s dict of
        arrays and numbers, for ``degrade_tasks``) with 'device', or ``lq`` (P, 3, gt_size / scale,
        gt_size / scale) with 'worker'.
    """

    def __init__(self, opt):
        opt = dict(opt, phase='train')  # always random crops
        super().__init__(opt)
        name = opt.get('name', 'TaskDegradationDataset')
        self.patches = opt.get('patches_per_task', 40)
        if not isinstance(self.patches, int) or self.patches < 2 or self.patches % 2:
            raise ValueError(f'{name}: patches_per_task must be an even integer >= 2 (two halves: query/support), '
                             f'got {self.patches!r}')
        self.patches_from = opt.get('patches_from', 'image')
        if self.patches_from not in ('image', 'dataset'):
            raise ValueError(f"{name}: patches_from must be 'image' or 'dataset', got {self.patches_from!r}")
        self.degradation = build_degradation(opt.get('degradation'), f'{name}: degradation')
        self.degrade_on = opt.get('degrade_on', 'device')
        if self.degrade_on not in DEGRADE_ON:
            raise ValueError(f'{name}: degrade_on must be one of {DEGRADE_ON}, got {self.degrade_on!r}')
        self.cache = {} if opt.get('cache_images', False) else None

    def _read_cached(self, index: int) -> np.ndarray:
        if self.cache is None:
            return self._read_gt(index)
        if index not in self.cache:
            self.cache[index] = self._read_gt(index)
        return self.cache[index]

    def _random_patch(self, img: np.ndarray, index: int) -> np.ndarray:
        """A random ``gt_size`` crop, flipped/rotated. It is copied first: BasicSR's ``augment`` flips in place,
        which would corrupt the image the next crops of the task (and the cache) come from."""
        size = self.opt['gt_size']
        h, w = img.shape[:2]
        if h < size or w < size:
            raise ValueError(f'{self.paths[index]} is {h}x{w}, smaller than gt_size {size}')
        top, left = np.random.randint(0, h - size + 1), np.random.randint(0, w - size + 1)
        patch = img[top:top + size, left:left + size].copy()
        return augment(patch, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))

    def __getitem__(self, index):
        crops, img = [], None
        for i in range(self.patches):
            if self.patches_from == 'dataset' and i:
                index = random.randrange(len(self.paths))
            if img is None or self.patches_from == 'dataset':
                img = self._read_cached(index)
            crops.append(self._random_patch(img, index))
        gt = torch.stack(img2tensor(crops, bgr2rgb=True, float32=True))
        params = self.degradation.sample()
        if self.degrade_on == 'worker' and hasattr(self.degradation, 'prepare_gt'):
            with torch.no_grad():
                gt = self.degradation.prepare_gt(gt)  # Real-ESRNet's gt_usm (on the device otherwise)
        path = self.paths[index]
        item = {'gt': gt, 'lq_path': path, 'gt_path': path, 'task': self.degradation.describe(params)}
        if self.degrade_on == 'device':
            item['degradation'] = self.degradation.encode(params)
        else:
            with torch.no_grad():
                item['lq'] = self.degradation.apply(gt, params, self.scale)
        return item


@DATASET_REGISTRY.register()
class FixedDegradationDataset(BicubicDegradationDataset):
    """Whole HR images degraded with ONE fixed degradation (one evaluation task), with a self-cut support set.

    Options (besides ``dataroot_gt``, ``io_backend``, ``scale``):
        blur_sigma (float): Gaussian blur sigma on the HR image (0: none). Default: 0.
        blur_sigma_y (float | None), blur_theta (float): anisotropic blur. Default: isotropic.
        kernel_size (int): Blur kernel size. Default: 15 (the official training kernel; its Set5 files use 7).
        noise (float): Gaussian noise level on [0, 255]. Default: 0.
        jpeg (int | None): JPEG quality. Default: none.
        seed (int): Seed of the noise; image ``i`` uses ``seed + i``, so every run sees the same LR. Default: 0.
        support_size (int): Support patches cut from the LR image. Default: 20.
        support_patch (int): Their side in LR pixels. Default: 48 (the training LR patch of the paper).
        gt_crop (int | None): Keep only a centred HR crop of this size (a multiple of scale), for quick
            validation. Default: the whole image.
        protocol (str): How the LR and the support set are made.
            'ours' (default): blur with reflected borders (BasicSR's ``filter2D``), bicubic x1/s with
            ``F.interpolate`` (OpenCV's kernel, no antialiasing, as the official *training* data), seeded noise,
            JPEG, 8-bit rounding; support patches cut on a regular grid over the LR (deterministic, and the
            same cut ``tools/infer.py --self-support`` makes).
            'official': the official test script's (``official_protocol.py``): MATLAB ``fspecial`` kernel,
            wrap-mode convolution truncated to uint8, MATLAB's antialiased bicubic (``imresize_np`` =
            BasicSR's ``imresize``), noise truncated to uint8 (numpy generator seeded ``seed + i``), and
            ``support_size`` random crops of ``support_patch`` pixels (Python ``random`` seeded ``seed + i``).
            Isotropic blur and noise only (``blur_sigma_y``, ``blur_theta``, ``jpeg`` are refused).

    Returns per item:
        ``lq`` (3, h, w), ``gt`` (3, h * scale, w * scale), ``support`` (S, 3, p, p), RGB in [0, 1];
        ``lq_path``/``gt_path``; ``task`` the degradation's name.
    """

    def __init__(self, opt):
        opt = dict(opt, phase='val')  # whole images, mod-cropped
        super().__init__(opt)
        name = opt.get('name', 'FixedDegradationDataset')
        sigma = float(opt.get('blur_sigma', 0))
        sigma_y = opt.get('blur_sigma_y')
        self.params = {'sigma_x': sigma, 'sigma_y': sigma if sigma_y is None else float(sigma_y),
                       'theta': float(opt.get('blur_theta', 0.)), 'noise': float(opt.get('noise', 0)),
                       'jpeg': opt.get('jpeg')}
        if sigma < 0 or self.params['noise'] < 0:
            raise ValueError(f'{name}: blur_sigma and noise must be >= 0, got {sigma} and {self.params["noise"]}')
        self.kernel_size = int(opt.get('kernel_size', 15))
        self.seed = int(opt.get('seed', 0))
        self.support_size = int(opt.get('support_size', 20))
        self.support_patch = int(opt.get('support_patch', 48))
        self.gt_crop = opt.get('gt_crop')
        if self.gt_crop is not None and (not isinstance(self.gt_crop, int) or self.gt_crop % self.scale):
            raise ValueError(f'{name}: gt_crop must be a multiple of scale {self.scale}, got {self.gt_crop!r}')
        self.task = PaperDegradation.describe(self.params)
        self.protocol = opt.get('protocol', 'ours')
        if self.protocol not in PROTOCOLS:
            raise ValueError(f'{name}: protocol must be one of {PROTOCOLS}, got {self.protocol!r}')
        if self.protocol == 'official':
            extra = [k for k in ('blur_sigma_y', 'blur_theta', 'jpeg') if opt.get(k) not in (None, 0)]
            if extra:
                raise ValueError(f'{name}: protocol official has isotropic blur and noise only; remove {extra}')

    def __getitem__(self, index):
        img = self._crop(self._read_gt(index), index)
        if self.gt_crop:
            h, w = img.shape[:2]
            c = min(self.gt_crop, h - h % self.scale, w - w % self.scale)
            top, left = (h - c) // 2, (w - c) // 2
            img = img[top:top + c, left:left + c]
        if self.protocol == 'official':
            return self._official_item(img, index)
        gt = img2tensor(np.ascontiguousarray(img), bgr2rgb=True, float32=True)[None]
        generator = torch.Generator().manual_seed(self.seed + index)
        with torch.no_grad():
            lq = apply_paper_degradation(gt, self.params, self.scale, self.kernel_size, generator)[0]
        support = self_support_patches(lq, self.support_size, self.support_patch)
        path = self.paths[index]
        return {'lq': lq, 'gt': gt[0], 'support': support, 'lq_path': path, 'gt_path': path, 'task': self.task}

    def _official_item(self, img: np.ndarray, index: int) -> dict:
        """``protocol: official``: the LR from the uint8 HR as the official test script makes it, and random
        support crops (see ``official_protocol.py``)."""
        hr = np.round(img * 255.).astype(np.uint8)  # the 8-bit file BasicSR read as float32 / 255
        lr = official_test_lr(hr, self.scale, self.params['sigma_x'], self.kernel_size, self.params['noise'],
                              np.random.default_rng(self.seed + index))
        gt, lq = img2tensor([hr.astype(np.float32) / 255., lr.astype(np.float32) / 255.], bgr2rgb=True,
                            float32=True)
        path = self.paths[index]
        support = random_support_patches(lq, self.support_size, self.support_patch, self.seed + index, path)
        return {'lq': lq, 'gt': gt, 'support': support, 'lq_path': path, 'gt_path': path, 'task': self.task}
