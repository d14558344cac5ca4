"""PSNR per degradation task of trained CMDSR / BaseNet checkpoints on held-out HR images (the benchmark behind
``tools/blindsr/compare.py``). Every task degrades the images with one fixed, seeded degradation
(``FixedDegradationDataset``), so all networks see the very same LR images and support sets."""
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img

from .cmdsr_dataset import FixedDegradationDataset

# (blur sigma, noise level): the paper's Set5 setting 2.6/15 and tasks across the training range.
DEFAULT_TASKS = ((0.0, 0), (1.0, 0), (2.0, 10), (2.6, 15), (3.5, 30), (1.5, 50))


def task_datasets(hr_dir: str, scale: int, tasks: Sequence, support_size: int, support_patch: int,
                  kernel_size: int = 15) -> List[FixedDegradationDataset]:
    """One ``FixedDegradationDataset`` per ``(blur sigma, noise)`` task on the HR images of ``hr_dir``."""
    return [FixedDegradationDataset({'name': f'task{i}', 'dataroot_gt': hr_dir, 'io_backend': {'type': 'disk'},
                                     'scale': scale, 'blur_sigma': float(sigma), 'noise': float(noise),
                                     'kernel_size': kernel_size, 'support_size': support_size,
                                     'support_patch': support_patch, 'seed': 1000 * i})
            for i, (sigma, noise) in enumerate(tasks)]


def _psnr(sr: torch.Tensor, gt: torch.Tensor, scale: int) -> float:
    return calculate_psnr(tensor2img(sr), tensor2img(gt), crop_border=scale, test_y_channel=True)


@torch.no_grad()
def evaluate_tasks(nets: Dict[str, torch.nn.Module], datasets: List[FixedDegradationDataset],
                   scale: int, wrong_support_for: Sequence[str] = ()) -> Dict[str, Dict[str, float]]:
    """Mean PSNR-Y (border crop = scale) per task for every network, and for bicubic upsampling of the LR.

    Args:
        nets: name -> network in eval mode; a CMDSR network (with ``condition_net``) gets the item's support set.
        datasets: the tasks.
        scale: SR factor.
        wrong_support_for: names of CMDSR networks to evaluate ALSO with the support set of another task (the
            next one, cyclically): a check that the condition carries information about the degradation.

    Returns:
        ``{row name: {task name: PSNR}}`` with rows 'bicubic', each network, and '<name> (support of another task)'.
    """
    rows: Dict[str, Dict[str, List[float]]] = {}
    for k, ds in enumerate(tqdm(datasets, desc='tasks', unit='task')):
        other = datasets[(k + 1) % len(datasets)]
        for i in range(len(ds)):
            item = ds[i]
            lq, gt = item['lq'][None], item['gt'][None]
            results = {'bicubic': F.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False)}
            for name, net in nets.items():
                if hasattr(net, 'condition_net'):
                    results[name] = net(lq, item['support'][None])
                    if name in wrong_support_for:
                        results[f'{name} (support of another task)'] = net(lq, other[i]['support'][None])
                else:
                    results[name] = net(lq)
            for name, sr in results.items():
                rows.setdefault(name, {}).setdefault(ds.task, []).append(_psnr(sr, gt, scale))
    return {name: {task: float(np.mean(v)) for task, v in per_task.items()} for name, per_task in rows.items()}


def markdown_table(scores: Dict[str, Dict[str, float]]) -> str:
    """Rows = networks, columns = tasks and the mean over tasks."""
    tasks = list(next(iter(scores.values())))
    lines = ['| network | ' + ' | '.join(tasks) + ' | mean |', '|---|' + '---:|' * (len(tasks) + 1)]
    for name, per_task in scores.items():
        values = [per_task[t] for t in tasks]
        lines.append(f'| {name} | ' + ' | '.join(f'{v:.2f}' for v in values) + f' | {np.mean(values):.2f} |')
    return '\n'.join(lines) + '\n'
