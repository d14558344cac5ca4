"""Blind SR line (seed 004): CMDSR ConditionNet, modulated convolutions, task-grouped degradations.

Every module of this folder is imported, so each registers its components in BasicSR's registries.
"""
from ..engine.registration import import_submodules

import_submodules(__name__, __path__)
