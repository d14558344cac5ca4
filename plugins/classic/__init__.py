"""Classic SR line (seed 002): SRCNN, FSRCNN, SRResNet with the seed's InstanceNorm placements, the SRGAN recipe.

Every module of this folder is imported, so each registers its networks, losses and datasets in BasicSR's
registries.
"""
from ..common.autoimport import import_submodules

import_submodules(__name__, __path__)
