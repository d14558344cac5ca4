"""The MMagic side: mmengine configs through tools/train.py and tools/test.py (resume, test, torchrun with the
launcher patch, LMDB with lmdb<2, one-line errors). The compat patches' own tests are in tests/compat/.

Runs are a few iterations on the demo data with --cfg-options, in this process (``run_config``); the 4-iteration
run is built once per session (``build_once``) and copied where a test writes next to it. torchrun and a fresh
interpreter's imports are separate processes.
"""
import os
import os.path as osp
import re
import shutil

import pytest
import torch

from tests.engine.mmengine_runs import CONFIG, FAST, logs as _logs, run_log as _run_log
from tests.helpers import repo_path, run_config, run_tool, torchrun

pytest.importorskip('mmagic')


def _output(proc) -> str:
    return proc.stdout + proc.stderr


def _val_psnr(log: str) -> list:
    """PSNR values of the validation (or test) summary lines, in order."""
    return [float(v) for v in re.findall(r'Iter\((?:val|test)\) \[\d+/\d+\]\s+PSNR: ([\d.]+)', log)]


def _train_lr(log: str) -> dict:
    return {int(i): float(lr) for i, lr in re.findall(r'Iter\(train\) \[(\d+)/\d+\]\s+lr: ([\d.e+-]+)', log)}


def test_train_validates_and_writes_checkpoints(mmengine_srcnn_run):
    folder, log = mmengine_srcnn_run
    assert 'Iter(train) [4/4]' in log
    psnr = _val_psnr(log)
    assert len(psnr) == 2 and all(5 < p < 60 for p in psnr), log[-3000:]
    assert re.search(r'Iter\(val\) \[1/1\]\s+PSNR: [\d.]+\s+SSIM: 0\.\d+', log)
    for name in ('iter_2.pth', 'iter_4.pth', 'last_checkpoint'):
        assert (folder / 'work' / name).is_file(), name
    assert list((folder / 'work').glob('best_PSNR_iter_*.pth'))


def test_resume_continues_from_last_checkpoint(mmengine_srcnn_run, workdir):
    """Needs the safe-globals patch: torch >= 2.6 refuses mmengine's HistoryBuffer in weights_only loads."""
    folder, first_log = mmengine_srcnn_run
    shutil.copytree(folder / 'work', workdir / 'work')
    (workdir / 'work' / 'last_checkpoint').write_text(str(workdir / 'work' / 'iter_4.pth'))  # the copy's own
    before = _logs(workdir / 'work')
    run_config(CONFIG, workdir, args=['--work-dir', 'work', '--resume'],
               cfg_options=['train_cfg.max_iters=6', *FAST])
    log = _run_log(workdir / 'work', before)
    assert re.search(r'Auto resumed from the latest checkpoint \S*iter_4\.pth', log), log[-3000:]
    assert 'resumed epoch: 0, iter: 4' in log
    lrs = _train_lr(log)
    assert sorted(lrs) == [5, 6], log[-3000:]  # iterations 1-4 are not mmengine_srcnn_run again
    # The cosine schedule goes on where it stopped (its explicit `end` survives the larger max_iters).
    assert _train_lr(first_log)[4] > lrs[5] > lrs[6]
    assert (workdir / 'work' / 'iter_6.pth').is_file()


def test_test_tool_reports_metrics_of_the_checkpoint(mmengine_srcnn_run, workdir):
    folder, log = mmengine_srcnn_run
    os.symlink(folder / 'work', workdir / 'work')  # read only
    run_config(CONFIG, workdir, args=['--checkpoint', 'work/iter_4.pth', '--work-dir', 'test_work'],
               cfg_options=['test_dataloader.dataset.indices=1', 'test_dataloader.num_workers=0'], train=False)
    out = _run_log(workdir / 'test_work', set())
    assert 'Load checkpoint from work/iter_4.pth' in out
    test_psnr = _val_psnr(out)
    assert len(test_psnr) == 1 and 'SSIM: ' in out, out[-3000:]
    # Same weights, same image as the validation after iteration 4: the checkpoint was really loaded.
    assert test_psnr[0] == pytest.approx(_val_psnr(log)[-1], abs=2e-4)


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
    run_config(str(config), workdir, args=['--work-dir', 'work'],
               cfg_options=['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'])
    out = _run_log(workdir / 'work', set())
    assert re.search(r'Iter\(val\) \[2/2\]\s+PSNR: [\d.]+', out), out[-3000:]
    assert (workdir / 'work' / 'iter_2.pth').is_file()


# ---------------------------------------------------------------------------------------------------------
# command-line errors
# ---------------------------------------------------------------------------------------------------------
def test_missing_config_is_a_clear_error(tmp_path, capsys):
    """tools/train.py's entry point in this process: exit status 2 and one ``error:`` line."""
    missing = repo_path('options/mmagic/classic/no_such_config.py')
    run = run_config(missing, tmp_path, capsys=capsys, check=False)
    assert run.status == 2
    assert f"error: config file {missing!r} not found" in run.errors


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    run = run_config(CONFIG, tmp_path, args=['--checkpoint', 'no_such.pth'], train=False, capsys=capsys, check=False)
    assert run.status == 2
    assert "error: checkpoint 'no_such.pth' not found" in run.errors


INPAINT = 'options/mmagic/inpaint/base_demo.py'


