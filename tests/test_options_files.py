"""The options files under options/: each resolves (``_base_`` merged) and passes the options check in a stand-in
working directory (data folders, weights files, and checkpoints built from the training files that make them), the
experiment names follow one scheme, rows are deltas of their line's ``_base_`` files, and ``--print-options`` prints
what ``load_options`` reads.

The stand-in working directory is built once per session: the demo data, small synthetic low-light pairs and
TextZoom-like LMDBs, links that stand for the external data sets, and for every ``path:pretrain_network_*`` of our
experiments the state dict of the network that the TRAINING options file of that experiment builds -- so a test
file (or a second-stage training file) passes only if its network fits the network its checkpoint comes from.
"""
import functools
import glob
import json
import os
import os.path as osp
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import build_once
from tests.helpers import REPO, load_options

BASE_DIR = '_base_'


def _files(pattern: str):
    return sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, pattern), recursive=True)
                  if f'/{BASE_DIR}/' not in p)


TRAIN = _files('options/train/**/*.yml')
TEST = _files('options/test/**/*.yml')
BASICSR = TRAIN + TEST
MMENGINE = _files('options/mmagic/**/*.py')
BASE_FILES = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'options/**/_base_/*.yml'), recursive=True))

# Folders the options name outside our own data: each stands in as a demo folder of the same kind (HR images).
EXTERNAL_IMAGE_FOLDERS = {
    'DIV2K/DIV2K_train_HR': 'train/HR',  # blind SR, paper and Real-ESRGAN scale: training HR images
    'Set5/GTmod12': 'val/HR',  # blind SR validation
    'Set14/GTmod12': 'val/HR',  # blind SR, the official protocol's test sets
    'BSD100/GTmod12': 'val/HR',
    'Urban100/GTmod12': 'val/HR',
    'CelebA-HQ/train': 'train/HR',  # inpainting at 256x256
    'CelebA-HQ/val': 'val/HR',
}


@functools.lru_cache(maxsize=None)
def _resolved(rel: str) -> dict:
    return load_options(osp.join(REPO, rel))


def _load(rel: str) -> dict:
    """The resolved options of a file of the repository (read once per session; a copy each call)."""
    return deepcopy(_resolved(rel))


def _expected_name(rel: str) -> str:
    """options/<train|test>/<line>/<stem>.yml -> <line>_<stem> (train) or <line>_<stem>_test (test)."""
    _, phase, line, filename = rel.split('/')
    stem = osp.splitext(filename)[0]
    return f'{line}_{stem}' + ('_test' if phase == 'test' else '')


def _training_files_by_name():
    return {_load(rel)['name']: rel for rel in TRAIN}


def _checkpoints():
    """(options file, network key, checkpoint path) for every pretrained checkpoint the BasicSR options name."""
    found = []
    for rel in BASICSR:
        for key, value in (_load(rel).get('path') or {}).items():
            if key.startswith('pretrain_network_') and value:
                found.append((rel, 'network_' + key[len('pretrain_network_'):], value))
    return found


def _save_checkpoints(root: Path) -> None:
    """Write every pretrained checkpoint the options name: for our experiments (experiments/<name>/models/...) the
    state dict of the network that <name>'s training options file builds, as BasicSR saves it ('params', and
    'params_ema' when the run keeps an EMA copy); for external weights (experiments/pretrained_models/, e.g.
    crnn.pytorch's crnn.pth) a bare state dict of the network class with random weights, as they are published."""
    from plugins.engine.basicsr.networks import build_network_from_options
    trained = _training_files_by_name()
    for rel, key, ckpt in _checkpoints():
        path = root / ckpt
        if path.exists():
            continue
        experiment = Path(ckpt).parts[1]
        os.makedirs(path.parent, exist_ok=True)
        if experiment in trained:
            train_opt = _load(trained[experiment])
            state = build_network_from_options(train_opt, key, source=trained[experiment]).state_dict()
            saved = {'params': state}
            if (train_opt.get('train') or {}).get('ema_decay', 0) > 0:
                saved['params_ema'] = state
            torch.save(saved, path)
        elif experiment == 'pretrained_models':
            state = build_network_from_options(_load(rel), key, source=rel).state_dict()
            param_key = (_load(rel).get('path') or {}).get('param_key' + key[len('network'):])
            torch.save({param_key: state} if param_key else state, path)  # converted ones: {'params': ...}
        # anything else is left missing: the check then reports it, and a test below names the broken chain


