"""Low-light line (seed 000): Backbone7x7 + ConvGuidedFilter, Gen_Y variants, brightness plane.

Every module of this folder is imported, so each registers its components in BasicSR's registries.
"""
from ..engine.registration import import_submodules

import_submodules(__name__, __path__)