@pytest.mark.parametrize('override, message', [
    ('model.encdec.base_channel=16', 'model.encdec.base_channel is not an argument of InpaintEncoderDecoder (it takes: '
     'base_channels, dilations, gn_groups, in_channels, norm, num_down, out_channels, self_attn, simam, '
     "simam_lambda, simam_position). Did you mean 'base_channels'?"),
    ('train_dataloader.dataset.pipeline.1.type=Crp', "train_dataloader.dataset.pipeline[1].type 'Crp' is not "
     'registered in the mmagic::transform registry. Did you mean: Crop, ModCrop?'),
    ('val_evaluator.metrics.1.type=PNSR', "val_evaluator.metrics[1].type 'PNSR' is not registered in the "
     'mmagic::metric registry. Did you mean: PSNR'),
    ('train_dataloader.dataset.data_root=datasets/demo/trian', "train_dataloader.dataset.data_root: "
     "'datasets/demo/trian' does not exist"),
    ('train_dataloader.dataset.data_prefix.gt=HR_sup', "train_dataloader.dataset.data_prefix.gt: "
     "'datasets/demo/train/HR_sup' does not exist"),
    ('train_dataloader.batch_sze=4', 'train_dataloader.batch_sze is not an argument of DataLoader (it takes: '),
    ('train_dataloader.batch_size=0', 'train_dataloader.batch_size must be an integer > 0, got 0'),
    ('optim_wrapper.generator.optimizer.lr=-0.1', 'optim_wrapper.generator.optimizer.lr must be > 0, got -0.1'),
])
def test_config_mistakes_are_one_message_before_the_runner_starts(workdir, capsys, override, message):
    """The mmengine side of the options check: a misspelt argument or type (with the closest names) and a missing
    data folder, each one `error:` line naming the config entry (exit 2), before any model or data is built."""
    run = run_config(INPAINT, workdir, cfg_options=[override], capsys=capsys, check=False)
    assert run.status == 2
    assert f'error: {repo_path(INPAINT)}: {message}' in run.errors
    assert not (workdir / 'work_dirs').exists()  # stopped before the Runner made its work dir


@pytest.mark.parametrize('config, entries', [(INPAINT, ('generator', 'disc')), (CONFIG, (None, ))])
@pytest.mark.parametrize('dtype', [None, 'bfloat16'])
def test_amp_makes_every_optimizer_wrapper_an_amp_wrapper(config, entries, dtype):
    """--amp on MMagic's multi-optimizer configs (MMagic's own --amp sets optim_wrapper.type at the top, which
    MultiOptimWrapperConstructor cannot build) and on a plain one: each wrapper autocasts, float16 by default with
    a loss scaler, bfloat16 without one."""
    from mmengine.config import Config
    from mmengine.optim import OptimWrapperDict, build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmagic.registry import MODELS
    from plugins.engine.mmengine.optim_wrappers import DeviceAmpOptimWrapper
    from plugins.engine.mmengine.runner import enable_amp
    cfg = Config.fromfile(repo_path(config))
    init_default_scope('mmagic')
    enable_amp(cfg, dtype)
    built = build_optim_wrapper(MODELS.build(cfg.model), cfg.optim_wrapper)
    wrappers = [built[name] for name in entries] if isinstance(built, OptimWrapperDict) else [built]
    assert len(wrappers) == len(entries) and (entries[0] is None) == (not isinstance(built, OptimWrapperDict))
    for wrapper in wrappers:
        assert isinstance(wrapper, DeviceAmpOptimWrapper) and wrapper.device_type == 'cpu'
        assert wrapper.cast_dtype == getattr(torch, dtype or 'float16')
        assert wrapper.loss_scaler.is_enabled() == (dtype is None)


def test_amp_refuses_other_optimizer_wrappers(workdir, capsys):
    run = run_config(CONFIG, workdir, args=['--amp'], cfg_options=['optim_wrapper.type=ApexOptimWrapper'],
                     capsys=capsys, check=False)
    assert run.status == 2
    assert ("error: --amp works with OptimWrapper (and AmpOptimWrapper) optimizer wrappers; optim_wrapper.type is "
            "'ApexOptimWrapper'") in run.errors


def test_a_string_learning_rate_is_one_message(workdir, capsys):
    """``lr='1e-3'`` in a config file (a string where torch compares a number) is refused before the Runner."""
    config = workdir / 'lr_string.py'
    config.write_text(f"_base_ = [{CONFIG!r}]\noptim_wrapper = dict(optimizer=dict(lr='1e-3'))\n")
    run = run_config(str(config), workdir, capsys=capsys, check=False)
    assert run.status == 2
    assert (f"error: {config}: optim_wrapper.optimizer.lr must be a number, got '1e-3' (str) (write it without "
            'quotes)') in run.errors


def test_a_config_with_a_syntax_error_names_the_file_and_line(workdir, capsys):
    """mmengine's own message says ``<unknown>``; the file may be the config or one of its bases."""
    base = workdir / 'broken_base.py'
    base.write_text("model = dict(type='SRCNN'\nx = 1\n")
    row = workdir / 'row.py'
    row.write_text("_base_ = ['broken_base.py']\n")
    for config in (base, row):
        run = run_config(str(config), workdir, capsys=capsys, check=False)
        assert run.status == 2
        lines = [line for line in run.errors.splitlines() if line.startswith('error:')]
        assert lines == [f"error: {base}:1: Python syntax error in the config: '(' was never closed "
                         "(model = dict(type='SRCNN')"], run.errors
