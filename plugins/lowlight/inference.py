"""Inference of the low-light networks on images without ground truth: ``tools/infer.py --brightness V [V ...]``.

The brightness plane is the user's target mean luminance: one network, several exposures
(``--brightness 0.3 0.45 0.6`` writes one output per value, ``<stem>_<suffix>_b<V>.png``).
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
from basicsr.utils import img2tensor, tensor2img
from torch import nn

from ..common.inference import InferenceAdapter, register_inference_adapter
from ..engine.errors import OptionsError
from .brightness import add_brightness_plane, check_brightness


def check_brightness_values(brightness: Optional[Sequence[float]], tile: int, source: str) -> List[float]:
    """Validate ``--brightness`` (and ``--tile``) for a network with a brightness plane, which needs the values.

    Returns the checked values. Raises ValueError naming the option.
    """
    if not brightness:
        raise ValueError(f'network_g of {source} takes 4 input channels (RGB + a brightness plane) and the images '
                         'have 3: give --brightness VALUE (target mean luminance in [0, 1], e.g. 0.45; the lab\'s '
                         f'"ImageNet brightness" is 0.458971)')
    if tile:
        raise ValueError('--tile is not supported with --brightness: the low-light networks normalise with '
                         'statistics of the whole image (InstanceNorm), so tiles would not match; use --tile 0')
    return [check_brightness(v, '--brightness') for v in brightness]


def prepare_fast(net: nn.Module) -> nn.Module:
    """Eval mode and the channels-last memory format. With ``torch.inference_mode`` in ``enhance`` the networks
    then take their row-block inference path (plugins/lowlight/guided_fast_path.py). Channels-last measured 10-20 %
    faster at 1080p on our 2-core CPU (docs/lowlight.md)."""
    return net.eval().to(memory_format=torch.channels_last)


def enhance(net: nn.Module, img: np.ndarray, brightness: float, device: torch.device) -> np.ndarray:
    """Enhance one BGR uint8 image ``(H, W, 3)`` (``plugins.common.image_io.read_image``) at the given target
    brightness; returns BGR uint8."""
    if img.dtype != np.uint8:
        raise ValueError(f'enhance expects a BGR uint8 image, got {img.dtype}')
    rgb = img2tensor(img.astype(np.float32) / 255., bgr2rgb=True, float32=True)[None].to(device)
    x = add_brightness_plane(rgb, brightness).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = net(x)
    return tensor2img(out.float(), rgb2bgr=True, min_max=(0, 1))


class BrightnessAdapter(InferenceAdapter):
    """Networks with a brightness plane (4 input channels: RGB + target mean luminance)."""

    name = 'low-light (brightness plane)'
    flags = ('brightness', )

    def add_arguments(self, group) -> None:
        group.add_argument('--brightness', type=float, nargs='+', default=None, metavar='V',
                           help='target mean luminance(s) in [0, 1] for networks with a brightness plane; one output '
                           '<stem>_<suffix>_b<V>.png per value')

    def accepts(self, net, channels) -> bool:
        return channels == 4

    def refuse_flags(self, net, channels, where) -> str:
        return (f'--brightness is for networks with a brightness plane (4 input channels); network_g of {where} '
                f'takes {channels}')

    def prepare(self, net, channels, args, scale, where, device):
        try:
            values = check_brightness_values(args.brightness, args.tile, where)
        except ValueError as err:
            raise OptionsError(str(err)) from err
        net = prepare_fast(net.to(device))
        return lambda img: [(f'_b{v:g}', enhance(net, img, v, device)) for v in values]


register_inference_adapter(BrightnessAdapter())
