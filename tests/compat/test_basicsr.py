"""compat/basicsr.py: each patch of BasicSR 1.4.2 with the upstream failure it works around. The reliability patches
(atomic checkpoints, exact resume, non-finite guard, data faults) are tested through training in tests/engine/."""
import logging
import sys
from datetime import timedelta

import pytest
import torch
import yaml

import basicsr
import basicsr.train
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


def _fake_cuda(monkeypatch, count: int, calls: dict) -> None:
    """This process sees ``count`` CUDA devices (0: none), and records set_device / init_process_group calls."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: count > 0)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: count)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda d: calls.update(device=d))
    monkeypatch.setattr(torch.distributed, 'init_process_group',
                        lambda backend, **kw: calls.update(backend=backend, timeout=kw.get('timeout')))
    monkeypatch.setattr(torch.multiprocessing, 'get_start_method', lambda allow_none=False: 'fork')


def _parse_under_torchrun(tmp_path, monkeypatch, options: str, rank: int = 1, local_rank: int = 1):
    """BasicSR's parse_options for ``options`` (YAML text) as torchrun process ``rank`` / ``local_rank`` starts it."""
    path = _write(tmp_path / 'x.yml', 'name: x\nmodel_type: SRModel\nscale: 2\nmanual_seed: 1\n'
                  'datasets: {train: {prefetch_mode: cuda, pin_memory: true}}\npath: {}\n' + options)
    monkeypatch.setenv('RANK', str(rank))
    monkeypatch.setenv('LOCAL_RANK', str(local_rank))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', path, '--launcher', 'pytorch'])
    return parse_options(str(tmp_path), is_train=True)[0]


def test_torchrun_on_a_cpu_machine_uses_gloo(tmp_path, monkeypatch):
    """BasicSR's own _init_dist_pytorch divides by torch.cuda.device_count() (ZeroDivisionError on CPU) and asks
    for nccl; prefetch_mode cuda (BasicSR's CUDAPrefetcher) would fail on the CPU and falls back."""
    calls = {}
    _fake_cuda(monkeypatch, 0, calls)
    opt = _parse_under_torchrun(tmp_path, monkeypatch, 'num_gpu: auto\n')
    assert calls == {'backend': 'gloo', 'timeout': timedelta(seconds=1800)}
    assert opt['num_gpu'] == 0 and opt['datasets']['train']['prefetch_mode'] is None
    assert opt['datasets']['train']['pin_memory'] is False  # page-locked memory is for copies to a GPU


def test_torchrun_on_a_gpu_machine_uses_local_rank_nccl_and_the_timeout_option(tmp_path, monkeypatch):
    """On a second node RANK is 8.., LOCAL_RANK 0..7: the device must come from LOCAL_RANK; the collective timeout
    comes from dist_params:timeout; prefetch_mode cuda stays."""
    calls = {}
    _fake_cuda(monkeypatch, 8, calls)
    opt = _parse_under_torchrun(tmp_path, monkeypatch, 'num_gpu: auto\ndist_params: {backend: nccl, timeout: 60}\n',
                                rank=11, local_rank=3)
    assert calls == {'device': 3, 'backend': 'nccl', 'timeout': timedelta(seconds=60)}
    assert opt['num_gpu'] == 1 and opt['datasets']['train']['prefetch_mode'] == 'cuda'


def test_torchrun_with_num_gpu_0_on_a_gpu_machine_keeps_the_model_and_the_group_on_the_cpu(tmp_path, monkeypatch,
                                                                                          capsys):
    """BasicSR kept nccl for a CPU model (DDP: "No backend type associated with device type cpu")."""
    calls = {}
    _fake_cuda(monkeypatch, 2, calls)
    opt = _parse_under_torchrun(tmp_path, monkeypatch, 'num_gpu: 0\n')
    assert calls == {'backend': 'gloo', 'timeout': timedelta(seconds=1800)}  # no set_device
    assert opt['num_gpu'] == 0
    assert 'num_gpu: 0 runs on the CPU although 2 CUDA device(s) are visible' in capsys.readouterr().out


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


def test_resume_on_a_gpu_run_loads_the_state_and_its_random_states_on_the_cpu(tmp_path, monkeypatch):
    """BasicSR maps the state to the current CUDA device: the saved random states landed on the GPU, where
    torch.set_rng_state and NumPy cannot take them. The state is read onto the CPU and the generators restored."""
    from plugins.engine.basicsr.resume import get_rng_state, set_rng_state
    path = tmp_path / '8.state'
    torch.manual_seed(3)
    torch.save({'epoch': 0, 'iter': 8, 'optimizers': [], 'schedulers': [], 'rng_states': [get_rng_state()]}, path)
    expected = torch.rand(4)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # a GPU run: num_gpu 1
    monkeypatch.setattr(basicsr.train, 'check_resume', lambda opt, it: None)
    state = basicsr.train.load_resume_state({'auto_resume': False, 'num_gpu': 1, 'path': {'resume_state': str(path)}})
    rng = state['rng_states'][0]
    assert rng['torch'].device.type == 'cpu' and rng['numpy'][1].device.type == 'cpu'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    set_rng_state(rng)
    assert torch.equal(torch.rand(4), expected)


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


def test_data_parallel_warns_that_torchrun_is_faster():
    """num_gpu > 1 without a launcher: BasicSR's DataParallel, kept, with a warning that says what to use."""
    from types import SimpleNamespace
    from basicsr.utils import get_root_logger
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = get_root_logger()
    logger.addHandler(handler)
    model = SimpleNamespace(opt={'dist': False, 'num_gpu': 2}, device=torch.device('cpu'))
    try:
        wrapped = BaseModel.model_to_device(model, torch.nn.Linear(2, 2))
    finally:
        logger.removeHandler(handler)
    assert isinstance(wrapped, torch.nn.DataParallel)
    assert any('DataParallel in one process; torchrun --nproc_per_node=2' in line for line in seen)
