"""Training models (MMagic's ``OneStageInpaintor`` subclasses): the base encoder-decoder and PD-GAN.

Both take MMagic's inpainting batches: ``inputs`` = masked image, ``data_samples.gt_img`` and ``.mask`` (1 = hole),
images normalised to [-1, 1] by ``DataPreprocessor(mean=127.5, std=127.5)``. Generator and discriminator have
their own optimizers (``optim_wrapper.generator`` / ``optim_wrapper.disc``); the generator's exponential moving
average (mmengine's ``ExponentialMovingAverage``) is kept in ``generator_ema`` and used at validation and test.

The training steps go through the optimizer wrappers as mmengine's own models do: each forward inside the wrapper's
``optim_context`` (autocast under ``tools/train.py --amp``) and each backward and step through ``update_params``
(the loss scaler's under float16 ``--amp``). MMagic 1.2.0's ``OneStageInpaintor.train_step`` calls
``loss.backward()`` and ``optimizer.step()`` itself, which a loss scaler cannot follow: it is replaced here.
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


def _add_losses(total: Dict[str, torch.Tensor], losses: Dict[str, torch.Tensor]) -> None:
    """Add ``losses`` into ``total`` term by term (a term new to ``total`` is added as it is)."""
    for key, value in losses.items():
        total[key] = total[key] + value if key in total else value


DISC_INPUTS = ('composite', 'raw')


@MODELS.register_module()
class EncDecInpaintor(OneStageInpaintor):
    """MMagic's one-stage inpaintor with two additions of the seed: a whole-image reconstruction loss on the raw
    output (``loss_rec``, e.g. MS-SSIM + L1) and a single-tensor perceptual loss (``loss_percep``, VGG16 from a
    local file); plus the generator EMA, and PD-GAN's discriminator interface: a discriminator that takes the mask
    (``takes_mask``, :class:`~plugins.inpaint.discriminator_arch.PDGANDiscriminator`) gets it, one that returns a
    list per scale gets its GAN loss averaged over the scales (on each scale's last output, the logits), and
    ``loss_disc_feat`` adds the feature-matching loss on its other outputs.

    Args (beyond ``OneStageInpaintor``'s ``encdec``, ``disc``, ``loss_gan``, ``loss_l1_hole``, ``loss_l1_valid``,
    ``loss_tv``, ``train_cfg``, ...):
        loss_rec: loss(pred, target) on the raw output, e.g. ``dict(type='MSSSIML1Loss', alpha=0.84)``.
        loss_percep: loss(pred, target) on the raw output, e.g. ``dict(type='VGG16PerceptualLoss', vgg_path=...)``.
        loss_disc_feat: ``dict(type='DiscFeatureMatchingLoss', loss_weight=10.)`` (PD-GAN's), with a
            discriminator that returns its layer outputs.
        disc_input: what the discriminator judges as the fake: 'composite' (the completion with the known pixels
            restored, MMagic's and our default) or 'raw' (the generator's output as it is, PD-GAN's).
        ema_cfg: kwargs of mmengine's ExponentialMovingAverage (e.g. ``dict(momentum=0.001)``); None: no EMA.
    """

    def __init__(self, *args, loss_rec: Optional[dict] = None, loss_percep: Optional[dict] = None,
                 loss_disc_feat: Optional[dict] = None, disc_input: str = 'composite',
                 ema_cfg: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if disc_input not in DISC_INPUTS:
            raise ValueError(f'{type(self).__name__}: disc_input={disc_input!r}, expected one of {DISC_INPUTS}')
        self.disc_input = disc_input
        self.loss_rec = MODELS.build(loss_rec) if loss_rec else None
        self.loss_vgg = MODELS.build(loss_percep) if loss_percep else None
        self.loss_disc_feat = MODELS.build(loss_disc_feat) if loss_disc_feat else None
        if self.loss_disc_feat is not None and not self.with_gan:
            raise ValueError(f'{type(self).__name__}: loss_disc_feat needs a discriminator (disc and loss_gan)')
        if self.with_gan and self.with_gp_loss and getattr(self.disc, 'takes_mask', False):
            raise ValueError(f'{type(self).__name__}: loss_gp calls the discriminator on the image alone; '
                             f'{type(self.disc).__name__} takes the mask too')
        self.generator_ema = ExponentialMovingAverage(self.generator, **ema_cfg) if ema_cfg else None

    # -- discriminator ---------------------------------------------------------------------------------------
    def discriminate(self, img: torch.Tensor, mask: torch.Tensor):
        """The discriminator on ``img`` (N, 3, H, W), with ``mask`` (N, 1, H, W) when it takes the mask."""
        return self.disc(img, mask) if getattr(_unwrap(self.disc), 'takes_mask', False) else self.disc(img)

    def adversarial_loss(self, pred, is_real: bool, is_disc: bool) -> torch.Tensor:
        """``loss_gan`` on a discriminator output: a tensor as it is; a list per scale (each a tensor or a list of
        layer outputs ending with the logits) as PD-GAN's GANLoss: the mean over the scales of each scale's loss."""
        if isinstance(pred, (list, tuple)):
            losses = [self.loss_gan(p[-1] if isinstance(p, (list, tuple)) else p, is_real, is_disc) for p in pred]
            return sum(losses) / len(losses)
        return self.loss_gan(pred, is_real, is_disc)

    def forward_train_d(self, data_batch: torch.Tensor, is_real: bool, is_disc: bool,
                        mask: Optional[torch.Tensor] = None) -> dict:
        """MMagic's ``forward_train_d`` (``real_loss`` / ``fake_loss``, the shift loss when configured) through
        :meth:`discriminate` and :meth:`adversarial_loss`."""
        loss_ = self.adversarial_loss(self.discriminate(data_batch, mask), is_real, is_disc)
        loss = dict(real_loss=loss_) if is_real else dict(fake_loss=loss_)
        if self.with_disc_shift_loss:
            loss.update(loss_disc_shift=self.loss_disc_shift(loss_) * 0.5)  # 0.5: the average of fake and real
        return loss

    def disc_fake(self, fake_res: torch.Tensor, fake_img: torch.Tensor) -> torch.Tensor:
        """The image the discriminator judges as the fake (``disc_input``): the composite or the raw output."""
        return fake_res if self.disc_input == 'raw' else fake_img

    # -- training --------------------------------------------------------------------------------------------
    def train_step(self, data: List[dict], optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """MMagic's one-stage step: the generator's completion, a discriminator step on it and the real images, a
        generator step every ``train_cfg.disc_step`` discriminator steps (then the EMA update). Returns the log
        variables (``loss`` is the generator's, as in MMagic's logs)."""
        data = self.data_preprocessor(data, True)
        masked_img, samples = data['inputs'], data['data_samples']
        gt, mask = samples.gt_img, samples.mask.float()
        generator_wrapper = optim_wrapper['generator']
        with generator_wrapper.optim_context(self.generator):
            fake_res = self.generator(torch.cat([masked_img, mask], dim=1))
        fake_img = gt * (1. - mask) + fake_res * mask
        log_vars = {}
        if self.with_gan and self.train_cfg.disc_step > 0:
            log_vars.update(self.discriminator_step([self.disc_fake(fake_res, fake_img)], gt, mask,
                                                    optim_wrapper['disc']))
            self.disc_step_count = (self.disc_step_count + 1) % self.train_cfg.disc_step
            if self.disc_step_count != 0:
                return log_vars
        if self.with_gan:  # no discriminator gradients from the generator's adversarial loss
            set_requires_grad(self.disc, False)
        with generator_wrapper.optim_context(self.generator):
            _, losses = self.generator_loss(fake_res, fake_img, gt, mask, masked_img)
        log_vars.update(self.generator_step(losses, generator_wrapper))
        return log_vars

    def discriminator_step(self, fakes: List[torch.Tensor], gt: torch.Tensor, mask: torch.Tensor,
                           optim_wrapper, real_weight: float = 1.) -> Dict[str, torch.Tensor]:
        """One step of the discriminator on completions ``fakes`` (each (N, 3, H, W), detached here; their
        ``fake_loss`` terms summed) and the real images ``gt`` (``real_loss`` times ``real_weight``), plus MMagic's
        gradient penalty and shift losses when configured. Returns the log variables."""
        set_requires_grad(self.disc, True)
        losses = {}
        with optim_wrapper.optim_context(self.disc):
            for fake in fakes:
                _add_losses(losses, self.forward_train_d(fake.detach(), False, is_disc=True, mask=mask))
            real = self.forward_train_d(gt, True, is_disc=True, mask=mask)
            _add_losses(losses, {k: v * real_weight for k, v in real.items()} if real_weight != 1 else real)
            if self.with_gp_loss:
                losses['loss_gp'] = self.loss_gp(self.disc, gt, fakes[0].detach(), mask=mask)
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def generator_step(self, losses: Dict[str, torch.Tensor], optim_wrapper) -> Dict[str, torch.Tensor]:
        """Backward and step of the generator on the sum of ``losses``, then the EMA update; the log variables."""
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        self.update_ema()
        return log_vars

    def update_ema(self) -> None:
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(_unwrap(self.generator))

    def generator_loss(self, fake_res, fake_img, gt, mask, masked_img) -> Tuple[dict, dict]:
        """The generator's losses, named as MMagic's ``OneStageInpaintor.generator_loss`` names them (GAN, L1 on
        the hole and on the known region, perceptual/style on the composite and on the raw output, TV), plus
        ``loss_rec``, ``loss_percep`` and ``loss_disc_feat``. fake_res: raw output, fake_img: composite, gt,
        masked_img: (N, 3, H, W) in [-1, 1]; mask (N, 1, H, W), 1 = hole.

        Returns (images, losses). MMagic's version returns CPU copies of the four images for visualisation, which
        no caller reads: four device-to-host copies, each a host sync, per step. Here the images are returned as
        they are; the losses are computed as MMagic computes them."""
        loss = {}
        if self.with_gan:
            pred_fake = self.discriminate(self.disc_fake(fake_res, fake_img), mask)
            loss['loss_g_fake'] = self.adversarial_loss(pred_fake, True, is_disc=False)
            if self.loss_disc_feat is not None:
                with torch.no_grad():
                    pred_real = self.discriminate(gt, mask)
                loss['loss_disc_feat'] = self.loss_disc_feat(pred_fake, pred_real)
        if self.with_l1_hole_loss:
            loss['loss_l1_hole'] = self.loss_l1_hole(fake_res, gt, weight=mask)
        if self.with_l1_valid_loss:
            loss['loss_l1_valid'] = self.loss_l1_valid(fake_res, gt, weight=1. - mask)
        for name, image, wanted in (('composed', fake_img, self.with_composed_percep_loss),
                                    ('out', fake_res, self.with_out_percep_loss)):
            if wanted:
                percep, style = self.loss_percep(image, gt)
                if percep is not None:
                    loss[f'loss_{name}_percep'] = percep
                if style is not None:
                    loss[f'loss_{name}_style'] = style
        if self.with_tv_loss:
            loss['loss_tv'] = self.loss_tv(fake_img, mask=mask)
        if self.loss_rec is not None:
            loss['loss_rec'] = self.loss_rec(fake_res, gt)
        if self.loss_vgg is not None:
            loss['loss_percep'] = self.loss_vgg(fake_res, gt)
        return dict(gt_img=gt, masked_img=masked_img, fake_res=fake_res, fake_img=fake_img), loss

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
        prior: dict(generator=<config of the base generator>, checkpoint=<.pth or work dir of its training>,
            composite=False). ``composite``: condition SPDNorm on the prior's completion with the known pixels
            restored (True) or on its raw output (False, PD-GAN's: ``pre_image`` is the PConv decoder's output).
        loss_diversity: ``dict(type='InpaintDiversityLoss', ...)`` between the two samples (PD-GAN's).
        real_loss_per_sample: the discriminator's real term once per noise sample (True, PD-GAN's: it discriminates
            [fake_A, real] and [fake_B, real], so the real images count twice) or once (False, our default: the
            real and fake terms then weigh 1 : 2).
        test_cfg: may hold ``noise_seed`` (int) so validation draws the same noise every time.
    """

    def __init__(self, *args, prior: dict, loss_diversity: Optional[dict] = None, real_loss_per_sample: bool = False,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(prior, dict) or 'generator' not in prior:
            raise ValueError("PDGANInpaintor: prior must be dict(generator=..., checkpoint='...pth or work dir')")
        unknown = set(prior) - {'generator', 'checkpoint', 'composite'}
        if unknown:
            raise ValueError(f'PDGANInpaintor: prior has unknown keys {sorted(unknown)}, expected generator, '
                             'checkpoint, composite')
        self.prior_composite = bool(prior.get('composite', False))
        self.real_loss_per_sample = real_loss_per_sample
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
        """The prior's output (N, 3, H, W) in [-1, 1]: raw (PD-GAN's) or with the known pixels restored
        (``prior.composite``)."""
        raw = self.prior(torch.cat([masked_img, mask], dim=1))
        return raw * mask + masked_img * (1. - mask) if self.prior_composite else raw

    def sample_noise(self, n: int, device, seed: Optional[int] = None) -> torch.Tensor:
        """(n, z_dim) standard normal noise, drawn on ``device`` by that device's generator (torch's global one of
        the device, or a fresh one seeded with ``seed``)."""
        device = torch.device(device)
        gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        return torch.randn(n, _unwrap(self.generator).z_dim, generator=gen, device=device)

    def inpaint(self, masked_img: torch.Tensor, mask: torch.Tensor,
                noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """One completion per noise row (drawn when None). Returns (raw output, composite)."""
        check_image_and_mask(masked_img, mask)
        if noise is None:
            noise = self.sample_noise(masked_img.shape[0], masked_img.device, (self.test_cfg or {}).get('noise_seed'))
        raw = self.inference_generator()(noise, self.prior_image(masked_img, mask), mask)
        return raw, raw * mask + masked_img * (1. - mask)

    def train_step(self, data: List[dict], optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """PD-GAN's step: the prior's completion, two noise vectors per image through the generator (one batch), a
        discriminator step on both completions and the real images, then a generator step on both completions'
        losses plus the diversity loss between them (and the EMA update)."""
        data = self.data_preprocessor(data, True)
        masked_img, samples = data['inputs'], data['data_samples']
        gt, mask = samples.gt_img, samples.mask.float()
        n = gt.shape[0]
        generator_wrapper = optim_wrapper['generator']
        with generator_wrapper.optim_context(self.generator):
            prior = self.prior_image(masked_img, mask)
            noise = self.sample_noise(2 * n, gt.device)  # z_A and z_B of PD-GAN, one batch through the generator
            raw = self.generator(noise, prior.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1, 1))
        raws = raw.split(n)
        fakes = [r * mask + gt * (1. - mask) for r in raws]
        log_vars = {}
        if self.with_gan and self.train_cfg.disc_step > 0:
            log_vars.update(self.discriminator_step(
                [self.disc_fake(r, f) for r, f in zip(raws, fakes)], gt, mask, optim_wrapper['disc'],
                real_weight=len(raws) if self.real_loss_per_sample else 1.))
        if self.with_gan:  # no discriminator gradients from the generator's adversarial loss
            set_requires_grad(self.disc, False)
        losses = {}
        with generator_wrapper.optim_context(self.generator):
            for raw_k, fake_k in zip(raws, fakes):
                _add_losses(losses, self.generator_loss(raw_k, fake_k, gt, mask, masked_img)[1])
            if self.loss_diversity is not None:
                losses['loss_diversity'] = self.loss_diversity(raws[0], raws[1], mask)
        log_vars.update(self.generator_step(losses, generator_wrapper))
        return log_vars

    def forward_tensor(self, inputs: torch.Tensor, data_samples) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.inpaint(inputs, data_samples.mask.float())
