"""Synthetic low/normal-light pairs in LOL's layout, made by darkening real photos (for tests and demos).

The darkening of one image (float RGB in [0, 1], ``(H, W, 3)``), with parameters drawn per image and recorded:

    1. exposure and tone curve:  low = exposure * normal ** gamma        (gamma > 1 crushes the shadows)
    2. colour cast:              low[..., c] *= gain[c]                   (white-balance shift of a dark scene)
    3. sensor noise:             low += N(0, shot * low + read ** 2)      (Poisson-Gaussian, heteroscedastic)
    4. 8-bit quantisation, as a camera PNG.

Optionally the normal-light target is re-exposed too (``target_gain``, off by default): pairs whose target
brightness cannot be guessed from the low image alone teach the network to follow the brightness plane.

Defaults give mean brightness around 0.03-0.15, close to LOL's low images (mean ~0.06).

Layout written by ``make_pairs`` (as LOL, the lab's ``our485`` / ``eval15``)::

    <out>/our485/{low,high}/<name>.png     training pairs
    <out>/eval15/{low,high}/<name>.png     evaluation pairs
    <out>/params.json                      seed, ranges and each pair's drawn parameters
"""
import json
import os
import os.path as osp
from typing import Dict, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..common.demo_data import TRAIN_SOURCES, VAL_SOURCES, read_hr

DEFAULT_RANGES = {
    'exposure': (0.08, 0.35),  # scale after the tone curve
    'gamma': (1.4, 2.2),  # tone curve exponent
    'gain': (0.85, 1.15),  # per-channel colour gain
    'shot': (1e-4, 2e-3),  # shot-noise variance per unit signal
    'read': (1e-3, 8e-3),  # read-noise standard deviation
    'target_gain': (1.0, 1.0),  # exposure of the normal-light target (1 = the photo as is)
}


def _check_ranges(ranges: Dict[str, Sequence[float]]) -> Dict[str, tuple]:
    out = dict(DEFAULT_RANGES)
    for key, value in (ranges or {}).items():
        if key not in DEFAULT_RANGES:
            raise ValueError(f'darkening range {key!r} is unknown; expected one of {sorted(DEFAULT_RANGES)}')
        lo, hi = (float(v) for v in value)
        if not 0 <= lo <= hi:
            raise ValueError(f'darkening range {key}: expected 0 <= low <= high, got {value}')
        out[key] = (lo, hi)
    return out


def sample_params(rng: np.random.Generator, ranges: Dict[str, Sequence[float]] = None) -> Dict:
    """Draw one image's darkening parameters (uniform in each range; ``gain`` per channel, R, G, B)."""
    r = _check_ranges(ranges)
    return {'exposure': float(rng.uniform(*r['exposure'])), 'gamma': float(rng.uniform(*r['gamma'])),
            'gain': [float(g) for g in rng.uniform(*r['gain'], size=3)],
            'shot': float(rng.uniform(*r['shot'])), 'read': float(rng.uniform(*r['read'])),
            'target_gain': float(rng.uniform(*r['target_gain'])), 'noise_seed': int(rng.integers(2 ** 31))}


def darken(normal: np.ndarray, params: Dict) -> np.ndarray:
    """Apply ``params`` (see ``sample_params``) to a float RGB image in [0, 1] ``(H, W, 3)``; returns uint8 RGB."""
    low = params['exposure'] * np.power(np.clip(normal, 0, 1), params['gamma'])
    low = low * np.asarray(params['gain'], dtype=np.float64)
    noise_rng = np.random.default_rng(params['noise_seed'])
    std = np.sqrt(params['shot'] * low + params['read'] ** 2)
    low = low + noise_rng.standard_normal(low.shape) * std
    return np.clip(np.round(low * 255.), 0, 255).astype(np.uint8)


def _fit(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area) so the long side is at most ``max_side``; sizes cropped to even numbers."""
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    return img[:h - h % 2, :w - w % 2]


def make_pairs(out: str, train_sources: Sequence[str] = None, val_sources: Sequence[str] = None,
               variants: int = 2, max_side: int = 400, seed: int = 0,
               ranges: Dict[str, Sequence[float]] = None) -> Dict:
    """Write synthetic pairs under ``out`` (layout above) and return the recorded parameters.

    Args:
        out: output folder.
        train_sources, val_sources: photo file names understood by ``plugins.common.demo_data.read_hr`` (the
            photos shipped inside the scikit-image / matplotlib wheels) or paths of image files. Default: the demo
            data's train / val photos.
        variants (int): darkened versions of each training photo (the eval split gets one). Default: 2.
        max_side (int): long side of the normal-light images after area downscaling. Default: 400 (LOL: 600).
        seed (int): seed of all the random draws. Default: 0.
        ranges (dict): overrides of ``DEFAULT_RANGES``.
    """
    if variants < 1:
        raise ValueError(f'variants must be >= 1, got {variants}')
    rng = np.random.default_rng(seed)
    record = {'seed': seed, 'variants': variants, 'max_side': max_side, 'ranges': _check_ranges(ranges),
              'model': 'low = round(255 * clip(exposure * photo**gamma * gain + N(0, shot*signal + read^2))), '
                       'high = round(255 * clip(photo * target_gain))',
              'pairs': {}}
    for split, folder, sources, n_var in (('train', 'our485', train_sources or TRAIN_SOURCES, variants),
                                          ('val', 'eval15', val_sources or VAL_SOURCES, 1)):
        pairs = []
        for source in tqdm(sources, desc=f'low-light pairs: {folder}', unit='photo'):
            bgr = cv2.imread(source, cv2.IMREAD_COLOR) if osp.isfile(source) else read_hr(source)
            if bgr is None:
                raise OSError(f'cannot read image {source}')
            photo = _fit(bgr, max_side)[..., ::-1].astype(np.float64) / 255.  # RGB
            stem = osp.splitext(osp.basename(source))[0]
            for v in range(n_var):
                params = sample_params(rng, ranges)
                low = darken(photo, params)
                high = np.clip(np.round(photo * params['target_gain'] * 255.), 0, 255).astype(np.uint8)
                name = f'{stem}_{v}.png' if n_var > 1 else f'{stem}.png'
                for kind, img in (('low', low), ('high', high)):
                    path = osp.join(out, folder, kind, name)
                    os.makedirs(osp.dirname(path), exist_ok=True)
                    if not cv2.imwrite(path, np.ascontiguousarray(img[..., ::-1])):
                        raise OSError(f'cannot write {path}')
                pairs.append({'name': name, 'source': source, 'size': list(high.shape[:2]),
                              'low_mean': float(low.mean() / 255.), 'high_mean': float(high.mean() / 255.),
                              **params})
        record['pairs'][folder] = pairs
    with open(osp.join(out, 'params.json'), 'w') as f:
        json.dump(record, f, indent=2)
    return record
