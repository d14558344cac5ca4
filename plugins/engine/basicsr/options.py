"""Read BasicSR options files: YAML with key order kept, ``_base_`` inheritance, and ``--force_yml`` overrides.

An options file may start with ``_base_: [relative/file.yml]``: the file is then its base's options with its own
keys merged over them (nested mappings merge key by key, lists and values replace; ``_delete_: true`` inside a
mapping replaces the base's mapping instead of merging). The merge is mmengine's ``Config`` (the one MMagic's
configs use, which reads YAML too), so the rules are those of mmengine's config inheritance. Several bases may be
listed when they share no top-level key; usually a row of an experiment has one base, which may have its own.

BasicSR itself sees only resolved, flat options: ``plugins/compat/basicsr.py`` makes its ``parse_options`` read a
file with ``_base_`` through ``load_options``, and ``tools/train.py -opt X.yml --print-options`` prints what BasicSR
will run.

Options files are data, never code: every file (the ``-opt`` file and each ``_base_`` file, before mmengine's
``Config`` reads them) is read with ``OptionsLoader``, a ``yaml.SafeLoader`` that keeps key order and refuses
duplicate keys. A Python tag (``!!python/object/apply:os.system [...]``, which BasicSR's and mmengine's own loaders
would run) and any other tag outside plain YAML stop the run with one line naming the file and line; so do
duplicate keys (a plain YAML loader keeps the last value without a word) and a ``_base_`` that is not a YAML file.
"""
import os.path as osp
from copy import deepcopy
from typing import Dict, List

import yaml
from basicsr.utils.options import _postprocess_yml_value

from ..errors import OptionsError

BASE_KEY = '_base_'
# Where BasicSR's own options files put the top-level keys; the merge appends a row's new keys after its base's.
_TOP_LEVEL_ORDER = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', None, 'datasets', 'network_', 'path',
                    'train', 'val', 'logger', 'dist_params')


YAML_SUFFIXES = ('.yml', '.yaml')


class UnsafeYamlError(yaml.YAMLError):
    """A tag that would build a Python object, or a duplicate key: refused by ``OptionsLoader``."""

    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.message, self.mark = message, mark


class OptionsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain YAML types only: no Python object is ever built) whose mappings are dicts in file
    order, that refuses a key given twice in one mapping and names Python tags in its error.

    Also the loader BasicSR's ``parse_options`` uses (``plugins/compat/basicsr.py`` patches ``ordered_yaml``)."""


def _construct_mapping(loader: OptionsLoader, node: yaml.MappingNode) -> Dict:
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == 'tag:yaml.org,2002:merge':  # `<<: *anchor` merges; its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: SafeLoader reports it below
            continue
        if first != key_node.start_mark.line + 1:
            raise UnsafeYamlError(f'duplicate key {key!r} (lines {first} and {key_node.start_mark.line + 1}); a '
                                  'YAML loader would keep the last value without a word: keep one',
                                  key_node.start_mark)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=True))


def _refuse_python_tag(loader: OptionsLoader, suffix: str, node: yaml.Node):
    raise UnsafeYamlError(f'the tag !!python/{suffix} would run Python code when the file is read; options files '
                          'hold plain YAML only (numbers, strings, lists, mappings)', node.start_mark)


OptionsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
OptionsLoader.add_multi_constructor('tag:yaml.org,2002:python/', _refuse_python_tag)


def _yaml_error_line(path: str, err: yaml.YAMLError) -> str:
    """One line for a YAML error of ``path``: file:line, then what is wrong."""
    mark = getattr(err, 'mark', None) or getattr(err, 'problem_mark', None)
    where = f'{path}:{mark.line + 1}' if mark is not None else path
    if isinstance(err, UnsafeYamlError):
        return f'{where}: {err.message}'
    problem = ' '.join(str(getattr(err, 'problem', None) or err).split())
    context = getattr(err, 'context', None)
    return f'{where}: not valid YAML: {problem}' + (f' ({" ".join(context.split())})' if context else '')


def read_yaml_file(path: str):
    """The content of the YAML file ``path`` read with ``OptionsLoader``; ``OptionsError`` (one line, the file and
    line) for invalid YAML, a Python tag or a duplicate key."""
    with open(path, encoding='utf-8') as f:
        try:
            return yaml.load(f, Loader=OptionsLoader)
        except yaml.YAMLError as err:
            raise OptionsError(_yaml_error_line(path, err)) from err


def _read_yaml(path: str) -> Dict:
    if not osp.isfile(path):
        raise OptionsError(f'options file not found: {path}')
    opt = read_yaml_file(path)
    if not isinstance(opt, dict):
        raise OptionsError(f'{path}: expected a mapping of options at the top level, got {type(opt).__name__}')
    return opt


def _resolve_bases(path: str, opt: Dict) -> Dict:
    """The options of ``path`` merged over its ``_base_`` files (mmengine's ``Config`` inheritance)."""
    from mmengine.config import Config  # mmengine is a dependency; imported only for files that inherit
    for base_path in _base_paths(path, opt):
        _read_safely_with_bases(base_path, (osp.normpath(osp.abspath(path)), ))
    try:
        merged = Config.fromfile(path).to_dict()
    except (KeyError, TypeError, ValueError) as err:  # e.g. two bases that set the same key
        raise OptionsError(f'{path}: cannot merge its {BASE_KEY} files: {err}') from err
    return _in_basicsr_order(merged)


