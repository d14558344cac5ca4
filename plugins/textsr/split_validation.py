"""Per-split validation for text SR: PSNR/SSIM on the RGB channels, word accuracy, and the E/M/H/A summary.

BasicSR validates one data set per ``val_*`` (or ``test_*``) entry and calls ``model.validation`` for each in
turn. :class:`SplitValidationMixin` computes the metrics of each set:

* per-image metrics (BasicSR's, word accuracy) sample by sample on the 8-bit images of ``tensor2img``, averaged
  over the set (the recognizer's prediction is passed as ``pred`` with the ``label``);
* per-batch metrics (``calculate_textzoom_psnr``/``ssim``, marked ``per_batch``) on the float SR and HR images
  (RGB, not clamped, 0-255 scale, BGR order as ``tensor2img``), in groups of the metric's ``batch_size`` in loader
  order, and averaged over the groups without weights, as TextZoom averages its batches (``textzoom_metric.py``).

After the last set of an iteration it logs the table of all sets with their sample-weighted average ``A``, appends
it to ``<log dir>/split_metrics.jsonl``, and, in training, saves ``net_*_best_acc.pth`` and ``net_*_best_psnr.pth``
when the accuracy or PSNR over the sets improves, judged by ``val:best_by``: ``split_sum`` (TextZoom: the sum of
the sets' figures, each set counting the same) or ``weighted_mean`` (the sample-weighted average ``A``).
"""
import json
import os.path as osp
from collections import OrderedDict

import numpy as np
from tqdm import tqdm

from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import METRIC_REGISTRY

from .textzoom_metric import TEXTZOOM_BATCH
from .word_accuracy_metric import format_split_table, split_summary

ACCURACY = 'calculate_word_accuracy'
BEST = {'calculate_word_accuracy': 'best_acc', 'calculate_psnr': 'best_psnr', 'calculate_textzoom_psnr': 'best_psnr'}
BEST_BY = ('split_sum', 'weighted_mean')


def is_per_batch(mopt) -> bool:
    """Whether the metric of these options is computed per batch of float images (``textzoom_metric.per_batch``)."""
    kind = mopt.get('type')
    return kind in METRIC_REGISTRY and getattr(METRIC_REGISTRY.get(kind), 'per_batch', False)


def float_images(batch) -> np.ndarray:
    """``(N, C, H, W)`` tensor in [0, 1] (nominally) -> ``(N, H, W, 3)`` float32 on the 0-255 scale, BGR as
    ``tensor2img`` orders channels, first three channels only, neither clamped nor rounded."""
    return (batch[:, :3].detach().float().cpu().numpy().transpose(0, 2, 3, 1)[..., ::-1] * 255.).astype(np.float32)


class BatchGroups:
    """Groups of float SR/HR images for the per-batch metrics: ``add`` images, and each full group of ``size``
    images (and the rest, on ``close``) is scored by every metric of that size. ``values[name]``: one figure per
    group."""

    def __init__(self, metrics):
        self.metrics = metrics  # {name: options}
        self.sizes = {self._size(m) for m in metrics.values()}  # the group sizes, checked once
        self.pending = {}  # size -> ([sr arrays], [hr arrays])
        self.values = {name: [] for name in metrics}

    def _size(self, mopt) -> int:
        size = mopt.get('batch_size', TEXTZOOM_BATCH)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"val:metrics:{mopt.get('type')}: batch_size must be a positive integer, got {size!r}")
        return size

    def add(self, sr: np.ndarray, hr: np.ndarray) -> None:
        for size in self.sizes:
            srs, hrs = self.pending.setdefault(size, ([], []))
            srs.append(sr)
            hrs.append(hr)
            if sum(len(a) for a in srs) >= size:
                self._score(size, final=False)

    def _score(self, size: int, final: bool) -> None:
        """Score the full groups of ``size`` pending images, and the rest too when ``final``."""
        srs, hrs = self.pending.pop(size, ([], []))
        if not srs:
            return
        sr, hr = np.concatenate(srs), np.concatenate(hrs)
        end = len(sr) if final else len(sr) - len(sr) % size
        for start in range(0, end, size):
            group = {'img': sr[start:min(start + size, end)], 'img2': hr[start:min(start + size, end)]}
            for name, mopt in self.metrics.items():
                if self._size(mopt) == size:
                    self.values[name].append(calculate_metric(group, mopt))
        if end < len(sr):
            self.pending[size] = ([sr[end:]], [hr[end:]])

    def close(self):
        """The unweighted mean of each metric's group figures, after scoring the last (partial) groups."""
        for size in list(self.pending):
            self._score(size, final=True)
        return {name: float(np.mean(v)) for name, v in self.values.items() if v}


