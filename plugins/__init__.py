"""Five image-restoration research lines as BasicSR 1.4.2 / MMagic 1.2.0 plugins.

Importing ``plugins`` applies the compatibility patches (``plugins/compat/``), then imports the four BasicSR lines,
which register their networks, losses, datasets, models and metrics into BasicSR's registries. The MMagic side (the
inpainting line ``plugins.inpaint``, the classic SRCNN in MMagic's registry ``plugins.classic.srcnn_mmagic``, the
mmengine hooks ``plugins.engine.mmengine.hooks``) registers when it is imported: by the ``custom_imports`` of the
mmengine configs under ``options/mmagic/``, or by hand. So BasicSR-only work never imports MMagic.
"""
from . import compat

compat.apply()

from . import blindsr, classic, lowlight, textsr  # noqa: E402,F401
from .common import bicubic_dataset  # noqa: E402,F401  (BicubicDegradationDataset, used by classic and blindsr)

__version__ = '0.1.0'
