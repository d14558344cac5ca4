"""One command for the GPU figures: short training of every line with and without mixed precision, resume after a
kill, 1080p low-light inference FPS, and a DDP run over all visible GPUs; the tables go to docs/performance.md.

    python tools/gpu_check.py [--output docs/performance.md] [--checks training resume inference ddp]
        [--iters 30] [--warmup 10] [--workdir DIR]

* training: tools/benchmark.py --train's measurement (plugins/common/training_speed.py, each run in its own
  process) of each line's demo options file, and of CMDSR at the paper's batch (8 tasks x 40 patches of 192 px) on
  the demo images, in fp32, bf16 and fp16 autocast: iterations/s, data-wait share, peak CUDA memory.
* resume: BasicSR (classic SRCNN) and mmengine (SRCNN demo config) runs killed with SIGKILL after their first
  checkpoint and resumed (--auto_resume / --resume), against uninterrupted runs: largest weight difference.
* inference: Backbone7x7 (low-light) at 1x4x1080x1920, channels-last, in fp32, fp16 and bf16 autocast: FPS of the
  forward pass (input already on the GPU; the lab: 34.86 FPS on a GTX TITAN X; our goal: >= 200 FPS in fp16).
* ddp: every line's demo for a few iterations under torchrun --nproc_per_node=<visible GPUs> with nccl.

Runs happen in a temporary working directory (--workdir to keep it) whose datasets/ links the repository's demo data
or builds it (tools/data/make_*.py). The tables replace the section of --output between the gpu_check markers. On
a machine without a CUDA GPU the script says so and exits 0.
"""
import argparse
import datetime
import glob
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # the repository root, for `import plugins`

LINES = [  # (line, its demo options file or config)
    ('classic', 'options/train/classic/srcnn_x2.yml'),
    ('blindsr', 'options/train/blindsr/cmdsr_x4_demo.yml'),
    ('lowlight', 'options/train/lowlight/backbone7x7_demo.yml'),
    ('textsr', 'options/train/textsr/demo_joint_synth.yml'),
    ('inpaint', 'options/mmagic/inpaint/base_demo.py'),
]
# Training rows beyond the demos: (options file, --force_yml entries). CMDSR at the paper's size (8 tasks x 40
# patches of 192 px, degradations synthesised per batch) is where the data pipeline is tested; it reads the demo HR.
TRAINING_EXTRA = [('options/train/blindsr/cmdsr_x4_paper.yml', ['datasets:train:dataroot_gt=datasets/demo/train/HR'])]
DATA = {'demo': 'make_demo_data.py', 'lowlight_demo': 'make_lowlight_data.py', 'textzoom_synth': 'make_text_data.py'}
INFERENCE_OPTIONS = 'options/train/lowlight/backbone7x7_gt.yml'  # Backbone7x7, the lab's 34.86 FPS network
BEGIN = '<!-- gpu_check:begin (written by tools/gpu_check.py; do not edit by hand) -->'
END = '<!-- gpu_check:end -->'
CHECKS = ('training', 'resume', 'inference', 'ddp')
# (toolbox, options file or config, iterations, checkpoint interval, more overrides): killed after the first
# checkpoint. BasicSR twice: with the file's data workers and without (on CPU only the run without workers resumed
# exactly: BasicSR seeds every worker with the same seed each epoch, so augmentations after a resume differ).
RESUME_RUNS = [('BasicSR', 'options/train/classic/srcnn_x2.yml', 600, 100, []),
               ('BasicSR', 'options/train/classic/srcnn_x2.yml', 600, 100, ['datasets:train:num_worker_per_gpu=0']),
               ('mmengine', 'options/mmagic/classic/srcnn_x2_demo.py', 300, 50, [])]
DDP_ITERS = 20  # per line, validation and checkpoint at half and at the end


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default=osp.join(REPO, 'docs', 'performance.md'),
                        help='Markdown file whose gpu_check section is replaced (default: docs/performance.md)')
    parser.add_argument('--checks', nargs='+', choices=CHECKS, default=list(CHECKS), help='checks to run (default: all)')
    parser.add_argument('--iters', type=int, default=30, help='measured training iterations per run (default: 30)')
    parser.add_argument('--warmup', type=int, default=10, help='training iterations before them (default: 10)')
    parser.add_argument('--workdir', default=None, help='working directory to use and keep (default: a temporary one)')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
