"""Reliability of the mmengine/MMagic path: a run killed with SIGKILL and resumed with --resume ends with the same
weights as an uninterrupted one (torch's random state included), and --resume skips a truncated latest checkpoint;
the non-finite guard (``NonFiniteGuardHook``) skips NaN steps and stops with the last good weights;
``on_data_fault`` names an unreadable image and stops, or skips it and counts it.

Runs happen in this process (``run_config``), except those that must be processes of their own (the killed run,
torchrun): those go through a test-only entry script. The fault-injecting losses are in
``mmengine_fault_injection.py``."""
import glob
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from tests.helpers import ONE_THREAD, REPO, run_config, torchrun

pytest.importorskip('mmagic')

CONFIG = os.path.join(REPO, 'options/mmagic/classic/srcnn_x2_demo.py')
# A test-only entry for the runs that need a process of their own: with KILL_BEFORE_ITER=N it SIGKILLs its own
# process when iteration N+1 is about to start (the hook call is wrapped here, in the test script, so nothing of
# this ships), registers the fault-injecting losses, then runs the tools/train.py entry point.
ENTRY = '''
import os, signal, sys
sys.path.insert(0, {repo!r})
import plugins
from mmengine.runner import Runner

call_hook = Runner.call_hook


def killing_call_hook(self, fn_name, **kwargs):
    if fn_name == 'before_train_iter' and self.iter == int(os.environ.get('KILL_BEFORE_ITER', -1)):
        os.kill(os.getpid(), signal.SIGKILL)
    return call_hook(self, fn_name, **kwargs)


Runner.call_hook = killing_call_hook
import tests.engine.mmengine_fault_injection  # noqa: F401  (NaNAtCallsL1Loss, NoisyL1Loss)
from plugins.engine.cli import main
main(sys.argv[1:], is_train=True)
'''
QUICK = ['train_cfg.max_iters=8', 'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=4',
         'default_hooks.checkpoint.save_best=None', 'default_hooks.logger.interval=1',
         'train_dataloader.num_workers=0', 'train_dataloader.batch_size=2']


@pytest.fixture(scope='module', autouse=True)
def fault_losses():
    """NaNAtCallsL1Loss and NoisyL1Loss in MMagic's registry of this process."""
    import tests.engine.mmengine_fault_injection  # noqa: F401


def _run(workdir, name, *extra, options=(), capsys=None, check=True):
    """tools/train.py on the demo config in this process, into work_dirs/<name>; (the Run, the text of its log)."""
    work = workdir / 'work_dirs' / name
    before = set(glob.glob(str(work / '*' / '*.log')))
    run = run_config(CONFIG, workdir, args=['--work-dir', f'work_dirs/{name}', *extra], cfg_options=[*QUICK, *options],
                     capsys=capsys, check=check)
    logs = set(glob.glob(str(work / '*' / '*.log'))) - before
    assert len(logs) == 1, (logs, run.errors[-3000:])
    return run, open(logs.pop()).read()


