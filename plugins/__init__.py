"""Five image-restoration research lines as BasicSR 1.4.2 / MMagic 1.2.0 plugins.

Importing ``plugins`` applies the compatibility patches (``plugins/compat/``), then imports the four BasicSR lines,
which register their networks, losses, datasets, models and metrics into BasicSR's registries. The MMagic side (the
inpainting line ``plugins.inpaint``, the classic SRCNN in MMagic's registry ``plugins.classic.srcnn_mmagic``, the
mmengine hooks ``plugins.engine.mmengine.hooks``) registers when it is imported: by the ``custom_imports`` of the
mmengine configs under ``options/mmagic/``, or by hand. So BasicSR-only work never imports MMagic.

The toolboxes' own scripts (``python -m basicsr.train``, MMagic's ``tools/train.py``) import ``plugins`` through
``restoration_plugins_startup`` (installed with the package by a ``.pth`` file) at the first import of BasicSR,
MMagic, mmcv, mmengine or TensorBoard, before that library executes. When that library is BasicSR itself
(``python -m basicsr.train``), the BasicSR lines are imported right after it has executed: importing them at once
would import BasicSR within its own import.
"""
import importlib
import sys

from . import compat

compat.apply()


# The modules whose import registers into BasicSR's registries (common.bicubic_dataset: BicubicDegradationDataset,
# used by classic and blindsr).
BASICSR_LINES = ('blindsr', 'classic', 'lowlight', 'textsr', 'common.bicubic_dataset')


def _import_basicsr_lines(basicsr=None) -> None:
    for name in BASICSR_LINES:
        importlib.import_module(f'{__name__}.{name}')


if getattr(sys.modules.get('restoration_plugins_startup'), 'importing', None) == 'basicsr':
    compat.when_imported('basicsr', _import_basicsr_lines)  # BasicSR is being imported now: see the docstring
else:
    _import_basicsr_lines()

__version__ = '0.1.0'
