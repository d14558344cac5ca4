"""compat/import_hooks.py: a patch runs right after its library module is imported, whoever imports it, and the
module keeps what its own loader gives (source for inspect)."""
import importlib
import inspect
import sys

import pytest

from plugins.compat.import_hooks import pending, when_imported


@pytest.fixture
def fake_library(tmp_path, monkeypatch):
    """A package `fakelib` with a module `fakelib.core` on sys.path, not imported yet."""
    package = tmp_path / 'fakelib'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'core.py').write_text('def answer():\n    return 41\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield 'fakelib.core'
    for name in ('fakelib.core', 'fakelib'):
        sys.modules.pop(name, None)


def test_hook_runs_after_the_module_is_imported_and_only_once(fake_library):
    calls = []

    def patch(module):
        calls.append(module.__name__)
        original = module.answer
        module.answer = lambda: original() + 1

    when_imported(fake_library, patch)
    assert pending(fake_library) and calls == []
    module = importlib.import_module(fake_library)
    assert calls == ['fakelib.core'] and module.answer() == 42 and not pending(fake_library)
    importlib.reload(module)  # a reload runs the module again, not the hook
    assert calls == ['fakelib.core']
    assert 'def answer' in inspect.getsource(module)  # the wrapped loader still gives the source


def test_hook_on_an_imported_module_runs_at_once(fake_library):
    module = importlib.import_module(fake_library)
    seen = []
    when_imported(fake_library, seen.append)
    assert seen == [module] and not pending(fake_library)
