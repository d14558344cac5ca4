"""Mask transforms (MMagic TRANSFORMS): generated free-form / box / irregular masks and masks from a folder.

The mask written to ``results['mask']`` is (H, W, 1) uint8 with **1 on holes** (MMagic's ``LoadMask`` and
``GetMaskedImage`` convention); the generators are MMagic's own (``mmagic.utils.brush_stroke_mask``,
``random_bbox`` + ``bbox2mask``, ``get_irregular_mask``). Mask files are grey images, **white = hole** unless
``invert=True``; grey levels are binarised at ``threshold`` (a pixel is a hole where value > threshold) or rejected
with ``on_nonbinary='error'``.
"""
import glob
import os.path as osp
import zlib
from contextlib import contextmanager
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmagic.registry import TRANSFORMS

MASK_MODES = ('ff', 'bbox', 'irregular')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')


@contextmanager
def _seeded_numpy(seed: Optional[int]):
    """Run MMagic's mask generators (they draw from numpy's global generator) with a fixed seed, then restore."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        np.random.set_state(state)


def _image_seed(results: dict, key: str, seed: int) -> int:
    """A seed fixed by the image's path, so validation masks are the same at every evaluation and every run."""
    path = results.get(f'{key}_path') or results.get('img_path') or ''
    return zlib.crc32(osp.basename(str(path)).encode()) + seed


