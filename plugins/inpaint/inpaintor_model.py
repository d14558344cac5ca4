"""Training models (MMagic's ``OneStageInpaintor`` subclasses): the base encoder-decoder and PD-GAN.

Both take MMagic's inpainting batches: ``inputs`` = masked image, ``data_samples.gt_img`` and ``.mask`` (1 = hole),
images normalised to [-1, 1] by ``DataPreprocessor(mean=127.5, std=127.5)``. Generator and discriminator have
their own optimizers (``optim_wrapper.generator`` / ``optim_wrapper.disc``); the generator's exponential moving
average (mmengine's ``ExponentialMovingAverage``) is kept in ``generator_ema`` and used at validation and test.
"""
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import ExponentialMovingAverage, is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmagic.models.base_models import OneStageInpaintor
from mmagic.models.utils import set_requires_grad
from mmagic.registry import MODELS


def check_image_and_mask(img: torch.Tensor, mask: torch.Tensor, what: str = 'image') -> None:
    """Fail early on a mask that does not fit the image: (N, C, H, W) and (N, 1, H, W), mask values 0/1."""
    if img.dim() != 4 or mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f'expected {what} (N, C, H, W) and mask (N, 1, H, W), got {tuple(img.shape)} and '
                         f'{tuple(mask.shape)}')
    if mask.shape[0] != img.shape[0] or mask.shape[2:] != img.shape[2:]:
        raise ValueError(f'mask of size {tuple(mask.shape[2:])} does not match the {what} of size '
                         f'{tuple(img.shape[2:])} (batch {mask.shape[0]} vs {img.shape[0]})')
    if not torch.all((mask == 0) | (mask == 1)):
        raise ValueError('mask is not binary: expected 0 (known) and 1 (hole); binarise it first '
                         '(plugins.inpaint.mask_transform.binarize_mask, threshold 127 on 0-255 masks)')


def _unwrap(module):
    return module.module if is_model_wrapper(module) else module


