"""compat/numpy_mmcv.py: MMagic 1.2.0 on numpy 2 (``np.bool8``) and on mmcv-lite (no compiled ``mmcv._ext``): all of
MMagic imports after ``import plugins``, an mmcv op says what is missing, a compiled mmcv is never shadowed."""
import importlib.machinery
import importlib.util
import os
import subprocess
import sys

import pytest

from plugins.compat import numpy_mmcv
from tests.helpers import REPO

pytest.importorskip('mmagic')

IMPORT_CHECK = """
import numpy as np
had_bool8 = hasattr(np, 'bool8')
import sys
import plugins
assert np.bool8 is np.bool_
assert 'mmagic' not in sys.modules and 'mmengine' not in sys.modules, 'import plugins imports the MMagic side'
import mmagic.models  # needs np.bool8 (numpy 2) and mmcv._ext (mmcv-lite)
from mmagic.registry import MODELS
import plugins.classic.srcnn_mmagic  # what the SRCNN config's custom_imports imports
from plugins.classic.srcnn_arch import SRCNN
assert MODELS.get('SRCNN') is SRCNN
import torch
from mmcv.ops import nms
try:
    nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]]), torch.tensor([0.9, 0.8]), 0.5)
except RuntimeError as err:
    print('op error:', err)
print('had bool8:', had_bool8)
"""


def test_mmagic_imports_and_mmcv_ops_fail_clearly():
    """In a fresh interpreter (the process on purpose: import order): import plugins (which leaves MMagic and
    mmengine unimported), then all of mmagic and our SRCNN registration; an mmcv op says what is missing."""
    proc = subprocess.run([sys.executable, '-c', IMPORT_CHECK], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "op error: mmcv op 'nms' needs the compiled mmcv (mmcv._ext)" in proc.stdout, proc.stdout
    import numpy as np
    if int(np.__version__.split('.')[0]) >= 2:
        assert 'had bool8: False' in proc.stdout  # the alias is ours, not numpy's


def _fake_mmcv(tmp_path, monkeypatch, files):
    """Point importlib.util.find_spec('mmcv') at a fake package holding ``files``; hide the current mmcv._ext."""
    pkg = tmp_path / 'mmcv'
    pkg.mkdir()
    for name in ['__init__.py', *files]:
        (pkg / name).write_bytes(b'')
    spec = importlib.machinery.ModuleSpec('mmcv', None, origin=str(pkg / '__init__.py'))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *args: spec if name == 'mmcv' else real_find_spec(name, *args))
    monkeypatch.delitem(sys.modules, 'mmcv._ext', raising=False)  # restored after the test


def test_mmcv_stub_is_installed_without_compiled_extension(tmp_path, monkeypatch):
    _fake_mmcv(tmp_path, monkeypatch, [])
    numpy_mmcv.stub_mmcv_ext_if_not_compiled()
    stub = sys.modules['mmcv._ext']
    assert stub.__spec__.name == 'mmcv._ext'
    assert not hasattr(stub, '__wrapped__')  # dunders are not answered (inspect.unwrap probes them)
    with pytest.raises(RuntimeError, match=r"'deform_conv_forward' needs the compiled mmcv"):
        stub.deform_conv_forward(1, 2)


def test_mmcv_stub_never_shadows_a_compiled_extension(tmp_path, monkeypatch):
    _fake_mmcv(tmp_path, monkeypatch, ['_ext.cpython-311-x86_64-linux-gnu.so'])
    numpy_mmcv.stub_mmcv_ext_if_not_compiled()
    assert 'mmcv._ext' not in sys.modules
