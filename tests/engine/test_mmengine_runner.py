"""The MMagic side: mmengine configs through tools/train.py and tools/test.py, and the compat patches they need
(numpy 2, mmcv-lite, mmengine resume on torch >= 2.6, launcher='pytorch' on CPU, LMDB with lmdb<2).

Runs are a few iterations on the demo data with --cfg-options; the whole file takes about two minutes on 2 CPU cores.
"""
import importlib.machinery
import importlib.util
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, run_tool, torchrun

pytest.importorskip('mmagic')
import plugins  # noqa: E402,F401  (compat patches, registrations)
from plugins import compat  # noqa: E402

CONFIG = osp.join(REPO, 'options', 'mmagic', 'classic', 'srcnn_x2_demo.py')
# A few iterations, validation and checkpoints every 2, one validation image, small batches.
FAST = ['train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=4', 'val_dataloader.dataset.indices=1', 'val_dataloader.num_workers=0']


def _output(proc) -> str:
    return proc.stdout + proc.stderr


def _val_psnr(log: str) -> list:
    """PSNR values of the validation (or test) summary lines, in order."""
    return [float(v) for v in re.findall(r'Iter\((?:val|test)\) \[\d+/\d+\]\s+PSNR: ([\d.]+)', log)]


def _train_lr(log: str) -> dict:
    return {int(i): float(lr) for i, lr in re.findall(r'Iter\(train\) \[(\d+)/\d+\]\s+lr: ([\d.e+-]+)', log)}


@pytest.fixture(scope='module')
def trained(tmp_path_factory, demo_data):
    """A 4-iteration run of the demo config (checkpoints at 2 and 4) in a scratch working directory."""
    cwd = tmp_path_factory.mktemp('mm_train')
    os.makedirs(cwd / 'datasets')
    os.symlink(demo_data, cwd / 'datasets' / 'demo')
    proc = run_tool(['train.py', CONFIG, '--work-dir', 'work', '--cfg-options', 'train_cfg.max_iters=4', *FAST], cwd)
    return cwd, _output(proc)


def test_train_validates_and_writes_checkpoints(trained):
    cwd, log = trained
    assert 'Iter(train) [4/4]' in log
    psnr = _val_psnr(log)
    assert len(psnr) == 2 and all(5 < p < 60 for p in psnr), log[-3000:]
    assert re.search(r'Iter\(val\) \[1/1\]\s+PSNR: [\d.]+\s+SSIM: 0\.\d+', log)
    for name in ('iter_2.pth', 'iter_4.pth', 'last_checkpoint'):
        assert (cwd / 'work' / name).is_file(), name
    assert list((cwd / 'work').glob('best_PSNR_iter_*.pth'))


def test_resume_continues_from_last_checkpoint(trained):
    """Needs the safe-globals patch: torch >= 2.6 refuses mmengine's HistoryBuffer in weights_only loads."""
    cwd, first_log = trained
    proc = run_tool(['train.py', CONFIG, '--work-dir', 'work', '--resume',
                     '--cfg-options', 'train_cfg.max_iters=6', *FAST], cwd)
    log = _output(proc)
    assert re.search(r'Auto resumed from the latest checkpoint \S*iter_4\.pth', log), log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log
    lrs = _train_lr(log)
    assert sorted(lrs) == [5, 6], log[-3000:]  # iterations 1-4 are not trained again
    # The cosine schedule goes on where it stopped (its explicit `end` survives the larger max_iters).
    assert _train_lr(first_log)[4] > lrs[5] > lrs[6]
    assert (cwd / 'work' / 'iter_6.pth').is_file()


def test_test_tool_reports_metrics_of_the_checkpoint(trained):
    cwd, log = trained
    proc = run_tool(['test.py', CONFIG, '--checkpoint', 'work/iter_4.pth', '--work-dir', 'test_work',
                     '--cfg-options', 'test_dataloader.dataset.indices=1', 'test_dataloader.num_workers=0'], cwd)
    out = _output(proc)
    assert 'Load checkpoint from work/iter_4.pth' in out
    test_psnr = _val_psnr(out)
    assert len(test_psnr) == 1 and 'SSIM: ' in out, out[-3000:]
    # Same weights, same image as the validation after iteration 4: the checkpoint was really loaded.
    assert test_psnr[0] == pytest.approx(_val_psnr(log)[-1], abs=2e-4)


