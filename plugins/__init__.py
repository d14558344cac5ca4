"""Five image-restoration research lines as BasicSR 1.4.2 / MMagic 1.2.0 plugins.

Importing ``plugins`` applies the compatibility patches (``plugins/compat.py``) first, then imports every line,
which registers its networks, losses, datasets, models and metrics into the toolboxes' registries. The MMagic
side registers only where mmagic is installed (``pip install -e .[mmagic]``).
"""
import importlib.util

from . import compat

compat.apply()

from . import blindsr, classic, lowlight, textsr  # noqa: E402,F401

if importlib.util.find_spec('mmengine') is not None:
    from .common import mm_hooks  # noqa: E402,F401

if importlib.util.find_spec('mmagic') is not None:
    from . import inpaint, mmagic_side  # noqa: E402,F401

__version__ = '0.1.0'
