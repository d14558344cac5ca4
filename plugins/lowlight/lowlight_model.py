"""Training model of the low-light line: BasicSR's SRModel with the brightness plane, the Gen_Y brightness loss, the
lab's training variants for Gen_Y, and any ``torch.optim`` optimizer (RAdam for the seed).

Options beyond SRModel's (see options/train/lowlight/*.yml):

    brightness: {mode: gt | imagenet | target, value: 0.5}   # 4th input plane in training (default gt)
    val:
      brightness: {mode: imagenet}       # optional: another plane at validation (the seed's "train GT, infer
                                         # ImageNet" row); default: the training one
    train:
      optim_g: {type: RAdam, lr: 4e-4}   # any torch.optim class by name (BasicSR 1.4.2 builds only Adam)
      pixel_opt: {type: L1SSIMLoss}      # on the full-resolution output
      y_opt: {type: L1Loss}              # Gen_Y networks only: L1 between the predicted Y map and the GT's Y
      # Gen_Y networks only:
      optim_y: {type: RAdam, lr: 4e-4}   # the lab's two optimizers (below); default: none (one optimizer)
      scheduler_y: {type: MultiStepLR, milestones: []}   # optim_y's schedule; default: `scheduler`, as optim_g's
      gen_y_stage: joint | y | output    # the lab's 2-step training (below); default: joint

Gen_Y optimizers. Default (ours): one optimizer (``optim_g``) on every parameter, stepped on the sum of the output
loss and the Y loss. The lab (``Gen_Y_Share_train_tensorboard.py``) steps two RAdam optimizers in turn:
``optimizer_y`` on the Y path (Share network: encoder + SPP + decoder2 + post2) with the Y loss, then
``optimizer_net`` on the enhancement path (encoder + SPP + decoder + post + filter + guided_map) with the output
loss. Since the enhancer sees ``Y.detach()``, each parameter gets the same gradients either way. What differs: with
the Share network the shared encoder + SPP is in both optimizers, so it is updated twice per step, each time with
the Adam moments of one loss's gradients, instead of once with the moments of their sum. (Gen_Y_Backbone7x7's two
paths share nothing: both ways give the same updates.) ``optim_y`` selects the lab's way: ``optimizer_y`` on the Y
path's parameters, ``optimizer_g`` (``optim_g``) on the enhancement path's. Both gradients are taken at the
parameters before either step (two backward passes of one forward), then ``optimizer_y`` steps, then
``optimizer_g``. The lab's second backward ran after ``optimizer_y.step()``: its RAdam updated ``p.data`` in place
(invisible to autograd in PyTorch 1.x), so the output loss's backward through the shared encoder used the updated
weights with the activations of the old ones; today's PyTorch refuses a backward through weights changed in place.
The difference is of the order of one learning-rate step. One process only (not under torchrun: two backward
passes of one forward do not fit DistributedDataParallel).

The lab's 2-step training (``*_train_tensorboard_2steps.py``, the seed's commented-out rows) is two runs:
``gen_y_stage: y`` trains only the Y path, on the Y loss (the output loss is not computed); then, from its weights,
``gen_y_stage: output`` trains the enhancement path on the output loss with the Y path frozen (the lab's
Gen_Y_Backbone7x7 script), or, for the Share network, ``gen_y_stage: joint`` with ``optim_y`` at a constant 1e-6
(the lab's Gen_Y_Backbone7x7_Share script keeps stepping its Y optimizer at that rate).
"""
from collections import OrderedDict

import torch

from basicsr.losses import build_loss
from basicsr.models import lr_scheduler
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ..engine.basicsr.optimizers import AnyTorchOptimizerMixin
from .backbone7x7_arch import _GenYMixin
from .brightness import add_brightness_plane, brightness_for, luminance, parse_brightness_option
from .lab_metric import LAB_DIVISOR, LAB_METRICS

GEN_Y_STAGES = ('joint', 'y', 'output')
SCHEDULERS = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
              'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}


