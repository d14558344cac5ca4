"""Classic SR line (seed 002): SRCNN, FSRCNN, SRResNet with the seed's InstanceNorm placements, the SRGAN recipe.

Every module of this folder is imported, so each registers its networks and losses in BasicSR's registries; the
HR-only dataset it trains on is shared with the blind SR line (``plugins/common/bicubic_dataset.py``).
``srcnn_mmagic.py`` (SRCNN in MMagic's registry) is imported by the mmengine config that uses it.
"""
from ..engine.registration import import_submodules

import_submodules(__name__, __path__)