def _process(workdir, name, *extra, check=True, env=None, options=(), launcher=None):
    """The same run as a process of its own, through the test entry (for SIGKILL and torchrun)."""
    (workdir / 'entry.py').write_text(ENTRY.format(repo=REPO))
    cmd = [*(launcher or [sys.executable]), str(workdir / 'entry.py'), CONFIG, '--work-dir', f'work_dirs/{name}',
           *extra, '--cfg-options', *QUICK, *options]
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ONE_THREAD, **(env or {}))
    proc = subprocess.run(cmd, cwd=str(workdir), capture_output=True, text=True, timeout=300, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def test_killed_mmengine_run_resumes_to_the_same_weights(workdir, capsys):
    """8 iterations straight vs. SIGKILL before iteration 7 (checkpoint at 4), a truncated iter_6.pth named by
    last_checkpoint (a kill during a non-atomic save), then --resume to 8: identical generator weights. The loss
    draws noise from torch's generator, whose state only TorchRandomStateHook carries over the resume. The killed
    run is a process of its own; the straight run and the resumed one run in this process."""
    noisy = ['model.pixel_loss.type=NoisyL1Loss']
    _run(workdir, 'straight', options=noisy)
    killed = _process(workdir, 'killed', check=False, env={'KILL_BEFORE_ITER': '6'}, options=noisy)
    assert killed.returncode == -9, killed.stderr[-3000:]
    run = workdir / 'work_dirs' / 'killed'
    assert not (run / 'iter_8.pth').exists() and (run / 'iter_4.pth').is_file()
    data = (run / 'iter_4.pth').read_bytes()
    (run / 'iter_6.pth').write_bytes(data[:len(data) // 3])
    (run / 'last_checkpoint').write_text(str(run / 'iter_6.pth'))
    resumed, log = _run(workdir, 'killed', '--resume', options=noisy, capsys=capsys)
    out = log + resumed.errors
    assert 'cannot resume from' in out and 'iter_6.pth' in out, out[-3000:]
    a, b = (torch.load(workdir / 'work_dirs' / n / 'iter_8.pth', map_location='cpu')['state_dict']
            for n in ('straight', 'killed'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), 'weights differ after the resume'


def _weights(path):
    return torch.load(path, map_location='cpu')['state_dict']


def test_nan_losses_are_skipped_then_stop_the_run_with_the_last_good_weights(workdir, capsys):
    """NaN at iterations 3, 5 and 6 with patience 2: iteration 3 is skipped with a warning; 5 and 6 stop the run
    with one error line (exit 1, no traceback), and the saved iter_6.pth (which last_checkpoint names) holds the
    weights of iteration 4, those of a 4-iteration run whose NaN at iteration 3 was skipped alike."""
    def nan_at(calls):
        return ['model.pixel_loss.type=NaNAtCallsL1Loss', f'model.pixel_loss.nan_calls={calls}']

    _run(workdir, 'reference', options=['train_cfg.max_iters=4', *nan_at('[3]')])
    run, log = _run(workdir, 'nan', options=[*nan_at('[3,5,6]'), 'default_hooks.nonfinite_guard.patience=2'],
                    capsys=capsys, check=False)
    out = log + run.errors
    assert run.status == 1, out[-4000:]
    assert 'Traceback' not in run.errors
    assert ('Non-finite loss at iteration 3 (loss=nan): step of optim_wrapper skipped [1 in a row; the run stops '
            'at default_hooks.nonfinite_guard.patience = 2]') in out
    folder = workdir / 'work_dirs' / 'nan'
    error = [line for line in run.errors.splitlines() if line.startswith('error: ')]
    assert len(error) == 1 and error[0].startswith(
        'error: training stopped at iteration 6: 2 consecutive iterations had a non-finite loss or gradient '
        '(loss=nan), and default_hooks.nonfinite_guard.patience is 2. The weights of iteration 4 are saved as '), error
    assert os.path.samefile(os.path.join(workdir, error[0].split(' are saved as ')[1].split(', where')[0]),
                            folder / 'iter_6.pth')
    assert (folder / 'last_checkpoint').read_text().endswith('iter_6.pth')
    a, b = _weights(workdir / 'work_dirs' / 'reference' / 'iter_4.pth'), _weights(folder / 'iter_6.pth')
    assert all(torch.isfinite(v).all() for v in b.values())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), 'the bad steps changed the weights'
    assert torch.load(folder / 'iter_6.pth', map_location='cpu')['meta']['iter'] == 6


def test_nan_on_one_rank_skips_and_stops_every_rank_under_torchrun(workdir):
    """NaN on rank 1 only, at iterations 2 and 3, patience 2: both ranks skip the same steps and stop together at
    iteration 3 with the error (no rank left waiting in a collective), and rank 0 saves iter_3.pth."""
    proc = _process(workdir, 'ddp_nan', '--launcher', 'pytorch', check=False, launcher=torchrun(2),
                  options=['model.pixel_loss.type=NaNAtCallsL1Loss', 'model.pixel_loss.nan_calls=[2,3]',
                           'model.pixel_loss.nan_rank=1', 'default_hooks.nonfinite_guard.patience=2'])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    for rank in (0, 1):
        assert f'rank {rank}: error: training stopped at iteration 3: 2 consecutive iterations' in out, out[-4000:]
    assert (workdir / 'work_dirs' / 'ddp_nan' / 'iter_3.pth').is_file()


def test_guard_skips_only_the_optimizer_with_non_finite_gradients():
    """A generator/discriminator pair (MMagic's OptimWrapperDict, stepped by the model itself as PD-GAN does):
    NaN gradients in the discriminator skip its step only, and the iteration counts as bad."""
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from plugins.engine.mmengine.hooks import NonFiniteGuardHook

    nets = {name: torch.nn.Linear(2, 1) for name in ('generator', 'disc')}
    wrappers = OptimWrapperDict(**{n: OptimWrapper(torch.optim.SGD(m.parameters(), lr=1.)) for n, m in nets.items()})
    warnings = []
    runner = SimpleNamespace(optim_wrapper=wrappers, iter=0, logger=SimpleNamespace(warning=warnings.append))
    hook = NonFiniteGuardHook(patience=3)
    hook.before_train(runner)
    before = {n: m.weight.detach().clone() for n, m in nets.items()}
    hook.before_train_iter(runner, 0)
    for name, net in nets.items():
        loss = net(torch.ones(1, 2)).sum() * (float('nan') if name == 'disc' else 1.)
        wrappers[name].zero_grad()
        loss.backward()
        wrappers[name].step()
    hook.after_train_iter(runner, 0, outputs={'loss_g': torch.tensor(1.), 'loss_d': torch.tensor(float('nan'))})
    assert torch.equal(nets['disc'].weight, before['disc']) and not torch.equal(nets['generator'].weight,
                                                                                before['generator'])
    assert len(warnings) == 1 and 'step of disc skipped [1 in a row' in warnings[0] and 'loss_d=nan' in warnings[0]
    with pytest.raises(ValueError, match='patience must be an int >= 0'):
        NonFiniteGuardHook(patience=-1)


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_guard_leaves_float16_steps_to_the_loss_scaler_and_checks_bfloat16_ones(dtype):
    """--amp's wrappers: float16's loss scaler skips non-finite steps itself (and lowers its scale); bfloat16 has no
    scaler, so the guard skips a step with NaN gradients as for a plain wrapper."""
    from mmengine.optim import OptimWrapperDict
    from plugins.engine.mmengine.hooks import NonFiniteGuardHook
    from plugins.engine.mmengine.optim_wrappers import DeviceAmpOptimWrapper

    net = torch.nn.Linear(2, 1)
    wrapper = DeviceAmpOptimWrapper(dtype=dtype, optimizer=torch.optim.SGD(net.parameters(), lr=1.))
    runner = SimpleNamespace(optim_wrapper=OptimWrapperDict(generator=wrapper), iter=0,
                             logger=SimpleNamespace(warning=lambda message: None))
    hook = NonFiniteGuardHook(patience=3)
    hook.before_train(runner)
    before = net.weight.detach().clone()
    hook.before_train_iter(runner, 0)
    with wrapper.optim_context(net):
        loss = net(torch.ones(1, 2)).sum() * float('nan')
    wrapper.update_params(loss)
    assert torch.equal(net.weight, before)  # skipped, by the scaler or by the guard
    assert hook.counter.skipped_steps == ([] if dtype == 'float16' else ['generator'])
    assert wrapper.loss_scaler.is_enabled() == (dtype == 'float16')


def test_every_mmengine_config_has_the_guard_and_the_random_state_hook():
    """The shared runtime gives every mmengine config of the package the guard, turned on, and exact resume."""
    from mmengine.config import Config
    configs = [os.path.join(root, f) for root, _, files in os.walk(os.path.join(REPO, 'options/mmagic'))
               if '_base_' not in root for f in files if f.endswith('.py')]
    assert len(configs) >= 7
    for path in configs:
        hooks = Config.fromfile(path).default_hooks
        guard = hooks.get('nonfinite_guard')
        assert guard and guard['type'] == 'NonFiniteGuardHook' and guard['patience'] > 0, path
        assert hooks.get('torch_random_state', {}).get('type') == 'TorchRandomStateHook', path


@pytest.fixture
def one_bad_pair(workdir, demo_data):
    """Two training pairs of the demo data, the second one's HR image truncated to a third."""
    root = workdir / 'two_pairs'
    names = sorted(os.listdir(os.path.join(demo_data, 'train', 'HR_sub')))[:2]
    for sub in ('HR_sub', 'LR_bicubic_sub/X2'):
        os.makedirs(root / sub)
        for name in names:
            shutil.copy(os.path.join(demo_data, 'train', sub, name), root / sub / name)
    bad = root / 'HR_sub' / names[1]
    bad.write_bytes(bad.read_bytes()[:bad.stat().st_size // 3])
    return root, bad


def test_unreadable_image_stops_the_mmengine_run_with_its_path(workdir, one_bad_pair, capsys):
    root, bad = one_bad_pair
    run, log = _run(workdir, 'fault_stop', capsys=capsys, check=False,
                    options=['train_cfg.max_iters=2', f'train_dataloader.dataset.data_root={root}'])
    assert run.status == 1, (log + run.errors)[-4000:]
    assert 'Traceback' not in run.errors
    assert (f'error: BasicImageDataset at {root} sample 1 ({root / "LR_bicubic_sub/X2" / bad.name}, {bad}): cannot '
            f'decode image {bad}: truncated, corrupt, or not an image. Fix or remove the file, or set '
            "on_data_fault='skip' in its dataloader config to train without it.") in run.errors


def test_skip_policy_trains_past_the_unreadable_image_and_counts_it(workdir, one_bad_pair):
    root, bad = one_bad_pair
    _, log = _run(workdir, 'fault_skip', options=['train_cfg.max_iters=2', f'train_dataloader.dataset.data_root={root}',
                                                 'train_dataloader.on_data_fault=skip'])
    assert f'Skipping BasicImageDataset at {root} sample 1' in log and f'cannot decode image {bad}' in log
    assert (workdir / 'work_dirs' / 'fault_skip' / 'iter_2.pth').is_file()
    assert f'BasicImageDataset at {root}: 2 unreadable sample(s) skipped (on_data_fault: skip)' in log


def test_mmagic_image_loading_names_the_bad_lmdb_value_and_the_missing_file(tmp_path, demo_data):
    """MMagic's LoadImageFromFile (patched by plugins.compat): a corrupt LMDB value, a missing LMDB key and a
    missing file each raise DataFaultError with the key or path, where MMagic 1.2.0 names none."""
    import lmdb
    import plugins  # noqa: F401
    from mmagic.datasets.transforms import LoadImageFromFile
    from plugins.engine.errors import DataFaultError

    good = open(os.path.join(demo_data, 'val', 'HR', sorted(os.listdir(os.path.join(demo_data, 'val', 'HR')))[0]),
                'rb').read()
    db = str(tmp_path / 'hr.lmdb')
    with lmdb.open(db, map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(b'good', good)
        txn.put(b'cut', good[:len(good) // 4])
    load = LoadImageFromFile(key='gt', channel_order='rgb', backend_args=dict(backend='lmdb', db_path=db))
    assert load({'gt_path': 'good.png'})['gt'].shape[2] == 3
    with pytest.raises(DataFaultError, match=rf"cannot decode image LMDB {db} key 'cut': truncated, corrupt"):
        load({'gt_path': 'cut.png'})
    with pytest.raises(DataFaultError, match=rf"cannot read image LMDB {db} key 'absent': no such key"):
        load({'gt_path': 'absent.png'})
    with pytest.raises(DataFaultError, match=r'cannot read image .*nowhere\.png: .*No such file'):
        LoadImageFromFile(key='gt')({'gt_path': str(tmp_path / 'nowhere.png')})


@pytest.mark.parametrize('override, message', [
    ('train_dataloader.on_data_fault=skp', "train_dataloader.on_data_fault must be one of stop, skip, got 'skp'"),
    ('default_hooks.nonfinite_guard.patience=-1',
     'default_hooks.nonfinite_guard.patience must be an integer >= 0 (0 turns the guard off), got -1'),
])
def test_bad_reliability_values_are_refused_before_the_runner_starts(override, message, tmp_path, capsys):
    run = run_config(CONFIG, tmp_path, cfg_options=[override], capsys=capsys, check=False)
    assert run.status == 2 and f'error: {CONFIG}: {message}' in run.errors
    assert not (tmp_path / 'work_dirs').exists()
