"""Compare a trained SR network with bicubic upsampling on paired images, and draw the comparison.

Used by ``tools/classic/demo.py``. PSNR/SSIM are BasicSR's ``calculate_psnr``/``calculate_ssim`` on the Y channel with a
border crop equal to the scale, the convention of SR papers.
"""
import os
import os.path as osp
from typing import Dict, List

import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim
from torch import nn
from tqdm import tqdm

from ..common.bicubic import matlab_bicubic
from ..common.image_io import list_images, read_image
from ..common.tiled_inference import super_resolve


def compare_with_bicubic(net: nn.Module, hr_dir: str, lr_dir: str, scale: int, in_channels: int) -> List[Dict]:
    """Super-resolve every LR image of ``lr_dir`` and score it and its bicubic upsampling against ``hr_dir``.

    Returns:
        One dict per image: ``name``, ``lr``/``bicubic``/``ours``/``hr`` (BGR uint8 arrays; bicubic, ours and hr
        are ``(H, W, 3)``) and ``psnr_bicubic``/``psnr_ours``/``ssim_bicubic``/``ssim_ours`` (Y, crop = scale).
    """
    rows = []
    for lr_path in tqdm(list_images(lr_dir), desc='bicubic vs ours', unit='img'):
        name = osp.basename(lr_path)
        hr_path = osp.join(hr_dir, name)
        if not osp.isfile(hr_path):
            raise FileNotFoundError(f'no ground truth {hr_path} for {lr_path}')
        lr, hr = read_image(lr_path), read_image(hr_path)
        row = {'name': osp.splitext(name)[0], 'lr': lr, 'hr': hr, 'bicubic': matlab_bicubic(lr, scale),
               'ours': super_resolve(net, lr, scale, in_channels)}
        for method in ('bicubic', 'ours'):
            metric_args = dict(crop_border=scale, test_y_channel=True)
            row[f'psnr_{method}'] = float(calculate_psnr(row[method], hr, **metric_args))
            row[f'ssim_{method}'] = float(calculate_ssim(row[method], hr, **metric_args))
        rows.append(row)
    return rows


def save_comparison_figure(rows: List[Dict], path: str, title: str, crop: int = 160) -> str:
    """Draw LR | bicubic | ours | HR for each image (a ``crop`` x ``crop`` detail from the HR centre, LR shown
    with nearest-neighbour upsampling), with PSNR-Y in the titles; write a PNG to ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(rows), 4, figsize=(13, 3.4 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        h, w = row['hr'].shape[:2]
        scale = h // row['lr'].shape[0]
        c = min(crop, h, w) // scale * scale
        y0, x0 = (h - c) // 2 // scale * scale, (w - c) // 2 // scale * scale
        lr_crop = row['lr'][y0 // scale:(y0 + c) // scale, x0 // scale:(x0 + c) // scale]
        panels = [('LR (nearest)', np.kron(lr_crop, np.ones((scale, scale, 1), dtype=np.uint8))),
                  (f"bicubic {row['psnr_bicubic']:.2f} dB", row['bicubic'][y0:y0 + c, x0:x0 + c]),
                  (f"ours {row['psnr_ours']:.2f} dB", row['ours'][y0:y0 + c, x0:x0 + c]),
                  (f"HR ({row['name']})", row['hr'][y0:y0 + c, x0:x0 + c])]
        for ax, (label, img) in zip(ax_row, panels):
            ax.imshow(img[..., ::-1])
            ax.set_title(label, fontsize=11)
            ax.axis('off')
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
