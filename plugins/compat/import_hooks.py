"""Run a function right after a module is first imported (a post-import hook), so a patch lands before anyone uses the
module, without importing the module ourselves.

``import plugins`` would otherwise have to import mmengine, MMagic and their dependencies only to patch them (about
3 s), for BasicSR-only work that never touches them. ``when_imported('mmengine.runner.runner', patch)`` instead calls
``patch(module)`` as soon as the module has executed, whoever imports it, or at once when it is already imported.
"""
import importlib.abc
import sys
import threading
from typing import Callable, Dict, List

_HOOKS: Dict[str, List[Callable]] = {}
_LOCK = threading.RLock()


def when_imported(name: str, hook: Callable) -> None:
    """Call ``hook(module)`` once, right after the module ``name`` is imported (now, if it already is)."""
    with _LOCK:
        module = sys.modules.get(name)
        if module is None:
            _HOOKS.setdefault(name, []).append(hook)
            _install_finder()
            return
    hook(module)


def pending(name: str) -> bool:
    """Whether hooks wait for the module ``name`` (it has not been imported since they were registered)."""
    return name in _HOOKS


def _run_hooks(name: str, module) -> None:
    with _LOCK:
        hooks = _HOOKS.pop(name, [])
    for hook in hooks:
        hook(module)


class _HookedLoader(importlib.abc.Loader):
    """The module's own loader, with the hooks run after ``exec_module``; everything else is the wrapped loader's
    (``get_source``, ``get_filename``, ``is_package`` ... for inspect, pkgutil and linecache)."""

    def __init__(self, loader, name: str):
        self._loader, self._name = loader, name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _run_hooks(self._name, module)

    def __getattr__(self, attr):
        return getattr(self._loader, attr)


def find_spec(fullname: str, path=None, target=None):
    """The spec the finders of ``sys.meta_path`` (this module's aside) give the module ``fullname``, its loader wrapped
    to run the hooks that wait for it; None when no finder knows it. For a finder that must answer in the import
    system's place (``restoration_plugins_startup``, which has just installed the hooks of this import)."""
    for finder in list(sys.meta_path):
        if finder is _FINDER or not hasattr(finder, 'find_spec'):
            continue
        spec = finder.find_spec(fullname, path, target)
        if spec is not None:
            if fullname in _HOOKS and spec.loader is not None and hasattr(spec.loader, 'exec_module'):
                spec.loader = _HookedLoader(spec.loader, fullname)
            return spec
    return None


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: for a watched module, asks the other finders for its spec and wraps the loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _HOOKS:
            return None
        return find_spec(fullname, path, target)


_FINDER = _PostImportFinder()


def _install_finder() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