def _build_standin(folder: Path, demo_data: str) -> None:
    from plugins.lowlight.synthetic_pairs import make_pairs
    from plugins.textsr.synthetic_textzoom import make_textzoom_like
    datasets = folder / 'datasets'
    datasets.mkdir()
    os.symlink(demo_data, datasets / 'demo')
    make_pairs(str(datasets / 'lowlight_demo'), variants=1, max_side=48, seed=0)
    os.symlink('lowlight_demo', datasets / 'LOL')
    make_textzoom_like(str(datasets / 'textzoom_synth'), num_train=4, num_test=2, seed=0)
    (datasets / 'TextZoom').mkdir()
    for name, target in (('train1', 'train'), ('train2', 'train'), ('test', 'test')):
        os.symlink(osp.join('..', 'textzoom_synth', target), datasets / 'TextZoom' / name)
    for name, target in EXTERNAL_IMAGE_FOLDERS.items():
        os.makedirs((datasets / name).parent, exist_ok=True)
        os.symlink(osp.join(demo_data, target), datasets / name)
    for rel in TRAIN:  # losses that read pretrained weights (VGG): the check wants the file only
        for loss in (_load(rel).get('train') or {}).values():
            for option, path in (loss.items() if isinstance(loss, dict) else ()):
                if str(option).endswith('weights_path') and not (folder / path).exists():
                    os.makedirs((folder / path).parent, exist_ok=True)
                    (folder / path).write_bytes(b'stand-in for pretrained weights; never loaded by the check\n')
    _save_checkpoints(folder)


@pytest.fixture(scope='session')
def standin(shared_dir, demo_data) -> Path:
    """A working directory in which every options file finds its data, weights files and checkpoints."""
    return build_once(shared_dir, 'options_standin', lambda folder: _build_standin(folder, demo_data))


def test_every_options_file_is_found():
    assert len(TRAIN) >= 40 and len(TEST) >= 9 and len(MMENGINE) >= 7
    assert BASE_FILES, 'no _base_ files under options/'


# ---------------------------------------------------------------------------------------------------------------
# the options check
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('rel', BASICSR)
def test_basicsr_options_resolve_and_pass_the_check(rel, standin, monkeypatch):
    from basicsr.utils.registry import METRIC_REGISTRY

    from plugins.engine.basicsr.options_check import check_basicsr_options, missing_extra
    from plugins.engine.errors import OptionsError
    monkeypatch.chdir(standin)
    metrics = ((_load(rel).get('val') or {}).get('metrics') or {}).values()
    if any(missing_extra(METRIC_REGISTRY.get(m['type'])) for m in metrics):  # e.g. *_ppocr.yml without the OCR extra
        with pytest.raises(OptionsError, match='needs an optional extra'):
            check_basicsr_options(osp.join(REPO, rel), is_train=rel.startswith('options/train/'))
        return
    opt = check_basicsr_options(osp.join(REPO, rel), is_train=rel.startswith('options/train/'))
    assert '_base_' not in opt and not _has_key(opt, '_delete_'), 'inheritance keys left in the resolved options'


@pytest.mark.parametrize('rel', MMENGINE)
def test_mmengine_configs_pass_the_check(rel, standin, monkeypatch):
    from mmengine.config import Config
    from plugins.engine.mmengine.config_check import check_mmengine_config
    monkeypatch.chdir(standin)
    cfg = Config.fromfile(osp.join(REPO, rel))  # runs the config's custom_imports (our modules)
    assert 'plugins.engine.mmengine.hooks' in cfg.custom_imports['imports']
    check_mmengine_config(cfg, rel)


def test_checkpoint_paths_of_our_experiments_name_a_training_file():
    """A test file (or a second training stage) reads experiments/<name>/...: <name> must be a training file's, so
    the train -> test chain holds after a rename."""
    trained = _training_files_by_name()
    broken = [(rel, ckpt) for rel, _, ckpt in _checkpoints()
              if Path(ckpt).parts[0] == 'experiments' and Path(ckpt).parts[1] not in (*trained, 'pretrained_models')]
    assert not broken, f'checkpoints of experiments no training options file makes: {broken}'
    assert any(Path(ckpt).parts[1] in trained for _, _, ckpt in _checkpoints())


