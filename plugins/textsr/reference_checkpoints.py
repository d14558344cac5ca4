"""TextZoom's TSRN checkpoints into ours (``tools/convert_checkpoint.py --from textzoom-tsrn IN.pth OUT.pth``).

TextZoom (``src/interfaces/base.py::save_checkpoint``) saves ``{'state_dict_G': netG.module.state_dict(), 'info':
..., 'best_history_res': ..., ...}``; a bare state dict, or one with DataParallel's ``module.`` prefix, is accepted
too. Its TSRN (``src/model/tsrn.py``) names its layers ``block1`` ... ``block{srb + 3}``; ours names them by role.
Key map (``n`` = number of SRBs, ``i`` = 0..n-1, ``k`` = 0..upsampling stages-1, ``u`` = stages):

    block1.0 / block1.1 (conv 9x9, PReLU)              -> head.0 / head.1
    block{i+2}.conv1 / bn1 / conv2 / bn2              -> blocks.i.body.0 / .1 / .3 / .4
    block{i+2}.gru1.conv1 / .gru (BiGRU, height)       -> blocks.i.gru_height.conv1 / .gru
    block{i+2}.gru2.conv1 / .gru (BiGRU, width)        -> blocks.i.gru_width.conv1 / .gru
    block{n+2}.0 / .1 (conv 3x3, BN)                   -> body_tail.0 / .1
    block{n+3}.k.conv (conv before PixelShuffle k)     -> upsampler.{3k}
    block{n+3}.u (conv 9x9 to the output channels)     -> out_conv
    stn_head.stn_convnet.* / stn_fc1.* / stn_fc2.*     -> stn_head.convnet.* / fc1.* / fc2.*
    tps.inverse_kernel, padding_matrix, target_coordinate_repr, target_control_points
                                                       -> dropped: constants of the TPS set-up, which ours
                                                          recomputes from lr_size, 20 points and margins 0.05

Ranges and layout are the same on both sides (input RGB + mask in [0, 1], tanh output), so tensors are copied as
they are. The network's configuration (``in_ch``, ``num_feat`` = 2 x hidden_units, ``num_block`` = srb_nums,
``scale``, ``stn``, ``lr_size``) is read from the shapes and reported in the line that says how to load the result.
"""
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from ..engine.errors import OptionsError
from .tsrn_arch import TSRN

TPS_CONSTANTS = ('inverse_kernel', 'padding_matrix', 'target_coordinate_repr', 'target_control_points')
SRB = {'conv1': 'body.0', 'bn1': 'body.1', 'conv2': 'body.3', 'bn2': 'body.4', 'gru1': 'gru_height', 'gru2': 'gru_width'}


