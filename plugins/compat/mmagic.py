"""MMagic 1.2.0: ``LoadImageFromFile`` names no file when it cannot read one, ``PairedRandomCrop`` none when a pair's
sizes do not fit. An undecodable (truncated) file fails in
``cv2.cvtColor`` ("!_src.empty()") or as "'NoneType' object has no attribute 'shape'", a missing LMDB key in
``np.frombuffer(None)``. It now raises ``DataFaultError`` with the path or ``LMDB <db> key '<k>'``, which the
``on_data_fault`` policy of the dataloader then stops on or skips (``plugins/compat/mmengine.py``).

``apply(loading_module)`` runs when ``mmagic.datasets.transforms.loading`` has been imported (a post-import hook
installed by ``plugins.compat.apply``). Tested through mmengine runs in ``tests/engine/test_mmengine_reliability.py``.
"""
import importlib
import os

import cv2

from ..engine import data_faults
from ..engine.errors import DataFaultError


def apply(loading_module) -> None:
    """Patch ``LoadImageFromFile`` of the imported ``mmagic.datasets.transforms.loading``; a second call changes
    nothing."""
    LoadImageFromFile = loading_module.LoadImageFromFile  # noqa: N806 (a class)
    if getattr(LoadImageFromFile._load_image, '_plugins_compat', False):
        return  # already patched
    original_load_image = LoadImageFromFile._load_image

    def source(self, filename) -> str:
        """The file, or ``LMDB <db> key '<k>'`` as BasicSR's side says it (MMagic's LMDB key is the file stem)."""
        args = self.backend_args or {}
        if args.get('backend') == 'lmdb':
            return f"LMDB {args.get('db_path')} key {os.path.splitext(os.path.basename(str(filename)))[0]!r}"
        return str(filename)

    def undecodable(self, filename) -> Exception:
        return DataFaultError(f'cannot decode image {source(self, filename)}: truncated, corrupt, or not an image')

    def _load_image(self, filename):
        try:
            img = original_load_image(self, filename)
        except OSError as err:  # a missing or unreadable file (PIL's "cannot identify image file" too)
            raise DataFaultError(f'cannot read image {source(self, filename)}: {err}') from err
        except TypeError as err:  # the LMDB backend returned None: np.frombuffer(None)
            raise DataFaultError(f'cannot read image {source(self, filename)}: no such key') from err
        except cv2.error as err:  # cv2.imdecode gave None, then cv2.cvtColor(None) failed
            raise undecodable(self, filename) from err
        if img is None:
            raise undecodable(self, filename)
        return img

    _load_image._plugins_compat = True
    LoadImageFromFile._load_image = _load_image
    _patch_paired_random_crop()


def _patch_paired_random_crop() -> None:
    """MMagic's ``PairedRandomCrop`` raises ``ValueError`` for a pair whose GT is not ``scale`` x LQ (naming no
    file) or whose LQ is smaller than the crop: it now raises ``DataFaultError`` naming both files and sizes, which the
    ``on_data_fault`` policy stops on or skips. (``mmagic.datasets.transforms`` imports ``crop`` before ``loading``.)"""
    crop_module = importlib.import_module('mmagic.datasets.transforms.crop')
    PairedRandomCrop = crop_module.PairedRandomCrop  # noqa: N806 (a class)
    original_transform = PairedRandomCrop.transform

    def transform(self, results):
        scale = results['scale']
        lq, gt = results[self.lq_key], results[self.gt_key]
        lq, gt = (lq[0] if isinstance(lq, list) else lq), (gt[0] if isinstance(gt, list) else gt)
        data_faults.check_paired_crop(gt.shape[:2], lq.shape[:2], self.gt_patch_size, scale,
                                      gt=results.get(f'{self.gt_key}_path', ''),
                                      lq=results.get(f'{self.lq_key}_path', ''))
        return original_transform(self, results)

    PairedRandomCrop.transform = transform
