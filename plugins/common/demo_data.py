"""Demo and test data made from the colour photos that ship inside installed wheels.

No download: scikit-image's ``skimage/data`` and matplotlib's ``grace_hopper.jpg`` are real photographs
(public domain / CC0, see their docstrings). The layout mirrors DIV2K's as BasicSR expects it::

    <out>/train/HR/*.png                      whole HR images, cropped to a multiple of 12 (lcm of x2, x3, x4)
    <out>/train/LR_bicubic/X{2,3,4}/*.png     MATLAB-bicubic LR with the same file names
    <out>/train/HR_sub/*.png                  HR sub-images for training (crop 96, step 96, flat crops dropped)
    <out>/train/LR_bicubic_sub/X{s}/*.png     matching LR sub-images
    <out>/val/HR, <out>/val/LR_bicubic/X{s}   the disjoint validation split (whole images)
    <out>/**/<folder>.lmdb                    LMDB copies of every folder (BasicSR format, key = file stem)
    <out>/manifest.json                       sources, split and parameters
"""
import json
import os
import os.path as osp
from typing import Dict, List

import cv2
import numpy as np
from tqdm import tqdm

from .bicubic import bicubic_lr
from .image_io import make_lmdb

SCALES = (2, 3, 4)
MOD = 12  # HR sizes are cropped to a multiple of lcm(2, 3, 4) so every scale divides them.
TRAIN_SOURCES = ('astronaut.png', 'coffee.png', 'motorcycle_left.png', 'motorcycle_right.png', 'ihc.png',
                 'hubble_deep_field.jpg', 'retina.jpg')
VAL_SOURCES = ('chelsea.png', 'rocket.jpg', 'grace_hopper.jpg')  # a Set5-like validation split
SUB_CROP = 96  # HR sub-image size; LR sub-images are 48/32/24
SUB_MIN_STD = 8.0  # drop near-flat crops (the black borders of the retina and Hubble photos)


def source_path(file_name: str) -> str:
    """Absolute path of a sample photo inside the installed scikit-image or matplotlib wheel."""
    if file_name == 'grace_hopper.jpg':
        import matplotlib.cbook
        return matplotlib.cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    import skimage.data
    path = osp.join(osp.dirname(skimage.data.__file__), file_name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} is missing: the installed scikit-image wheel does not ship {file_name}')
    return path


def read_hr(file_name: str) -> np.ndarray:
    """Read a source photo as BGR uint8 (H, W, 3), cropped to a multiple of ``MOD``."""
    img = cv2.imread(source_path(file_name), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'cannot decode {source_path(file_name)}')
    h, w = img.shape[:2]
    return img[:h - h % MOD, :w - w % MOD]


def sub_image_boxes(hr: np.ndarray, crop: int = SUB_CROP, min_std: float = SUB_MIN_STD) -> List[tuple]:
    """Top-left corners of the non-overlapping ``crop`` x ``crop`` sub-images worth training on."""
    h, w = hr.shape[:2]
    return [(y, x) for y in range(0, h - crop + 1, crop) for x in range(0, w - crop + 1, crop)
            if hr[y:y + crop, x:x + crop].std() >= min_std]


def _write(path: str, img: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, img, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f'cannot write {path}')


def build_demo_data(out: str, scales=SCALES) -> Dict:
    """Write the whole demo tree under ``out`` and return its manifest."""
    manifest = {'scales': list(scales), 'mod': MOD, 'sub_crop': SUB_CROP, 'sub_min_std': SUB_MIN_STD,
                'bicubic': 'basicsr.utils.matlab_functions.imresize (MATLAB-style, antialiased)', 'splits': {}}
    folders = []
    for split, sources in (('train', TRAIN_SOURCES), ('val', VAL_SOURCES)):
        entries = []
        for file_name in tqdm(sources, desc=f'demo data: {split}', unit='image'):
            stem = osp.splitext(file_name)[0]
            hr = read_hr(file_name)
            _write(osp.join(out, split, 'HR', f'{stem}.png'), hr)
            lrs = {s: bicubic_lr(hr, s) for s in scales}
            for s, lr in lrs.items():
                _write(osp.join(out, split, 'LR_bicubic', f'X{s}', f'{stem}.png'), lr)
            boxes = sub_image_boxes(hr) if split == 'train' else []
            for i, (y, x) in enumerate(boxes):
                name = f'{stem}_s{i:03d}.png'
                _write(osp.join(out, split, 'HR_sub', name), hr[y:y + SUB_CROP, x:x + SUB_CROP])
                for s, lr in lrs.items():
                    c = SUB_CROP // s
                    _write(osp.join(out, split, 'LR_bicubic_sub', f'X{s}', name), lr[y // s:y // s + c, x // s:x // s + c])
            entries.append({'source': source_path(file_name), 'hr_shape': list(hr.shape), 'sub_images': len(boxes)})
        manifest['splits'][split] = entries
        folders += [osp.join(out, split, 'HR')] + [osp.join(out, split, 'LR_bicubic', f'X{s}') for s in scales]
        if split == 'train':
            folders += [osp.join(out, split, 'HR_sub')]
            folders += [osp.join(out, split, 'LR_bicubic_sub', f'X{s}') for s in scales]
    for folder in folders:
        make_lmdb(folder)
    with open(osp.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    return manifest
