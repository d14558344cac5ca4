"""Inpainting line (seed 003, MMagic): SPDNorm generator, SimAM, GroupNorm, MS-SSIM+L1, TV, LSGAN/hinge.

Every module of this folder is imported, so each registers its components in MMagic's registries.
"""
from ..engine.registration import import_submodules

import_submodules(__name__, __path__)