class SplitValidationMixin:
    """Mixed into an ``SRModel`` whose ``test()`` sets ``output`` (SR, RGB first) and ``pred`` (strings or None)."""

    def _eval_set_count(self) -> int:
        return sum(1 for phase in self.opt['datasets'] if phase.split('_')[0] != 'train')

    def _check_metrics(self, metrics):
        for name, mopt in metrics.items():
            if mopt.get('type') == ACCURACY and self.net_rec is None:
                raise ValueError(f'val:metrics:{name} ({ACCURACY}) needs a recognizer: add network_rec (type: CRNN) '
                                 'with path:pretrain_network_rec, or remove the metric')

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        name = dataloader.dataset.opt['name']
        metrics = self.opt['val'].get('metrics') or {}
        self._check_metrics(metrics)
        image_metrics = {m: mopt for m, mopt in metrics.items() if not is_per_batch(mopt)}
        groups = BatchGroups({m: mopt for m, mopt in metrics.items() if is_per_batch(mopt)})
        sums, num = {m: 0.0 for m in image_metrics}, 0
        # BasicSR's val:pbar (on by default in our options loader), one tick per image as SRModel's validation
        pbar = tqdm(total=len(dataloader.dataset), unit='image', desc=f'Test {name}') \
            if self.opt['val'].get('pbar', False) else None
        for data in dataloader:
            self.feed_data(data)
            self.test()
            sr, gt = self.output[:, :3].detach().cpu(), self.gt[:, :3].detach().cpu()
            if groups.metrics:  # first: BasicSR's tensor2img below clamps a CPU float tensor in place
                groups.add(float_images(sr), float_images(gt))
            for i in range(sr.shape[0]):
                sample = {'img': tensor2img(sr[i]), 'img2': tensor2img(gt[i]),
                          'pred': self.pred[i] if self.pred is not None else None, 'label': self.label[i]}
                for m, mopt in image_metrics.items():
                    sums[m] += calculate_metric(sample, mopt)
                if save_img:
                    stem = osp.splitext(osp.basename(data['lq_path'][i]))[0]
                    folder = osp.join(self.opt['path']['visualization'], name)
                    imwrite(sample['img'], osp.join(folder, f'{stem}_{current_iter}.png'))
                num += 1
                if pbar is not None:
                    pbar.update(1)
        if pbar is not None:
            pbar.close()
        if not metrics or not num:
            return
        per_batch = groups.close()
        self.metric_results = {m: per_batch[m] if m in per_batch else sums[m] / num for m in metrics}
        self._initialize_best_metric_results(name)
        for m, v in self.metric_results.items():
            self._update_best_metric_result(name, m, v, current_iter)
        self._log_validation_metric_values(current_iter, name, tb_logger)
        self._record_split(name, num, current_iter, tb_logger)

    def _record_split(self, name, num, current_iter, tb_logger):
        pending = self.__dict__.setdefault('_split_results', {}).setdefault(current_iter, OrderedDict())
        pending[name] = dict(num=num, **self.metric_results)
        if len(pending) < self._eval_set_count():
            return
        del self._split_results[current_iter]
        summary = split_summary(pending)
        logger = get_root_logger()
        logger.info(f'Splits and sample-weighted average at {current_iter}:\n'
                    + format_split_table(summary, str(self.opt['name'])))
        with open(osp.join(self.opt['path']['log'], 'split_metrics.jsonl'), 'a') as f:
            f.write(json.dumps({'iter': current_iter, 'num': {k: v['num'] for k, v in pending.items()},
                                'metrics': summary}) + '\n')
        if tb_logger:
            for m, v in summary['A'].items():
                tb_logger.add_scalar(f'metrics/average/{m}', v, current_iter)
        if self.is_train:
            self._save_best(pending, summary['A'], current_iter, logger)

    def best_by(self) -> str:
        """``val:best_by``: how the sets are combined to choose the best checkpoints (``split_sum``: TextZoom)."""
        val_opt = self.opt.get('val') or {}
        rule = val_opt.get('best_by', 'weighted_mean')
        if rule not in BEST_BY:
            raise ValueError(f'val:best_by must be one of {list(BEST_BY)}, got {rule!r}')
        return rule

    def _save_best(self, splits, average, current_iter, logger):
        """Save ``net_*_best_acc``/``best_psnr`` when the figure over all sets improves: the sum of the sets'
        figures (``split_sum``, TextZoom's ``sum(current_acc_dict.values())``) or the sample-weighted mean ``A``."""
        rule = self.best_by()
        best = self.__dict__.setdefault('best_average', {})
        for m, mopt in (self.opt['val'].get('metrics') or {}).items():
            label = BEST.get(mopt.get('type'))
            score = sum(r[m] for r in splits.values()) if rule == 'split_sum' else average[m]
            if label and score > best.get(label, (float('-inf'), ))[0]:
                best[label] = (score, current_iter)
                self.save_networks(label)
                what = f'sum over the {len(splits)} sets' if rule == 'split_sum' else 'weighted average'
                logger.info(f'New {label} at iter {current_iter}: {m} {what} {score:.4f}; saved net_*_{label}.pth')
