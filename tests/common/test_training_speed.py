"""tools/benchmark.py --train and plugins/common/training_speed.py (iterations/s, data-wait share, peak memory of
training runs built by the toolboxes' own builders), and tools/gpu_check.py on a machine without a GPU."""
import json
import os

import pytest
import torch
from mmengine.config import Config
from tests.helpers import call_tool, load_tool, repo_path, run_tool

from plugins.common import training_speed
from plugins.common.training_speed import measure_iterations
from plugins.engine.basicsr.options import apply_force_yml, load_options

SRCNN = repo_path('options/train/classic/srcnn_x2.yml')
MM_SRCNN = repo_path('options/mmagic/classic/srcnn_x2_demo.py')


class FakeTime:
    """A clock that only the measured callables move: wall and CPU time advance together."""

    def __init__(self):
        self.now = 0.

    def perf_counter(self):
        return self.now

    def process_time(self):
        return self.now


def test_measure_iterations_splits_each_iteration(monkeypatch):
    """Every iteration spends 1 s fetching, 0.5 s in feed and 2.5 s in the step; the warm-up iterations (100 s each)
    are left out: the shares are exactly 1/4, 1/8 and 5/8."""
    clock = FakeTime()
    monkeypatch.setattr(training_speed, 'time', clock)
    steps = []

    def advance(seconds):
        clock.now += seconds * (100 if len(steps) < 2 else 1)

    def step(current_iter, batch):
        steps.append((current_iter, batch))
        advance(2.5)

    result = measure_iterations(lambda: advance(1.) or 'batch', lambda batch: advance(.5) or batch + '!', step,
                                torch.device('cpu'), iters=4, warmup=2)
    assert steps == [(i, 'batch!') for i in range(1, 7)]
    assert (result['data_share'], result['feed_share'], result['step_share']) == (.25, .125, .625)
    assert result['iters_per_s'] == .25 and result['seconds'] == 16.
    assert result['ms'] == {'data': 1000., 'feed': 500., 'step': 2500., 'iteration': 4000., 'cpu': 4000.}
    assert result['peak_memory_bytes'] > 0 and result['peak_memory_method'].startswith('CPU')
    no_feed = measure_iterations(lambda: advance(1.), None, lambda i, b: advance(3.), torch.device('cpu'), 2, 0)
    assert no_feed['feed_share'] is None and 'feed' not in no_feed['ms'] and no_feed['data_share'] == .25


def _check_sane(result, kind, iters):
    assert result['kind'] == kind and result['iters'] == iters and result['device'] == 'cpu'
    assert result['iters_per_s'] > 0 and result['samples_per_s'] == pytest.approx(result['iters_per_s']
                                                                                   * result['batch_size'])
    shares = [result['data_share'], result['step_share']] + ([result['feed_share']] if kind == 'basicsr' else [])
    assert all(0 <= s <= 1 for s in shares) and sum(shares) == pytest.approx(1.)
    assert result['peak_memory_bytes'] > 0 and result['ms']['cpu'] > 0


def test_benchmark_train_basicsr_options_with_a_data_worker(workdir, capsys):
    """A classic demo options file through the toolbox's builders with one data worker: the figures exist and are
    sane, the table is printed, and nothing is written to the working directory but the JSON."""
    run = call_tool(['benchmark.py', '--train', '-opt', SRCNN, '--iters', '3', '--warmup', '1', '--workers', '1',
                     '--device', 'cpu', '--force_yml', 'datasets:train:batch_size_per_gpu=4', '--json', 'speed.json'],
                    workdir, capsys)
    with open(workdir / 'speed.json') as f:
        [result] = json.load(f)
    _check_sane(result, 'basicsr', 3)
    assert (result['model'], result['network'], result['workers'], result['batch_size']) == ('SRModel', 'SRCNN', 1, 4)
    assert result['feed_share'] is not None and result['amp'] is None
    assert '| options/train/classic/srcnn_x2.yml |' not in run.out  # the path as given (absolute)
    assert f'| {SRCNN} | SRModel (SRCNN) | cpu | 4 | 1 | fp32 |' in run.out
    assert sorted(os.listdir(workdir)) == ['datasets', 'speed.json']


@pytest.mark.parametrize('amp', [None, 'bf16'])
def test_benchmark_train_mmengine_config(workdir, capsys, amp):
    """An mmengine config: Runner.from_cfg, its train dataloader and train_step; no feed phase, work dir in a
    temporary folder; --amp makes the optimizer wrapper an AMP one (as tools/train.py --amp does)."""
    call_tool(['benchmark.py', '--train', MM_SRCNN, '--iters', '2', '--warmup', '1', '--workers', '0', '--device',
               'cpu', '--cfg-options', 'train_dataloader.batch_size=4', '--json', 'speed.json']
              + (['--amp', amp] if amp else []), workdir, capsys)
    with open(workdir / 'speed.json') as f:
        [result] = json.load(f)
    _check_sane(result, 'mmengine', 2)
    assert (result['model'], result['network'], result['batch_size']) == ('BaseEditModel', 'SRCNN', 4)
    assert result['feed_share'] is None and result['amp'] == amp
    [wrapper] = result['optim_wrappers'].values()
    assert ('Amp' in wrapper) == bool(amp), wrapper
    assert sorted(os.listdir(workdir)) == ['datasets', 'speed.json']