# ---------------------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------------------
def test_experiment_names_follow_the_scheme_and_are_unique():
    names = {rel: _load(rel)['name'] for rel in BASICSR}
    wrong = {rel: name for rel, name in names.items() if name != _expected_name(rel)}
    assert not wrong, f'name must be <line>_<file stem> (training) or <line>_<file stem>_test (test): {wrong}'
    assert len(set(names.values())) == len(names)


# ---------------------------------------------------------------------------------------------------------------
# inheritance
# ---------------------------------------------------------------------------------------------------------------
def _raw(rel: str) -> dict:
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _bases(rel: str):
    bases = _raw(rel).get(BASE_DIR) or []
    return [osp.normpath(osp.join(osp.dirname(rel), b)) for b in ([bases] if isinstance(bases, str) else bases)]


def _has_key(node, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_has_key(v, key) for v in node.values())
    return isinstance(node, list) and any(_has_key(v, key) for v in node)


def test_rows_beside_a_base_folder_inherit_from_it():
    """A row file in a folder that has _base_/ starts with `_base_` and inherits (directly or through a chain)
    from a file of that folder, so a new row cannot silently be a full copy."""
    wrong = []
    for rel in BASICSR:
        base_folder = osp.join(osp.dirname(rel), BASE_DIR)
        if not osp.isdir(osp.join(REPO, base_folder)):
            continue
        if next(iter(_raw(rel)), None) != BASE_DIR or not any(b.startswith(base_folder + '/') for b in _bases(rel)):
            wrong.append(rel)
    assert not wrong, f'rows that do not start with `_base_: [{BASE_DIR}/...]`: {wrong}'


def test_every_base_file_is_used_by_a_row():
    used, todo = set(), [b for rel in BASICSR for b in _bases(rel)]
    while todo:
        base = todo.pop()
        if base not in used:
            used.add(base)
            todo += _bases(base)
    assert sorted(set(BASE_FILES) - used) == []


def _repeated(own: dict, base: dict, where: str = ''):
    """Keys of ``own`` (a file's own YAML) that set the value ``base`` (its resolved bases) already has."""
    repeated = []
    for key, value in own.items():
        path = f'{where}:{key}' if where else str(key)
        if key == BASE_DIR or key not in base:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict):
            if value.get('_delete_'):
                if {k: v for k, v in value.items() if k != '_delete_'} == base[key]:
                    repeated.append(path)
            else:
                repeated += _repeated(value, base[key], path)
        elif value == base[key] and type(value) is type(base[key]):
            repeated.append(path)
    return repeated


@pytest.mark.parametrize('rel', [r for r in BASICSR + BASE_FILES if BASE_DIR in _raw(r)])
def test_a_file_with_bases_sets_only_what_differs(rel):
    """A row (or a base with its own base) is a delta: every option it sets changes the value its bases give."""
    base = {}
    for path in _bases(rel):
        base.update(_load(path))  # several bases share no top-level key (mmengine's rule)
    assert _repeated(_raw(rel), base) == []


# ---------------------------------------------------------------------------------------------------------------
# --print-options
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('rel', BASICSR)
def test_print_options_prints_the_resolved_options(rel, capsys):
    from plugins.engine.cli import main
    main(['-opt', osp.join(REPO, rel), '--print-options'], is_train=rel.startswith('options/train/'))
    printed = yaml.safe_load(capsys.readouterr().out)
    # JSON text compares values, types (1 vs 1.0 vs '1e-3') and the order of the keys
    assert json.dumps(printed) == json.dumps(load_options(osp.join(REPO, rel)))


def test_a_row_that_forgets_its_name_is_refused(standin, monkeypatch, tmp_path):
    """A base leaves `name: ~` for its rows to fill; a row without one must not run as an experiment named None."""
    from plugins.engine.basicsr.options_check import check_basicsr_options
    from plugins.engine.errors import OptionsError
    base = osp.join(REPO, 'options/train/classic/_base_/seed_x2.yml')
    row = tmp_path / 'row.yml'
    row.write_text(f'_base_: [{base}]\ntrain: {{pixel_opt: {{type: L1Loss}}}}\n')
    monkeypatch.chdir(standin)
    with pytest.raises(OptionsError, match=r"row\.yml: name must be the experiment's name .*got None"):
        check_basicsr_options(str(row))
