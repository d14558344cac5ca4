"""CMDSR training model for BasicSR (``MODEL_REGISTRY``): ``model_type: CMDSRModel``.

One training iteration on a batch of T tasks x P patches (``TaskDegradationDataset``), as the official
``Train_CMDSR.py``:

1. every ``condition_every`` iterations (the first included), a ConditionNet step with its own optimizer:
   ``contrastive(f(half 1), f(half 2)) + condition_l1_weight * L1(SR(half 1 | support = half 1), HR)``;
2. two BaseNet steps, half 1 then half 2, each half being both the query batch and its own support set, with the
   pixel loss (L1). Only the BaseNet (which holds the modulations) is stepped.

The BaseNet and the ConditionNet have separate optimizers (``optim_g``, ``optim_c``) and schedules
(``scheduler``, ``scheduler_c``, both stepped every iteration as BasicSR does; the official code steps its
schedulers once per optimizer step, i.e. twice per iteration for the BaseNet and every 5th for the ConditionNet).

Units: one iteration here (``total_iter``, milestones, ``condition_every``) is one official training loop. The
official ``Train_CMDSR.py`` counts BaseNet steps instead (two per loop): its ``niter`` 1e6, milestones [500k, 900k]
and ``opt_condition_net_step`` 10 are 500k iterations, [250k, 450k] and 5 here (``cmdsr_x4_paper.yml``).
BasicSR's EMA (``ema_decay``) covers the whole network. A plain ``CMDSRBaseNet`` (``modulated: false``) trains
with the same data and BaseNet steps and no ConditionNet: the unconditioned baseline.

Data: with ``datasets:train:degrade_on: device`` (the default) the batch holds the HR crops and each task's
degradation draws, and ``feed_data`` degrades them on the model's device (``degrade_tasks``, in float32 outside
any autocast, without gradients), as BasicSR's ``RealESRGANModel`` does; with ``worker`` the batch holds ``lq``.

Validation: ``FixedDegradationDataset`` gives each image its support set; one dataset per degradation task, so
BasicSR logs the metrics of every task on its own.

Distributed training (torchrun): the network is wrapped by BasicSR in DDP, but the steps above call its
sub-networks directly, which DDP cannot see; the gradients of each step are therefore averaged over the processes
here (``_average_gradients``) before the optimizer steps.
"""
from collections import OrderedDict

import torch
import torch.distributed as dist

from basicsr.losses import build_loss
from basicsr.models import lr_scheduler
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from ..engine.basicsr.optimizers import AnyTorchOptimizerMixin
from .degradations import degrade_tasks, prepare_gt_tasks

SCHEDULERS = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
              'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}


def _flatten_tasks(x: torch.Tensor) -> torch.Tensor:
    """``(T, N, C, h, w)`` -> ``(T * N, C, h, w)``, grouped by task."""
    return x.reshape(-1, *x.shape[2:])


def check_task_options(opt: dict, net: torch.nn.Module) -> None:
    """Raise ``ValueError`` unless the training tasks fit the network: a stacked ConditionNet built for support
    size S needs ``patches_per_task == 2 * S`` (the two halves of a task are its support sets)."""
    data_opt = (opt.get('datasets') or {}).get('train') or {}
    need = getattr(net, 'support_size', None) if hasattr(net, 'condition_net') else None
    patches = data_opt.get('patches_per_task', 40)
    if need is not None and patches != 2 * need:
        raise ValueError(f'datasets:train:patches_per_task is {patches}, but network_g:support_size is {need}: '
                         f'each task is split into two halves used as support sets, so patches_per_task must '
                         f'be 2 x {need} = {2 * need}')