def _state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The TSRN state dict inside TextZoom's checkpoint (``state_dict_G``) or a bare one, without ``module.``."""
    if not isinstance(checkpoint, dict):
        raise OptionsError(f'a TextZoom TSRN checkpoint is a dict, got a {type(checkpoint).__name__}')
    state = checkpoint.get('state_dict_G', checkpoint)
    if not isinstance(state, dict) or not state:
        raise OptionsError("the checkpoint's 'state_dict_G' is not a state dict")
    if all(str(k).startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    for key, value in state.items():
        if not torch.is_tensor(value):
            keys = sorted(str(k) for k in state)[:5]
            raise OptionsError(f'{key}: not a tensor; expected TextZoom\'s TSRN state dict (keys block1..., '
                               f"stn_head..., tps...) or a checkpoint with 'state_dict_G' (first keys: {keys})")
    return state


def _block_numbers(state) -> Tuple[int, int]:
    """(number of SRBs, number of upsampling stages), from the block names and shapes."""
    numbers = sorted({int(m.group(1)) for k in state for m in [re.match(r'block(\d+)\.', k)] if m})
    if not numbers or numbers[0] != 1:
        raise OptionsError(f'no block1.* keys: not a TextZoom TSRN state dict (first keys: {sorted(state)[:5]})')
    if numbers != list(range(1, len(numbers) + 1)) or len(numbers) < 3:
        raise OptionsError(f'TSRN blocks must run block1 .. block(n + 3) without gaps, got block{numbers}')
    num_block = len(numbers) - 3
    last = numbers[-1]
    stages = sorted({int(m.group(1)) for k in state for m in [re.match(rf'block{last}\.(\d+)\.conv\.', k)] if m})
    if stages != list(range(len(stages))) or f'block{last}.{len(stages)}.weight' not in state:
        raise OptionsError(f'block{last}: expected UpsampleBLock stages 0..u-1 (.conv) and the output conv at '
                           f'block{last}.u, got keys {sorted(k for k in state if k.startswith(f"block{last}."))[:6]}')
    return num_block, len(stages)


def _our_key(key: str, num_block: int) -> str:
    """Our TSRN's name for a key of TextZoom's TSRN ('' for the TPS constants we do not store)."""
    m = re.match(r'block(\d+)\.(.*)$', key)
    if m:
        block, rest = int(m.group(1)), m.group(2)
        if block == 1:
            return f'head.{rest}'
        if block <= num_block + 1:
            part, _, tail = rest.partition('.')
            if part not in SRB:
                raise OptionsError(f'{key}: unexpected key in a sequential residual block (expected '
                                   f'{", ".join(SRB)})')
            return f'blocks.{block - 2}.{SRB[part]}.{tail}'
        if block == num_block + 2:
            return f'body_tail.{rest}'
        stage, _, tail = rest.partition('.')
        if tail.startswith('conv.'):
            return f'upsampler.{3 * int(stage)}.{tail[len("conv."):]}'
        return f'out_conv.{tail}'
    for theirs, ours in (('stn_head.stn_convnet.', 'stn_head.convnet.'), ('stn_head.stn_fc1.', 'stn_head.fc1.'),
                         ('stn_head.stn_fc2.', 'stn_head.fc2.')):
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    if key.startswith('tps.') and key[len('tps.'):] in TPS_CONSTANTS:
        return ''
    raise OptionsError(f'{key}: unexpected key for TextZoom\'s TSRN (block*, stn_head.*, tps.*)')


def convert_textzoom_tsrn(checkpoint) -> Tuple[Dict, str]:
    """TextZoom TSRN checkpoint -> ``({'params': our TSRN state dict}, how to load it)``.

    Raises:
        OptionsError: a key that TextZoom's TSRN does not have, a missing key, or a tensor whose shape does not
            fit the TSRN configuration read from the checkpoint (the message names the key).
    """
    state = _state_dict(checkpoint)
    num_block, stages = _block_numbers(state)
    head = state.get('block1.0.weight')
    if head is None or head.dim() != 4:
        raise OptionsError('block1.0.weight: missing or not a convolution weight')
    num_feat, in_ch = int(head.shape[0]), int(head.shape[1])
    stn = any(k.startswith('stn_head.') for k in state)
    lr_size = (16, 64)
    if 'tps.target_coordinate_repr' in state:  # (h * w, points + 3) rows over the warped LR grid
        cells = int(state['tps.target_coordinate_repr'].shape[0])
        if cells % 4:
            raise OptionsError(f'tps.target_coordinate_repr: {cells} grid cells, not an LR grid of 1:4 aspect')
        height = int(round((cells / 4) ** 0.5))
        if height * height * 4 != cells:
            raise OptionsError(f'tps.target_coordinate_repr: {cells} grid cells, not an LR grid of 1:4 aspect')
        lr_size = (height, 4 * height)
    scale = 2 ** stages
    net = TSRN(scale=scale, in_ch=in_ch, num_feat=num_feat, num_block=num_block, stn=stn, lr_size=lr_size)
    own = net.state_dict()
    converted = OrderedDict()
    for key, value in state.items():
        ours = _our_key(key, num_block)
        if not ours:
            continue
        if ours not in own:
            raise OptionsError(f'{key}: no counterpart in our TSRN (mapped to {ours})')
        if tuple(value.shape) != tuple(own[ours].shape):
            raise OptionsError(f'{key}: shape {tuple(value.shape)}, but our TSRN with in_ch {in_ch}, num_feat '
                               f'{num_feat}, num_block {num_block} has {tuple(own[ours].shape)} at {ours}')
        converted[ours] = value.detach().clone().to(own[ours].dtype)
    missing = [k for k in own if k not in converted]
    if missing:
        raise OptionsError(f'the checkpoint lacks {len(missing)} tensors of TSRN, e.g. {missing[:3]} '
                           '(a TextZoom TSRN saved with --STN needs stn_head.*)')
    options = (f'network_g: {{type: TSRN, scale: {scale}, in_ch: {in_ch}, num_feat: {num_feat}, '
               f'num_block: {num_block}, stn: {str(stn).lower()}, lr_size: {list(lr_size)}}}')
    return {'params': converted}, (f'load with {options} and path: pretrain_network_g: OUT.pth (param_key_g: params, '
                                   'strict_load_g: true)')
