"""The classic line's ablation report (``tools/classic/ablate.py``): the bicubic baseline of a validation folder,
and a table, a PSNR-vs-iteration plot and a JSON of runs made by ``engine/basicsr/budget_runs.py``.

PSNR/SSIM are BasicSR's ``calculate_psnr``/``calculate_ssim`` on the Y channel with a border crop equal to the
scale, the convention of SR papers (and of the classic options files' validation metrics).
"""
import json
import os
import os.path as osp
from typing import Dict, List

import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim
from tqdm import tqdm

from ..common.bicubic import matlab_bicubic
from ..common.image_io import list_images, read_image


def bicubic_baseline(hr_dir: str, scale: int) -> Dict[str, float]:
    """Mean PSNR/SSIM (Y, crop = scale) of MATLAB bicubic x``scale`` on the HR images of ``hr_dir``."""
    psnr, ssim = [], []
    for path in tqdm(list_images(hr_dir), desc='bicubic baseline', unit='img'):
        hr = read_image(path)
        hr = hr[:hr.shape[0] - hr.shape[0] % scale, :hr.shape[1] - hr.shape[1] % scale]
        up = matlab_bicubic(matlab_bicubic(hr, 1 / scale), scale)
        psnr.append(calculate_psnr(up, hr, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(up, hr, crop_border=scale, test_y_channel=True))
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim))}


def markdown_table(runs: List[Dict], baseline: Dict[str, float], iters: int) -> str:
    """A markdown table of the final and best validation PSNR/SSIM of each run, with the bicubic baseline."""
    lines = [f'| experiment | network | loss | params | PSNR-Y @ {iters} | best PSNR-Y (iter) | SSIM-Y @ {iters} | '
             'time (s) |', '|---|---|---|---:|---:|---:|---:|---:|',
             f"| bicubic | - | - | 0 | {baseline['psnr']:.2f} | - | {baseline['ssim']:.4f} | - |"]
    for run in runs:
        c = run['curves']
        best = int(np.argmax(c['psnr']))
        lines.append(f"| {run['name']} | {run['network']} | {run['loss']} | {run['params']:,} | {c['psnr'][-1]:.2f} | "
                     f"{c['psnr'][best]:.2f} ({c['iter'][best]}) | {c.get('ssim', [float('nan')])[-1]:.4f} | "
                     f"{run['seconds']:.0f} |")
    return '\n'.join(lines) + '\n'


def plot_curves(runs: List[Dict], baseline: Dict[str, float], path: str, title: str) -> str:
    """PSNR-Y against iteration for every run, with the bicubic level as a dashed line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        ax.plot(run['curves']['iter'], run['curves']['psnr'], marker='o', markersize=3, label=run['name'])
    ax.axhline(baseline['psnr'], color='k', linestyle='--', label=f"bicubic ({baseline['psnr']:.2f} dB)")
    ax.set_xlabel('iteration')
    ax.set_ylabel('validation PSNR-Y (dB)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_report(runs: List[Dict], baseline: Dict[str, float], iters: int, out_prefix: str, title: str) -> Dict:
    """Write ``<out_prefix>.md`` (table), ``.png`` (plot) and ``.json`` (everything); return their paths."""
    os.makedirs(osp.dirname(osp.abspath(out_prefix)), exist_ok=True)
    table = markdown_table(runs, baseline, iters)
    with open(out_prefix + '.md', 'w') as f:
        f.write(table)
    with open(out_prefix + '.json', 'w') as f:
        json.dump({'iters': iters, 'bicubic': baseline, 'runs': runs}, f, indent=2)
    plot_curves(runs, baseline, out_prefix + '.png', title)
    return {'table': out_prefix + '.md', 'plot': out_prefix + '.png', 'json': out_prefix + '.json', 'text': table}