@MODEL_REGISTRY.register()
class CMDSRModel(AnyTorchOptimizerMixin, SRModel):
    """SRModel with CMDSR's task-grouped training (see the module docstring).

    Train options (``train:``) besides SRModel's:
        optim_c (dict): ConditionNet optimizer. Default: a copy of ``optim_g``.
        scheduler_c (dict): its schedule. Default: a copy of ``scheduler``.
        contrastive_opt (dict): the ``TaskContrastiveLoss`` options (``per_channel`` for the official behaviour).
        condition_every (int): ConditionNet step every k iterations. Default: 5 (official: its
            ``opt_condition_net_step`` 10 counts BaseNet steps, two per iteration).
        condition_l1_weight (float): lambda of the L1 term in the ConditionNet step. Default: 0.1 (official).
    """

    @property
    def conditioned(self) -> bool:
        """True for a CMDSR network (ConditionNet + BaseNet), False for a plain BaseNet."""
        return hasattr(self.get_bare_model(self.net_g), 'condition_net')

    def init_training_settings(self):
        train_opt = self.opt['train']
        check_task_options(self.opt, self.get_bare_model(self.net_g))
        self.condition_every = int(train_opt.get('condition_every', 5))
        if self.condition_every < 1:
            raise ValueError(f'train:condition_every must be >= 1, got {self.condition_every}')
        self.condition_l1_weight = float(train_opt.get('condition_l1_weight', 0.1))
        super().init_training_settings()  # EMA, pixel loss, optimizers, schedulers
        self.cri_contrast = None
        if self.conditioned and train_opt.get('contrastive_opt'):
            self.cri_contrast = build_loss(dict(train_opt['contrastive_opt'])).to(self.device)

    def setup_optimizers(self):
        if not self.conditioned:
            super().setup_optimizers()
            return
        train_opt, bare = self.opt['train'], self.get_bare_model(self.net_g)
        for attr, key, params in (('optimizer_g', 'optim_g', bare.sr_net.parameters()),
                                  ('optimizer_c', 'optim_c', bare.condition_net.parameters())):
            optim = dict(train_opt.get(key) or train_opt['optim_g'])
            setattr(self, attr, self.get_optimizer(optim.pop('type'), list(params), **optim))
            self.optimizers.append(getattr(self, attr))

    def setup_schedulers(self):
        train_opt = self.opt['train']
        specs = [train_opt['scheduler'], train_opt.get('scheduler_c') or train_opt['scheduler']]
        for optimizer, spec in zip(self.optimizers, specs):
            spec = dict(spec)
            kind = spec.pop('type')
            if kind not in SCHEDULERS:
                raise ValueError(f'train scheduler type must be one of {sorted(SCHEDULERS)}, got {kind!r}')
            self.schedulers.append(SCHEDULERS[kind](optimizer, **spec))

    @torch.no_grad()
    def degrade(self, data: dict) -> dict:
        """``data`` with ``lq`` made from ``gt`` ``(T, P, 3, H, W)`` and the tasks' draws ``degradation`` (left on
        the CPU: the per-task numbers are read there, so nothing waits for the device), on the model's device."""
        gt = data['gt'].to(self.device)
        with torch.autocast(device_type=gt.device.type, enabled=False):
            gt = prepare_gt_tasks(gt, data['degradation'])  # Real-ESRNet's gt_usm: target and LR source sharpened
            lq = degrade_tasks(gt, data['degradation'], self.opt['scale'])
        return dict(data, lq=lq, gt=gt)

    def feed_data(self, data):
        if 'degradation' in data:  # HR crops and draws (degrade_on: device)
            data = self.degrade(data)
        lq = data['lq'].to(self.device)
        self.support = data['support'].to(self.device) if 'support' in data else None
        if lq.dim() == 5:  # training: (T, P, C, h, w) tasks
            self.lq_tasks, self.gt_tasks = lq, data['gt'].to(self.device)
            self.lq = _flatten_tasks(lq)
            self.gt = _flatten_tasks(self.gt_tasks)
            return
        self.lq = lq
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)

    def _average_gradients(self, module: torch.nn.Module) -> None:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def _condition_step(self, bare, halves) -> OrderedDict:
        """One ConditionNet update; returns its losses for the log."""
        (lq1, gt1), (lq2, _) = halves
        self.optimizer_c.zero_grad()
        f1, f2 = bare.condition_net(lq1), bare.condition_net(lq2)
        out = OrderedDict()
        total = 0
        if self.cri_contrast is not None:
            l_con, d_in, d_x = self.cri_contrast(f1, f2)
            total = total + l_con
            out.update(l_contrast=l_con, d_intra=d_in, d_cross=d_x)
        if self.condition_l1_weight:
            l_pix = self.cri_pix(bare.sr_net(_flatten_tasks(lq1), f1), _flatten_tasks(gt1))
            total = total + self.condition_l1_weight * l_pix
            out['l_pix_condition'] = l_pix
        if torch.is_tensor(total):
            total.backward()
            self._average_gradients(bare.condition_net)
            self.optimizer_c.step()
        return out

    def optimize_parameters(self, current_iter):
        bare = self.get_bare_model(self.net_g)
        lq, gt = self.lq_tasks, self.gt_tasks
        half = lq.shape[1] // 2
        halves = [(lq[:, :half], gt[:, :half]), (lq[:, half:], gt[:, half:])]
        loss_dict = OrderedDict()
        if self.conditioned and (current_iter - 1) % self.condition_every == 0:
            loss_dict.update(self._condition_step(bare, halves))
        sr_net = bare.sr_net if self.conditioned else bare
        l_pix_sum = 0
        for lq_h, gt_h in halves:
            self.optimizer_g.zero_grad()
            condition = None
            if self.conditioned:
                with torch.no_grad():  # only the BaseNet is stepped here
                    condition = bare.condition_net(lq_h)
            l_pix = self.cri_pix(sr_net(_flatten_tasks(lq_h), condition), _flatten_tasks(gt_h))
            l_pix.backward()
            self._average_gradients(sr_net)
            self.optimizer_g.step()
            l_pix_sum = l_pix_sum + l_pix.detach()
        loss_dict['l_pix'] = l_pix_sum / len(halves)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self):
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        bare = self.get_bare_model(net)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            if self.conditioned:
                if self.support is None:
                    raise ValueError('CMDSR validation/test data must give a support set (`support`): use '
                                     'type: FixedDegradationDataset for val/test datasets')
                self.output = bare(self.lq, self.support)
            else:
                self.output = bare(self.lq)
        net.train(was_training)
