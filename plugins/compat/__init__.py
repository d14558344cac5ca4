"""Every patch the 2026 stack needs for BasicSR 1.4.2, MMagic 1.2.0, mmengine 0.10.7, mmcv-lite and py-lmdb.

This package is the only place that changes a third-party package, one module per upstream library:

=====================  ==================================================================================  ==========
module                 what it fixes (details and upstream issues in each module)                           applied
=====================  ==================================================================================  ==========
``torchvision``        ``transforms.functional_tensor`` alias: ``import basicsr`` fails without it          at once
``numpy_mmcv``         ``np.bool8`` for MMagic on numpy 2; a stub ``mmcv._ext`` for mmcv-lite              at once
``basicsr``            launcher and DDP on CPU / multi-node, resume, atomic checkpoints, exact resume,      on import
                       non-finite guard, data faults, ``_base_`` in options files, a misleading warning,    of basicsr
                       the device plan, mixed precision, a safe YAML loader
``mmengine``           resume on torch >= 2.6, launcher on CPU, atomic checkpoints, ``on_data_fault``       on import
``mmagic``             ``LoadImageFromFile`` names the file it cannot read, ``PairedRandomCrop`` both       on import
                       files and sizes of a pair that does not fit
``lmdb``               a clear error where the ``lmdb<2`` pin was overridden                                on import
``wandb``              ``wandb.util.generate_id``, which BasicSR's wandb logger calls (optional extra)      on import
``tensorboard``        the ``tensorboard`` command with both ``tb-nightly`` (BasicSR) and ``tensorboard``   on import
                       (MMagic) installed: each plugin once
=====================  ==================================================================================  ==========

``apply()`` runs once, from ``plugins/__init__.py``. The first two patches are applied at once (they must precede the
first ``basicsr`` / ``mmagic`` import, and import neither). The others are post-import hooks
(``import_hooks.when_imported``): each patch module is loaded and applied right after the library it patches is
imported, by whoever imports it, so ``import plugins`` costs nothing for libraries a command never uses (MMagic,
diffusers and transformers stay out of BasicSR-only runs).
"""
import importlib

from . import numpy_mmcv, torchvision
from .import_hooks import when_imported

# The library module whose import triggers a patch -> the module of this package that patches it; that module's
# ``apply(library_module)`` runs right after the library module has executed.
PATCHED_ON_IMPORT = {
    'basicsr': 'plugins.compat.basicsr',
    'mmengine.runner.runner': 'plugins.compat.mmengine',
    'mmagic.datasets.transforms.loading': 'plugins.compat.mmagic',
    'lmdb': 'plugins.compat.lmdb',
    'wandb': 'plugins.compat.wandb',
    'tensorboard.default': 'plugins.compat.tensorboard',
}

_APPLIED = False


def _apply_patch_module(patch_module: str):
    def hook(library_module) -> None:
        importlib.import_module(patch_module).apply(library_module)

    return hook


def apply() -> None:
    """Apply the immediate patches and install the post-import ones; a second call does nothing."""
    global _APPLIED
    if _APPLIED:
        return
    torchvision.apply()
    numpy_mmcv.apply()
    for library_module, patch_module in PATCHED_ON_IMPORT.items():
        when_imported(library_module, _apply_patch_module(patch_module))
    _APPLIED = True