@MODELS.register_module()
class EncDecInpaintor(OneStageInpaintor):
    """MMagic's one-stage inpaintor with two additions of the seed: a whole-image reconstruction loss on the raw
    output (``loss_rec``, e.g. MS-SSIM + L1) and a single-tensor perceptual loss (``loss_percep``, VGG16 from a
    local file); plus the generator EMA.

    Args (beyond ``OneStageInpaintor``'s ``encdec``, ``disc``, ``loss_gan``, ``loss_l1_hole``, ``loss_l1_valid``,
    ``loss_tv``, ``train_cfg``, ...):
        loss_rec: loss(pred, target) on the raw output, e.g. ``dict(type='MSSSIML1Loss', alpha=0.84)``.
        loss_percep: loss(pred, target) on the raw output, e.g. ``dict(type='VGG16PerceptualLoss', vgg_path=...)``.
        ema_cfg: kwargs of mmengine's ExponentialMovingAverage (e.g. ``dict(momentum=0.001)``); None: no EMA.
    """

    def __init__(self, *args, loss_rec: Optional[dict] = None, loss_percep: Optional[dict] = None,
                 ema_cfg: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_rec = MODELS.build(loss_rec) if loss_rec else None
        self.loss_vgg = MODELS.build(loss_percep) if loss_percep else None
        self.generator_ema = ExponentialMovingAverage(self.generator, **ema_cfg) if ema_cfg else None

    # -- training --------------------------------------------------------------------------------------------
    def train_step(self, data: List[dict], optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        log_vars = super().train_step(data, optim_wrapper)
        self.update_ema()
        return log_vars

    def update_ema(self) -> None:
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(_unwrap(self.generator))

    def generator_loss(self, fake_res, fake_img, gt, mask, masked_img) -> Tuple[dict, dict]:
        """MMagic's generator losses (GAN, L1 hole/valid, TV) plus ``loss_rec`` and ``loss_percep``."""
        res, loss = super().generator_loss(fake_res, fake_img, gt, mask, masked_img)
        if self.loss_rec is not None:
            loss['loss_rec'] = self.loss_rec(fake_res, gt)
        if self.loss_vgg is not None:
            loss['loss_percep'] = self.loss_vgg(fake_res, gt)
        return res, loss

    # -- inference ---------------------------------------------------------------------------------------------
    def inference_generator(self) -> torch.nn.Module:
        """The EMA generator outside training (when kept), else the trained one."""
        if self.generator_ema is not None and not self.training:
            return self.generator_ema.module
        return _unwrap(self.generator)

    def inpaint(self, masked_img: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """masked_img (N, 3, H, W) in [-1, 1]; mask (N, 1, H, W), 1 = hole.
        Returns (raw output, composite): the composite keeps the known pixels of ``masked_img`` exactly."""
        check_image_and_mask(masked_img, mask)
        raw = self.inference_generator()(torch.cat([masked_img, mask], dim=1))
        return raw, raw * mask + masked_img * (1. - mask)

    def forward_tensor(self, inputs: torch.Tensor, data_samples) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.inpaint(inputs, data_samples.mask.float())


def resolve_checkpoint(path: str, option: str = 'prior.checkpoint') -> str:
    """A checkpoint file, or an mmengine work dir (its ``last_checkpoint``); a clear error when missing."""
    hint = ('train the base model first (python tools/train.py options/mmagic/inpaint/base_demo.py) and give '
            'its .pth or its work dir')
    if not path:
        raise FileNotFoundError(f'{option} is not set: {hint}')
    if osp.isdir(path):
        pointer = osp.join(path, 'last_checkpoint')
        if not osp.isfile(pointer):
            raise FileNotFoundError(f'{option} {path!r} is a directory without last_checkpoint: {hint}')
        with open(pointer) as f:
            path = f.read().strip()
    if not osp.isfile(path):
        raise FileNotFoundError(f'{option} {path!r} not found: {hint}')
    return path


def load_generator_weights(generator: torch.nn.Module, path: str, option: str = 'prior.checkpoint') -> str:
    """Load an inpainting generator from an mmengine checkpoint of ``EncDecInpaintor`` (the EMA weights when
    present, else ``generator.*``) or from a bare state dict. Returns which weights were used."""
    path = resolve_checkpoint(path, option)
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt)
    for prefix in ('generator_ema.module.', 'generator.'):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            generator.load_state_dict(sub)
            return f'{path} ({prefix[:-1]})'
    try:
        generator.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f'{option} {path!r} holds no weights for {type(generator).__name__}: {err}') from err
    return path


@MODELS.register_module()
class PDGANInpaintor(EncDecInpaintor):
    """PD-GAN training: a frozen prior generator gives a coarse completion, the SPDNorm generator turns two noise
    vectors into two completions, trained with GAN + reconstruction/perceptual + hole TV + diversity losses.

    Args (beyond :class:`EncDecInpaintor`'s; ``encdec`` is an ``SPDNormGenerator``):
        prior: dict(generator=<config of the base generator>, checkpoint=<.pth or work dir of its training>).
        loss_diversity: ``dict(type='InpaintDiversityLoss', ...)`` between the two samples (PD-GAN's).
        test_cfg: may hold ``noise_seed`` (int) so validation draws the same noise every time.
    """

    def __init__(self, *args, prior: dict, loss_diversity: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(prior, dict) or 'generator' not in prior:
            raise ValueError("PDGANInpaintor: prior must be dict(generator=..., checkpoint='...pth or work dir')")
        self.prior = MODELS.build(prior['generator'])
        self.prior_source = load_generator_weights(self.prior, prior.get('checkpoint'))
        print_log(f'PD-GAN prior weights: {self.prior_source}', 'current')
        self.prior.eval().requires_grad_(False)
        self.loss_diversity = MODELS.build(loss_diversity) if loss_diversity else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.prior.eval()  # frozen, BatchNorm statistics included
        return self

    @torch.no_grad()
    def prior_image(self, masked_img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The prior's completion, known pixels restored: (N, 3, H, W) in [-1, 1]."""
        raw = self.prior(torch.cat([masked_img, mask], dim=1))
        return raw * mask + masked_img * (1. - mask)

    def sample_noise(self, n: int, device, seed: Optional[int] = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, _unwrap(self.generator).z_dim, generator=gen).to(device)

    def inpaint(self, masked_img: torch.Tensor, mask: torch.Tensor,
                noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """One completion per noise row (drawn when None). Returns (raw output, composite)."""
        check_image_and_mask(masked_img, mask)
        if noise is None:
            noise = self.sample_noise(masked_img.shape[0], masked_img.device, (self.test_cfg or {}).get('noise_seed'))
        raw = self.inference_generator()(noise, self.prior_image(masked_img, mask), mask)
        return raw, raw * mask + masked_img * (1. - mask)

    def train_step(self, data: List[dict], optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        data = self.data_preprocessor(data, True)
        masked_img, samples = data['inputs'], data['data_samples']
        gt, mask = samples.gt_img, samples.mask.float()
        n = gt.shape[0]
        prior = self.prior_image(masked_img, mask)
        noise = self.sample_noise(2 * n, gt.device)  # z_A and z_B of PD-GAN, one batch through the generator
        raw = self.generator(noise, prior.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1, 1))
        raws = raw.split(n)
        fakes = [r * mask + gt * (1. - mask) for r in raws]
        log_vars = {}

        if self.with_gan and self.train_cfg.disc_step > 0:
            set_requires_grad(self.disc, True)
            optim_wrapper['disc'].zero_grad()
            for batch, is_real in [(f.detach(), False) for f in fakes] + [(gt, True)]:
                loss_d, log_d = self.parse_losses(self.forward_train_d(batch, is_real, is_disc=True))
                loss_d.backward()
                for key, value in log_d.items():
                    log_vars[key] = log_vars.get(key, 0) + value
            optim_wrapper['disc'].step()
            set_requires_grad(self.disc, False)

        losses = {}
        for raw_k, fake_k in zip(raws, fakes):
            _, loss_k = self.generator_loss(raw_k, fake_k, gt, mask, masked_img)
            for key, value in loss_k.items():
                losses[key] = losses.get(key, 0) + value
        if self.loss_diversity is not None:
            losses['loss_diversity'] = self.loss_diversity(raws[0], raws[1], mask)
        loss_g, log_g = self.parse_losses(losses)
        optim_wrapper['generator'].zero_grad()
        loss_g.backward()
        optim_wrapper['generator'].step()
        self.update_ema()
        log_vars.update(log_g)
        return log_vars

    def forward_tensor(self, inputs: torch.Tensor, data_samples) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.inpaint(inputs, data_samples.mask.float())
