"""Joint text SR + recognition model (seed 001), registered in BasicSR's ``MODEL_REGISTRY`` as ``TextSRModel``.

Networks (BasicSR options keys): ``network_g`` (TSRN), optional ``network_rec`` (CRNN) and ``network_bridge``
(TextBridge, for feature-level coupling). Top-level ``coupling``:

* ``image``: the recognizer reads the SR output (RGB -> gray 32x100), TextZoom's evaluation path; the CTC loss
  back-propagates into TSRN through the image (the seed's "图像层训练", with a pretrained recognizer).
* ``feature``: the recognizer's BiLSTM head reads TSRN features through a bridge head (the seed's "特征层训练":
  the recognizer is fine-tuned from the SR features).

``train:stage``: ``sr`` (TSRN alone: MSE + gradient prior; a recognizer, if any, only measures accuracy),
``rec`` (TSRN frozen, recognizer/bridge trained with CTC) or ``joint`` (both, losses combined by
``train:loss_weighting``: ``average`` or ``uncertainty`` = Kendall et al.'s learned weighting, with
``train:uncertainty_form``: ``kendall`` (default, eq. 10: ``0.5 exp(-s) L_sr + 0.5 s`` for the SR regression
term, ``exp(-s) L_rec + 0.5 s`` for recognition) or ``symmetric`` (``exp(-s) L + s`` for both, the first form)).
``train:rec_input``: ``sr`` (default) or ``hr``: the recognizer reads the HR images, to pretrain it in stage
``rec`` when no pretrained recognizer exists (the CPU demo on synthetic data).
``train:train_rec``: ``all`` | ``head`` | ``none``, the recognizer's trainable part (``head``: the seed's
retrained classification head). The recognizer checkpoint (``path:pretrain_network_rec``) is loaded with
``strict=False`` and a report (``path:rec_ckpt_prefix`` and ``path:rec_ignore_keys`` select what to take);
give ``path:strict_load_rec: false`` so the options check does not demand an exact match.

Validation (``split_validation.py``): PSNR/SSIM/accuracy per ``val_*`` data set, then a sample-weighted average
over all validation sets (TextZoom's E/M/H/A), and checkpoints ``net_*_best_acc.pth`` / ``net_*_best_psnr.pth``
when the figure over the sets improves (``val:best_by``: ``split_sum`` as TextZoom, or ``weighted_mean``).
"""
import os.path as osp
from collections import OrderedDict

import torch

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ..engine.basicsr.mixed_precision import unscale_gradients
from ..engine.basicsr.optimizers import AnyTorchOptimizerMixin
from .crnn_arch import load_recognizer, set_trainable
from .textsr_loss import TaskWeighting
from .labels import ctc_greedy_decode
from .split_validation import SplitValidationMixin

STAGES = ('sr', 'rec', 'joint')
COUPLINGS = ('image', 'feature')


def task_weight_log(weighting: TaskWeighting, device: torch.device) -> 'OrderedDict[str, torch.Tensor]':
    """``w_<task>``: each task's current weight as a 0-d tensor on ``device`` (the losses' device), for BasicSR's
    ``reduce_loss_dict``, which stacks the logged values and, under DDP, all-reduces them: a CPU tensor beside CUDA
    losses fails there. Read from ``s`` on the device, without a host sync."""
    weights = weighting.weight_factors().to(device)
    return OrderedDict((f'w_{task}', w) for task, w in zip(weighting.tasks, weights))


