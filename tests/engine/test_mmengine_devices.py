"""The mmengine side on GPUs and under torchrun, as far as a CPU shows it: torch's random states restored from a
checkpoint that ``Runner.resume`` mapped to the training device, the CUDA generator's state kept, every process's
states kept under DDP (``diff_rank_seed``), the collective timeout of the shared runtime, and SyncBN.

A GPU is stood in for where one is needed: a state tensor that says it lives on ``cuda:0`` (torch's generators take
CPU byte tensors only), and torch.cuda's generator functions. The per-process states and the timeout are shown in
a 2-process torchrun (gloo) run of the hook itself, not of a training run.
"""
import os
import os.path as osp
import re
import subprocess
from types import SimpleNamespace

import pytest
import torch

from tests.helpers import ONE_THREAD, REPO, repo_path, run_config, torchrun

pytest.importorskip('mmagic')
from mmengine.config import Config  # noqa: E402

from plugins.engine.mmengine.hooks import TorchRandomStateHook  # noqa: E402

RUNTIME = repo_path('options/mmagic/_base_/default_runtime.py')
INPAINT = 'options/mmagic/inpaint/base_demo.py'


class MappedToGPU:
    """Stands in for a state tensor that ``Runner.resume`` loaded with ``map_location='cuda'``: it says it is on
    ``cuda:0`` and only its ``.cpu()`` copy is a tensor torch's generators accept (as for a real CUDA tensor)."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor, self.device = tensor, torch.device('cuda', 0)

    def cpu(self) -> torch.Tensor:
        return self.tensor.clone()


def _runner(iteration=0):
    warnings = []
    return SimpleNamespace(iter=iteration, max_iters=100, hooks=[], logger=SimpleNamespace(warning=warnings.append),
                           warnings=warnings)


def _resume(hook, checkpoint, runner):
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(SimpleNamespace(iter=4))
    hook.before_train_iter(runner, 0)


def test_random_state_is_restored_from_a_checkpoint_mapped_to_the_gpu():
    """Runner.resume maps the checkpoint to the training device: the CPU generator's state arrives as a CUDA
    tensor, which torch.set_rng_state refuses. The hook restores from CPU copies, and the stream goes on exactly."""
    hook, runner = TorchRandomStateHook(), _runner(4)
    torch.manual_seed(3)
    torch.rand(5)
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    straight = torch.rand(4)
    saved = checkpoint[TorchRandomStateHook.KEY]
    assert len(saved) == 1  # one process
    mapped = {TorchRandomStateHook.KEY: [dict(cpu=MappedToGPU(saved[0]['cpu']), cuda=None)]}
    torch.rand(7)  # the resumed process drew elsewhere first
    _resume(hook, mapped, runner)
    assert torch.equal(torch.rand(4), straight)


def test_cuda_generator_state_is_saved_and_restored_from_a_cpu_copy(monkeypatch):
    """On a GPU the checkpoint also holds the CUDA generator's state of the process's device (PD-GAN's noise is
    drawn there), and it is set back from a CPU byte tensor. torch.cuda's generator functions stand in."""
    cuda_state = torch.arange(16, dtype=torch.uint8)
    restored = []

    def set_rng_state(state, device='cuda'):
        assert isinstance(state, torch.Tensor) and state.device.type == 'cpu' and state.dtype == torch.uint8
        restored.append(state)

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_rng_state', lambda device='cuda': cuda_state.clone())
    monkeypatch.setattr(torch.cuda, 'set_rng_state', set_rng_state)
    hook, runner = TorchRandomStateHook(), _runner(4)
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    (state, ) = checkpoint[TorchRandomStateHook.KEY]
    assert torch.equal(state['cuda'], cuda_state)
    _resume(hook, {TorchRandomStateHook.KEY: [dict(cpu=MappedToGPU(state['cpu']),
                                                   cuda=MappedToGPU(state['cuda']))]}, runner)
    assert len(restored) == 1 and torch.equal(restored[0], cuda_state)


def test_states_of_another_number_of_processes_are_not_restored():
    """A checkpoint of a 2-process run resumed by one process: the streams stay the seed's, with a warning, rather
    than one process taking another's stream."""
    hook, runner = TorchRandomStateHook(), _runner(4)
    state = dict(cpu=torch.get_rng_state(), cuda=None)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    _resume(hook, {TorchRandomStateHook.KEY: [state, state]}, runner)
    assert torch.equal(torch.rand(3), expected)
    assert len(runner.warnings) == 1 and 'random states of 2 process(es) and this run has 1' in runner.warnings[0]