@MODEL_REGISTRY.register()
class LowLightModel(AnyTorchOptimizerMixin, SRModel):
    """SRModel whose network input is ``cat[lq, brightness plane]`` (N, 4, H, W); lq/gt RGB (N, 3, H, W) in [0, 1]."""

    def __init__(self, opt):
        name = opt.get('name', 'options')
        self.brightness = parse_brightness_option(opt.get('brightness'), f'{name}: brightness')
        val_opt = (opt.get('val') or {}).get('brightness')
        self.val_brightness = (parse_brightness_option(val_opt, f'{name}: val:brightness') if val_opt
                               else self.brightness)
        _check_lab_metric_padding(opt, name)
        self.optimizer_y = None
        super().__init__(opt)

    def init_training_settings(self):
        train_opt, name = self.opt['train'], self.opt['name']
        is_gen_y = isinstance(self.get_bare_model(self.net_g), _GenYMixin)
        if is_gen_y and not train_opt.get('y_opt'):
            raise ValueError(f"{name}: train:y_opt is required for {self.opt['network_g']['type']} "
                             '(the L1 loss on its predicted Y map, e.g. {type: L1Loss})')
        for key in ('y_opt', 'optim_y', 'scheduler_y', 'gen_y_stage'):
            if train_opt.get(key) and not is_gen_y:
                raise ValueError(f"{name}: train:{key} is only for Gen_Y networks, not {self.opt['network_g']['type']}")
        self.gen_y_stage = train_opt.get('gen_y_stage') or 'joint'
        if self.gen_y_stage not in GEN_Y_STAGES:
            raise ValueError(f'{name}: train:gen_y_stage must be one of {GEN_Y_STAGES}, got {self.gen_y_stage!r}')
        if train_opt.get('optim_y'):
            if self.gen_y_stage != 'joint':
                raise ValueError(f'{name}: train:optim_y trains the Y path alongside optim_g and needs gen_y_stage: '
                                 f'joint, got {self.gen_y_stage} (the Share network\'s 2-step second step: joint '
                                 'with optim_y at lr 1e-6)')
            if self.opt.get('dist'):
                raise ValueError(f"{name}: train:optim_y (the lab's two optimizers) runs in one process, not under "
                                 'torchrun; remove optim_y for the single-optimizer training')
        elif train_opt.get('scheduler_y'):
            raise ValueError(f'{name}: train:scheduler_y is the schedule of optim_y, which is not set')
        self.cri_y = build_loss(train_opt['y_opt']).to(self.device) if is_gen_y else None
        super().init_training_settings()  # losses, setup_optimizers, BasicSR's schedulers
        if train_opt.get('scheduler_y'):
            index = self.optimizers.index(self.optimizer_y)
            self.schedulers[index] = _build_scheduler(self.optimizer_y, train_opt['scheduler_y'],
                                                      f'{name}: train:scheduler_y')

    def setup_optimizers(self):
        """SRModel's one optimizer on every parameter, or for the Gen_Y variants ``optimizer_g`` on the path(s) the
        stage trains and, with ``optim_y``, ``optimizer_y`` on the Y path (``optimizers == [optimizer_g,
        optimizer_y]``: both saved in the training state and restored on resume, each with its scheduler)."""
        train_opt = self.opt['train']
        if self.cri_y is None or (self.gen_y_stage == 'joint' and not train_opt.get('optim_y')):
            return super().setup_optimizers()
        paths = self.get_bare_model(self.net_g).path_parameters()
        trained_path = 'y' if self.gen_y_stage == 'y' else 'output'
        self.optimizer_g = self._build_optimizer(train_opt['optim_g'], paths[trained_path])
        self.optimizers.append(self.optimizer_g)
        if train_opt.get('optim_y'):
            self.optimizer_y = self._build_optimizer(train_opt['optim_y'], paths['y'])
            self.optimizers.append(self.optimizer_y)
            in_y = {id(p) for p in paths['y']}
            self._shared = [p for p in paths['output'] if id(p) in in_y]
        trained = {id(p) for o in self.optimizers for group in o.param_groups for p in group['params']}
        frozen = sum(p.numel() for p in self.net_g.parameters() if id(p) not in trained)
        which = "optim_g and optim_y (the lab's two optimizers)" if self.optimizer_y else f'optim_g ({trained_path} path)'
        get_root_logger().info(f'Gen_Y stage {self.gen_y_stage}: {which}; {frozen:,} parameters not trained')

    def _build_optimizer(self, optim_opt, params):
        optim_opt = dict(optim_opt)
        return self.get_optimizer(optim_opt.pop('type'), params, **optim_opt)

    def _net_input(self, brightness_opt) -> torch.Tensor:
        return add_brightness_plane(self.lq, brightness_for(brightness_opt, self.lq, getattr(self, 'gt', None)))

    def optimize_parameters(self, current_iter):
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        aux, self.output = self.net_g(self._net_input(self.brightness), return_aux=True)
        loss_dict = OrderedDict()
        if self.gen_y_stage == 'y':  # the lab's 2-step, step 1: the Y path on the Y loss only
            loss_dict['l_y'] = self.cri_y(aux, luminance(self.gt))
            loss_dict['l_y'].backward()
            self.optimizer_g.step()
        else:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
            if self.cri_y is not None:
                loss_dict['l_y'] = self.cri_y(aux, luminance(self.gt))
            if self.optimizer_y is not None:
                self._step_two_optimizers(loss_dict['l_y'], loss_dict['l_pix'])
            else:
                l_total = loss_dict['l_pix']
                if self.cri_y is not None and self.gen_y_stage == 'joint':  # stage output: l_y logged only
                    l_total = l_total + loss_dict['l_y']
                l_total.backward()
                self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _step_two_optimizers(self, l_y: torch.Tensor, l_pix: torch.Tensor) -> None:
        """The lab's order: ``optimizer_y`` steps on the Y loss's gradients, then ``optimizer_g`` on the output
        loss's; a shared parameter holds each loss's gradient in turn (both taken before either step)."""
        l_y.backward()  # reaches the Y path only: the enhancer sees Y.detach()
        grads_y = [p.grad for p in self._shared]
        for p in self._shared:
            p.grad = None
        l_pix.backward()  # reaches the enhancement path only
        grads_out = [p.grad for p in self._shared]
        for p, grad in zip(self._shared, grads_y):
            p.grad = grad
        self.optimizer_y.step()
        for p, grad in zip(self._shared, grads_out):
            p.grad = grad
        self.optimizer_g.step()

    def test(self):
        net = getattr(self, 'net_g_ema', self.net_g)
        was_training = net.training
        net.eval()
        with torch.inference_mode():
            self.output = net(self._net_input(self.val_brightness))
        net.train(was_training and net is self.net_g)


