"""Training model of the low-light line: BasicSR's SRModel with the brightness plane, the Gen_Y brightness loss and
any ``torch.optim`` optimizer (RAdam for the seed).

Options beyond SRModel's (see options/train/lowlight/*.yml):

    brightness: {mode: gt | imagenet | target, value: 0.5}   # 4th input plane in training (default gt)
    val:
      brightness: {mode: imagenet}       # optional: another plane at validation (the seed's "train GT, infer
                                         # ImageNet" row); default: the training one
    train:
      optim_g: {type: RAdam, lr: 4e-4}   # any torch.optim class by name (BasicSR 1.4.2 builds only Adam)
      pixel_opt: {type: L1SSIMLoss}      # on the full-resolution output
      y_opt: {type: L1Loss}              # Gen_Y networks only: L1 between the predicted Y map and the GT's Y

Gen_Y: the lab steps two RAdam optimizers (Y head + shared parts on the Y loss; enhancer + shared parts on the
output loss). Since the enhancer sees ``Y.detach()``, one optimizer on the sum of both losses gives the same
gradients; only the Adam moments of the shared encoder differ (one set instead of two).
"""
from collections import OrderedDict

import torch

from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from ..engine.basicsr.optimizers import AnyTorchOptimizerMixin
from .backbone7x7_arch import _GenYMixin
from .brightness import add_brightness_plane, brightness_for, luminance, parse_brightness_option


@MODEL_REGISTRY.register()
class LowLightModel(AnyTorchOptimizerMixin, SRModel):
    """SRModel whose network input is ``cat[lq, brightness plane]`` (N, 4, H, W); lq/gt RGB (N, 3, H, W) in [0, 1]."""

    def __init__(self, opt):
        name = opt.get('name', 'options')
        self.brightness = parse_brightness_option(opt.get('brightness'), f'{name}: brightness')
        val_opt = (opt.get('val') or {}).get('brightness')
        self.val_brightness = (parse_brightness_option(val_opt, f'{name}: val:brightness') if val_opt
                               else self.brightness)
        super().__init__(opt)

    def init_training_settings(self):
        super().init_training_settings()
        train_opt = self.opt['train']
        is_gen_y = isinstance(self.get_bare_model(self.net_g), _GenYMixin)
        if is_gen_y and not train_opt.get('y_opt'):
            raise ValueError(f"{self.opt['name']}: train:y_opt is required for {self.opt['network_g']['type']} "
                             '(the L1 loss on its predicted Y map, e.g. {type: L1Loss})')
        if train_opt.get('y_opt') and not is_gen_y:
            raise ValueError(f"{self.opt['name']}: train:y_opt is only for Gen_Y networks, not "
                             f"{self.opt['network_g']['type']}")
        self.cri_y = build_loss(train_opt['y_opt']).to(self.device) if is_gen_y else None

    def _net_input(self, brightness_opt) -> torch.Tensor:
        return add_brightness_plane(self.lq, brightness_for(brightness_opt, self.lq, getattr(self, 'gt', None)))

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        aux, self.output = self.net_g(self._net_input(self.brightness), return_aux=True)
        loss_dict = OrderedDict()
        l_total = loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_y is not None:
            loss_dict['l_y'] = self.cri_y(aux, luminance(self.gt))
            l_total = l_total + loss_dict['l_y']
        l_total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self):
        net = getattr(self, 'net_g_ema', self.net_g)
        was_training = net.training
        net.eval()
        with torch.inference_mode():
            self.output = net(self._net_input(self.val_brightness))
        net.train(was_training and net is self.net_g)
