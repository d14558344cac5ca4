"""Train BasicSR options files at a fixed iteration budget and read their validation curves back: the runs behind
``tools/classic/ablate.py`` and ``tools/blindsr/compare.py``.

Each run is a real ``tools/train.py`` process (so it is exactly what a user runs), with ``--force_yml`` setting
the budget, the validation frequency and a separate experiment name. The metrics come from BasicSR's own
validation log: those each options file declares.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Dict, List

from .networks import build_network_from_options
from .options import load_options

METRIC_LINE = re.compile(r'# (\w+): ([-\d.]+)')


def existing_reports(prefix: str, suffixes: List[str]) -> List[str]:
    """The report files ``<prefix><suffix>`` that exist already. The comparison tools refuse to run over them without
    ``--overwrite``: their documented commands write under docs/, and rerunning one must not replace the committed
    figures by accident (hours of runs first, then a silent overwrite)."""
    return [prefix + s for s in suffixes if osp.exists(prefix + s)]


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
