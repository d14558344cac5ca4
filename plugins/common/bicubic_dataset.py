"""The HR-only SR dataset, shared by the classic and blind SR lines: LR made on the fly with MATLAB-style bicubic, so 91-image, BSDS200, General-100 or Set5
folders (or their LMDB copies) train and validate at any scale without pre-made LR files."""
import os.path as osp

import numpy as np
from torch.utils import data

from basicsr.data.transforms import augment, mod_crop
from basicsr.utils import FileClient, bgr2ycbcr, imfrombytes, img2tensor, scandir
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY

from .image_io import is_image_file


@DATASET_REGISTRY.register()
class BicubicDegradationDataset(data.Dataset):
    """HR images in, (LR, HR) pairs out, with LR = MATLAB bicubic downsampling of the HR (crop).

    Options (BasicSR style, the whole dataset dict):
        dataroot_gt (str): HR folder, or a BasicSR LMDB (``io_backend.type: lmdb``; keys from meta_info.txt).
        io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``.
        scale (int): Set by BasicSR from the top-level ``scale``.
        phase (str): 'train' crops ``gt_size`` patches at random and augments (``use_hflip``, ``use_rot``);
            otherwise the whole image, cropped to a multiple of ``scale`` (``mod_crop``).
        gt_size (int): HR patch size for training; a multiple of ``scale``.
        color (str | None): 'y' for the Y channel of YCbCr (BT.601, as BasicSR's PairedImageDataset). Default: RGB.
        quantize_lq (bool): Round the LR to 8 bits, as LR images saved to PNG are (benchmark LR sets are).
            Default: true.

    Returns per item:
        ``lq`` (C, h, w) and ``gt`` (C, h * scale, w * scale) float tensors in [0, 1] (C = 3, or 1 for 'y'),
        ``lq_path`` and ``gt_path`` (both the HR path or LMDB key).

    On-the-fly LR of a training crop differs from a crop of the LR of the whole image near the crop's border
    (the antialiasing kernel sees outside the crop there); the validation images are whole, so their LR is
    exactly that of the benchmark sets.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        self.gt_folder = opt['dataroot_gt']
        if opt.get('phase') == 'train':
            gt_size = opt.get('gt_size')
            if not isinstance(gt_size, int) or gt_size % self.scale:
                raise ValueError(f"{opt.get('name')}: gt_size must be an integer multiple of scale {self.scale}, "
                                 f'got {gt_size!r}')
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt['db_paths'] = [self.gt_folder]
            self.io_backend_opt['client_keys'] = ['gt']
            with open(osp.join(self.gt_folder, 'meta_info.txt')) as f:
                self.paths = [line.split(' ')[0].rsplit('.', 1)[0] for line in f if line.strip()]
        else:
            self.paths = sorted(osp.join(self.gt_folder, p) for p in scandir(self.gt_folder, recursive=True)
                                if is_image_file(p))
        if not self.paths:
            raise FileNotFoundError(f"{opt.get('name')}: no images in {self.gt_folder}")

    def __len__(self):
        return len(self.paths)

    def _read_gt(self, index: int) -> np.ndarray:
        if self.file_client is None:  # opened lazily, in the worker process that reads
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        return imfrombytes(self.file_client.get(self.paths[index], 'gt'), float32=True)

    def _crop(self, img_gt: np.ndarray, index: int) -> np.ndarray:
        if self.opt.get('phase') != 'train':
            return mod_crop(img_gt, self.scale)
        gt_size = self.opt['gt_size']
        h, w = img_gt.shape[:2]
        if h < gt_size or w < gt_size:
            raise ValueError(f'{self.paths[index]} is {h}x{w}, smaller than gt_size {gt_size}')
        top, left = np.random.randint(0, h - gt_size + 1), np.random.randint(0, w - gt_size + 1)
        img_gt = img_gt[top:top + gt_size, left:left + gt_size]
        return augment(img_gt, self.opt.get('use_hflip', False), self.opt.get('use_rot', False))

    def __getitem__(self, index):
        img_gt = self._crop(self._read_gt(index), index)  # BGR float32 in [0, 1]
        img_lq = np.clip(imresize(img_gt, 1 / self.scale), 0, 1)
        if self.opt.get('quantize_lq', True):
            img_lq = np.round(img_lq * 255.) / 255.
        img_lq = img_lq.astype(np.float32)
        if self.opt.get('color') == 'y':
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        path = self.paths[index]
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': path, 'gt_path': path}
