"""What the package registers into the toolboxes' registries: from modules named by role, under names of its own,
documented, and the MMagic side only when something imports it."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from tests.helpers import ONE_THREAD, REPO

# A registered component lives in a module named for its role (BasicSR's convention: *_arch.py, *_model.py, ...).
ROLE_SUFFIXES = {
    'arch': ('_arch', ), 'model': ('_model', ), 'dataset': ('_dataset', ), 'loss': ('_loss', ),
    'metric': ('_metric', ),
    # MMagic keeps networks, models and losses in one MODELS registry.
    'mmagic::model': ('_arch', '_model', '_loss'), 'mmagic::transform': ('_transform', ),
    'mmagic::metric': ('_metric', ), 'mmengine::hook': ('hooks', ), 'mmengine::optim_wrapper': ('optim_wrappers', ),
}


def _ours(entries):
    return {name: obj for name, obj in entries if getattr(obj, '__module__', '').startswith('plugins.')}


def _basicsr_registrations():
    from basicsr.utils import registry
    registries = (registry.ARCH_REGISTRY, registry.DATASET_REGISTRY, registry.LOSS_REGISTRY, registry.MODEL_REGISTRY,
                  registry.METRIC_REGISTRY)
    return {r._name: _ours(r._obj_map.items()) for r in registries}


def _mmagic_registrations():
    import plugins.classic.srcnn_mmagic  # noqa: F401
    import plugins.engine.mmengine.hooks  # noqa: F401
    import plugins.engine.mmengine.optim_wrappers  # noqa: F401
    import plugins.inpaint  # noqa: F401
    from mmagic.registry import METRICS, MODELS, TRANSFORMS
    from mmengine.registry import HOOKS, OPTIM_WRAPPERS
    found = {f'mmagic::{r.name}': _ours(r.module_dict.items()) for r in (MODELS, TRANSFORMS, METRICS)}
    found['mmengine::hook'] = _ours(HOOKS.module_dict.items())
    found['mmengine::optim_wrapper'] = _ours(OPTIM_WRAPPERS.module_dict.items())
    return found


@pytest.fixture(scope='module')
def registrations():
    found = _basicsr_registrations()
    found.update(_mmagic_registrations())
    return found


def test_every_component_comes_from_a_module_named_for_its_role(registrations):
    assert all(registrations.values()), registrations
    wrong = [f'{kind} {name} in {obj.__module__}' for kind, entries in registrations.items()
             for name, obj in entries.items() if not obj.__module__.split('.')[-1].endswith(ROLE_SUFFIXES[kind])]
    assert not wrong, wrong


def test_every_registered_name_is_documented(registrations):
    docs = open(osp.join(REPO, 'README.md')).read() + ''.join(
        open(p).read() for p in glob.glob(osp.join(REPO, 'docs', '*.md')))
    undocumented = sorted(name for entries in registrations.values() for name in entries
                          if not re.search(rf'\b{re.escape(name)}\b', docs))
    assert not undocumented, f'registered but in neither README.md nor docs/*.md: {undocumented}'


def test_our_srcnn_does_not_replace_mmagics_own():
    _mmagic_registrations()
    from mmagic.registry import MODELS
    assert MODELS.get('SRCNN').__module__ == 'plugins.classic.srcnn_arch'
    assert MODELS.get('SRCNNNet').__module__.startswith('mmagic.')


def test_the_mmagic_side_registers_only_when_imported():
    """`import plugins` leaves MMagic, mmengine, diffusers and transformers out, and a BasicSR run adds only mmengine's
    Config (for `_base_`); an mmengine config's custom_imports brings in exactly the line it names."""
    code = '''
import sys
import plugins
heavy = ("mmagic", "mmengine", "diffusers", "transformers")
loaded = lambda: sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy})
print(loaded())
from plugins.engine import cli
from plugins.engine.basicsr.options_check import check_basicsr_options
from plugins.engine.basicsr.options import load_options
load_options("options/train/classic/srcnn_x2.yml")  # what a BasicSR run reads first (its _base_ needs mmengine's Config)
print(loaded())
from mmagic.registry import MODELS
print(MODELS.get("PDGANInpaintor"), MODELS.get("SRCNN"))
from mmengine.config import Config
Config.fromfile("options/mmagic/inpaint/base_demo.py")
print(MODELS.get("PDGANInpaintor").__module__, MODELS.get("SRCNN"))
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=dict(os.environ, **ONE_THREAD))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split('\n')[:4] == ['[]', "['mmengine']", 'None None', 'plugins.inpaint.inpaintor_model None']


def test_our_hooks_build_in_mmagics_scope():
    """Hooks go into mmengine's root registry, so the MMagic scope of our configs (and any other) finds them."""
    _mmagic_registrations()
    from mmagic.registry import HOOKS as MMAGIC_HOOKS
    with MMAGIC_HOOKS.switch_scope_and_registry('mmagic') as registry:
        hook = registry.build(dict(type='NonFiniteGuardHook', patience=3))
    assert type(hook).__module__ == 'plugins.engine.mmengine.hooks' and hook.patience == 3
