"""MMagic 1.2.0: ``LoadImageFromFile`` names no file when it cannot read one. An undecodable (truncated) file fails in
``cv2.cvtColor`` ("!_src.empty()") or as "'NoneType' object has no attribute 'shape'", a missing LMDB key in
``np.frombuffer(None)``. It now raises ``DataFaultError`` with the path or ``LMDB <db> key '<k>'``, which the
``on_data_fault`` policy of the dataloader then stops on or skips (``plugins/compat/mmengine.py``).

``apply(loading_module)`` runs when ``mmagic.datasets.transforms.loading`` has been imported (a post-import hook
installed by ``plugins.compat.apply``). Tested through mmengine runs in ``tests/engine/test_mmengine_reliability.py``.
"""
import os

import cv2

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
