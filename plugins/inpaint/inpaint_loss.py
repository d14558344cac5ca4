"""Losses of the inpainting line, registered in MMagic's MODELS: MS-SSIM + L1 (Zhao et al.), the hole TV loss of
PD-GAN, a local-weights VGG16 perceptual loss, PD-GAN's diversity loss and its discriminator feature-matching loss.
The adversarial losses (LSGAN, hinge) are MMagic's ``GANLoss``.

Images are (N, 3, H, W) in [-1, 1]; masks (N, 1, H, W) with 1 on holes.

Under mixed precision (``tools/train.py --amp``) MS-SSIM runs in float32 (autocast off, inputs cast): its Gaussian
filtering would otherwise be cast like any convolution, and SSIM's small constants (C1 = 1e-4) and variance
differences lose their meaning in float16. The other terms need nothing: autocast computes ``l1_loss`` and
``mse_loss`` in float32 (the diversity loss's 1 / (L1 + 1e-5) included), and the TV loss gets the composite, which is
float32 (its known pixels are the float32 ground truth).
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS

from ..engine.basicsr.mixed_precision import full_precision, wide
from .inpaint_blocks import dilate

# Index of each ReLU in torchvision's vgg16().features.
VGG16_RELU = {'relu1_1': 1, 'relu1_2': 3, 'relu2_1': 6, 'relu2_2': 8, 'relu3_1': 11, 'relu3_2': 13, 'relu3_3': 15,
              'relu4_1': 18, 'relu4_2': 20, 'relu4_3': 22, 'relu5_1': 25, 'relu5_2': 27, 'relu5_3': 29}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@MODELS.register_module()
class MSSSIML1Loss(nn.Module):
    """The "Mix" loss of Zhao et al. (IEEE TCI 2017): alpha * (1 - MS-SSIM) + (1 - alpha) * L1.

    MS-SSIM is ``pytorch_msssim.ms_ssim`` (Wang et al.'s pyramid, one scale per entry of ``weights``) on images
    mapped to [0, 1]; L1 is the mean absolute error on the same scale. Zhao et al. compute MS-SSIM at patch
    centres with five Gaussian widths instead of a pyramid and weight the L1 by the widest Gaussian: the library's
    dense pyramid form is the standard MS-SSIM and trains the same way on whole images.

    Args:
        alpha: 0.84 in the paper (PL4NN's code default 0.025 is not the paper's).
        win_size: SSIM window; the shorter image side must exceed (win_size - 1) * 16 (pytorch_msssim's rule,
            whatever the number of scales).
        weights: per-scale exponents (None: the 5 of Wang et al.).
        loss_weight: factor on the whole loss.
    """

    def __init__(self, alpha: float = 0.84, win_size: int = 11, weights: Optional[list] = None,
                 loss_weight: float = 1.0):
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f'MSSSIML1Loss: alpha={alpha}, expected a value in [0, 1]')
        self.alpha, self.win_size, self.weights, self.loss_weight = alpha, win_size, weights, loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from pytorch_msssim import ms_ssim
        need = (self.win_size - 1) * 16
        if min(pred.shape[-2:]) <= need:
            raise ValueError(f'MSSSIML1Loss: images of {tuple(pred.shape[-2:])} are too small for win_size '
                             f'{self.win_size}: the shorter side must exceed {need} (pytorch_msssim); lower win_size')
        with full_precision(pred.device.type):  # float32 (see the module's docstring)
            x, y = (wide(pred) + 1) / 2, (wide(target) + 1) / 2
            msssim = ms_ssim(x, y, data_range=1.0, win_size=self.win_size, weights=self.weights)
            return self.loss_weight * (self.alpha * (1 - msssim) + (1 - self.alpha) * (x - y).abs().mean())


@MODELS.register_module()
class HoleTVLoss(nn.Module):
    """PD-GAN's total variation loss on the hole region dilated by one pixel.

    Mean over all elements of |x[..., j+1] - x[..., j]| for horizontal pairs and |x[i+1] - x[i]| for vertical
    pairs whose two pixels both lie in the dilated hole. PD-GAN's row term compares the first and the last row,
    ``image[:, :, :1] - image[:, :, -1:]`` (KumapowerLIU/PD-GAN models/blocks/loss.py ``TVloss``), a slicing slip;
    the default here is the intended neighbour difference, ``pdgan_row_slip=True`` gives PD-GAN's term (the vertical
    pair mask times |first row - last row|, broadcast over the rows).

    Args:
        loss_weight: 0.1 in PD-GAN.
        pdgan_row_slip: PD-GAN's row term instead of the neighbour difference.
    """

    def __init__(self, loss_weight: float = 1.0, pdgan_row_slip: bool = False):
        super().__init__()
        self.loss_weight, self.pdgan_row_slip = loss_weight, pdgan_row_slip

    def forward(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """img (N, C, H, W); mask (N, 1, H, W), 1 = hole."""
        if mask.shape[-2:] != img.shape[-2:]:
            raise ValueError(f'HoleTVLoss: mask {tuple(mask.shape)} and image {tuple(img.shape)} differ in size')
        region = dilate(mask, 3)
        cols = region[..., :, 1:] * region[..., :, :-1]
        rows = region[..., 1:, :] * region[..., :-1, :]
        row_diff = img[..., :1, :] - img[..., -1:, :] if self.pdgan_row_slip else img[..., 1:, :] - img[..., :-1, :]
        tv = (cols * (img[..., :, 1:] - img[..., :, :-1]).abs()).mean() + (rows * row_diff).abs().mean()
        return self.loss_weight * tv


class VGG16Features(nn.Module):
    """VGG16 convolutional features from a local weights file, frozen; input (N, 3, H, W) in [-1, 1].

    Args:
        weights_path: torchvision's ``vgg16-397923af.pth`` (keys ``features.*``; the classifier is ignored) or a
            state dict of ``vgg16().features`` alone. Nothing is downloaded.
        layers: ReLU names of :data:`VGG16_RELU` to return.
        input_norm: 'imagenet' maps [-1, 1] to [0, 1] and normalises with ImageNet's mean and std, the input the
            torchvision weights were trained on (default); 'none' feeds the [-1, 1] image as it is, as PD-GAN's
            ``VGG16`` does (models/blocks/loss.py).
    """

    def __init__(self, weights_path: str, layers=('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1'),
                 input_norm: str = 'imagenet'):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers
        if not weights_path or not osp.isfile(weights_path):
            raise FileNotFoundError(f'vgg_path {weights_path!r} not found: expected a local VGG16 state dict such as '
                                    "torchvision's vgg16-397923af.pth (no download at run time)")
        if input_norm not in ('imagenet', 'none'):
            raise ValueError(f"VGG16Features: input_norm={input_norm!r}, expected 'imagenet' or 'none'")
        self.input_norm = input_norm
        unknown = [name for name in layers if name not in VGG16_RELU]
        if unknown:
            raise ValueError(f'VGG16Features: unknown layers {unknown}, expected names of {sorted(VGG16_RELU)}')
        self.layers = tuple(layers)
        last = max(VGG16_RELU[name] for name in layers)
        features = make_layers(cfgs['D'])
        state = torch.load(weights_path, map_location='cpu', weights_only=True)
        state = {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')} or state
        features.load_state_dict(state)
        self.features = features[:last + 1].eval().requires_grad_(False)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()  # frozen: no dropout/BN anyway, but keep it explicit
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.input_norm == 'imagenet':
            x = ((x + 1) / 2 - self.mean) / self.std
        out, wanted = {}, {VGG16_RELU[name]: name for name in self.layers}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


@MODELS.register_module()
class VGG16PerceptualLoss(nn.Module):
    """PD-GAN's perceptual loss: sum_l w_l * L1(VGG16_l(pred), VGG16_l(target)), weights from a local file.

    Args:
        vgg_path: local VGG16 weights (see :class:`VGG16Features`).
        layer_weights: {relu name: weight}; PD-GAN's relu1_1..relu4_1 with weight 1 (relu5_1 at 0) by default.
        loss_weight: lambda_P (10 in PD-GAN).
        input_norm: see :class:`VGG16Features` ('none' is PD-GAN's).
    """

    def __init__(self, vgg_path: str, layer_weights: Optional[dict] = None, loss_weight: float = 1.0,
                 input_norm: str = 'imagenet'):
        super().__init__()
        self.layer_weights = layer_weights or {'relu1_1': 1., 'relu2_1': 1., 'relu3_1': 1., 'relu4_1': 1.}
        self.vgg = VGG16Features(vgg_path, tuple(self.layer_weights), input_norm)
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp, ft = self.vgg(pred), self.vgg(target.detach())
        return self.loss_weight * sum(w * F.l1_loss(fp[k], ft[k]) for k, w in self.layer_weights.items())


@MODELS.register_module()
class InpaintDiversityLoss(nn.Module):
    """PD-GAN's diversity loss between two completions of the same input, on the hole only:
    1 / (L1(phi(a * mask), phi(b * mask)) + eps). Minimising it pushes the two samples apart.

    phi is VGG16 relu4_1 (PD-GAN) when ``vgg_path`` is given, else the pixels themselves (no weights needed).

    Args:
        vgg_path: local VGG16 weights, or None for pixel space.
        eps: 1e-5 in PD-GAN.
        loss_weight: factor on the loss (1 in PD-GAN).
        input_norm: see :class:`VGG16Features` ('none' is PD-GAN's).
    """

    def __init__(self, vgg_path: Optional[str] = None, eps: float = 1e-5, loss_weight: float = 1.0,
                 input_norm: str = 'imagenet'):
        super().__init__()
        self.vgg = VGG16Features(vgg_path, ('relu4_1',), input_norm) if vgg_path else None
        self.eps, self.loss_weight = eps, loss_weight

    def forward(self, sample_a: torch.Tensor, sample_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a, b = sample_a * mask, sample_b * mask
        if self.vgg is not None:
            a, b = self.vgg(a)['relu4_1'], self.vgg(b)['relu4_1']
        return self.loss_weight / (F.l1_loss(a, b) + self.eps)  # float32 under autocast too (l1_loss)


@MODELS.register_module()
class DiscFeatureMatchingLoss(nn.Module):
    """pix2pixHD's discriminator feature-matching loss as PD-GAN uses it:
    loss_weight / num_scales * sum over scales s and layers l (all but the last, the logits) of
    L1(D_s,l(fake), D_s,l(real)), the real features detached.

    Args:
        loss_weight: lambda_feat (10 in PD-GAN).
    Inputs: two outputs of :class:`~plugins.inpaint.discriminator_arch.PDGANDiscriminator`, one list per scale of
    layer outputs (N, C_l, h_l, w_l), the last of each the logits.
    """

    def __init__(self, loss_weight: float = 10.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, fake: Sequence[List[torch.Tensor]], real: Sequence[List[torch.Tensor]]) -> torch.Tensor:
        if len(fake) != len(real) or any(len(f) != len(r) for f, r in zip(fake, real)):
            raise ValueError('DiscFeatureMatchingLoss: the fake and real discriminator outputs differ in layout')
        total = sum(F.l1_loss(f, r.detach()) for fs, rs in zip(fake, real) for f, r in zip(fs[:-1], rs[:-1]))
        return total * (self.loss_weight / len(fake))
