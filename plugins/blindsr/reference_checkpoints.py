"""Official CMDSR checkpoints (``guanghaoyin/CMDSR``, ``models/CMDSR.py``) into our ``CMDSR`` network_g.

``python tools/convert_checkpoint.py --from cmdsr IN.pth OUT.pth`` calls ``convert_official_cmdsr``.

The official training and test scripts save and load ``CMDSR.state_dict()`` itself (no wrapping dict). Its keys, for
``SRResNet_10`` with N blocks, F features, scale s and the VGG ``conv_index='22'`` ConditionNet for support size S:

    sr_net.input_conv.{weight (F, 3, 3, 3), bias}             -> sr_net.input_conv.*
    sr_net.backbone.<i>.conv<1|2>.{weight (F, F, 3, 3), bias}  -> sr_net.backbone.<i>.conv<1|2>.*
    sr_net.upsampler.<0|2|...>.{weight (4F or 9F, F, 3, 3), bias} -> sr_net.upsampler.<same index>.*
    sr_net.output_conv.{weight (3, F, 3, 3), bias}            -> sr_net.output_conv.*
    sr_net.modulations.modulations.<j>.{weight (F, 128), bias}  -> sr_net.modulations.linears.<j>.*   (j < 2N)
    condition_net.condition.<0|2|5|7>.{weight, bias}           -> condition_net.body.<same index>.*
        (3S -> 64, 64 -> 64, average pool at 4, 64 -> 128, 128 -> 128)

The tensors are copied unchanged: both codes keep the raw equalised-LR weights (scaled at run time by the same
``1 / sqrt(in * k * k)``), and the official [0, 255] pixel range is our ``img_range: 255`` (our networks take
[0, 1], multiply by 255 inside and divide the output by 255), so ``ours(x / 255) * 255 == official(x)``.
``official_bias: true`` in the printed network options reproduces the official modulated convolutions' bias
(``plugins/blindsr/modulated_conv.py::official_bias_map``) for any batch; it changes nothing for one image.
"""
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from ..engine.errors import OptionsError

WHAT = 'official CMDSR checkpoint'
_BLOCK = re.compile(r'^sr_net\.backbone\.(\d+)\.conv[12]\.(weight|bias)$')
_UPSAMPLER = re.compile(r'^sr_net\.upsampler\.(\d+)\.(weight|bias)$')
_MODULATION = re.compile(r'^sr_net\.modulations\.modulations\.(\d+)\.(weight|bias)$')
_CONDITION = re.compile(r'^condition_net\.condition\.(\d+)\.(weight|bias)$')


def _state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The bare state dict the official code saves; also accepted inside ``{'state_dict': ...}``."""
    if isinstance(checkpoint, dict) and set(checkpoint) == {'state_dict'}:
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise OptionsError(f'{WHAT}: expected the state_dict() of the official CMDSR model (a dict of tensors), '
                           f'got {type(checkpoint).__name__}')
    for key, value in checkpoint.items():
        if not torch.is_tensor(value):
            raise OptionsError(f'{WHAT}: {key} is a {type(value).__name__}, not a tensor')
    return checkpoint


def _rename(key: str) -> str:
    """Our key for an official key; OptionsError naming the key when it is not one of the official network's."""
    if key.startswith(('sr_net.input_conv.', 'sr_net.output_conv.')) and key.rsplit('.', 1)[1] in ('weight', 'bias'):
        return key
    if _BLOCK.match(key) or _UPSAMPLER.match(key):
        return key
    m = _MODULATION.match(key)
    if m:
        return f'sr_net.modulations.linears.{m.group(1)}.{m.group(2)}'
    m = _CONDITION.match(key)
    if m:
        return f'condition_net.body.{m.group(1)}.{m.group(2)}'
    raise OptionsError(f'{WHAT}: unexpected key {key!r} (not a key of the official CMDSR with the SRResNet_10 BaseNet '
                       "and the conv_index '22' ConditionNet)")


