"""Bad options stop before any work with one clear message naming the file and the key."""
import pytest
import torch

from tests.helpers import repo_path, run_tool, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'


def _check(path, **kwargs):
    from plugins.engine.basicsr.options_check import check_basicsr_options
    return check_basicsr_options(str(path), **kwargs)


def _assert_rejected(workdir, monkeypatch, overrides, message):
    """The training options with ``overrides`` (keys) fail the check with an OptionsError matching ``message``."""
    from plugins.engine.errors import OptionsError
    monkeypatch.chdir(workdir)
    path = write_options(SRCNN_TRAIN, workdir / 'x.yml', overrides)
    with pytest.raises(OptionsError, match=message):
        _check(path)


def test_the_shipped_options_pass_the_check(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    opt = _check(repo_path(SRCNN_TRAIN))
    assert opt['network_g']['type'] == 'SRCNN'


def test_missing_data_root_names_the_key_and_the_path(workdir, monkeypatch):
    _assert_rejected(workdir, monkeypatch, {'datasets:train:dataroot_gt': 'datasets/demo/train/no_such_folder'},
                     r"x\.yml: datasets:train:dataroot_gt '.*no_such_folder' does not exist")


def test_unknown_network_type_suggests_a_close_name(workdir, monkeypatch):
    _assert_rejected(workdir, monkeypatch, {'network_g:type': 'SRCNNN'},
                     r"network_g.type 'SRCNNN' is not a registered network\. Did you mean: SRCNN")


@pytest.mark.parametrize('overrides, message', [
    ({'train:total_iter': '600'}, r"train:total_iter must be an integer, got '600' \(str\)"),
    ({'train:optim_g:lr': '1e-3'}, r"train:optim_g:lr must be a number, got '1e-3' \(str\).*!!float 1e-3"),
    ({'datasets:train:use_hflip': 1}, r'datasets:train:use_hflip must be true or false, got 1'),
    ({'num_gpu': -1}, r"num_gpu must be 0 \(CPU\)"),
], ids=['total_iter_str', 'lr_str', 'use_hflip_int', 'num_gpu_negative'])
def test_option_of_the_wrong_type(workdir, monkeypatch, overrides, message):
    _assert_rejected(workdir, monkeypatch, overrides, message)


def test_checkpoint_that_does_not_match_the_network(workdir, monkeypatch):
    from plugins.classic.srcnn_arch import SRCNN
    ckpt = workdir / 'rgb_srcnn.pth'
    torch.save({'params': SRCNN(num_in_ch=3).state_dict()}, ckpt)  # a 3-channel network for a 1-channel option
    _assert_rejected(workdir, monkeypatch, {'path:pretrain_network_g': str(ckpt)},
                     r'checkpoint .*rgb_srcnn\.pth does not match network_g .*SRCNN.*'
                     r'extract\.weight: checkpoint \(64, 3, 9, 9\) vs network \(64, 1, 9, 9\)')


def test_scheduler_periods_shorter_than_training(workdir, monkeypatch):
    _assert_rejected(workdir, monkeypatch, {'train:total_iter': 900, 'train:scheduler:periods': [600]},
                     r'periods \[600\] sum to 600, fewer than train:total_iter 900')


def test_force_yml_is_checked_too(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    from plugins.engine.errors import OptionsError
    with pytest.raises(OptionsError, match=r"has no option 'train:total_iters'"):
        _check(repo_path(SRCNN_TRAIN), force_yml=['train:total_iters=5'])
    with pytest.raises(OptionsError, match='train:total_iter must be an integer'):
        _check(repo_path(SRCNN_TRAIN), force_yml=['train:total_iter=abc'])


def test_the_cli_exits_2_with_the_message_and_no_traceback(workdir):
    """The process: tools/train.py's exit status and what it prints (a subprocess on purpose)."""
    path = write_options(SRCNN_TRAIN, workdir / 'x.yml', {'network_g:type': 'NoSuchNet'})
    proc = run_tool(['train.py', '-opt', path], workdir, check=False)
    assert proc.returncode == 2
    assert "error: " in proc.stderr and "'NoSuchNet' is not a registered network" in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (workdir / 'experiments').exists()  # stopped before any work


def test_a_gpu_asked_for_on_a_machine_without_one(workdir, monkeypatch):
    """num_gpu: 1 without CUDA passed the check, then failed in the model's first .to('cuda')."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    _assert_rejected(workdir, monkeypatch, {'num_gpu': 1},
                     r'x\.yml: num_gpu: 1 asks for a GPU but no CUDA device is visible; use num_gpu: auto')


@pytest.mark.parametrize('model_type', ['TextSRModel', 'CMDSRModel'])
def test_data_parallel_is_refused_for_the_models_it_breaks(model_type):
    """CRNN's (T, N, C) output would be split along T; CMDSR calls its sub-networks past the wrapper."""
    from plugins.engine.basicsr.devices import device_problem
    opt = {'num_gpu': 2, 'model_type': model_type}
    assert 'DataParallel, which ' + model_type + ' does not support' in device_problem(opt, 'none', cuda_count=2)
    assert device_problem(opt, 'pytorch', cuda_count=2) is None  # one process per GPU under torchrun
    assert device_problem(dict(opt, model_type='SRModel'), 'none', cuda_count=2) is None  # warned, not refused


def test_the_cuda_prefetcher_without_pinned_memory(workdir, monkeypatch):
    from plugins.engine.errors import OptionsError
    monkeypatch.chdir(workdir)
    path = write_options(SRCNN_TRAIN, workdir / 'x.yml', {'datasets:train:prefetch_mode': 'cuda',
                                                          'datasets:train:pin_memory': False}, add=True)
    with pytest.raises(OptionsError, match=r'datasets:train:prefetch_mode: cuda .* set datasets:train:pin_memory: true'):
        _check(path)


@pytest.mark.parametrize('timeout', [0, -5, '30'])
def test_a_collective_timeout_that_is_not_a_positive_number(workdir, monkeypatch, timeout):
    _assert_rejected(workdir, monkeypatch, {'dist_params:timeout': timeout},
                     r'dist_params:timeout must be a positive number of seconds')


def test_num_gpu_auto_plans_one_gpu_per_process():
    """BasicSR's own `auto` is every visible GPU, which without a launcher means DataParallel in one process."""
    from plugins.engine.basicsr.devices import plan_devices
    plan = plan_devices({'num_gpu': 'auto'}, distributed=False, cuda_count=4)
    assert (plan.device_type, plan.num_gpu, plan.backend) == ('cuda', 1, 'nccl')
    assert 'torchrun --nproc_per_node=4' in plan.notes[0]
    assert plan_devices({'num_gpu': 'auto'}, distributed=False, cuda_count=0).num_gpu == 0
    assert plan_devices({'num_gpu': 4}, distributed=True, cuda_count=4).num_gpu == 1  # torchrun: one per process


@pytest.mark.parametrize('overrides, message', [
    ({'val:val_freq': 0}, r'val:val_freq must be > 0, got 0'),
    ({'logger:save_checkpoint_freq': 0}, r'logger:save_checkpoint_freq must be > 0, got 0'),
    ({'datasets:train:batch_size_per_gpu': 0}, r'datasets:train:batch_size_per_gpu must be > 0, got 0'),
    ({'datasets:train:gt_size': -48}, r'datasets:train:gt_size must be > 0, got -48'),
    ({'train:optim_g:lr': -1.0}, r'train:optim_g:lr must be > 0, got -1\.0'),
    ({'network_g:upscale': 3}, r'network_g:upscale is 3 but scale is 2: set network_g:upscale: 2'),
    ({'network_g:num_in_ch': 3}, r'network_g:num_in_ch is 3 but datasets:train:color: y gives one channel \(Y\)'),
], ids=['val_freq_0', 'save_checkpoint_freq_0', 'batch_size_0', 'gt_size_negative', 'lr_negative',
        'upscale_not_scale', 'rgb_network_on_y'])
def test_values_that_would_fail_after_the_start(workdir, monkeypatch, overrides, message):
    """Issue 17, point 4: each passed the check, then a traceback (some after training started)."""
    _assert_rejected(workdir, monkeypatch, overrides, r'x\.yml: ' + message)


def test_a_network_default_upscale_is_checked_against_scale(workdir, monkeypatch):
    """SRResNet's upscale defaults to 4: without the argument, a x2 run would build a x4 network."""
    from plugins.engine.errors import OptionsError
    monkeypatch.chdir(workdir)
    path = write_options(SRCNN_TRAIN, workdir / 'x.yml', {'network_g': {'type': 'SRResNetIN', 'num_in_ch': 1,
                                                                        'num_out_ch': 1}})
    with pytest.raises(OptionsError, match=r'network_g:upscale defaults to \(in \w+\) 4 but scale is 2'):
        _check(path)
