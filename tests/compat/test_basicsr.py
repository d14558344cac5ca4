"""compat/basicsr.py: each patch of BasicSR 1.4.2 with the upstream failure it works around. The reliability patches
(atomic checkpoints, exact resume, non-finite guard, data faults) are tested through training in tests/engine/."""
import logging
import sys

import pytest
import torch
import yaml

import basicsr
import basicsr.train
import basicsr.utils.dist_util as dist_util
from basicsr.models.base_model import BaseModel
from basicsr.utils.file_client import FileClient
from basicsr.utils.options import parse_options
from plugins.compat import basicsr as basicsr_patches


def test_a_second_apply_wraps_nothing_twice():
    """The patches wrap BasicSR's own functions; applying them again must not wrap the wrappers."""
    patched = {'build_model': basicsr.train.build_model, 'validation': BaseModel.validation,
               'get': FileClient.get, 'parse_options': basicsr.utils.options.parse_options,
               'create_train_val_dataloader': basicsr.train.create_train_val_dataloader}
    basicsr_patches.apply(basicsr)
    assert {'build_model': basicsr.train.build_model, 'validation': BaseModel.validation, 'get': FileClient.get,
            'parse_options': basicsr.utils.options.parse_options,
            'create_train_val_dataloader': basicsr.train.create_train_val_dataloader} == patched
    assert basicsr.train.build_model.__module__ == 'plugins.compat.basicsr'


def test_distributed_init_uses_gloo_on_cpu(monkeypatch):
    """BasicSR's own _init_dist_pytorch divides by torch.cuda.device_count() (ZeroDivisionError on CPU)."""
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.distributed, 'init_process_group', lambda backend, **kw: calls.update(backend=backend))
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('LOCAL_RANK', '1')
    dist_util._init_dist_pytorch('nccl')
    assert calls == {'backend': 'gloo'}


def test_distributed_init_on_gpu_uses_local_rank_and_nccl(monkeypatch):
    """On a second node RANK is 8.., LOCAL_RANK 0..7: the device must come from LOCAL_RANK."""
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 8)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda d: calls.update(device=d))
    monkeypatch.setattr(torch.distributed, 'init_process_group', lambda backend, **kw: calls.update(backend=backend))
    monkeypatch.setenv('RANK', '11')
    monkeypatch.setenv('LOCAL_RANK', '3')
    dist_util._init_dist_pytorch('nccl')
    assert calls == {'device': 3, 'backend': 'nccl'}


def test_resume_state_loads_on_cpu_from_the_experiment_folder(tmp_path, monkeypatch):
    """BasicSR maps the state with torch.cuda.current_device() and looks relative to the working directory."""
    states = tmp_path / 'exp' / 'training_states'
    states.mkdir(parents=True)
    for it in (5, 40, 200):
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
    opt = {'auto_resume': True, 'path': {'training_states': str(states)}, 'num_gpu': 0}
    monkeypatch.chdir(tmp_path)  # not the experiment root
    monkeypatch.setattr(basicsr.train, 'check_resume', lambda opt, it: None)
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 200 and opt['path']['resume_state'].endswith('200.state')


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_parse_options_reads_a_file_with_base_resolved(tmp_path, monkeypatch):
    """BasicSR's parse_options loads the -opt file with a plain YAML load: `_base_` would reach BasicSR unresolved.
    Patched, BasicSR gets the merged options, and the flat file it copies into the experiment is the merged one."""
    _write(tmp_path / 'base.yml', 'name: base\nmodel_type: SRModel\nscale: 2\nnum_gpu: 0\nmanual_seed: 7\n'
           'datasets: {}\npath: {}\ntrain:\n  total_iter: 100\n  optim_g: {type: Adam, lr: !!float 1e-3}\n')
    child = _write(tmp_path / 'row.yml', '_base_: [base.yml]\nname: row\ntrain:\n  total_iter: 5\n')
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', child])
    opt, args = parse_options(str(tmp_path), is_train=True)
    assert '_base_' not in opt and opt['name'] == 'row' and opt['manual_seed'] == 7
    assert opt['train'] == {'total_iter': 5, 'optim_g': {'type': 'Adam', 'lr': 1e-3}}
    assert args.opt != child and args.opt.endswith('row.yml')
    flat = yaml.safe_load(open(args.opt))
    assert '_base_' not in flat and flat['train']['total_iter'] == 5 and flat['scale'] == 2
    assert sys.argv == ['train.py', '-opt', child]  # the command line is left as it was


def test_parse_options_reads_a_file_without_base_as_basicsr_does(tmp_path, monkeypatch):
    plain = _write(tmp_path / 'plain.yml', 'name: plain\nmodel_type: SRModel\nscale: 2\nnum_gpu: 0\nmanual_seed: 1\n'
                   'datasets: {}\npath: {}\n')
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', plain])
    opt, args = parse_options(str(tmp_path), is_train=True)
    assert args.opt == plain and opt['name'] == 'plain'


def test_basicsr_multi_validation_warning_is_dropped_and_nothing_else():
    """BasicSR warns at every validation with several validation sets that only SRModel supports them, though every
    model validates on each set: the basicsr logger drops that message only."""
    from basicsr.utils import get_root_logger
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = get_root_logger()
    logger.addHandler(handler)
    try:
        logger.warning(basicsr_patches.MULTI_VALIDATION_WARNING)
        logger.warning('Multiple validation datasets: something else')
    finally:
        logger.removeHandler(handler)
    assert seen == ['Multiple validation datasets: something else']


@pytest.mark.parametrize('argv, expected', [
    (['-opt', 'a.yml', '--debug'], (0, 'a.yml')), (['--debug', '-opt=b.yml'], (1, 'b.yml')), (['--debug'], (None, None))])
def test_the_options_file_is_found_on_the_command_line(argv, expected):
    from plugins.engine.basicsr.options import option_file_argument
    assert option_file_argument(argv) == expected
