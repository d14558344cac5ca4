"""Classic SR line (seed 002): SRCNN, FSRCNN, SRResNet with the seed's InstanceNorm placements, the SRGAN recipe.

Every module of this folder is imported, so each registers its networks, losses and datasets in BasicSR's
registries (BasicSR's own ``archs/__init__.py`` does the same with its ``*_arch.py`` files).
"""
import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f'{__name__}.{_module}')