def generate_mask(shape, mode: str = 'ff', seed: Optional[int] = None, **config) -> np.ndarray:
    """A (H, W, 1) uint8 hole mask (1 = hole) from MMagic's generators.

    Args:
        shape: (H, W).
        mode: 'ff' (free-form brush strokes, DeepFill v2), 'bbox' (a box of at most ``max_bbox_shape``, default
            H/2 x W/2), 'irregular' (strokes with an area ratio in ``area_ratio_range``).
        seed: fix numpy's generator for this call (None: draw from the global state).
        config: the generator's keyword arguments.
    """
    from mmagic.utils import bbox2mask, brush_stroke_mask, get_irregular_mask, random_bbox
    shape = tuple(int(s) for s in shape[:2])
    with _seeded_numpy(seed):
        if mode == 'ff':
            config.setdefault('brush_width', (max(2, shape[0] // 20), max(3, shape[0] // 6)))
            return brush_stroke_mask(shape, **config)
        if mode == 'bbox':
            config.setdefault('max_bbox_shape', (shape[0] // 2, shape[1] // 2))
            config.setdefault('max_bbox_delta', max(1, min(shape) // 8))
            config.setdefault('min_margin', max(1, min(shape) // 16))
            return bbox2mask(shape, random_bbox(shape, **config))
        if mode == 'irregular':
            config.setdefault('length_range', (max(2, shape[0] // 12), max(3, shape[0] // 2)))
            config.setdefault('brush_width', (max(2, shape[0] // 25), max(3, shape[0] // 8)))
            return get_irregular_mask(shape, **config)
    raise ValueError(f'mask mode {mode!r}: expected one of {MASK_MODES}')


def binarize_mask(gray: np.ndarray, source: str, threshold: int = 127, on_nonbinary: str = 'threshold',
                  invert: bool = False) -> np.ndarray:
    """(H, W) or (H, W, C) grey mask -> (H, W, 1) uint8, 1 = hole (white, or black with ``invert``).

    A binary mask is {0, 255} or {0, 1}. Other grey levels are thresholded (hole where value > ``threshold``) or,
    with ``on_nonbinary='error'``, rejected with a message naming ``source``.
    """
    if on_nonbinary not in ('threshold', 'error'):
        raise ValueError(f"on_nonbinary={on_nonbinary!r}: expected 'threshold' or 'error'")
    if gray.ndim == 3:
        gray = gray[..., 0]
    values = np.unique(gray)
    binary = set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}
    if not binary and on_nonbinary == 'error':
        shown = ', '.join(str(v) for v in values[:8]) + (', ...' if len(values) > 8 else '')
        raise ValueError(f'mask {source} is not binary (values {shown}): expected 0 and 255 (white = hole), or '
                         "use on_nonbinary='threshold' to binarise at threshold "
                         f'{threshold}')
    hole = gray > (0 if values.max() <= 1 else threshold)
    if invert:
        hole = ~hole
    return hole.astype(np.uint8)[..., None]


@TRANSFORMS.register_module()
class RandomInpaintMask(BaseTransform):
    """Generate a hole mask the size of ``results[img_key]``: free-form strokes, a box or irregular strokes.

    Args:
        mode: 'ff', 'bbox' or 'irregular' (see :func:`generate_mask`).
        mask_config: keyword arguments of MMagic's generator for that mode (defaults scale with the image).
        img_key: the image whose size the mask takes ('gt').
        fixed_per_image: the same mask for an image at every call (seeded by its file name and ``seed``), for
            validation sets whose scores must be comparable between runs.
        seed: added to the per-image seed.
    Adds ``mask`` (H, W, 1) uint8, 1 = hole.
    """

    def __init__(self, mode: str = 'ff', mask_config: Optional[dict] = None, img_key: str = 'gt',
                 fixed_per_image: bool = False, seed: int = 0):
        if mode not in MASK_MODES:
            raise ValueError(f'RandomInpaintMask: mode={mode!r}, expected one of {MASK_MODES}')
        self.mode, self.mask_config, self.img_key = mode, dict(mask_config or {}), img_key
        self.fixed_per_image, self.seed = fixed_per_image, seed

    def transform(self, results: dict) -> dict:
        seed = _image_seed(results, self.img_key, self.seed) if self.fixed_per_image else None
        results['mask'] = generate_mask(results[self.img_key].shape, self.mode, seed, **self.mask_config)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(mode={self.mode!r}, fixed_per_image={self.fixed_per_image})'


@TRANSFORMS.register_module()
class LoadMaskFromFolder(BaseTransform):
    """Pick a mask image from a folder (e.g. the irregular masks of Liu et al.) for ``results[img_key]``.

    Args:
        folder: directory of mask images (png/jpg/bmp).
        img_key: the image the mask must match in size ('gt').
        threshold: grey levels above it are holes (when the mask is not binary).
        on_nonbinary: 'threshold' (binarise) or 'error' (reject grey masks).
        invert: black = hole instead of white = hole.
        resize: resize a mask of another size to the image (nearest) instead of raising an error.
        fixed_per_image: the same mask for an image at every call (chosen by its file name).
    Adds ``mask`` (H, W, 1) uint8, 1 = hole, and ``mask_path``.
    """

    def __init__(self, folder: str, img_key: str = 'gt', threshold: int = 127, on_nonbinary: str = 'threshold',
                 invert: bool = False, resize: bool = False, fixed_per_image: bool = False):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'LoadMaskFromFolder: folder {folder!r} not found (expected a directory of mask '
                                    'images, white = hole)')
        self.files = sorted(f for f in glob.glob(osp.join(folder, '*')) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not self.files:
            raise FileNotFoundError(f'LoadMaskFromFolder: no {"/".join(IMAGE_EXTENSIONS)} mask images in {folder!r}')
        self.img_key, self.threshold, self.on_nonbinary = img_key, threshold, on_nonbinary
        self.invert, self.resize, self.fixed_per_image = invert, resize, fixed_per_image

    def transform(self, results: dict) -> dict:
        if self.fixed_per_image:
            index = _image_seed(results, self.img_key, 0) % len(self.files)
        else:
            index = np.random.randint(len(self.files))
        path = self.files[index]
        gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise OSError(f'LoadMaskFromFolder: cannot decode mask {path}')
        h, w = results[self.img_key].shape[:2]
        if gray.shape != (h, w):
            if not self.resize:
                raise ValueError(f'mask {path} is {gray.shape[1]}x{gray.shape[0]} but the image '
                                 f'{results.get(f"{self.img_key}_path", "")} is {w}x{h}: masks must match the image '
                                 'size (or set resize=True)')
            gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_NEAREST)
        results['mask'] = binarize_mask(gray, path, self.threshold, self.on_nonbinary, self.invert)
        results['mask_path'] = path
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(files={len(self.files)}, threshold={self.threshold})'
