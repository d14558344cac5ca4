"""Run by ``restoration_plugins_startup.pth``, which installing the package puts in ``site-packages``: the toolboxes'
own scripts (``python -m basicsr.train``, ``python -m basicsr.test``, MMagic's ``tools/train.py`` and
``tools/test.py``, ``mim train mmagic``, ``dist_train.sh``, ``slurm_train.sh``) then run with this package's
compatibility patches and registrations, as ``tools/train.py`` does.

Python reads every ``.pth`` file of ``site-packages`` when it starts, so this module is loaded by every Python process
of the environment and must cost nothing there: it imports only ``os``, ``sys`` and ``_thread`` (loaded before any
``.pth`` file is read) and puts one finder first on ``sys.meta_path``, which looks at the name of each new top-level
import and answers for five names only. At the first import of BasicSR, MMagic, mmcv, mmengine or TensorBoard the
finder removes itself and imports ``plugins``: its ``compat.apply()`` puts in place the patches that must precede
those imports (``np.bool8``, ``torchvision.transforms.functional_tensor``) and post-import hooks for the others.
Then the finder returns the library's module spec with those hooks, so the library is patched as it is imported.
``import plugins`` registers the BasicSR lines too (after BasicSR has executed, when BasicSR is the library being
imported: see ``plugins/__init__.py``). ``import plugins`` imports none of the five libraries but BasicSR (tested), so
none of them is imported within its own import.

Why an import hook and not ``sitecustomize`` or a wrapper script: the toolboxes' scripts are run by path, by
``python -m``, by ``mim`` and by launchers (``torchrun``, ``srun``), in any working directory; only the
interpreter's start-up reaches all of them, and a ``.pth`` file is how an installed package takes part in it without
replacing a file of the environment (``sitecustomize.py`` is one per environment).

``RESTORATION_PLUGINS_STARTUP=0`` in the environment turns it off (the toolboxes then run unpatched).
"""
import _thread
import os
import sys

TOOLBOXES = frozenset(('basicsr', 'mmagic', 'mmcv', 'mmengine', 'tensorboard'))
ENV_SWITCH = 'RESTORATION_PLUGINS_STARTUP'
# The library whose first import is importing ``plugins`` right now (None otherwise); plugins/__init__.py reads it.
importing = None
_LOCK = _thread.RLock()


class FirstToolboxImportFinder:
    """A meta-path finder that acts once, at the first import of one of ``TOOLBOXES`` (see the module docstring)."""

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or fullname not in TOOLBOXES:
            return None  # a submodule, or not a toolbox: the other finders answer
        return _first_toolbox_import(self, fullname, target)

    def __repr__(self):
        return f'<{__name__}.{type(self).__name__}>'


def _first_toolbox_import(finder, fullname, target):
    global importing
    with _LOCK:
        if finder not in sys.meta_path:
            return None  # done already (by another thread)
        sys.meta_path.remove(finder)
        importing = fullname
        try:
            __import__('plugins')  # compat patches and post-import hooks
        except ModuleNotFoundError as err:
            if err.name != 'plugins':
                raise
            return None  # the package was removed and this file left behind: the toolbox imports as it would
        finally:
            importing = None
    if fullname in sys.modules:  # imported by ``import plugins``: its import would now run a second time
        raise ImportError(f'{__name__}: importing plugins imported {fullname}, which it must not do')
    from plugins.compat import import_hooks
    return import_hooks.find_spec(fullname, None, target)


_FINDER = FirstToolboxImportFinder()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (the ``.pth`` file calls this); nothing when a toolbox is imported
    already or ``RESTORATION_PLUGINS_STARTUP=0``."""
    if os.environ.get(ENV_SWITCH, '1') == '0' or TOOLBOXES.intersection(sys.modules):
        return
    with _LOCK:
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
