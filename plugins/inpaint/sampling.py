"""Load a trained inpaintor and draw completions: the library side of ``tools/inpaint/sample.py``.

Images here are numpy RGB uint8 (H, W, 3) on the way in and out, tensors (1, 3, S, S) in [-1, 1] inside.
"""
import os
import os.path as osp
import tempfile
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .mask_transform import binarize_mask, generate_mask


def load_inpaintor(config: str, checkpoint: str):
    """Build the model of an mmengine config and load a checkpoint of it (EMA generator included), in eval mode.

    For PD-GAN the prior's weights come from the checkpoint itself (they are saved with the model), so the
    config's ``prior.checkpoint`` need not exist where you sample; a checkpoint without them (a generator converted
    by ``tools/convert_checkpoint.py --from pdgan``) takes the prior from the config's ``prior.checkpoint``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmagic.registry import MODELS
    for path, what in ((config, 'config'), (checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} not found')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmagic'))
    tmp = None
    if cfg.model.get('type') == 'PDGANInpaintor':
        state = torch.load(checkpoint, map_location='cpu', weights_only=True).get('state_dict', {})
        prior = {k[len('prior.'):]: v for k, v in state.items() if k.startswith('prior.')}
        if not any(k.startswith('generator.') for k in state):
            raise ValueError(f'checkpoint {checkpoint!r} has no generator.* weights: is it a PDGANInpaintor '
                             'checkpoint?')
        if prior:
            fd, tmp = tempfile.mkstemp(suffix='.pth')
            os.close(fd)
            torch.save(prior, tmp)
            cfg.model.prior.checkpoint = tmp
    try:
        model = MODELS.build(cfg.model)
    finally:
        if tmp:
            os.remove(tmp)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return model.eval()


def square_resize(img: np.ndarray, size: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    """Centre crop to a square on the long edge, then resize to ``size`` x ``size`` (the demo configs' val view)."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[top:top + s, left:left + s], (size, size), interpolation=interpolation)


def prepare(image: np.ndarray, size: int, mask: Optional[np.ndarray] = None, mask_source: str = 'mask',
            mask_mode: str = 'ff', mask_seed: int = 0, threshold: int = 127,
            on_nonbinary: str = 'threshold') -> Tuple[torch.Tensor, torch.Tensor]:
    """RGB uint8 image (+ grey mask file contents, white = hole, or a generated mask) -> (masked image, mask)
    tensors (1, 3, size, size) in [-1, 1] (0 in the hole) and (1, 1, size, size) with 1 on holes."""
    if mask is not None:
        if mask.shape[:2] != image.shape[:2]:
            raise ValueError(f'{mask_source} is {mask.shape[1]}x{mask.shape[0]} but the image is '
                             f'{image.shape[1]}x{image.shape[0]}: the mask must have the image size')
        hole = binarize_mask(mask, mask_source, threshold, on_nonbinary)[..., 0]
        hole = square_resize(hole, size, cv2.INTER_NEAREST)
    img = square_resize(image, size)
    if mask is None:
        hole = generate_mask((size, size), mask_mode, seed=mask_seed)[..., 0]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = torch.from_numpy(hole.astype(np.float32))[None, None]
    return x * (1 - m), m


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((t[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()


@torch.no_grad()
def completions(model, masked: torch.Tensor, mask: torch.Tensor, num: int, seed: int = 0) -> List[torch.Tensor]:
    """``num`` composited completions: PD-GAN draws one noise vector each (seeded); a deterministic model
    returns one."""
    if hasattr(model, 'sample_noise'):
        return [model.inpaint(masked, mask, model.sample_noise(1, masked.device, seed + i))[1]
                for i in tqdm(range(num), desc='completions', unit='sample', disable=num < 2)]
    return [model.inpaint(masked, mask)[1]]


def side_by_side(panels: List[np.ndarray], gap: int = 2) -> np.ndarray:
    """Panels of equal size in a row, white gaps between them."""
    h = panels[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    row = []
    for i, panel in enumerate(panels):
        row += [sep, panel] if i else [panel]
    return np.concatenate(row, axis=1)
