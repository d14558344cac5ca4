"""TextZoom LMDB dataset (Wang et al., ECCV 2020), registered in BasicSR's ``DATASET_REGISTRY``.

A TextZoom LMDB (``train1``, ``train2``, ``test/easy``, ``test/medium``, ``test/hard``, or one made by
``tools/data/make_text_data.py``) holds, with 1-based index ``i``:

    b'num-samples'       the number of samples, as ASCII digits
    b'image_hr-%09d'     the HR crop (PNG/JPEG bytes), resized to 128x32 when read
    b'image_lr-%09d'     the LR crop, resized to 64x16 when read
    b'label-%09d'        the word (UTF-8)

This is not BasicSR's LMDB layout (no ``meta_info.txt``), so the dataset reads the LMDB itself and its options
use ``dataroot`` rather than ``io_backend: lmdb``.

Images are resized with PIL bicubic and given a 4th channel, the binary text mask of TextZoom's
``resizeNormalize(mask=True)``: 1 where the gray value is at most the image's mean gray (dark text on light
background), 0 elsewhere. Labels are filtered as TextZoom's ``str_filt(label, 'lower')``: lower-cased, and every
character outside ``0-9a-z`` dropped (see ``text.py``); the raw label is returned too.
"""
import io
import os.path as osp
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils import data

from basicsr.utils.registry import DATASET_REGISTRY

from .labels import filter_label


def open_textzoom_lmdb(root: str, what: str = 'dataroot'):
    """Open a TextZoom LMDB read-only; returns ``(env, num_samples)`` or raises with the folder named."""
    import lmdb
    if not osp.isfile(osp.join(root, 'data.mdb')):
        raise FileNotFoundError(f'{what} {root!r} is not an LMDB folder (no data.mdb). TextZoom LMDBs are '
                                'train1/, train2/, test/{easy,medium,hard}/; make a synthetic one with '
                                'python tools/data/make_text_data.py')
    env = lmdb.open(root, readonly=True, lock=False, readahead=False, meminit=False, max_readers=64)
    with env.begin(write=False) as txn:
        raw = txn.get(b'num-samples')
    if raw is None:
        env.close()
        raise KeyError(f"{what} {root!r}: the LMDB has no b'num-samples' key; a TextZoom LMDB needs num-samples, "
                       "image_hr-%09d, image_lr-%09d and label-%09d (1-based)")
    try:
        num = int(raw)
    except ValueError:
        env.close()
        raise ValueError(f"{what} {root!r}: b'num-samples' must be an integer, got {raw[:20]!r}") from None
    return env, num


def text_mask(img: Image.Image) -> np.ndarray:
    """TextZoom's binary mask of an RGB PIL image: ``(H, W)`` float32, 1 where gray <= mean gray."""
    gray = np.asarray(img.convert('L'), dtype=np.float32)
    return (gray <= gray.mean()).astype(np.float32)


def to_tensor(img: Image.Image, size: Tuple[int, int], mask: bool) -> torch.Tensor:
    """Resize a PIL image to ``size`` (W, H) with bicubic; ``(3 or 4, H, W)`` float tensor in [0, 1]."""
    img = img.convert('RGB').resize(size, Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.
    if mask:
        arr = np.concatenate([arr, text_mask(img)[..., None]], -1)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


@DATASET_REGISTRY.register()
class TextZoomLMDBDataset(data.Dataset):
    """(LR, HR, label) triples from one or more TextZoom LMDBs.

    Options:
        dataroot (str | list[str]): LMDB folder(s); several are concatenated (TextZoom trains on train1 + train2).
        hr_size (list[int]): HR (height, width). Default: [32, 128].
        scale (int): LR size is HR size / scale; set by BasicSR from the top-level ``scale``. Default: 2.
        mask (bool): Add the text-mask channel (TSRN's 4-channel input). Default: true.

    Returns per item: ``lq`` (C, 16, 64) and ``gt`` (C, 32, 128) in [0, 1] (C = 4 with mask), ``label`` (filtered
    word), ``label_raw`` and ``lq_path`` / ``gt_path`` (``<dataroot>/<index>``, for BasicSR's image names).
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        roots = opt.get('dataroot')
        if not roots:
            raise ValueError(f"{opt.get('name')}: option dataroot (a TextZoom LMDB folder or a list) is required")
        self.roots: List[str] = [roots] if isinstance(roots, str) else list(roots)
        hr_h, hr_w = opt.get('hr_size', [32, 128])
        scale = int(opt.get('scale', 2))
        if hr_h % scale or hr_w % scale:
            raise ValueError(f"{opt.get('name')}: hr_size {[hr_h, hr_w]} is not divisible by scale {scale}")
        self.hr_size, self.lr_size = (hr_w, hr_h), (hr_w // scale, hr_h // scale)  # PIL (W, H)
        self.mask = bool(opt.get('mask', True))
        self.index: List[Tuple[int, int]] = []  # (root number, 1-based sample index)
        for r, root in enumerate(self.roots):
            env, num = open_textzoom_lmdb(root, f"{opt.get('name')}: dataroot")
            env.close()
            self.index += [(r, i) for i in range(1, num + 1)]
        self.envs = None  # opened lazily, in the process that reads (DataLoader workers)

    def __len__(self):
        return len(self.index)

    def __getitem__(self, idx):
        if self.envs is None:
            self.envs = [open_textzoom_lmdb(root)[0] for root in self.roots]
        r, i = self.index[idx]
        with self.envs[r].begin(write=False) as txn:
            hr, lr, label = (txn.get(b'image_hr-%09d' % i), txn.get(b'image_lr-%09d' % i), txn.get(b'label-%09d' % i))
        if hr is None or lr is None or label is None:
            raise KeyError(f'{self.roots[r]}: sample {i} lacks image_hr-%09d, image_lr-%09d or label-%09d')
        label = label.decode('utf-8')
        gt = to_tensor(Image.open(io.BytesIO(hr)), self.hr_size, self.mask)
        lq = to_tensor(Image.open(io.BytesIO(lr)), self.lr_size, self.mask)
        name = f'{osp.basename(osp.normpath(self.roots[r]))}_{i:09d}'
        return {'lq': lq, 'gt': gt, 'label': filter_label(label), 'label_raw': label, 'lq_path': name, 'gt_path': name}
