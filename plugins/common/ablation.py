"""Run several BasicSR options files at one iteration budget and compare their validation curves.

Each run is a real ``tools/train.py`` process (so it is exactly what a user runs), with ``--force_yml`` setting
the budget, the validation frequency and a separate experiment name. PSNR/SSIM come from BasicSR's own
validation log: the metrics each options file declares (Y channel, border crop = scale for the classic line).
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

from .demo_data import matlab_bicubic
from .network_io import build_network_from_options, load_options
from .tiling import list_images, read_image

METRIC_LINE = re.compile(r'# (\w+): ([-\d.]+)')


def budget_overrides(opt: Dict, iters: int, val_freq: int, suffix: str) -> List[str]:
    """``--force_yml`` entries that train ``opt`` for ``iters`` iterations under a new experiment name."""
    entries = [f"name={opt['name']}_{suffix}", f'train:total_iter={iters}', f'val:val_freq={val_freq}',
               f'logger:save_checkpoint_freq={iters}', f'logger:print_freq={max(1, val_freq)}']
    scheduler = (opt.get('train') or {}).get('scheduler') or {}
    if scheduler.get('type') == 'CosineAnnealingRestartLR':
        entries += [f'train:scheduler:periods=[{iters}]', 'train:scheduler:restart_weights=[1]']
    if (opt.get('logger') or {}).get('use_tb_logger') is not None:
        entries.append('logger:use_tb_logger=false')
    return entries


def parse_validation_log(log_text: str, val_freq: int) -> Dict[str, List[float]]:
    """Metric curves from a BasicSR training log: ``{'iter': [...], 'psnr': [...], ...}``.

    BasicSR logs ``# <metric>: <value>`` after each validation without the iteration; validations run every
    ``val_freq`` iterations, and once more after the last iteration (dropped here, it repeats the last one).
    """
    blocks = [b for b in log_text.split('Validation ')[1:]]
    curves: Dict[str, List[float]] = {'iter': []}
    for k, block in enumerate(blocks):
        metrics = METRIC_LINE.findall(block.split('\n\n')[0])
        if not metrics:
            continue
        curves['iter'].append((k + 1) * val_freq)
        for name, value in metrics:
            curves.setdefault(name, []).append(float(value))
    n_periodic = len(curves['iter'])
    if n_periodic > 1 and all(v[-1] == v[-2] for key, v in curves.items() if key != 'iter'):
        curves = {key: v[:-1] for key, v in curves.items()}  # the final validation after training
    return curves


def bicubic_baseline(hr_dir: str, scale: int) -> Dict[str, float]:
    """Mean PSNR/SSIM (Y, crop = scale) of MATLAB bicubic x``scale`` on the HR images of ``hr_dir``."""
    from basicsr.metrics import calculate_psnr, calculate_ssim
    psnr, ssim = [], []
    for path in list_images(hr_dir):
        hr = read_image(path)
        hr = hr[:hr.shape[0] - hr.shape[0] % scale, :hr.shape[1] - hr.shape[1] % scale]
        up = matlab_bicubic(matlab_bicubic(hr, 1 / scale), scale)
        psnr.append(calculate_psnr(up, hr, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(up, hr, crop_border=scale, test_y_channel=True))
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim))}


def run_one(opt_path: str, iters: int, val_freq: int, suffix: str, extra_force_yml: List[str], train_py: str,
            log_dir: str) -> Dict:
    """Train one options file for ``iters`` iterations; return its curves, parameters and wall time."""
    opt = load_options(opt_path)
    params = sum(p.numel() for p in build_network_from_options(opt, source=opt_path).parameters())
    cmd = [sys.executable, train_py, '-opt', opt_path, '--force_yml'] + budget_overrides(
        opt, iters, val_freq, suffix) + list(extra_force_yml)
    start = time.time()
    os.makedirs(log_dir, exist_ok=True)
    stdout_path = osp.join(log_dir, f"{opt['name']}_{suffix}.out")
    with open(stdout_path, 'w') as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'training {opt_path} failed (exit {proc.returncode}); see {stdout_path}')
    exp_name = f"{opt['name']}_{suffix}"
    logs = sorted(glob.glob(osp.join('experiments', exp_name, f'train_{exp_name}_*.log')), key=osp.getmtime)
    curves = parse_validation_log(open(logs[-1]).read(), val_freq)
    loss = next((v.get('type') for k, v in (opt.get('train') or {}).items() if k == 'pixel_opt' and v), '-')
    return {'options': opt_path, 'name': opt['name'], 'network': opt['network_g']['type'], 'loss': loss,
            'params': params, 'scale': opt.get('scale'), 'seconds': round(time.time() - start, 1),
            'curves': curves, 'log': logs[-1]}


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
