"""Inpainting of a user's images with a model trained by an mmengine config of this line:
``tools/infer.py options/mmagic/inpaint/X.py --checkpoint work_dirs/X/iter_N.pth --input IMAGES --mask MASKS
[--num K]``.

``--mask`` is one mask file for every input, or a folder whose masks are matched to the inputs by file stem
(``photo.jpg`` <- ``MASKS/photo.png``); a mask is a grey image of the input's size, white = hole (grey levels above
127 are holes: ``mask_transform.binarize_mask``). Every input's mask is found and its size checked before the first
image runs.

The model works at its training size S (the SPDNorm generator's ``out_size``, else the size of the config's test
pipeline ``Resize``, else ``--inpaint-size``): the image is resized to S x S (``cv2.INTER_AREA``), the hole mask
too with every S x S pixel that touches a hole made a hole (so no hole pixel is seen as known), the model completes
it (``sampling.completions``: PD-GAN draws one noise vector per sample, seeds ``--noise-seed``, ``+1``, ...), the
completion is resized back (bicubic) and pasted into the holes of the original: known pixels are the input's,
exactly, at its own size. Outputs: ``<stem>_<suffix>.png``, or ``<stem>_<suffix>_s<k>.png`` for ``--num K > 1``.
"""
import os
import os.path as osp
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from ..common.image_io import is_image_file, list_images
from ..common.inference import InferenceAdapter, register_inference_adapter
from ..engine.errors import OptionsError
from .inpaintor_model import EncDecInpaintor
from .mask_transform import binarize_mask
from .sampling import completions, load_inpaintor, to_uint8

def working_size(model: EncDecInpaintor, config: Optional[str]) -> Optional[int]:
    """S of the model: its generator's ``out_size`` (SPDNorm), else the square ``Resize`` of the config's test (else
    val) pipeline, else None."""
    size = getattr(model.inference_generator(), 'out_size', None)
    if isinstance(size, int):
        return size
    if config and osp.isfile(config):
        from mmengine.config import Config
        cfg = Config.fromfile(config)
        for loader in ('test_dataloader', 'val_dataloader'):
            dataset = (cfg.get(loader) or {}).get('dataset') or {}
            datasets = dataset.get('datasets') or [dataset]  # a ConcatDataset's parts, or the dataset itself
            for part in datasets:
                for step in part.get('pipeline') or []:
                    scale = step.get('scale') if isinstance(step, dict) and step.get('type') == 'Resize' else None
                    if isinstance(scale, (list, tuple)) and len(scale) == 2 and scale[0] == scale[1]:
                        return int(scale[0])
                    if isinstance(scale, int):
                        return scale
    return None


def find_masks(inputs, mask: str) -> Dict[str, str]:
    """{input file: its mask file}: ``mask`` itself for every input, or the file of ``mask`` (a folder) with the
    input's stem. Sizes are checked against the inputs (read from the file headers). ``OptionsError`` naming the
    input or the mask otherwise."""
    if osp.isdir(mask):
        by_stem = {}
        for name in sorted(os.listdir(mask)):
            if is_image_file(name) and osp.isfile(osp.join(mask, name)):
                by_stem.setdefault(osp.splitext(name)[0], osp.join(mask, name))
        masks = {}
        for path in inputs:
            stem = osp.splitext(osp.basename(path))[0]
            if stem not in by_stem:
                raise OptionsError(f'--mask {mask}: no mask for {path} (masks are matched by file stem: expected '
                                   f'{osp.join(mask, stem)}.png)')
            masks[path] = by_stem[stem]
    elif osp.isfile(mask):
        masks = {path: mask for path in inputs}
    else:
        raise OptionsError(f'--mask {mask!r} not found: give a mask image (white = hole) or a folder of masks named '
                           'as the inputs')
    for path, mask_path in masks.items():
        try:
            with Image.open(path) as img, Image.open(mask_path) as m:
                size, mask_size = img.size, m.size
        except OSError:
            continue  # an unreadable input is reported and skipped by tools/infer.py; a bad mask when it is read
        if size != mask_size:
            raise OptionsError(f'mask {mask_path} is {mask_size[0]}x{mask_size[1]} but the image {path} is '
                               f'{size[0]}x{size[1]}: a mask must have its image\'s size')
    return masks


def read_hole(mask_path: str) -> np.ndarray:
    """(H, W) uint8 hole map of a mask file, 1 = hole (white)."""
    gray = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise OptionsError(f'cannot read mask {mask_path}')
    return binarize_mask(gray, mask_path)[..., 0]


