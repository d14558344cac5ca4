"""Read BasicSR options files: YAML with key order kept, ``_base_`` inheritance, and ``--force_yml`` overrides.

An options file may start with ``_base_: [relative/file.yml]``: the file is then its base's options with its own
keys merged over them (nested mappings merge key by key, lists and values replace; ``_delete_: true`` inside a
mapping replaces the base's mapping instead of merging). The merge is mmengine's ``Config`` (the one MMagic's
configs use, which reads YAML too), so the rules are those of mmengine's config inheritance. Several bases may be
listed when they share no top-level key; usually a row of an experiment has one base, which may have its own.

BasicSR itself sees only resolved, flat options: ``plugins/compat/basicsr.py`` makes its ``parse_options`` read a
file with ``_base_`` through ``load_options``, and ``tools/train.py -opt X.yml --print-options`` prints what BasicSR
will run.
"""
import os.path as osp
from copy import deepcopy
from typing import Dict, List

import yaml
from basicsr.utils.options import _postprocess_yml_value, ordered_yaml

from ..errors import OptionsError

BASE_KEY = '_base_'
# Where BasicSR's own options files put the top-level keys; the merge appends a row's new keys after its base's.
_TOP_LEVEL_ORDER = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', None, 'datasets', 'network_', 'path',
                    'train', 'val', 'logger', 'dist_params')


def _read_yaml(path: str) -> Dict:
    if not osp.isfile(path):
        raise OptionsError(f'options file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
        except yaml.YAMLError as err:
            raise OptionsError(f'{path}: not valid YAML: {err}') from err
    if not isinstance(opt, dict):
        raise OptionsError(f'{path}: expected a mapping of options at the top level, got {type(opt).__name__}')
    return opt


def _resolve_bases(path: str, opt: Dict) -> Dict:
    """The options of ``path`` merged over its ``_base_`` files (mmengine's ``Config`` inheritance)."""
    from mmengine.config import Config  # mmengine is a dependency; imported only for files that inherit
    bases = opt[BASE_KEY]
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise OptionsError(f'{path}: {BASE_KEY} must be a file name or a list of file names, got {bases!r}')
    for base in bases:
        base_path = osp.join(osp.dirname(osp.abspath(path)), base)
        if not osp.isfile(base_path):
            raise OptionsError(f'{path}: {BASE_KEY} file {base!r} not found (looked for {base_path})')
    try:
        merged = Config.fromfile(path).to_dict()
    except (KeyError, TypeError, ValueError) as err:  # e.g. two bases that set the same key
        raise OptionsError(f'{path}: cannot merge its {BASE_KEY} files: {err}') from err
    return _in_basicsr_order(merged)


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
