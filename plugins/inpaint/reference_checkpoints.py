"""PD-GAN's generator checkpoint into ours (``tools/convert_checkpoint.py --from pdgan IN.pth OUT.pth``).

KumapowerLIU/PD-GAN saves ``<epoch>_net_PDGAN.pth`` as ``{'net': state_dict, 'optimize': ...}`` on a GPU, or the bare
state dict on a CPU (models/base_model.py ``save_networks``); both are accepted, and a ``module.`` prefix
(DataParallel) is stripped. Its ``SPDNormGenerator`` (models/network/pdgan.py, ngf 64, z_dim 256, 4x4 latent, six
units) maps onto our :class:`~plugins.inpaint.generator_arch.SPDNormGenerator` with its defaults; other widths, noise
sizes and unit counts (up to PD-GAN's six) are read from the shapes and the line printed names the ``encdec`` they
need:

    fc.*                                          -> fc.*
    generated.<i>.block.conv_0 / conv_1 / conv_s.* -> blocks.<i>.conv_0 / conv_1 / conv_s.*  (spectral-norm
                                                     weight_orig, weight_u, weight_v kept as they are)
    generated.<i>.block.norm_<j>.mlp_activate.0.*  -> blocks.<i>.norm_<j>.shared.0.*
    generated.<i>.block.norm_<j>.mlp_gamma / mlp_beta.* -> blocks.<i>.norm_<j>.gamma / beta.*
    generated.<i>.block.conv_to_f.0 / 3.*          -> blocks.<i>.prior_to_feature.0 / 3.*
    generated.<i>.block.attention.0.*              -> blocks.<i>.soft_conv.*
    generated.<i>.up.*                             -> ups.<i>.*
    conv_img.*                                     -> conv_img.*

Dropped: ``generated.<i>.block.v`` (a parameter PD-GAN defines and never uses) and
``generated.<i>.block.mask_conv.mask_conv.weight`` (the mask dilation conv: PD-GAN binarises its output, ``!= 0``,
so only its support matters; ours is a max-pool, :func:`~plugins.inpaint.inpaint_blocks.dilate`). Nothing is
rescaled: both generators work on [-1, 1] images and the same mask convention inside (1 = known).

The output is an mmengine checkpoint of our ``PDGANInpaintor``'s generator alone: ``state_dict`` holds
``generator.*`` and the same tensors as ``generator_ema.module.*`` (a config with an EMA validates with those).
The prior is not part of it: PD-GAN's prior is its PConv network, ours the config's ``prior`` (a trained Base
model), so PD-GAN's generator meets a prior other than the one it was trained with.
"""
import inspect
import re
from typing import Dict, Tuple

import torch

from ..engine.errors import OptionsError

HOW_TO_LOAD = ('load it into a PDGANInpaintor config whose model.encdec is {encdec}: --cfg-options load_from={out} '
               'to train from it, tools/test.py CONFIG {out} to evaluate it, tools/inpaint/sample.py CONFIG {out} to '
               'sample (the prior comes from the config\'s model.prior.checkpoint)')
PDGAN_MASK_NUMBER_OFFSET = 2  # PD-GAN's unit i dilates the mask i + 2 times (models/network/pdgan.py: 2, 3, ..., 7)

_BLOCK_RULES = (  # (reference suffix pattern within generated.<i>.block., our suffix template)
    (r'conv_(0|1|s)\.(weight_orig|weight_u|weight_v|bias)', r'conv_\1.\2'),
    (r'norm_(0|1|s)\.mlp_activate\.0\.(weight|bias)', r'norm_\1.shared.0.\2'),
    (r'norm_(0|1|s)\.mlp_gamma\.(weight|bias)', r'norm_\1.gamma.\2'),
    (r'norm_(0|1|s)\.mlp_beta\.(weight|bias)', r'norm_\1.beta.\2'),
    (r'conv_to_f\.(0|3)\.(weight|bias)', r'prior_to_feature.\1.\2'),
    (r'attention\.0\.(weight|bias)', r'soft_conv.\1'),
)
_DROPPED = re.compile(r'generated\.(\d+)\.block\.(v|mask_conv\.mask_conv\.weight)')


def _our_key(key: str) -> str:
    """Our name for a reference key, or '' for a key that is dropped; OptionsError for an unknown key."""
    if key.startswith(('fc.', 'conv_img.')) and key.rsplit('.', 1)[1] in ('weight', 'bias'):
        return key
    m = re.fullmatch(r'generated\.(\d+)\.up\.(weight|bias)', key)
    if m:
        return f'ups.{m.group(1)}.{m.group(2)}'
    if _DROPPED.fullmatch(key):
        return ''
    m = re.fullmatch(r'generated\.(\d+)\.block\.(.+)', key)
    if m:
        for pattern, template in _BLOCK_RULES:
            if re.fullmatch(pattern, m.group(2)):
                return f'blocks.{m.group(1)}.' + re.sub(pattern, template, m.group(2))
    raise OptionsError(f'pdgan checkpoint: unexpected key {key!r} (not a key of PD-GAN\'s SPDNormGenerator)')


