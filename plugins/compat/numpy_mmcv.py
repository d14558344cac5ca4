"""numpy 2 and mmcv-lite, for MMagic 1.2.0: ``np.bool8`` and the compiled ``mmcv._ext`` that mmcv-lite lacks.

Both must be in place before the first ``mmagic`` import; both are cheap (neither imports mmcv or mmagic).
"""
import importlib.machinery
import importlib.util
import os
import sys
import types

import numpy as np

MMCV_EXT_MESSAGE = ('mmcv op {name!r} needs the compiled mmcv (mmcv._ext), but only mmcv-lite is installed. '
                    "Install a full 'mmcv>=2.0.0,<2.2.0' built for your torch/CUDA to use models with mmcv ops "
                    '(EDVR, BasicVSR++, TDAN, StyleGAN1/2); nothing in this package needs them.')


def apply() -> None:
    alias_numpy_bool8()
    stub_mmcv_ext_if_not_compiled()


def alias_numpy_bool8() -> None:
    """numpy 2 removed ``np.bool8``; ``mmagic/utils/trans_utils.py`` uses it in a module-level dict, so
    ``import mmagic.models`` fails with AttributeError."""
    if not hasattr(np, 'bool8'):
        np.bool8 = np.bool_


class MissingCompiledMmcvOp:
    """Stands in for one compiled mmcv op; calling it raises an error that names the missing package."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(MMCV_EXT_MESSAGE.format(name=self.name))


def stub_mmcv_ext_if_not_compiled() -> None:
    """mmcv-lite has no ``mmcv._ext``, but ``mmcv.ops`` loads it at import and several MMagic editors
    import ``mmcv.ops`` unguarded, so ``import mmagic.models`` fails (``No module named 'mmcv._ext'``).
    Where mmcv is installed without its compiled extension, register a stub module whose attributes are
    ops that raise a clear error when called. A compiled mmcv is never shadowed."""
    if 'mmcv._ext' in sys.modules or importlib.util.find_spec('mmcv') is None:
        return
    mmcv_dir = os.path.dirname(importlib.util.find_spec('mmcv').origin)
    if any(f.startswith('_ext') for f in os.listdir(mmcv_dir)):
        return  # the real compiled extension exists
    stub = types.ModuleType('mmcv._ext', 'Stub for the compiled mmcv ops, added by plugins.compat.')
    # mmcv.utils.check_ops_exist() goes through pkgutil/importlib, which reject a module without __spec__.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)

    def __getattr__(name):  # noqa: N807 (module-level __getattr__, PEP 562)
        if name.startswith('__'):
            raise AttributeError(name)  # inspect/pickle probe dunders: answering them breaks inspect
        return MissingCompiledMmcvOp(name)

    stub.__getattr__ = __getattr__
    sys.modules['mmcv._ext'] = stub
