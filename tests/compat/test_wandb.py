"""compat/wandb.py: BasicSR 1.4.2's wandb logger calls ``wandb.util.generate_id``, gone from current wandb releases.
(A whole BasicSR run with wandb logging: tests/engine/test_monitoring.py, where the extra is installed.)"""
import sys
import types

import pytest

from plugins.compat import wandb as wandb_patch
from plugins.engine.optional_packages import is_installed


def test_generate_id_comes_back_from_its_new_home_and_a_present_one_is_kept(monkeypatch):
    def new_home():
        return 'abcd1234'

    monkeypatch.setitem(sys.modules, 'wandb.sdk.lib.runid', types.SimpleNamespace(generate_id=new_home))
    fake = types.SimpleNamespace(util=types.SimpleNamespace())
    wandb_patch.apply(fake)
    assert fake.util.generate_id() == 'abcd1234'

    def own():
        return 'own'

    kept = types.SimpleNamespace(util=types.SimpleNamespace(generate_id=own))
    wandb_patch.apply(kept)
    assert kept.util.generate_id is own


@pytest.mark.skipif(not is_installed('wandb'), reason='needs the wandb extra (pip install -e ".[wandb]")')
def test_the_installed_wandb_has_generate_id_after_import():
    import wandb
    assert len(wandb.util.generate_id()) == 8