def test_benchmark_train_several_files_each_in_its_own_process_with_amp(workdir, capsys):
    """Two files, each measured in a spawned process, in bfloat16 autocast (BasicSR's train:amp)."""
    fsrcnn = repo_path('options/train/classic/fsrcnn_x2_l1.yml')
    run = call_tool(['benchmark.py', '--train', SRCNN, fsrcnn, '--iters', '2', '--warmup', '0', '--workers', '0',
                     '--device', 'cpu', '--amp', 'bf16', '--force_yml', 'datasets:train:batch_size_per_gpu=2',
                     '--json', 'speed.json'], workdir, capsys)
    with open(workdir / 'speed.json') as f:
        results = json.load(f)
    assert [(r['options'], r['network'], r['amp']) for r in results] == [(SRCNN, 'SRCNN', 'bf16'),
                                                                         (fsrcnn, 'FSRCNN', 'bf16')]
    for result in results:
        _check_sane(result, 'basicsr', 2)
    assert run.out.count(f'| {fsrcnn} |') == 2  # as it is measured, and in the final table


@pytest.mark.parametrize('args, message', [
    (['--train', MM_SRCNN, '--force_yml', 'train:total_iter=5'], '--force_yml is for BasicSR options files'),
    (['--train', SRCNN, '--cfg-options', 'a=1'], '--cfg-options is for mmengine configs'),
    (['--train', SRCNN, '--iters', '600'], 'exceeds train:total_iter (600)'),
    (['--train', repo_path('options/test/classic/srcnn_x2.yml')], 'needs a training set'),
    (['--train', SRCNN, '--force_yml', 'train:no_such_key=1'], "has no option 'train:no_such_key'"),
    (['-opt', SRCNN, '-opt', SRCNN], 'one -opt options file'),
    (['-opt', SRCNN, '--workers', '1'], 'are for --train'),
])
def test_benchmark_train_refuses_bad_usage_before_any_work(tmp_path, capsys, args, message):
    run = call_tool(['benchmark.py', *args], tmp_path, capsys, check=False)
    assert run.status == 2 and message in run.err, run.err
    assert 'Traceback' not in run.err


def test_gpu_check_without_a_gpu_says_so_and_exits_0(tmp_path):
    """The real command line with the GPUs hidden: one line, exit 0, the performance page untouched."""
    page = tmp_path / 'performance.md'
    page.write_text('# figures\n')
    proc = run_tool(['gpu_check.py', '--output', page], cwd=tmp_path, env={'CUDA_VISIBLE_DEVICES': ''})
    assert proc.returncode == 0
    assert 'no CUDA GPU is visible' in proc.stdout and 'left unchanged' in proc.stdout
    assert page.read_text() == '# figures\n' and sorted(os.listdir(tmp_path)) == ['performance.md']


def test_gpu_check_replaces_only_its_section():
    gpu_check = load_tool('gpu_check.py')
    page = f'# Performance\n\nCPU table\n\n{gpu_check.BEGIN}\nold GPU table\n{gpu_check.END}\n\n## After\n'
    new = gpu_check.replace_section(page, 'new GPU table\n')
    assert new == f'# Performance\n\nCPU table\n\n{gpu_check.BEGIN}\nnew GPU table\n{gpu_check.END}\n\n## After\n'
    assert gpu_check.replace_section(new, 'again') == new.replace('new GPU table', 'again')
    assert gpu_check.replace_section('# page\n', 'table') == f'# page\n\n{gpu_check.BEGIN}\ntable\n{gpu_check.END}\n'
    with open(repo_path('docs/performance.md'), encoding='utf-8') as f:
        page = f.read()  # the GPU section of the real page is replaced, the CPU tables above it stay
    assert page.count(gpu_check.BEGIN) == page.count(gpu_check.END) == 1 and page.index('## CPU') < page.index(
        gpu_check.BEGIN)


def test_gpu_check_short_runs_override_existing_options_of_every_line():
    """The GPU check shortens each line's demo with --force_yml / --cfg-options: every key it sets exists (BasicSR
    refuses new keys; mmengine would silently add them), so the runs on a GPU machine are the short ones."""
    gpu_check = load_tool('gpu_check.py')
    for _, path in gpu_check.LINES:
        flag, *entries = gpu_check.short_overrides(path, 20, 10)
        if path.endswith('.py'):
            assert flag == '--cfg-options'
            cfg = Config.fromfile(repo_path(path))
            for entry in entries:
                key, value = entry.split('=')
                node = cfg
                for part in key.split('.'):
                    assert part in node, f'{path}: {key}'
                    node = node[part]
            assert 'train_cfg.max_iters=20' in entries
        else:
            assert flag == '--force_yml'
            opt = apply_force_yml(load_options(repo_path(path)), entries, path)
            assert opt['train']['total_iter'] == 20 and opt['logger']['save_checkpoint_freq'] == 10
            assert not any(v for k, v in opt['path'].items() if k.startswith('pretrain_network_'))
