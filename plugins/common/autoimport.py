"""Import every module of a line's package, so each registers its components into the toolboxes' registries
(BasicSR's own ``archs/__init__.py`` does the same with its ``*_arch.py`` files)."""
import importlib
import pkgutil
from typing import Iterable


def import_submodules(package_name: str, package_path: Iterable[str]) -> None:
    """Import ``<package_name>.<module>`` for every module found on ``package_path``, in name order."""
    for module in sorted(m.name for m in pkgutil.iter_modules(package_path)):
        importlib.import_module(f'{package_name}.{module}')
