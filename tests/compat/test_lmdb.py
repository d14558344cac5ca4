"""compat/lmdb.py: py-lmdb >= 2 refuses a second open of one environment in a process (train + val on one LMDB), so
setup.py pins lmdb<2; where the pin was overridden, lmdb.open fails at once with the fix named."""
import types

import pytest

from plugins.compat import lmdb as lmdb_patch


def test_the_installed_lmdb_is_below_2_and_left_as_it_is():
    import lmdb
    assert int(lmdb.__version__.split('.')[0]) < 2
    assert not getattr(lmdb.open, '_plugins_compat', False)


def test_lmdb_2_fails_at_open_with_the_fix_named():
    opened = []
    fake = types.SimpleNamespace(__version__='2.0.0', open=lambda *a, **k: opened.append(a))
    lmdb_patch.apply(fake)
    with pytest.raises(RuntimeError, match=r"py-lmdb 2\.0\.0 is installed.*pip install 'lmdb<2'"):
        fake.open('x.lmdb')
    assert opened == []
    patched = fake.open
    lmdb_patch.apply(fake)  # idempotent
    assert fake.open is patched