def _base_paths(path: str, opt: Dict) -> List[str]:
    """The paths of the ``_base_`` files ``opt`` (read from ``path``) names, each a YAML file that exists;
    ``OptionsError`` naming ``path`` otherwise."""
    bases = opt.get(BASE_KEY) or []
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise OptionsError(f'{path}: {BASE_KEY} must be a file name or a list of file names, got {bases!r}')
    paths = []
    for base in bases:
        if not base.endswith(YAML_SUFFIXES):  # mmengine would execute a .py base
            raise OptionsError(f'{path}: {BASE_KEY} file {base!r} must be a YAML options file (.yml)')
        base_path = osp.join(osp.dirname(osp.abspath(path)), base)
        if not osp.isfile(base_path):
            raise OptionsError(f'{path}: {BASE_KEY} file {base!r} not found (looked for {base_path})')
        paths.append(base_path)
    return paths


def _read_safely_with_bases(path: str, seen: tuple = ()) -> None:
    """Read ``path`` and its ``_base_`` files (recursively) with ``OptionsLoader``, so that a Python tag or a
    duplicate key in any of them is refused before mmengine's ``Config`` constructs anything (it reads YAML with an
    unsafe loader)."""
    path = osp.normpath(osp.abspath(path))
    if path in seen:
        raise OptionsError(f'{path}: {BASE_KEY} files form a cycle: {" -> ".join(seen + (path, ))}')
    for base_path in _base_paths(path, _read_yaml(path)):
        _read_safely_with_bases(base_path, seen + (path, ))


def _in_basicsr_order(opt: Dict) -> Dict:
    """The top-level keys in the order of BasicSR's options files (other keys after ``manual_seed``, in their order)."""
    def rank(key):
        for index, known in enumerate(_TOP_LEVEL_ORDER):
            if known is not None and (key == known or known.endswith('_') and str(key).startswith(known)):
                return index
        return _TOP_LEVEL_ORDER.index(None)

    return {key: opt[key] for key in sorted(opt, key=rank)}


def load_options(path: str) -> Dict:
    """Read a BasicSR options YAML file into a dict, with its ``_base_`` files resolved (see the module docstring).

    Raises:
        OptionsError: a missing file or base, invalid YAML, or a top level that is not a mapping.
    """
    opt = _read_yaml(path)
    return _resolve_bases(path, opt) if BASE_KEY in opt else opt


def add_run_defaults(opt: Dict) -> Dict:
    """Set, in BasicSR's parsed options, what every run has unless its file says otherwise: progress bars over the
    images of validation and test (``val: pbar: true``; BasicSR's default is off). Returns ``opt``."""
    if isinstance(opt.get('val'), dict):
        opt['val'].setdefault('pbar', True)
    return opt


def option_file_argument(argv: List[str]):
    """(index, path) of BasicSR's ``-opt X`` / ``-opt=X`` in a command line, or (None, None)."""
    for index, arg in enumerate(argv):
        if arg == '-opt' and index + 1 < len(argv):
            return index, argv[index + 1]
        if arg.startswith('-opt='):
            return index, arg.split('=', 1)[1]
    return None, None


def launcher_argument(argv: List[str]) -> str:
    """BasicSR's ``--launcher X`` / ``--launcher=X`` of a command line ('none' when absent)."""
    for index, arg in enumerate(argv):
        if arg == '--launcher' and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith('--launcher='):
            return arg.split('=', 1)[1]
    return 'none'


def force_yml_arguments(argv: List[str]) -> List[str]:
    """The entries after ``--force_yml`` in a command line (up to the next flag)."""
    if '--force_yml' not in argv:
        return []
    values = []
    for arg in argv[argv.index('--force_yml') + 1:]:
        if arg.startswith('-'):
            break
        values.append(arg)
    return values


def has_bases(path: str) -> bool:
    """Whether the options file ``path`` inherits from other files (``_base_``)."""
    return BASE_KEY in _read_yaml(path)


def apply_force_yml(opt: Dict, entries: List[str], where: str) -> Dict:
    """Apply BasicSR ``--force_yml key:sub=value`` overrides to a copy of ``opt`` (BasicSR cannot add keys)."""
    opt = deepcopy(opt)
    for entry in entries:
        if '=' not in entry:
            raise OptionsError(f'--force_yml {entry!r}: expected key:sub=value')
        keys, value = (s.strip() for s in entry.split('=', 1))
        node = opt
        parts = keys.split(':')
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise OptionsError(f'--force_yml {entry!r}: {where} has no section {part!r}')
            node = node[part]
        if parts[-1] not in node:
            raise OptionsError(f'--force_yml {entry!r}: {where} has no option {keys!r} (BasicSR can only '
                               'override existing keys)')
        node[parts[-1]] = _postprocess_yml_value(value)
    return opt


def _plain(value):
    """Mappings as plain dicts (so YAML writes them without Python tags), recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def options_to_yaml(opt: Dict) -> str:
    """Flat YAML of resolved options, in their key order, that plain BasicSR reads as it is."""
    return yaml.safe_dump(_plain(opt), sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
