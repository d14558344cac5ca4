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
