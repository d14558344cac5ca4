"""The layout's rules, read from the source (docs/architecture.md explains them):

* ``engine`` imports only ``engine``; ``common`` imports ``common`` and ``engine``; a research line imports itself,
  ``common`` and ``engine``; ``compat`` imports ``compat`` and ``engine``; only ``plugins/__init__.py`` imports the
  package root; nothing imports ``tools``;
* no import cycle between our modules, counting imports inside functions too (so none can hide a cycle).

That ``import plugins`` leaves the MMagic side out is tested in test_registration.py.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Set, Tuple

import pytest

from tests.helpers import REPO

LINES = ('classic', 'blindsr', 'lowlight', 'textsr', 'inpaint')
AREAS_ALLOWED = {  # area of the importing module -> areas it may import
    'engine': {'engine'},
    'common': {'common', 'engine'},
    'compat': {'compat', 'engine'},
    **{line: {line, 'common', 'engine'} for line in LINES},
}


def _module_name(path: str) -> str:
    rel = osp.relpath(path, REPO)[:-len('.py')].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _package_modules() -> Dict[str, str]:
    """Every module of the package: dotted name -> file."""
    modules = {}
    for folder, _, files in os.walk(osp.join(REPO, 'plugins')):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                modules[_module_name(path)] = path
    return modules


def _imports(module: str, path: str, known: Set[str]) -> List[Tuple[str, int, bool]]:
    """(imported module of ours or 'tools...', line, inside a function) for every import statement of a file."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    package = module if path.endswith('__init__.py') else module.rsplit('.', 1)[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.rsplit('.', child.level - 1)[0] if child.level > 1 else package
                    target = f'{base}.{child.module}' if child.module else base
                else:
                    target = child.module
                for alias in child.names:  # `from . import x` imports the module x
                    sub = f'{target}.{alias.name}'
                    found.append((sub if sub in known else target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return [(name, line, inner) for name, line, inner in found
            if name == 'plugins' or name.startswith(('plugins.', 'tools'))]


def _area(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else 'root'


@pytest.fixture(scope='module')
def graph() -> Dict[str, List[Tuple[str, int, bool]]]:
    modules = _package_modules()
    edges = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    # compat loads its patch modules by name when their library is imported (compat.PATCHED_ON_IMPORT).
    from plugins.compat import PATCHED_ON_IMPORT
    edges['plugins.compat'] += [(target, 0, True) for target in PATCHED_ON_IMPORT.values()]
    return edges


def test_every_import_points_down_the_layers(graph):
    wrong = []
    for module, imports in graph.items():
        area = _area(module)
        for target, line, _ in imports:
            where = f'{module}:{line} imports {target}'
            if target.startswith('tools'):
                wrong.append(f'{where} (the package never imports tools)')
            elif area == 'root':
                continue
            elif target == 'plugins':
                wrong.append(f'{where} (only plugins/__init__.py imports the package root)')
            elif _area(target) not in AREAS_ALLOWED[area]:
                wrong.append(f'{where} ({area} may import {", ".join(sorted(AREAS_ALLOWED[area]))})')
    assert not wrong, '\n'.join(wrong)


def test_no_import_cycles_even_through_imports_inside_functions(graph):
    def targets(module):  # an import of a package module runs its __init__ too
        return {t for t, _, _ in graph[module] if t in graph}

    state, cycles = {}, []

    def dfs(module, stack):
        state[module] = 'open'
        for target in sorted(targets(module)):
            if state.get(target) == 'open':
                cycles.append(' -> '.join(stack[stack.index(target):] + [target]))
            elif target not in state:
                dfs(target, stack + [target])
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            dfs(module, [module])
    assert not cycles, '\n'.join(cycles)


def test_the_rules_see_imports_inside_functions_and_relative_imports(tmp_path):
    """The checker itself: a relative import inside a function of a line module is found and resolved."""
    path = tmp_path / 'x.py'
    path.write_text('import os\nfrom ..common import image_io\n\ndef f():\n    from ..textsr.labels import x\n')
    found = _imports('plugins.classic.x', str(path), {'plugins.common.image_io'})
    assert found == [('plugins.common.image_io', 2, False), ('plugins.textsr.labels', 5, True)]