def test_checkpoint_needs_exactly_the_allowed_globals(trained):
    cwd, _ = trained
    path = str(cwd / 'work' / 'iter_4.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []  # all allowed by plugins.compat
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    finally:
        torch.serialization.add_safe_globals(allowed)
    assert needed == {'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray', 'numpy.dtype',
                      'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar', 'builtins.getattr'}
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    lr = ckpt['message_hub']['log_scalars']['train/lr']  # a HistoryBuffer, with its statistics methods
    assert len(lr.data[0]) == 4 and lr.statistics('min') == lr.current() < lr.statistics('max') == 1e-3
    assert ckpt['meta']['iter'] == 4


def test_weights_only_getattr_is_limited_to_history_buffer(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    class Reader:  # pickles as getattr(HistoryBuffer, '__init__')
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    torch.save({'x': Reader()}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='is not allowed'):
        torch.load(tmp_path / 'evil.pth', weights_only=True)

    buffer = HistoryBuffer([1.0, 3.0], [1, 1])
    torch.save({'buffer': buffer}, tmp_path / 'ok.pth')
    loaded = torch.load(tmp_path / 'ok.pth', weights_only=True)['buffer']
    assert loaded.mean() == 2.0 and loaded.statistics('max') == 3.0


def test_torchrun_two_cpu_processes(workdir):
    """Needs the launcher patch: mmengine calls torch.cuda.set_device and gives DDP CUDA device_ids."""
    proc = run_tool(['train.py', CONFIG, '--launcher', 'pytorch', '--work-dir', 'work',
                     '--cfg-options', 'train_cfg.max_iters=4', *FAST[:4], 'train_dataloader.num_workers=0',
                     'val_dataloader.dataset.indices=2', 'val_dataloader.num_workers=0'],
                    workdir, launcher=torchrun(2))
    out = _output(proc)
    assert 'Distributed launcher: pytorch' in out and 'Distributed training: True' in out
    assert 'Iter(train) [4/4]' in out and len(_val_psnr(out)) == 2, out[-3000:]
    assert (workdir / 'work' / 'iter_4.pth').is_file()


LMDB_CONFIG = """
_base_ = {config!r}
root = 'datasets/demo/train'
lq_db, gt_db = root + '/LR_bicubic_sub/X2.lmdb', root + '/HR_sub.lmdb'
load_pair = [
    dict(type='LoadImageFromFile', key='img', channel_order='rgb', backend_args=dict(backend='lmdb', db_path=lq_db)),
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb', backend_args=dict(backend='lmdb', db_path=gt_db)),
]
# backend_args go to the loading transforms only: the dataset reads meta_info.txt from disk.
dataset = dict(type='BasicImageDataset', data_root=root, ann_file='HR_sub.lmdb/meta_info.txt',
               data_prefix=dict(img='LR_bicubic_sub/X2.lmdb', gt='HR_sub.lmdb'))
train_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(_delete_=True, **dataset, pipeline=load_pair + [
    dict(type='SetValues', dictionary=dict(scale=2)), dict(type='PairedRandomCrop', gt_patch_size=48),
    dict(type='PackInputs')]))
val_dataloader = dict(num_workers=0, dataset=dict(_delete_=True, **dataset, indices=2,
                                                  pipeline=load_pair + [dict(type='PackInputs')]))
test_dataloader = val_dataloader
"""


def test_lmdb_train_and_val_on_one_lmdb(workdir):
    """Train and validation open the same LMDB in one process (num_workers=0): lmdb >= 2 refuses that."""
    import lmdb
    assert int(lmdb.__version__.split('.')[0]) < 2, f'lmdb {lmdb.__version__}: setup.py pins lmdb<2'
    assert not osp.exists(workdir / 'datasets/demo/train/HR_sub.lmdb/astronaut_s000.png')  # only the LMDB has it
    config = workdir / 'srcnn_x2_lmdb.py'
    config.write_text(LMDB_CONFIG.format(config=CONFIG))
    proc = run_tool(['train.py', str(config), '--work-dir', 'work', '--cfg-options', 'train_cfg.max_iters=2',
                     'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'], workdir)
    out = _output(proc)
    assert re.search(r'Iter\(val\) \[2/2\]\s+PSNR: [\d.]+', out), out[-3000:]
    assert (workdir / 'work' / 'iter_2.pth').is_file()


# ---------------------------------------------------------------------------------------------------------
# command-line errors
# ---------------------------------------------------------------------------------------------------------
def test_missing_config_is_a_clear_error(capsys):
    from plugins.engine.mmengine import runner as mm_runner
    with pytest.raises(SystemExit) as exc:
        mm_runner.train_main(['options/mmagic/classic/no_such_config.py'])
    assert exc.value.code == 2
    assert "error: config file 'options/mmagic/classic/no_such_config.py' not found" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(capsys):
    from plugins.engine.mmengine import runner as mm_runner
    with pytest.raises(SystemExit) as exc:
        mm_runner.test_main([CONFIG, '--checkpoint', 'no_such.pth'])
    assert exc.value.code == 2
    assert "error: checkpoint 'no_such.pth' not found" in capsys.readouterr().err


INPAINT = 'options/mmagic/inpaint/base_demo.py'


@pytest.mark.parametrize('override, message', [
    ('model.encdec.base_channel=16', 'model.encdec.base_channel is not an argument of InpaintEncoderDecoder (it takes: '
     'base_channels, dilations, gn_groups, in_channels, norm, num_down, out_channels, self_attn, simam, '
     "simam_lambda). Did you mean 'base_channels'?"),
    ('train_dataloader.dataset.pipeline.1.type=Crp', "train_dataloader.dataset.pipeline[1].type 'Crp' is not "
     'registered in the mmagic::transform registry. Did you mean: Crop, ModCrop?'),
    ('val_evaluator.metrics.1.type=PNSR', "val_evaluator.metrics[1].type 'PNSR' is not registered in the "
     'mmagic::metric registry. Did you mean: PSNR'),
    ('train_dataloader.dataset.data_root=datasets/demo/trian', "train_dataloader.dataset.data_root: "
     "'datasets/demo/trian' does not exist"),
    ('train_dataloader.dataset.data_prefix.gt=HR_sup', "train_dataloader.dataset.data_prefix.gt: "
     "'datasets/demo/train/HR_sup' does not exist"),
])
def test_config_mistakes_are_one_message_before_the_runner_starts(workdir, monkeypatch, capsys, override, message):
    """The mmengine side of the options check: a misspelt argument or type (with the closest names) and a missing
    data folder, each one `error:` line naming the config entry (exit 2), before any model or data is built."""
    from plugins.engine.mmengine import runner as mm_runner
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as exc:
        mm_runner.train_main([os.path.join(REPO, INPAINT), '--cfg-options', override])
    assert exc.value.code == 2
    assert f'error: {os.path.join(REPO, INPAINT)}: {message}' in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='--amp works where there is a GPU')
def test_amp_without_gpu_is_a_clear_error(capsys):
    from plugins.engine.mmengine import runner as mm_runner
    with pytest.raises(SystemExit) as exc:
        mm_runner.train_main([CONFIG, '--amp'])
    assert exc.value.code == 2 and 'error: --amp needs a GPU' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# numpy / mmcv compat
# ---------------------------------------------------------------------------------------------------------
IMPORT_CHECK = """
import numpy as np
had_bool8 = hasattr(np, 'bool8')
import plugins
assert np.bool8 is np.bool_
import mmagic.models  # needs np.bool8 (numpy 2) and mmcv._ext (mmcv-lite)
from mmagic.registry import MODELS
from plugins.classic.srcnn_arch import SRCNN
assert MODELS.get('SRCNN') is SRCNN
import torch
from mmcv.ops import nms
try:
    nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]]), torch.tensor([0.9, 0.8]), 0.5)
except RuntimeError as err:
    print('op error:', err)
print('had bool8:', had_bool8)
"""


def test_mmagic_imports_and_mmcv_ops_fail_clearly():
    """In a fresh interpreter: import plugins, then all of mmagic; an mmcv op says what is missing."""
    proc = subprocess.run([sys.executable, '-c', IMPORT_CHECK], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "op error: mmcv op 'nms' needs the compiled mmcv (mmcv._ext)" in proc.stdout, proc.stdout
    import numpy as np
    if int(np.__version__.split('.')[0]) >= 2:
        assert 'had bool8: False' in proc.stdout  # the alias is ours, not numpy's


def _fake_mmcv(tmp_path, monkeypatch, files):
    """Point importlib.util.find_spec('mmcv') at a fake package holding ``files``; hide the current mmcv._ext."""
    pkg = tmp_path / 'mmcv'
    pkg.mkdir()
    for name in ['__init__.py', *files]:
        (pkg / name).write_bytes(b'')
    spec = importlib.machinery.ModuleSpec('mmcv', None, origin=str(pkg / '__init__.py'))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *args: spec if name == 'mmcv' else real_find_spec(name, *args))
    monkeypatch.delitem(sys.modules, 'mmcv._ext', raising=False)  # restored after the test


def test_mmcv_stub_is_installed_without_compiled_extension(tmp_path, monkeypatch):
    _fake_mmcv(tmp_path, monkeypatch, [])
    compat._stub_mmcv_ext_if_not_compiled()
    stub = sys.modules['mmcv._ext']
    assert stub.__spec__.name == 'mmcv._ext'
    assert not hasattr(stub, '__wrapped__')  # dunders are not answered (inspect.unwrap probes them)
    with pytest.raises(RuntimeError, match=r"'deform_conv_forward' needs the compiled mmcv"):
        stub.deform_conv_forward(1, 2)


def test_mmcv_stub_never_shadows_a_compiled_extension(tmp_path, monkeypatch):
    _fake_mmcv(tmp_path, monkeypatch, ['_ext.cpython-311-x86_64-linux-gnu.so'])
    compat._stub_mmcv_ext_if_not_compiled()
    assert 'mmcv._ext' not in sys.modules