def prepare_workdir(workdir):
    """``workdir/datasets/<name>``: the repository's data where it exists, else built by its make tool."""
    os.makedirs(osp.join(workdir, 'datasets'), exist_ok=True)
    for name, tool in DATA.items():
        target, own = osp.join(workdir, 'datasets', name), osp.join(REPO, 'datasets', name)
        if osp.exists(target):
            continue
        if osp.isdir(own):
            os.symlink(own, target)
        else:
            subprocess.run([sys.executable, osp.join(REPO, 'tools', 'data', tool), '--output', target], check=True)


def tool(args, workdir, launcher=None, timeout=1800, **kwargs):
    """``tools/<args[0]> args[1:]`` in ``workdir``; the CompletedProcess."""
    cmd = (launcher or [sys.executable]) + [osp.join(REPO, 'tools', args[0])] + [str(a) for a in args[1:]]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, **kwargs)


def last_error(text):
    """The last `error:` line (or the last line) of a failed run's output, for a table cell."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if 'error' in line.lower()]
    return ((errors or lines or ['(no output)'])[-1]).replace('|', '/')[:160]


def short_overrides(path, iters, every):
    """Overrides of a training file for a short run: ``iters`` iterations, validation and checkpoints every
    ``every``, no TensorBoard, no pretrained weights (BasicSR: --force_yml entries; mmengine: --cfg-options)."""
    if path.endswith('.py'):
        return ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={every}',
                f'default_hooks.checkpoint.interval={every}']
    from plugins.engine.basicsr.options import load_options
    opt = load_options(osp.join(REPO, path))
    wanted = {('train', 'total_iter'): iters, ('val', 'val_freq'): every, ('logger', 'save_checkpoint_freq'): every,
              ('logger', 'use_tb_logger'): False}
    wanted.update({('path', key): '~' for key in opt.get('path') or {} if key.startswith('pretrain_network_')})
    entries = [f'{a}:{b}={v}' for (a, b), v in wanted.items() if b in (opt.get(a) or {})]
    return ['--force_yml', *entries]


# ---------------------------------------------------------------------------------------------------------
# the checks: each returns Markdown
# ---------------------------------------------------------------------------------------------------------
def check_training(args, workdir):
    """Every line's demo, fp32 / bf16 / fp16 autocast (tools/benchmark.py --train's measurement)."""
    import torch

    from plugins.common.training_speed import format_training_table, training_speed_in_subprocess
    modes = [None, 'bf16', 'fp16'] if torch.cuda.is_bf16_supported() else [None, 'fp16']
    results, failures = [], []
    os.chdir(workdir)
    for path, force_yml in [(path, []) for _, path in LINES] + TRAINING_EXTRA:
        for amp in modes:
            try:
                results.append(training_speed_in_subprocess(osp.join(REPO, path), iters=args.iters,
                                                            warmup=args.warmup, amp=amp, random_init=True,
                                                            force_yml=force_yml))
                results[-1]['options'] = path
            except Exception as err:  # noqa: BLE001  (one failing run must not hide the others' figures)
                failures.append(f'| {path} | {amp or "fp32"} | {type(err).__name__}: {str(err)[:160]} |')
    text = ('### Training (one process, one GPU; the demo options of each line, and CMDSR at the paper\'s batch on '
            'the demo images)\n\n' + format_training_table(results))
    if failures:
        text += '\n\nFailed runs:\n\n' + _table(['options', 'modes', 'error'], failures)
    return text


def _table(header, rows) -> str:
    """A Markdown table: the ``header`` cells, then ``rows`` (each already a ``| ... |`` line)."""
    return '| ' + ' | '.join(header) + ' |\n' + '|---' * len(header) + '|\n' + '\n'.join(rows)


def _max_weight_difference(a, b):
    """Largest absolute difference between the tensors of two checkpoints (same keys), and the keys compared."""
    import mmengine.runner  # noqa: F401  (plugins.compat allows mmengine's checkpoint contents in a safe load)
    import torch

    def tensors(path):
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        state = ckpt.get('state_dict', ckpt)
        flat = {}
        for key, value in state.items():
            for sub, tensor in (value.items() if isinstance(value, dict) else [('', value)]):
                if torch.is_tensor(tensor) and tensor.is_floating_point():
                    flat[f'{key}.{sub}' if sub else key] = tensor.float()
        return flat

    ta, tb = tensors(a), tensors(b)
    if set(ta) != set(tb):
        return float('inf'), len(ta)
    return max(((ta[k] - tb[k]).abs().max().item() for k in ta), default=0.), len(ta)


def _kill_after(cmd_args, workdir, first_file_glob, timeout=900):
    """Start a training, SIGKILL it once ``first_file_glob`` exists; (killed mid-run, seconds)."""
    cmd = [sys.executable, osp.join(REPO, 'tools', cmd_args[0])] + [str(a) for a in cmd_args[1:]]
    start = time.time()
    with open(osp.join(workdir, 'killed_run.log'), 'w') as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None and not glob.glob(osp.join(workdir, first_file_glob)):
            if time.time() - start > timeout:
                break
            time.sleep(0.05)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return killed, time.time() - start


def check_resume(args, workdir):
    """Kill -9 after the first checkpoint, resume, compare with uninterrupted runs (two, for the run-to-run noise
    of the GPU's kernels)."""
    rows = []
    for index, (kind, path, iters, every, extra) in enumerate(RESUME_RUNS):
        over = short_overrides(path, iters, every) + extra

        def train(name, *flags):
            if kind == 'BasicSR':
                return ['train.py', '-opt', osp.join(REPO, path), *over, f'name={name}', *flags]
            return ['train.py', osp.join(REPO, path), '--work-dir', f'work_dirs/{name}', *flags, *over]

        final = {'BasicSR': 'experiments/{}/models/net_g_latest.pth', 'mmengine': f'work_dirs/{{}}/iter_{iters}.pth'}
        first = {'BasicSR': f'experiments/{{}}/training_states/{every}.state',
                 'mmengine': f'work_dirs/{{}}/iter_{every}.pth'}
        names = [f'gpucheck_resume{index}_{s}' for s in ('ref1', 'ref2', 'killed')]
        failed = [tool(train(n), workdir) for n in names[:2]]
        killed, _ = _kill_after(train(names[2]), workdir, first[kind].format(names[2]))
        resumed = tool(train(names[2], '--auto_resume' if kind == 'BasicSR' else '--resume'), workdir)
        bad = [p for p in failed + [resumed] if p.returncode != 0]
        if bad:
            rows.append(f'| {kind} {path} | failed: {last_error(bad[0].stdout + bad[0].stderr)} | | |')
            continue
        files = [osp.join(workdir, final[kind].format(n)) for n in names]
        noise, _ = _max_weight_difference(files[0], files[1])
        diff, count = _max_weight_difference(files[0], files[2])
        rows.append(f'| {kind} {path} {" ".join(extra)} ({iters} it., checkpoint every {every}) '
                    f'| {"yes" if killed else "no (ended first)"} '
                    f'| {diff:.3g} ({count} tensors) | {noise:.3g} |')
    return ('### Resume after SIGKILL\n\n' + _table(['run', 'killed mid-run', 'max abs weight difference, resumed vs '
                                                   'uninterrupted', 'same, two uninterrupted runs'], rows) +
            '\n\nThe uninterrupted pair shows the GPU\'s own run-to-run difference (cuDNN picks kernels per run); '
            '0 in both columns is an exact resume.')


def check_inference(args, workdir):
    """Backbone7x7 at 1080p, channels-last, fp32 / fp16 / bf16 autocast (tools/benchmark.py's measurement)."""
    import torch

    from plugins.common.complexity import benchmark
    from plugins.engine.basicsr.networks import build_network_from_options
    from plugins.engine.basicsr.options import load_options
    opt = load_options(osp.join(REPO, INFERENCE_OPTIONS))
    rows = []
    for amp in (None, 'fp16', 'bf16'):
        if amp == 'bf16' and not torch.cuda.is_bf16_supported():
            rows.append('| bf16 | - | - | - | not supported by this GPU |')
            continue
        net = build_network_from_options(opt, source=INFERENCE_OPTIONS)
        r = benchmark(net, (1, 4, 1080, 1920), device='cuda', runs=50, warmup=10, channels_last=True, amp=amp)
        goal = ('goal >= 200 FPS: ' + ('met' if r['images_per_s'] >= 200 else 'not met')) if amp == 'fp16' else ''
        rows.append(f'| {amp or "fp32"} | {r["images_per_s"]:.1f} | {r["latency_ms"]["median"]:.2f} '
                    f'| {r["peak_memory_bytes"] / 2 ** 20:.0f} MiB | {goal} |')
    return ('### 1080p low-light inference (Backbone7x7, 1x4x1080x1920, channels-last)\n\n'
            + _table(['precision', 'FPS', 'median latency (ms)', 'peak memory', 'note'], rows) +
            '\n\nForward pass only (input already on the GPU, torch.inference_mode), 50 runs after 10 warm-up. The lab: '
            '34.86 FPS on a GTX TITAN X (fp32); our goal on a current GPU: >= 200 FPS in fp16.')


def check_ddp(args, workdir):
    """Every line's demo for a few iterations under torchrun over all visible GPUs (nccl)."""
    import torch
    gpus = torch.cuda.device_count()
    torchrun = [shutil.which('torchrun', path=osp.dirname(sys.executable)) or 'torchrun',
                f'--nproc_per_node={gpus}', '--master_addr=127.0.0.1', '--master_port=29517']
    rows = []
    for line, path in LINES:
        flag = [] if path.endswith('.py') else ['-opt']
        start = time.time()
        proc = tool(['train.py', *flag, osp.join(REPO, path), '--launcher', 'pytorch',
                     *short_overrides(path, DDP_ITERS, DDP_ITERS // 2)], workdir, launcher=torchrun)
        status = 'ok' if proc.returncode == 0 else f'failed ({proc.returncode}): {last_error(proc.stderr + proc.stdout)}'
        nccl = 'nccl' if 'nccl' in (proc.stdout + proc.stderr).lower() else ''
        rows.append(f'| {path} | {status} | {time.time() - start:.0f} | {nccl} |')
    return (f'### DDP over {gpus} GPU(s) (torchrun, {DDP_ITERS} iterations, validation and checkpoint at half and '
            'at the end)\n\n'
            + _table(['options', 'result', 'wall time (s)', 'backend named in the output'], rows))


# ---------------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------------
def replace_section(text, body):
    """``text`` with the part between the gpu_check markers replaced by ``body`` (appended with the markers when
    they are absent)."""
    block = f'{BEGIN}\n{body.strip()}\n{END}'
    if BEGIN in text and END in text.split(BEGIN, 1)[1]:
        before, rest = text.split(BEGIN, 1)
        return before + block + rest.split(END, 1)[1]
    return text.rstrip('\n') + '\n\n' + block + '\n'


def main(argv):
    args = parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print('gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); nothing to measure, '
              f'{args.output} left unchanged.')
        return
    import plugins  # noqa: F401  (compat patches, then every BasicSR registration)
    workdir = args.workdir or tempfile.mkdtemp(prefix='gpu_check_')
    os.makedirs(workdir, exist_ok=True)
    workdir = osp.abspath(workdir)
    prepare_workdir(workdir)
    props = torch.cuda.get_device_properties(0)
    header = (f'GPU figures of `python tools/gpu_check.py` on {datetime.date.today()}: {torch.cuda.device_count()} x '
              f'{props.name} ({props.total_memory / 2 ** 30:.0f} GiB), torch {torch.__version__}, CUDA '
              f'{torch.version.cuda}.')
    sections = [header]
    cwd = os.getcwd()
    for name in args.checks:
        print(f'gpu_check: {name} ...', flush=True)
        try:
            sections.append(globals()[f'check_{name}'](args, workdir))
        except Exception as err:  # noqa: BLE001  (report it and go on with the other checks)
            sections.append(f'### {name}\n\nfailed: {type(err).__name__}: {err}')
        finally:
            os.chdir(cwd)
        print(sections[-1], flush=True)
    with open(args.output, encoding='utf-8') if osp.isfile(args.output) else open(os.devnull) as f:
        text = f.read()
    with open(args.output, 'w', encoding='utf-8') as f:
        f.write(replace_section(text, '\n\n'.join(sections)))
    print(f'gpu_check: wrote {args.output} (working directory {workdir})')
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main(sys.argv[1:])