def _build_scheduler(optimizer, sched_opt, where: str):
    """One of BasicSR's schedulers, as ``BaseModel.setup_schedulers`` builds them, for ``optimizer``."""
    sched_opt = dict(sched_opt)
    kind = sched_opt.pop('type', None)
    if kind not in SCHEDULERS:
        raise ValueError(f'{where}: type must be one of {sorted(SCHEDULERS)}, got {kind!r}')
    try:
        return SCHEDULERS[kind](optimizer, **sched_opt)
    except TypeError as err:
        raise ValueError(f'{where}: {err}') from None


def _check_lab_metric_padding(opt, name: str) -> None:
    """The lab's metrics (plugins/lowlight/lab_metric.py) compare the padded pair: every validation/test set must
    pad it (``pad_to_multiple`` equal to the metric's ``divisor``), so that the network predicts the padded strip
    as the lab's did."""
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for metric, mopt in metrics.items():
        if not isinstance(mopt, dict) or mopt.get('type') not in LAB_METRICS:
            continue
        divisor = mopt.get('divisor', LAB_DIVISOR)
        for phase, dataset in (opt.get('datasets') or {}).items():
            if str(phase).startswith('train') or not isinstance(dataset, dict):
                continue
            if dataset.get('pad_to_multiple') != divisor:
                raise ValueError(f"{name}: val:metrics:{metric} ({mopt['type']}) compares the pair padded as the "
                                 f"lab's evaluation: set datasets:{phase}:pad_to_multiple: {divisor} (got "
                                 f"{dataset.get('pad_to_multiple')!r})")
