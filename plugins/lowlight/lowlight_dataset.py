"""Paired low/normal-light data in LOL's layout, from folders or BasicSR LMDBs.

    <dataroot>/our485/low/*.png   <dataroot>/our485/high/*.png     (training, 485 pairs in LOL)
    <dataroot>/eval15/low/*.png   <dataroot>/eval15/high/*.png     (evaluation, 15 pairs)
    LMDB: <dataroot>/<split>/low.lmdb, high.lmdb (tools/data/make_lmdb.py on each folder; keys = file stems)

Reading, random crops (``gt_size``, 384 in the seed), flips and rot90 (``use_hflip`` / ``use_rot``) are BasicSR's
``PairedImageDataset`` at scale 1; this class maps the LOL layout onto it, checks it, and for evaluation can pad
each pair as the lab's evaluation loader did (``pad_to_multiple``).
"""
import os.path as osp

import torch.nn.functional as F

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class LowLightPairedDataset(PairedImageDataset):
    """LOL-layout pairs. Items: ``lq`` (low) and ``gt`` (normal light), RGB ``(3, H, W)`` in [0, 1], and paths.

    Options (the dataset dict of BasicSR options):
        dataroot (str): the LOL root.
        split (str): 'our485' or 'eval15' (any sub-folder holding ``low`` and ``high``).
        io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``.
        gt_size (int): training crop (train phase). use_hflip, use_rot (bool): augmentation (train phase).
        pad_to_multiple (int): validation/test only: reflect-pad ``lq`` and ``gt`` at the bottom and right to a
            multiple of this, as the lab's evaluation loader (``net/tools.py::pad_pil``, ``--divisor 16``): the
            network then predicts the padded strip and the metrics see the padded pair (the lab's protocol,
            plugins/lowlight/lab_metric.py). Default: 0 (no padding; the networks pad inside and crop back).
    """

    def __init__(self, opt):
        opt = dict(opt)
        name = opt.get('name', 'dataset')
        for key in ('dataroot', 'split'):
            if not isinstance(opt.get(key), str):
                raise ValueError(f'{name}: option {key!r} must be a path / split name (e.g. our485), '
                                 f'got {opt.get(key)!r}')
        io_type = (opt.get('io_backend') or {}).get('type', 'disk')
        if io_type not in ('disk', 'lmdb'):
            raise ValueError(f'{name}: io_backend.type must be disk or lmdb, got {io_type!r}')
        ext = '.lmdb' if io_type == 'lmdb' else ''
        for kind, key in (('low', 'dataroot_lq'), ('high', 'dataroot_gt')):
            path = osp.join(opt['dataroot'], opt['split'], kind + ext)
            if not osp.isdir(path):
                raise FileNotFoundError(f'{name}: {path} not found; expected the LOL layout '
                                        f'<dataroot>/<split>/low{ext} and high{ext} (see datasets/README.md)')
            opt[key] = path
        opt.setdefault('scale', 1)
        if opt.get('phase') == 'train' and not isinstance(opt.get('gt_size'), int):
            raise ValueError(f'{name}: gt_size (training crop size) must be an integer, got {opt.get("gt_size")!r}')
        opt.setdefault('use_hflip', False)
        opt.setdefault('use_rot', False)
        opt['io_backend'] = dict(opt.get('io_backend') or {'type': 'disk'})
        pad = opt.get('pad_to_multiple') or 0
        if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
            raise ValueError(f'{name}: pad_to_multiple must be a non-negative integer (16 for the lab\'s evaluation), '
                             f'got {pad!r}')
        if pad and opt.get('phase') == 'train':
            raise ValueError(f'{name}: pad_to_multiple is for validation/test sets (the lab padded its evaluation '
                             'images); training uses gt_size crops')
        self.pad_to_multiple = pad
        super().__init__(opt)
        if not self.paths:
            raise FileNotFoundError(f'{name}: no image pairs in {opt["dataroot_lq"]}')

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if self.pad_to_multiple:
            h, w = item['gt'].shape[-2:]
            pad = (0, -w % self.pad_to_multiple, 0, -h % self.pad_to_multiple)
            if any(pad):
                for key in ('lq', 'gt'):  # torch's reflect = numpy's (edge not repeated), as the lab's pad_pil
                    item[key] = F.pad(item[key][None], pad, mode='reflect')[0]
        return item
