"""Support sets for CMDSR: read a folder of LR support images, or cut support patches from an image itself
(self-support, also used by the fixed-task validation data), and check them against the network, each with a clear
error."""
import os
import os.path as osp
from typing import List

import cv2
import numpy as np
import torch
from torch import nn

from ..common.image_io import IMAGE_EXTENSIONS, is_image_file
from ..engine.errors import OptionsError


def grid_positions(length: int, patch: int, count: int) -> List[int]:
    """``count`` start offsets of ``patch``-long windows spread evenly over ``length`` (repeats when it must)."""
    if count == 1:
        return [(length - patch) // 2]
    return [round(i * (length - patch) / (count - 1)) for i in range(count)]


def self_support_patches(lr: torch.Tensor, count: int, patch: int) -> torch.Tensor:
    """Cut ``count`` ``patch`` x ``patch`` support patches from an LR image, on a regular grid over the image.

    The official test script cuts ``support_size`` patches of the test LR too, at random positions (its test
    options leave ``is_train`` True; ``FixedDegradationDataset(protocol: official)`` reproduces that); the grid
    is deterministic and covers the image evenly, our default for validation and inference.

    Args:
        lr: ``(C, h, w)`` LR image.
        count: number of patches (the support size).
        patch: side of a patch in LR pixels; shrunk to ``min(h, w)`` for smaller images.

    Returns:
        ``(count, C, p, p)`` with ``p = min(patch, h, w)``.
    """
    c, h, w = lr.shape
    if count < 1 or patch < 2:
        raise OptionsError(f'self-support needs at least 1 patch of at least 2x2 pixels, got {count} of {patch}')
    p = min(patch, h, w)
    if p < 2:
        raise OptionsError(f'the image is {h}x{w} pixels, too small to cut support patches from')
    rows = int(np.ceil(np.sqrt(count)))
    cols = int(np.ceil(count / rows))
    ys, xs = grid_positions(h, p, rows), grid_positions(w, p, cols)
    boxes = [(y, x) for y in ys for x in xs][:count]
    return torch.stack([lr[:, y:y + p, x:x + p] for y, x in boxes])


def load_support_folder(folder: str, num_in_ch: int = 3) -> torch.Tensor:
    """Read every image of ``folder`` as one support set ``(1, S, C, h, w)``, RGB in [0, 1].

    Raises:
        OptionsError: the folder is missing or has no images, an image cannot be read, has another channel count
            than ``num_in_ch`` (1 = grey, 3 = colour), or another size than the first image.
    """
    if not osp.isdir(folder):
        raise OptionsError(f'--support {folder}: not a folder (expected a folder of LR support images with the same '
                           'degradation as the input)')
    files = sorted(osp.join(folder, f) for f in os.listdir(folder) if is_image_file(f))
    if not files:
        raise OptionsError(f'--support {folder}: the folder has no images (looked for {", ".join(IMAGE_EXTENSIONS)})')
    patches, first = [], None
    for path in files:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise OptionsError(f'--support: cannot read image {path}')
        channels = 1 if img.ndim == 2 else img.shape[2]
        if channels != num_in_ch:
            raise OptionsError(f'--support: {path} has {channels} channel(s), the network takes {num_in_ch}; '
                               'every support image must have the channel count of the input')
        if first is None:
            first = (path, img.shape[:2])
        elif img.shape[:2] != first[1]:
            raise OptionsError(f'--support: {path} is {img.shape[0]}x{img.shape[1]} but {first[0]} is '
                               f'{first[1][0]}x{first[1][1]}; all support patches must have the same size')
        if img.dtype != np.uint8:
            raise OptionsError(f'--support: {path} is {img.dtype}, expected 8-bit images')
        img = img.astype(np.float32) / 255.
        img = img[..., None] if img.ndim == 2 else img[..., ::-1]  # BGR -> RGB
        patches.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
    return torch.stack(patches)[None]


def check_support_size(net: nn.Module, support_size: int, source: str) -> None:
    """Raise ``OptionsError`` when a stacked ConditionNet was built for another support size."""
    need = getattr(net, 'support_size', None)
    if need is not None and need != support_size:
        raise OptionsError(f'{source} has {support_size} support image(s), but the network was built for support '
                           f'size {need} (network_g:support_size, stacked ConditionNet); give exactly {need}, or '
                           'train a network with condition: set, which takes any number')
