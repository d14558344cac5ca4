"""The classic line's SRCNN in MMagic's ``MODELS`` registry, for mmengine configs
(``options/mmagic/classic/srcnn_x2_demo.py`` imports this module through ``custom_imports``).

Not imported by ``import plugins`` (``engine/registration.py`` leaves ``*_mmagic`` modules out), so BasicSR-only work
never imports MMagic.
"""
from mmagic.registry import MODELS

from .srcnn_arch import SRCNN

# mmagic has its own 'SRCNNNet' (RGB, 9-1-5, bicubic inside); ours is the seed's network under another name.
MODELS.register_module(name='SRCNN', module=SRCNN)