@MODEL_REGISTRY.register()
class TextSRModel(SplitValidationMixin, AnyTorchOptimizerMixin, SRModel):
    """TSRN with an optional CRNN recognizer, coupled at the image or at the feature level. See the module doc."""

    def __init__(self, opt):
        self.net_rec = self.net_bridge = None
        self.rec_input = 'sr'
        self._recognition_built = False
        self.coupling = opt.get('coupling', 'image')
        if self.coupling not in COUPLINGS:
            raise ValueError(f'coupling must be one of {list(COUPLINGS)}, got {self.coupling!r}')
        if self.coupling == 'feature' and 'network_bridge' not in opt:
            raise ValueError("coupling: feature needs a network_bridge (type: TextBridge, head: dense | mlp | "
                             "sidernn | sidernn+mlp)")
        super().__init__(opt)  # builds network_g, then init_training_settings() when training
        self._build_recognition()

    # ---------------------------------------------------------------- networks
    def _build_recognition(self):
        """Build and load the recognizer and the bridge (once; training needs them before the optimizer)."""
        if self._recognition_built:
            return
        self._recognition_built = True
        path_opt, logger = self.opt['path'], get_root_logger()
        train_opt = self.opt.get('train') or {}
        trainable = train_opt.get('train_rec', 'all') if self.is_train and train_opt.get('stage', 'joint') != 'sr' \
            else 'none'
        if 'network_rec' in self.opt:
            net = build_network(self.opt['network_rec'])
            if path_opt.get('pretrain_network_rec'):
                load_recognizer(net, path_opt['pretrain_network_rec'], path_opt.get('param_key_rec', 'auto'),
                                path_opt.get('rec_ckpt_prefix', ''), path_opt.get('rec_ignore_keys') or (), logger)
            set_trainable(net, trainable)  # before the (DDP) wrapper, which registers hooks on trainable tensors
            if self.coupling == 'feature':
                net.cnn.requires_grad_(False)  # never run: the bridge feeds the BiLSTM head (no unused DDP params)
            self.net_rec = self._to_device(net)
        if 'network_bridge' in self.opt:
            if self.net_rec is None:
                raise ValueError('network_bridge needs a network_rec (the recognizer whose head it feeds)')
            self.net_bridge = self._to_device(build_network(self.opt['network_bridge']))
            if path_opt.get('pretrain_network_bridge'):
                self.load_network(self.net_bridge, path_opt['pretrain_network_bridge'],
                                  path_opt.get('strict_load_bridge', True), path_opt.get('param_key_bridge', 'params'))
        self.rec_trainable = trainable

    def _to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """BasicSR's ``model_to_device`` (DDP under a distributed launcher) for a network with trainable
        parameters; a frozen one only moves to the device (DDP refuses a module with nothing to train)."""
        if any(p.requires_grad for p in net.parameters()):
            return self.model_to_device(net)
        return net.to(self.device)

    def _networks(self):
        return [n for n in (self.net_g, self.net_rec, self.net_bridge, getattr(self, 'weighting', None)) if n is not None]

    def _set_train_modes(self):
        """Train mode for what learns; eval (frozen BN statistics) for a frozen TSRN or recognizer backbone.

        A frozen recognizer that gradients still pass through (stage ``rec``/``joint``: into TSRN through the
        image, or into a trained head) keeps its LSTMs in train mode: cuDNN's RNN backward refuses eval mode
        ("cudnn RNN backward can only be called in training mode"), and CRNN's LSTMs have no dropout, so their
        train and eval forwards are the same."""
        self.net_g.train(self.stage != 'rec')
        if self.net_rec is not None:
            self.net_rec.train(self.stage != 'sr' and self.rec_trainable == 'all')
            if self.stage != 'sr':
                for module in self.net_rec.modules():
                    if isinstance(module, torch.nn.RNNBase) and not module.dropout:
                        module.train()
        if self.net_bridge is not None:
            self.net_bridge.train(self.stage != 'sr')

    # ---------------------------------------------------------------- training
    def init_training_settings(self):
        self._build_recognition()
        train_opt = self.opt['train']
        self.stage = train_opt.get('stage', 'joint')
        if self.stage not in STAGES:
            raise ValueError(f'train:stage must be one of {list(STAGES)}, got {self.stage!r}')
        if self.stage != 'sr' and self.net_rec is None:
            raise ValueError(f'train:stage {self.stage!r} trains the recognizer: add a network_rec (type: CRNN)')
        if train_opt.get('ema_decay', 0):
            raise ValueError('TextSRModel does not keep an EMA copy; remove train:ema_decay')
        self.ema_decay = 0
        self.cri_pix = None
        if self.stage != 'rec':
            if not train_opt.get('pixel_opt'):
                raise ValueError(f'train:stage {self.stage!r} needs train:pixel_opt (type: TSRNImageLoss)')
            self.cri_pix = build_loss(train_opt['pixel_opt']).to(self.device)
        self.cri_ctc = None
        if self.stage != 'sr':
            self.cri_ctc = build_loss(train_opt.get('ctc_opt') or {'type': 'TextCTCLoss'}).to(self.device)
        if self.stage == 'rec':
            for p in self.net_g.parameters():
                p.requires_grad_(False)
        self.weighting = TaskWeighting(train_opt.get('loss_weighting', 'average'), ('sr', 'rec'),
                                       form=train_opt.get('uncertainty_form', 'kendall'),
                                       regression=('sr', )).to(self.device)
        self._load_weighting()
        self.grad_clip = train_opt.get('grad_clip')
        self.rec_input = train_opt.get('rec_input', 'sr')
        if self.rec_input not in ('sr', 'hr') or (self.rec_input == 'hr' and self.coupling != 'image'):
            raise ValueError(f"train:rec_input must be 'sr', or 'hr' with coupling: image (pretraining the "
                             f'recognizer on HR images), got {self.rec_input!r} with coupling {self.coupling!r}')
        self._set_train_modes()
        self.setup_optimizers()
        self.setup_schedulers()

    def _load_weighting(self):
        """Restore the learned ``s`` of uncertainty weighting: from ``path:pretrain_network_weighting``, or on
        resume from ``net_weighting_<iter>.pth`` next to the other checkpoints (BasicSR's resume only restores
        the ``network_*`` entries of the options)."""
        if self.weighting.mode != 'uncertainty':
            return
        path = self.opt['path'].get('pretrain_network_weighting')
        resume = self.opt['path'].get('resume_state')
        if resume:
            saved = osp.join(self.opt['path']['models'], f'net_weighting_{osp.splitext(osp.basename(resume))[0]}.pth')
            path = saved if osp.isfile(saved) else path
        if path:
            self.load_network(self.weighting, path, True, 'params')

    def setup_optimizers(self):
        train_opt = self.opt['train']
        params = [p for net in self._networks() for p in net.parameters() if p.requires_grad]
        optim_type = train_opt['optim_g'].pop('type')
        self.optimizer_g = self.get_optimizer(optim_type, params, **train_opt['optim_g'])
        self.optimizers.append(self.optimizer_g)

    def feed_data(self, data):
        super().feed_data(data)
        self.label = list(data['label']) if 'label' in data else None

    def _recognize(self, sr: torch.Tensor, feat: torch.Tensor, bare: bool = False) -> torch.Tensor:
        """CTC scores ``(T, N, 37)`` from the SR image ``(N, C, H, W)`` in [0, 1] (image coupling) or the SR
        features ``(N, num_feat, h, w)`` (feature coupling). ``bare``: call the networks outside their DDP
        wrappers (inference; see ``test``)."""
        rec = self.get_bare_model(self.net_rec) if bare else self.net_rec
        if self.coupling == 'feature':
            bridge = self.get_bare_model(self.net_bridge) if bare else self.net_bridge
            return rec(seq=bridge(feat))
        return rec(sr)

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        with torch.set_grad_enabled(self.stage != 'rec'):
            self.output, feat = self.net_g(self.lq, return_features=True)
        losses = OrderedDict()
        if self.cri_pix is not None:
            losses['sr'] = self.cri_pix(self.output, self.gt)
        if self.cri_ctc is not None:
            image = self.gt if self.rec_input == 'hr' else self.output
            losses['rec'] = self.cri_ctc(self._recognize(image, feat), self.label)
        total = self.weighting(losses) if len(losses) > 1 else next(iter(losses.values()))
        total.backward()
        self.weighting.average_gradients_across_ranks()  # not a DDP module: its s would drift apart per rank
        if self.grad_clip:
            unscale_gradients(self, self.optimizer_g)  # fp16 loss scaling: clip the true gradients
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer_g.param_groups for p in g['params']],
                                           self.grad_clip)
        self.optimizer_g.step()
        log = OrderedDict((f'l_{k}', v.detach()) for k, v in losses.items())
        log['l_total'] = total.detach()
        if len(losses) > 1:
            log.update(task_weight_log(self.weighting, total.device))
        self.log_dict = self.reduce_loss_dict(log)

    # ---------------------------------------------------------------- inference
    def test(self):
        """``self.output`` (SR ``(N, C, scale*h, scale*w)``, tanh range) and, with a recognizer, ``self.pred``
        (greedy CTC strings). Runs the bare networks: under DDP only rank 0 validates, and a DDP forward of a
        network with BatchNorm would start a buffer broadcast that the other ranks never join."""
        for net in self._networks():
            net.eval()
        with torch.no_grad():
            self.output, feat = self.get_bare_model(self.net_g)(self.lq, return_features=True)
            # A recognizer pretrained on HR images (train:rec_input hr) is validated on the HR images too.
            image = self.gt if self.is_train and self.rec_input == 'hr' and hasattr(self, 'gt') else self.output
            self.pred = ctc_greedy_decode(self._recognize(image, feat, bare=True)) if self.net_rec is not None \
                else None
        if self.is_train:
            self._set_train_modes()

    def save_networks(self, label):
        """Save every network as ``net_<g|rec|bridge|weighting>_<label>.pth``."""
        for net, name in ((self.net_g, 'g'), (self.net_rec, 'rec'), (self.net_bridge, 'bridge'),
                          (getattr(self, 'weighting', None), 'weighting')):
            if net is not None and (name != 'weighting' or net.mode == 'uncertainty'):
                self.save_network(net, f'net_{name}', label)

    def save(self, epoch, current_iter):
        self.save_networks(current_iter)
        self.save_training_state(epoch, current_iter)
