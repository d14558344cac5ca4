"""Per-split validation for text SR: PSNR/SSIM on the RGB channels, word accuracy, and the E/M/H/A summary.

BasicSR validates one data set per ``val_*`` (or ``test_*``) entry and calls ``model.validation`` for each in
turn. :class:`SplitValidationMixin` computes the metrics of each set sample by sample (so any batch size works;
the recognizer's prediction is passed to the metrics as ``pred`` with the ``label``), and after the last set of
an iteration logs the table of all sets with their sample-weighted average ``A`` (TextZoom's convention),
appends it to ``<log dir>/split_metrics.jsonl``, and, in training, saves ``net_*_best_acc.pth`` and
``net_*_best_psnr.pth`` when the average accuracy or PSNR improves.
"""
import json
import os.path as osp
from collections import OrderedDict

from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img

from .word_accuracy_metric import format_split_table, split_summary

ACCURACY = 'calculate_word_accuracy'
BEST = {'calculate_word_accuracy': 'best_acc', 'calculate_psnr': 'best_psnr'}


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
        sums, num = {m: 0.0 for m in metrics}, 0
        for data in dataloader:
            self.feed_data(data)
            self.test()
            sr, gt = self.output[:, :3].detach().cpu(), self.gt[:, :3].detach().cpu()
            for i in range(sr.shape[0]):
                sample = {'img': tensor2img(sr[i]), 'img2': tensor2img(gt[i]),
                          'pred': self.pred[i] if self.pred is not None else None, 'label': self.label[i]}
                for m, mopt in metrics.items():
                    sums[m] += calculate_metric(sample, mopt)
                if save_img:
                    stem = osp.splitext(osp.basename(data['lq_path'][i]))[0]
                    folder = osp.join(self.opt['path']['visualization'], name)
                    imwrite(sample['img'], osp.join(folder, f'{stem}_{current_iter}.png'))
                num += 1
        if not metrics or not num:
            return
        self.metric_results = {m: s / num for m, s in sums.items()}
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
            self._save_best(summary['A'], current_iter, logger)

    def _save_best(self, average, current_iter, logger):
        best = self.__dict__.setdefault('best_average', {})
        for m, mopt in (self.opt['val'].get('metrics') or {}).items():
            label = BEST.get(mopt.get('type'))
            if label and average[m] > best.get(label, (float('-inf'), ))[0]:
                best[label] = (average[m], current_iter)
                self.save_networks(label)
                logger.info(f'New {label} at iter {current_iter}: average {m} {average[m]:.4f}; '
                            f'saved net_*_{label}.pth')