# Two gloo processes run the hook as the Runner would: seeded as the shared runtime seeds them (diff_rank_seed),
# process group made from its dist_cfg (with a timeout of 1234 s, a value no default has); at an iteration after
# which a CheckpointHook saves, every rank hands its states over and rank 0 writes the checkpoint; both then draw
# on ("straight"), load it, and draw again.
RANKS_SCRIPT = '''
import sys
sys.path.insert(0, {repo!r})
from types import SimpleNamespace
import torch
import plugins  # noqa: F401  (the compat patches: gloo where there is no GPU)
from mmengine.config import Config
from mmengine.dist import barrier, get_rank, init_dist
from mmengine.hooks import CheckpointHook
from mmengine.runner.utils import set_random_seed
from plugins.engine.mmengine.hooks import TorchRandomStateHook

cfg = Config.fromfile({runtime!r})
cfg.merge_from_dict({{'env_cfg.dist_cfg.timeout': 1234}})  # as --cfg-options env_cfg.dist_cfg.timeout=1234 does
init_dist('pytorch', **cfg.env_cfg.dist_cfg)  # as Runner.setup_env does
rank = get_rank()
group = torch.distributed.distributed_c10d._get_default_group()
timeout = group._get_backend(torch.device('cpu')).options._timeout.total_seconds()
print(f'rank {{rank}} timeout {{timeout}}\\n', end='')  # one write: the ranks print to one pipe
set_random_seed(**cfg.randomness)
torch.rand(rank + 1)  # the ranks are at different places of their streams
hook = TorchRandomStateHook()
runner = SimpleNamespace(iter=3, max_iters=100, hooks=[hook, CheckpointHook(interval=4, by_epoch=False)],
                         logger=SimpleNamespace(warning=print))
hook.after_train_iter(runner, 3)  # iteration 4: a checkpoint is due
if rank == 0:
    checkpoint = {{}}
    hook.before_save_checkpoint(runner, checkpoint)
    torch.save(checkpoint, {path!r})
straight = torch.rand(3)
barrier()
hook.after_load_checkpoint(runner, torch.load({path!r}, weights_only=True))
hook.before_train_iter(runner, 0)
resumed = torch.rand(3)
states = len(torch.load({path!r})[TorchRandomStateHook.KEY])
print(f'rank {{rank}} states {{states}} same {{torch.equal(straight, resumed)}} draws {{straight.tolist()}}\\n', end='')
'''


def test_every_process_gets_its_own_random_state_back_under_torchrun(tmp_path):
    """With diff_rank_seed the ranks' streams differ; rank 0's checkpoint holds both and each rank resumes its own.
    The collective timeout of the config (env_cfg.dist_cfg.timeout, seconds) is the process group's."""
    script = tmp_path / 'ranks.py'
    script.write_text(RANKS_SCRIPT.format(repo=REPO, runtime=RUNTIME, path=str(tmp_path / 'ckpt.pth')))
    env = dict(os.environ, PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='', **ONE_THREAD)
    proc = subprocess.run([*torchrun(2), str(script)], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=600, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for rank in (0, 1):
        assert f'rank {rank} timeout 1234.0' in out, out[-3000:]
    draws = {int(r): d for r, d in re.findall(r'rank (\d) states 2 same True draws (\[.*\])', out)}
    assert sorted(draws) == [0, 1] and draws[0] != draws[1], out[-3000:]


def test_shared_runtime_sets_the_collective_timeout_and_per_rank_seeds():
    """30 min for every collective (nccl's default is 10, shorter than a long validation on rank 0), and seeds
    that differ by rank."""
    cfg = Config.fromfile(RUNTIME)
    assert cfg.env_cfg.dist_cfg.timeout == 1800 and cfg.randomness.diff_rank_seed is True
    assert cfg.sync_bn is None  # an option for GPUs: --cfg-options sync_bn=torch


def test_sync_bn_converts_the_base_generators_batchnorm():
    """sync_bn='torch' makes the Runner (under a launcher) call mmengine's convert_sync_batchnorm on the model:
    every BatchNorm of the Base inpaintor, generator and EMA copy, becomes a SyncBatchNorm; none is left."""
    from mmengine.model import convert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmagic.registry import MODELS
    import plugins.inpaint  # noqa: F401
    cfg = Config.fromfile(repo_path(INPAINT))
    init_default_scope('mmagic')
    model = convert_sync_batchnorm(MODELS.build(cfg.model), 'torch')
    kinds = [type(m) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert kinds and set(kinds) == {torch.nn.SyncBatchNorm}
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.generator_ema.modules())


@pytest.mark.skipif(torch.cuda.is_available(), reason='SyncBatchNorm runs where there is a GPU')
def test_sync_bn_under_a_launcher_without_gpu_is_a_clear_error(workdir, capsys):
    """torch's SyncBatchNorm raises at the first training forward on CPU tensors: refused before any work."""
    run = run_config(INPAINT, workdir, args=['--launcher', 'pytorch'], cfg_options=['sync_bn=torch'], capsys=capsys,
                     check=False)
    assert run.status == 2
    assert ("error: sync_bn='torch' needs GPUs: torch's SyncBatchNorm runs on CUDA only; on CPU processes leave it out "
            '(--cfg-options sync_bn=None)') in run.errors
    assert not (workdir / 'work_dirs').exists()


@pytest.mark.parametrize('override, message', [
    ('sync_bn=troch', "sync_bn must be 'torch' (torch.nn.SyncBatchNorm), 'mmcv' or None, got 'troch'"),
    ('env_cfg.dist_cfg.timeout=0', 'env_cfg.dist_cfg.timeout must be a number of seconds > 0 (how long a rank waits '
     'in a collective, e.g. 1800), got 0'),
    ('env_cfg.dist_cfg.timeout=30min', "env_cfg.dist_cfg.timeout must be a number of seconds > 0 (how long a rank "
     "waits in a collective, e.g. 1800), got '30min'"),
])
def test_bad_distributed_values_are_refused_before_the_runner_starts(override, message, tmp_path, capsys):
    """A misspelt sync_bn would be ignored on one process (mmengine reads it under a launcher only)."""
    run = run_config(INPAINT, tmp_path, cfg_options=[override], capsys=capsys, check=False)
    assert run.status == 2 and f'error: {repo_path(INPAINT)}: {message}' in run.errors
    assert not osp.exists(tmp_path / 'work_dirs')