def inpaint_image(model: EncDecInpaintor, img: np.ndarray, hole: np.ndarray, size: int, num: int, seed: int,
                  device: torch.device):
    """``num`` completions (1 for a deterministic model) of a BGR uint8 image ``(H, W, 3)`` with the hole map
    ``(H, W)`` (1 = hole), each a BGR uint8 ``(H, W, 3)`` image whose known pixels are ``img``'s (see the module
    doc for the resizing)."""
    h, w = img.shape[:2]
    rgb = np.ascontiguousarray(img[..., ::-1])
    if (h, w) == (size, size):
        small, small_hole = rgb, hole.astype(np.float32)
    else:
        small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        small_hole = (cv2.resize(hole.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0)
        small_hole = small_hole.astype(np.float32)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
    m = torch.from_numpy(small_hole)[None, None].to(device)
    outs = completions(model, x * (1 - m), m, num, seed)
    results = []
    for out in outs:
        done = to_uint8(out)
        if (h, w) != (size, size):
            done = cv2.resize(done, (w, h), interpolation=cv2.INTER_CUBIC)
        results.append(np.where(hole[..., None].astype(bool), done, rgb)[..., ::-1])
    return results


class InpaintStep(nn.Module):
    """One inpainting pass as a one-input module, for ``tools/benchmark.py``: ``(N, 4, S, S)`` in [0, 1] (RGB, and
    a 4th channel whose values above 0.5 are holes) -> the composite ``(N, 3, S, S)`` in [-1, 1] (PD-GAN: prior and
    generator, one noise vector per image). Its parameters are those inference uses: the generator (the EMA one
    where kept) and PD-GAN's prior, not the discriminator or the trained generator beside its EMA copy."""

    in_channels = 4  # what tools/benchmark.py reads (complexity.input_channels)

    def __init__(self, model: EncDecInpaintor):
        super().__init__()
        model.eval()
        self._model = [model]  # not a submodule: only the parts below count, move and copy as this module's
        self.generator = model.inference_generator()
        if isinstance(getattr(model, 'prior', None), nn.Module):
            self.prior = model.prior

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = (x[:, 3:4] > 0.5).to(x.dtype)
        return self._model[0].inpaint((x[:, :3] * 2 - 1) * (1 - mask), mask)[1]


class InpaintingAdapter(InferenceAdapter):
    """The inpaintors of this line (``EncDecInpaintor``, ``PDGANInpaintor``) on a user's images and masks."""

    name = 'inpainting (mmengine configs of options/mmagic/inpaint)'
    flags = ('mask', 'num', 'noise_seed', 'inpaint_size')
    specific = True

    def __init__(self):
        self.masks: Dict[str, str] = {}
        self.current = ''

    def add_arguments(self, group) -> None:
        group.add_argument('--mask', default=None, metavar='FILE_OR_DIR',
                           help='hole mask (white = hole) of the input\'s size, or a folder of masks named as the '
                           'inputs (matched by file stem)')
        group.add_argument('--num', type=int, default=None, metavar='K',
                           help='PD-GAN: K completions per image, each with its own noise (<stem>_<suffix>_s<k>.png)')
        group.add_argument('--noise-seed', type=int, default=None, metavar='SEED',
                           help='PD-GAN: noise seed of the first completion, +1 for each next one (default: 0)')
        group.add_argument('--inpaint-size', type=int, default=None, metavar='S',
                           help='working size S x S (default: the model\'s: its generator\'s output size or the '
                           'config\'s test Resize)')

    def accepts(self, net, channels) -> bool:
        return isinstance(net, EncDecInpaintor)

    def refuse_flags(self, net, channels, where) -> str:
        return (f'--mask, --num, --noise-seed and --inpaint-size are for the inpainting models; the network of {where} '
                f'is {type(net).__name__}')

    def builds_config(self, cfg) -> bool:
        from mmagic.registry import MODELS
        model_type = (cfg.get('model') or {}).get('type')
        cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
        return isinstance(cls, type) and issubclass(cls, EncDecInpaintor)

    def build_from_config(self, config: str, checkpoint: str) -> nn.Module:
        from ..engine.mmengine.config_model import load_config_checkpoint
        try:
            model = load_inpaintor(config, checkpoint)  # PD-GAN: the prior's weights from the checkpoint itself
        except (FileNotFoundError, ValueError, KeyError) as err:
            raise OptionsError(f'{config}: {err}') from err
        load_config_checkpoint(model, checkpoint, config)  # strictly: a checkpoint of another model is refused
        return model.eval()

    def timed_network(self, net, where) -> Optional[Tuple[nn.Module, str]]:
        if not isinstance(net, EncDecInpaintor):
            return None
        size = working_size(net, where) or 256
        return InpaintStep(net), f'1x4x{size}x{size}'

    def prepare(self, net, channels, args, scale, where, device):
        if args.tile:
            raise OptionsError('--tile is not for inpainting: the model completes the whole image at its working size')
        if not args.mask:
            raise OptionsError('inpainting needs --mask FILE_OR_DIR: a mask image of the input\'s size, white = hole '
                               '(or a folder of masks named as the inputs)')
        num = 1 if args.num is None else args.num
        if num < 1:
            raise OptionsError(f'--num must be at least 1, got {num}')
        if num > 1 and not hasattr(net, 'sample_noise'):
            raise OptionsError(f'--num {num}: {type(net).__name__} is deterministic (one completion per image); '
                               'several samples come from PD-GAN configs (options/mmagic/inpaint/pdgan_demo.py)')
        if args.noise_seed is not None and not hasattr(net, 'sample_noise'):
            raise OptionsError(f'--noise-seed: {type(net).__name__} draws no noise')
        size = args.inpaint_size or working_size(net, where)
        if not size or size < 1:
            raise OptionsError(f'{where}: the working size of the model is unknown; give --inpaint-size S')
        fixed = getattr(net.inference_generator(), 'out_size', None)
        if isinstance(fixed, int) and size != fixed:
            raise OptionsError(f'--inpaint-size {size}: the generator of {where} makes {fixed}x{fixed} images only')
        self.masks = find_masks(list_images(args.input), args.mask)
        model = net.eval().to(device)
        seed = args.noise_seed or 0

        def run(img: np.ndarray):
            hole = read_hole(self.masks[self.current])
            if hole.shape != img.shape[:2]:
                raise OptionsError(f'mask {self.masks[self.current]} is {hole.shape[1]}x{hole.shape[0]} but the image '
                                   f'{self.current} is {img.shape[1]}x{img.shape[0]}')
            outs = inpaint_image(model, img, hole, size, num, seed, device)
            return [(f'_s{k}' if num > 1 else '', out) for k, out in enumerate(outs)]
        return run

    def start_file(self, path: str) -> None:
        self.current = path


register_inference_adapter(InpaintingAdapter())