def _official_name(key: str) -> str:
    """The official key of one of ours (``_rename`` backwards)."""
    return key.replace('sr_net.modulations.linears.', 'sr_net.modulations.modulations.').replace(
        'condition_net.body.', 'condition_net.condition.')


def _need(state: Dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise OptionsError(f'{WHAT}: missing key {key!r}')
    return state[key]


def network_options(state: Dict[str, torch.Tensor]) -> Dict:
    """Our ``network_g`` options for an official state dict, read from its shapes."""
    feat, in_ch = _need(state, 'sr_net.input_conv.weight').shape[:2]
    blocks = 1 + max([int(_BLOCK.match(k).group(1)) for k in state if _BLOCK.match(k)], default=-1)
    ups = sorted(int(_UPSAMPLER.match(k).group(1)) for k in state if _UPSAMPLER.match(k) and k.endswith('weight'))
    if not ups:
        raise OptionsError(f'{WHAT}: missing key sr_net.upsampler.0.weight')
    first_up = state[f'sr_net.upsampler.{ups[0]}.weight'].shape[0]
    if first_up == 9 * feat and len(ups) == 1:
        upscale = 3
    elif first_up == 4 * feat:
        upscale = 2 ** len(ups)
    else:
        raise OptionsError(f'{WHAT}: sr_net.upsampler.{ups[0]}.weight has {first_up} output channels; expected '
                           f'4 x {feat} (x2 stages) or 9 x {feat} (x3)')
    first_cond = _need(state, 'condition_net.condition.0.weight').shape[1]
    if first_cond % in_ch:
        raise OptionsError(f'{WHAT}: condition_net.condition.0.weight takes {first_cond} channels, not a multiple '
                           f'of the {in_ch} image channels (support patches stacked on the channel axis)')
    cond_dim = _need(state, 'condition_net.condition.7.weight').shape[0]
    return {'type': 'CMDSR', 'base': 'srresnet', 'condition': 'stacked', 'support_size': first_cond // in_ch,
            'num_in_ch': int(in_ch), 'cond_dim': int(cond_dim), 'img_range': 255., 'upscale': upscale,
            'num_feat': int(feat), 'num_block': blocks, 'official_bias': True}


def convert_official_cmdsr(checkpoint) -> Tuple[Dict, str]:
    """An official CMDSR state dict -> (``{'params': our state dict}``, how our options load it).

    Raises ``OptionsError`` (one line naming the key) for a key the official network does not have, a missing key,
    or a shape our network of the inferred size does not have.
    """
    from .cmdsr_arch import CMDSR

    state = _state_dict(checkpoint)
    ours = OrderedDict((_rename(k), v.detach().clone().float()) for k, v in state.items())
    opt = network_options(state)
    net_opt = {k: v for k, v in opt.items() if k != 'type'}
    expected = CMDSR(**net_opt).state_dict()
    official_name = {_rename(k): k for k in state}
    for key, value in ours.items():
        if key not in expected:
            raise OptionsError(f'{WHAT}: unexpected key {official_name[key]!r} for a network of '
                               f"{opt['num_block']} blocks (ours has no {key!r})")
        if value.shape != expected[key].shape:
            raise OptionsError(f'{WHAT}: {official_name[key]} has shape {tuple(value.shape)}, expected '
                               f'{tuple(expected[key].shape)} for the inferred network {net_opt}')
    missing = [k for k in expected if k not in ours]
    if missing:
        raise OptionsError(f'{WHAT}: missing key {_official_name(missing[0])!r} ({len(missing)} missing in all)')
    ours = OrderedDict((k, ours[k]) for k in expected)  # our order
    spec = ', '.join(f'{k}: {v}' for k, v in opt.items())
    how = (f'load with network_g: {{{spec}}} and path: {{pretrain_network_g: OUT.pth, param_key_g: params, '
           'strict_load_g: true}; inputs [0, 1] (the official code takes [0, 255]); official_bias: false gives our '
           'fixed bias (the same output for a batch of one image)')
    return {'params': ours}, how