def _unwrap(checkpoint) -> Dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and 'net' in checkpoint and isinstance(checkpoint['net'], dict):
        checkpoint = checkpoint['net']  # save_networks on a GPU: {'net': ..., 'optimize': ...}
    if not isinstance(checkpoint, dict) or not checkpoint or \
            not all(isinstance(k, str) and torch.is_tensor(v) for k, v in checkpoint.items()):
        raise OptionsError('pdgan checkpoint: expected the state dict of PD-GAN\'s SPDNormGenerator '
                           '(or {"net": state_dict, "optimize": ...} as its save_networks writes)')
    if all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return checkpoint


def generator_kwargs(state: Dict[str, torch.Tensor]) -> dict:
    """Our SPDNormGenerator's arguments for a PD-GAN state dict (PD-GAN's own is ngf 64, z_dim 256, 4x4: our
    defaults), read from its shapes; OptionsError when a key they are read from is missing."""
    def need(key):
        if key not in state:
            raise OptionsError(f'pdgan checkpoint: missing key {key!r} (is this the PDGAN net and not the '
                               'discriminator or PConv?)')
        return state[key]
    units = len({int(m.group(1)) for m in (re.match(r'generated\.(\d+)\.', k) for k in state) if m})
    if not 1 <= units <= 6:
        raise OptionsError(f'pdgan checkpoint: {units} generator units (generated.<i>), PD-GAN has 6')
    channels = [need(f'generated.{i}.block.conv_s.weight_orig').shape[1] for i in range(units)]
    channels.append(need(f'generated.{units - 1}.block.conv_s.weight_orig').shape[0])
    fc = need('fc.weight')
    latent = int(round((fc.shape[0] / channels[0]) ** 0.5))
    return dict(z_dim=fc.shape[1], latent_size=latent, channels=tuple(channels),
                mask_numbers=tuple(range(PDGAN_MASK_NUMBER_OFFSET, PDGAN_MASK_NUMBER_OFFSET + units)),
                mask_kernels=tuple(need(f'generated.{i}.block.mask_conv.mask_conv.weight').shape[-1]
                                   for i in range(units)),
                hidden=need('generated.0.block.norm_0.mlp_activate.0.weight').shape[0])


def expected_shapes(kwargs: dict) -> Dict[str, torch.Size]:
    """Our SPDNormGenerator's state dict shapes for ``kwargs``, built on the meta device (no memory)."""
    from .generator_arch import SPDNormGenerator  # MMagic's registry: imported only when converting
    with torch.device('meta'):
        return {k: v.shape for k, v in SPDNormGenerator(**kwargs).state_dict().items()}


def encdec_config(kwargs: dict) -> str:
    """The ``model.encdec`` a config needs for these weights: PD-GAN's 256x256 layout is our defaults."""
    from .generator_arch import SPDNormGenerator
    defaults = {k: v.default for k, v in inspect.signature(SPDNormGenerator).parameters.items()}
    changed = {k: v for k, v in kwargs.items() if defaults[k] != v}
    if not changed:
        return "dict(type='SPDNormGenerator') (PD-GAN's 256x256 layout, e.g. pdgan_paper_256.py)"
    return 'dict(type=\'SPDNormGenerator\', ' + ', '.join(f'{k}={v!r}' for k, v in changed.items()) + ')'


def convert_pdgan_generator(checkpoint) -> Tuple[dict, str]:
    """PD-GAN's generator state dict (bare or wrapped) -> (our mmengine checkpoint, how to load it).

    Raises OptionsError naming the first unexpected key, missing key or wrong shape."""
    state = _unwrap(checkpoint)
    for key in state:
        _our_key(key)  # unknown keys first, before reading shapes from them
    kwargs = generator_kwargs(state)
    shapes = expected_shapes(kwargs)
    ours = {}
    for key, value in state.items():
        name = _our_key(key)
        if not name:
            continue
        if name not in shapes:
            raise OptionsError(f'pdgan checkpoint: unexpected key {key!r} (no {name!r} in the generator)')
        if tuple(value.shape) != tuple(shapes[name]):
            raise OptionsError(f'pdgan checkpoint: {key!r} has shape {tuple(value.shape)}, expected '
                               f'{tuple(shapes[name])} for SPDNormGenerator({kwargs})')
        ours[name] = value.detach().to('cpu', torch.float32).clone()
    missing = sorted(set(shapes) - set(ours))
    if missing:
        raise OptionsError(f'pdgan checkpoint: missing {len(missing)} key(s) of the generator, e.g. {missing[0]!r}')
    state_dict = {f'generator.{k}': v for k, v in ours.items()}
    state_dict.update({f'generator_ema.module.{k}': v for k, v in ours.items()})
    out = {'state_dict': state_dict,
           'meta': {'converted_from': 'KumapowerLIU/PD-GAN SPDNormGenerator', 'encdec': kwargs}}
    return out, HOW_TO_LOAD.format(encdec=encdec_config(kwargs), out='OUT.pth')
