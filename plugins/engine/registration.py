"""Import every module of a research line's package, so each registers its components into the toolboxes'
registries (BasicSR's own ``archs/__init__.py`` imports its ``*_arch.py`` files the same way).

Modules whose name ends in ``_mmagic`` hold a line's MMagic-side registrations; they import MMagic and are left to
the mmengine configs that use them (``custom_imports``), so that BasicSR-only work never imports MMagic.
"""
import importlib
import pkgutil
from typing import Iterable

MMAGIC_SUFFIX = '_mmagic'


def import_submodules(package_name: str, package_path: Iterable[str]) -> None:
    """Import ``<package_name>.<module>`` for every module found on ``package_path``, in name order, except the
    MMagic-side ones (``*_mmagic``)."""
    for module in sorted(m.name for m in pkgutil.iter_modules(package_path)):
        if not module.endswith(MMAGIC_SUFFIX):
            importlib.import_module(f'{package_name}.{module}')
