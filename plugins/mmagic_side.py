"""MMagic-side registrations: networks of the BasicSR lines made available to mmengine configs.

Imported by ``plugins/__init__.py`` only where mmagic is installed. The compat patches are applied before,
so importing mmagic here is safe on numpy 2 and mmcv-lite.
"""
from mmagic.registry import MODELS

from .classic.archs import SRCNN

# mmagic has its own 'SRCNNNet' (RGB, 9-1-5, bicubic inside); ours is the seed's network under another name.
MODELS.register_module(name='SRCNN', module=SRCNN)
