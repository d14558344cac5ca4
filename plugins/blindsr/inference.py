"""Inference of CMDSR networks on images without ground truth: ``tools/infer.py --support DIR`` (LR images with the
input's degradation) or ``--self-support`` (patches cut from each input image)."""
import numpy as np
import torch
from torch import nn

from ..common.inference import InferenceAdapter, register_inference_adapter
from ..common.tiled_inference import super_resolve
from ..engine.errors import OptionsError
from .support import check_support_size, load_support_folder, self_support_patches


class SupportBound(nn.Module):
    """``net(x, support)`` as a one-input module ``f(x)``, so tiled inference can run a conditioned network.

    Every tile uses the same condition, computed once from ``support`` ``(1, S, C, h, w)``."""

    def __init__(self, net: nn.Module, support: torch.Tensor):
        super().__init__()
        self.net = net
        with torch.no_grad():
            self.register_buffer('condition', net.condition_net(support), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.sr_net(x, self.condition)


def _image_tensor(img: np.ndarray) -> torch.Tensor:
    """BGR uint8 ``(H, W, 3)`` -> RGB float ``(3, H, W)`` in [0, 1], as the network's input."""
    return torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))).float() / 255.


def support_binder(net: nn.Module, support_dir: str = None, self_support: bool = False, device='cpu',
                   support_patch: int = 48):
    """What ``--support DIR`` / ``--self-support`` give a CMDSR network: a function ``image -> one-input network``.

    Args:
        net: a network with a ConditionNet (``CMDSR``).
        support_dir: folder of LR support images that share the input's degradation (all of one size).
        self_support: cut the support patches from each input image itself (``self_support_patches``: the
            network's support size, or 20 for the set form, patches of ``support_patch`` LR pixels).
        device: where the network runs.

    Returns:
        ``bind(img_bgr_uint8) -> nn.Module``.

    Raises:
        OptionsError: neither or both options, or a bad support folder (see ``load_support_folder``,
            ``check_support_size``).
    """
    if bool(support_dir) == bool(self_support):
        raise OptionsError(f'{type(net).__name__} needs a support set: give --support DIR (LR images with the '
                           'degradation of the input) or --self-support (patches cut from each input), not both')
    if support_dir:
        support = load_support_folder(support_dir, net.num_in_ch)
        check_support_size(net, support.shape[1], f'--support {support_dir}')
        return lambda img: SupportBound(net, support.to(device))  # built per image: net is on its device by then
    count = net.support_size or 20

    def bind(img: np.ndarray) -> nn.Module:
        patches = self_support_patches(_image_tensor(img), count, support_patch)
        return SupportBound(net, patches[None].to(device))

    return bind


class SupportSetAdapter(InferenceAdapter):
    """Networks with a ConditionNet: each input is super-resolved under the condition of a support set."""

    name = 'blind SR (CMDSR support set)'
    flags = ('support', 'self_support')

    def add_arguments(self, group) -> None:
        group.add_argument('--support', default=None, metavar='DIR',
                           help='folder of LR support images with the same degradation as the input')
        group.add_argument('--self-support', action='store_true',
                           help='cut the support patches from each input image itself')

    def accepts(self, net, channels) -> bool:
        return hasattr(net, 'condition_net')

    def refuse_flags(self, net, channels, where) -> str:
        return f'--support/--self-support are for CMDSR networks; {type(net).__name__} takes no support set'

    def prepare(self, net, channels, args, scale, where, device):
        bind = support_binder(net, args.support, args.self_support, device)
        net.eval().to(device)
        return lambda img: [('', super_resolve(bind(img), img, scale, channels, args.tile, args.tile_pad))]


register_inference_adapter(SupportSetAdapter())
