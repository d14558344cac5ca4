"""Training speed of a BasicSR options file or an mmengine config: iterations per second, the share of each
iteration spent waiting for data, and peak memory. What ``tools/benchmark.py --train`` and ``tools/gpu_check.py``
measure.

The run is built by the toolboxes' own builders, as a training run builds it, and nothing is written outside a
temporary folder:

* BasicSR: the options (``_base_`` resolved, ``--force_yml`` and the benchmark's own overrides applied) pass the
  options check, then ``basicsr.train``'s ``parse_options``, ``create_train_val_dataloader`` (training set only) and
  ``build_model`` (with our patches: device plan, exact-resume sampler, non-finite guard), and the prefetcher of the
  options' ``prefetch_mode``. Each iteration is ``train_pipeline``'s: next batch, ``update_learning_rate``,
  ``feed_data``, ``optimize_parameters``. Validation, logging and checkpoints are not run.
* mmengine: ``Runner.from_cfg`` (work dir in a temporary folder), its train dataloader and optimizer wrapper, and
  ``model.train_step(data, optim_wrapper)`` per iteration. Hooks (logging, checkpoints, schedulers) are not run.

Each iteration is split in three, timed with ``time.perf_counter`` and the device synchronised at every mark on
CUDA (so a phase's GPU work is charged to it):

* **data**: blocked in fetching the next batch (the prefetcher or the DataLoader iterator; at an epoch's end also
  the new iterator, i.e. the workers' start unless they persist). ``data_share`` = data / iteration time. This is
  the time the device waits for the data workers.
* **feed** (BasicSR only): ``model.feed_data``, the host-to-device copy of the batch plus any batch preparation a
  model does on the device (e.g. degradations synthesised in ``feed_data``); ``feed_share`` reports it separately.
  On mmengine the data preprocessor runs inside ``train_step`` and is part of the step.
* **step**: the learning-rate update and the optimisation step (forward, losses, backward, optimizer).

Peak memory: CUDA ``max_memory_allocated`` during the measured iterations (after ``reset_peak_memory_stats``);
on CPU the peak RSS of the main process during them (``complexity.CpuPeakMemory``; data workers not counted).
"""
import math
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from itertools import count
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..engine.errors import OptionsError
from .complexity import CpuPeakMemory, device_description
from .speed_modes import AMP_DTYPES

_RUNS = count(1)


def is_mmengine_config(path: str) -> bool:
    """An mmengine config (``.py``) rather than a BasicSR options file (``.yml``/``.yaml``)."""
    return str(path).endswith('.py')


# ---------------------------------------------------------------------------------------------------------
# the measured loop, shared by both toolboxes
# ---------------------------------------------------------------------------------------------------------
def measure_iterations(next_batch: Callable[[], object], feed: Optional[Callable[[object], object]],
                       step: Callable[[int, object], None], device: torch.device, iters: int, warmup: int) -> Dict:
    """Run ``warmup`` + ``iters`` training iterations and time the last ``iters``.

    Args:
        next_batch: Returns the next batch (blocks until it is there).
        feed: Prepares the batch on the device (BasicSR's ``feed_data``), or None.
        step: ``step(current_iter, batch)`` runs one optimisation step (``current_iter`` counts from 1).
        device: Where the model runs; CUDA is synchronised at each mark and its peak memory read.
        iters, warmup: Measured iterations (>= 1) and the untimed ones before them (>= 0).

    Returns:
        dict: ``iters_per_s``, ``data_share``, ``feed_share`` (None without ``feed``), ``step_share``, mean
        milliseconds per phase (``ms``; ``ms['cpu']``: CPU time of this process, all its threads, data workers not
        counted: on a machine shared with other jobs it varies less than wall time), ``peak_memory_bytes`` and
        ``peak_memory_method``.
    """
    cuda = device.type == 'cuda'
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    phases: Dict[str, List[float]] = {'data': [], 'feed': [], 'step': [], 'iteration': [], 'cpu': []}
    cpu_peak = CpuPeakMemory()
    for i in range(warmup + iters):
        if i == warmup:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            else:
                cpu_peak.start()
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next_batch()
        sync()
        t1 = time.perf_counter()
        if feed is not None:
            batch = feed(batch)
            sync()
            t2 = time.perf_counter()
        else:
            t2 = t1
        step(i + 1, batch)
        sync()
        t3, c3 = time.perf_counter(), time.process_time()
        if i >= warmup:
            for key, seconds in (('data', t1 - t0), ('feed', t2 - t1), ('step', t3 - t2), ('iteration', t3 - t0),
                                 ('cpu', c3 - c0)):
                phases[key].append(seconds)
    total = sum(phases['iteration'])
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
        method = 'CUDA: torch.cuda.max_memory_allocated during the measured iterations'
    else:
        peak, method = cpu_peak.peak(), cpu_peak.peak_method
    return {
        'iters': iters,
        'warmup': warmup,
        'seconds': total,
        'iters_per_s': iters / total,
        'data_share': sum(phases['data']) / total,
        'feed_share': sum(phases['feed']) / total if feed is not None else None,
        'step_share': sum(phases['step']) / total,
        'ms': {key: 1000. * statistics.mean(values) for key, values in phases.items()
               if key != 'feed' or feed is not None},
        'ms_median_iteration': 1000. * statistics.median(phases['iteration']),
        'peak_memory_bytes': int(peak),
        'peak_memory_method': method,
    }


def _check_counts(iters: int, warmup: int) -> None:
    if iters < 1 or warmup < 0:
        raise OptionsError(f'--iters must be >= 1 and --warmup >= 0, got iters={iters}, warmup={warmup}')


def _check_device(device: Optional[str]) -> None:
    if device not in (None, 'cpu', 'cuda'):
        raise OptionsError(f'--device must be cpu or cuda, got {device!r}')
    if device == 'cuda' and not torch.cuda.is_available():
        raise OptionsError('--device cuda: CUDA is not available on this machine; use --device cpu')


def _summary(result: Dict, device: torch.device, batch_size: int) -> Dict:
    result.update(device=str(device), device_name=device_description(device), torch_version=torch.__version__,
                  num_threads=torch.get_num_threads(), batch_size=batch_size, load_average=os.getloadavg()[0],
                  samples_per_s=result['iters_per_s'] * batch_size)
    return result


# ---------------------------------------------------------------------------------------------------------
# BasicSR
# ---------------------------------------------------------------------------------------------------------
def basicsr_options_for_benchmark(path: str, force_yml: Sequence[str] = (), workers: Optional[int] = None,
                                  device: Optional[str] = None, amp: Optional[str] = None,
                                  channels_last: bool = False, compile_spec=None, random_init: bool = False) -> Dict:
    """The resolved options of ``path`` with ``--force_yml`` and the benchmark's flags applied, the validation sets
    left out. ``workers`` sets ``datasets:train:num_worker_per_gpu`` (and turns ``persistent_workers`` off at 0);
    ``device`` 'cpu' sets ``num_gpu: 0``, 'cuda' ``num_gpu: 1``; ``amp``, ``channels_last`` and ``compile_spec``
    set ``train:amp``, ``train:channels_last`` and ``train:compile``; ``random_init`` empties every
    ``path:pretrain_network_*`` (the speed does not depend on the starting weights)."""
    from ..engine.basicsr.options import apply_force_yml, load_options
    opt = apply_force_yml(load_options(path), list(force_yml), path)
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or not isinstance(datasets.get('train'), dict):
        raise OptionsError(f'{path}: --train needs a training set (datasets:train); is this a test options file?')
    if not isinstance(opt.get('train'), dict):
        raise OptionsError(f'{path}: --train needs the train section of a training options file')
    opt['datasets'] = {'train': datasets['train']}
    train_set = opt['datasets']['train']
    if workers is not None:
        if workers < 0:
            raise OptionsError(f'--workers must be >= 0, got {workers}')
        train_set['num_worker_per_gpu'] = workers
        if workers == 0 and train_set.get('persistent_workers'):
            train_set['persistent_workers'] = False  # DataLoader refuses persistent workers without workers
    if device is not None:
        opt['num_gpu'] = 0 if device == 'cpu' else 1
    if amp is not None:
        opt['train']['amp'] = amp
    if channels_last:
        opt['train']['channels_last'] = True
    if compile_spec:
        opt['train']['compile'] = compile_spec
    if random_init:
        for key in list(opt.get('path') or {}):
            if key.startswith('pretrain_network_'):
                opt['path'][key] = None
    return opt


def basicsr_training_speed(path: str, iters: int = 20, warmup: int = 5, force_yml: Sequence[str] = (),
                           workers: Optional[int] = None, device: Optional[str] = None, amp: Optional[str] = None,
                           channels_last: bool = False, compile_spec=None, random_init: bool = False) -> Dict:
    """Measure training iterations of a BasicSR options file (see the module docstring).

    Raises:
        OptionsError: bad flags, options the check refuses, or ``warmup + iters`` beyond ``train:total_iter``.
    """
    import basicsr.train as basicsr_train
    from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
    from basicsr.utils import get_root_logger

    from ..engine.basicsr.options import options_to_yaml
    from ..engine.basicsr.options_check import check_basicsr_options
    _check_counts(iters, warmup)
    _check_device(device)
    opt = basicsr_options_for_benchmark(path, force_yml, workers, device, amp, channels_last, compile_spec,
                                        random_init)
    total_iter = int(opt['train'].get('total_iter') or 0)
    if warmup + iters > total_iter:
        raise OptionsError(f'{path}: --warmup + --iters = {warmup + iters} exceeds train:total_iter ({total_iter}); '
                           'the schedulers end there: measure fewer iterations')
    with tempfile.TemporaryDirectory(prefix='benchmark_train_') as root:
        flat = osp.join(root, osp.basename(path))
        with open(flat, 'w', encoding='utf-8') as f:
            f.write(options_to_yaml(opt))
        try:
            check_basicsr_options(flat, True)
        except OptionsError as err:  # name the user's file, not the temporary copy
            raise OptionsError(str(err).replace(flat, path)) from err
        argv = list(sys.argv)
        sys.argv = [argv[0] if argv else 'benchmark', '-opt', flat]
        try:
            opt, _ = basicsr_train.parse_options(root, is_train=True)  # experiments/ paths under `root`
        finally:
            sys.argv = argv
        opt['root_path'] = root
        torch.backends.cudnn.benchmark = True  # as train_pipeline
        logger = get_root_logger()
        train_loader, sampler = basicsr_train.create_train_val_dataloader(opt, logger)[:2]
        model = basicsr_train.build_model(opt)
        train_set = opt['datasets']['train']
        cuda_prefetch = train_set.get('prefetch_mode') == 'cuda' and model.device.type == 'cuda'
        prefetcher = CUDAPrefetcher(train_loader, opt) if cuda_prefetch else CPUPrefetcher(train_loader)
        epoch = [0]
        sampler.set_epoch(0)
        prefetcher.reset()

        def next_batch():
            data = prefetcher.next()
            if data is None:  # end of the epoch: train_pipeline's next epoch starts the same way
                epoch[0] += 1
                sampler.set_epoch(epoch[0])
                prefetcher.reset()
                data = prefetcher.next()
            return data

        def feed(data):
            model.feed_data(data)

        def step(current_iter, _):
            model.update_learning_rate(current_iter, warmup_iter=opt['train'].get('warmup_iter', -1))
            model.optimize_parameters(current_iter)

        result = measure_iterations(next_batch, feed, step, model.device, iters, warmup)
        batch_size = train_loader.batch_size  # per process (BasicSR multiplies it by num_gpu under DataParallel)
    net = model.get_bare_model(model.net_g)  # DDP / DataParallel / torch.compile wrappers off
    result.update(kind='basicsr', options=path, name=opt['name'], model=type(model).__name__,
                  network=type(net).__name__, workers=train_set.get('num_worker_per_gpu', 0),
                  prefetch=('cuda' if cuda_prefetch else train_set.get('prefetch_mode') or 'none'),
                  amp=opt['train'].get('amp') or None, channels_last=bool(opt['train'].get('channels_last')),
                  compile=opt['train'].get('compile') or False)
    return _summary(result, model.device, batch_size)


# ---------------------------------------------------------------------------------------------------------
# mmengine
# ---------------------------------------------------------------------------------------------------------
class _EpochIterator:
    """Batches of ``loader`` epoch after epoch (for loops other than IterBasedTrainLoop)."""

    def __init__(self, loader):
        self.loader, self.epoch, self.iterator = loader, 0, iter(loader)

    def __next__(self):
        try:
            return next(self.iterator)
        except StopIteration:
            self.epoch += 1
            if hasattr(self.loader.sampler, 'set_epoch'):
                self.loader.sampler.set_epoch(self.epoch)
            self.iterator = iter(self.loader)
            return next(self.iterator)


def mmengine_training_speed(path: str, iters: int = 20, warmup: int = 5, cfg_options: Optional[Dict] = None,
                            workers: Optional[int] = None, device: Optional[str] = None, amp: Optional[str] = None,
                            compile_backend: Optional[str] = None) -> Dict:
    """Measure training iterations of an mmengine config (see the module docstring). ``amp``: every optimizer
    wrapper in autocast, as ``tools/train.py CONFIG --amp --amp-dtype`` sets it; ``compile_backend``: compile the
    model's ``train_step`` as mmengine's ``cfg.compile`` does."""
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from ..engine.mmengine.config_check import check_mmengine_config
    _check_counts(iters, warmup)
    _check_device(device)
    if not osp.isfile(path):
        raise OptionsError(f'config file {path!r} not found')
    if amp is not None and amp not in AMP_DTYPES:
        raise OptionsError(f'--amp must be one of {", ".join(sorted(AMP_DTYPES))}, got {amp!r}')
    on_cuda = torch.cuda.is_available() and device != 'cpu'
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('train_dataloader') is None or cfg.get('optim_wrapper') is None:
        raise OptionsError(f'{path}: --train needs train_dataloader and optim_wrapper')
    cfg.launcher = 'none'
    cfg.default_scope = cfg.get('default_scope') or 'mmagic'
    cfg.log_level = 'WARNING'
    cfg.load_from, cfg.resume = None, False
    if workers is not None:
        if workers < 0:
            raise OptionsError(f'--workers must be >= 0, got {workers}')
        cfg.train_dataloader.num_workers = workers
        cfg.train_dataloader.persistent_workers = workers > 0
    if amp:
        from ..engine.mmengine.runner import enable_amp  # what tools/train.py CONFIG --amp --amp-dtype does
        enable_amp(cfg, str(AMP_DTYPES[amp]).split('.')[-1])  # 'bfloat16' / 'float16'
    if compile_backend:
        cfg.compile = dict(backend=compile_backend)
    stem = osp.splitext(osp.basename(path))[0]
    with tempfile.TemporaryDirectory(prefix='benchmark_train_') as root:
        cfg.work_dir = root
        cfg.experiment_name = f'{stem}_benchmark_{os.getpid()}_{next(_RUNS)}'  # one logger per run in a process
        check_mmengine_config(cfg, path, ('train', ))
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        if not on_cuda:
            runner.model.to('cpu')
        loader = runner.train_dataloader  # builds the train loop and its dataloader
        optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        runner.optim_wrapper = optim_wrapper
        max_iters = getattr(runner.train_loop, 'max_iters', warmup + iters)
        optim_wrapper.initialize_count_status(runner.model, 0, max_iters)
        if compile_backend:
            runner._maybe_compile('train_step')  # mmengine's own cfg.compile path (what Runner.train calls)
        model = runner.model
        model.train()
        dev = next(model.parameters()).device
        # IterBasedTrainLoop's own iterator (it starts the next epoch itself). A second iter(loader) would break
        # persistent workers with an InfiniteSampler: their reset closes the sampler's one shared index generator.
        iterator = getattr(runner.train_loop, 'dataloader_iterator', None) or _EpochIterator(loader)

        def next_batch():
            return next(iterator)

        def step(current_iter, batch):
            runner.message_hub.update_info('iter', current_iter - 1)
            model.train_step(batch, optim_wrapper=optim_wrapper)

        result = measure_iterations(next_batch, None, step, dev, iters, warmup)
    wrappers = optim_wrapper.items() if hasattr(optim_wrapper, 'items') else [('', optim_wrapper)]
    result.update(kind='mmengine', options=path, name=stem, model=type(model).__name__,
                  network=type(getattr(model, 'generator', model)).__name__,
                  optim_wrappers={name: type(w).__name__ for name, w in wrappers},
                  workers=cfg.train_dataloader.get('num_workers', 0), prefetch='none', amp=amp,
                  channels_last=False, compile=compile_backend or False)
    return _summary(result, dev, cfg.train_dataloader.batch_size)


def training_speed(path: str, iters: int = 20, warmup: int = 5, force_yml: Sequence[str] = (),
                   cfg_options: Optional[Dict] = None, workers: Optional[int] = None, device: Optional[str] = None,
                   amp: Optional[str] = None, channels_last: bool = False, compile_backend: Optional[str] = None,
                   random_init: bool = False) -> Dict:
    """``basicsr_training_speed`` for ``.yml`` options, ``mmengine_training_speed`` for ``.py`` configs.
    ``compile_backend`` None: no torch.compile. ``random_init``: BasicSR only (mmengine configs of ours load no
    weights to train)."""
    if is_mmengine_config(path):
        if force_yml:
            raise OptionsError(f'--force_yml is for BasicSR options files; {path} is an mmengine config '
                               '(use --cfg-options)')
        if channels_last:
            raise OptionsError(f'--channels-last is a BasicSR option (train:channels_last); {path} is an mmengine '
                               'config')
        return mmengine_training_speed(path, iters, warmup, cfg_options, workers, device, amp, compile_backend)
    if cfg_options:
        raise OptionsError(f'--cfg-options is for mmengine configs; {path} is a BasicSR options file '
                           '(use --force_yml)')
    spec = {'backend': compile_backend} if compile_backend else None
    return basicsr_training_speed(path, iters, warmup, force_yml, workers, device, amp, channels_last, spec,
                                  random_init)


def training_speed_in_subprocess(path: str, **kwargs) -> Dict:
    """``training_speed(path, **kwargs)`` in a fresh (spawned) process: its own peak memory, and nothing left over
    from an earlier run in this process. ``OptionsError`` is raised here as there."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
        return pool.submit(training_speed, path, **kwargs).result()


# ---------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------
def _mib(n: Optional[float]) -> str:
    return '-' if n is None else f'{n / 2 ** 20:.0f} MiB'


def _pct(x: Optional[float]) -> str:
    return '-' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{100 * x:.1f} %'


def format_training_table(results: Sequence[Dict]) -> str:
    """One Markdown row per measured run, then what the columns mean."""
    header = ('| options | model | device | batch | workers | modes | it/s | samples/s | data | feed | step '
              '| ms/it (median) | CPU ms/it | peak memory |')
    lines = [header, '|' + '---|' * 14]
    for r in results:
        modes = ', '.join(filter(None, [f'amp {r["amp"]}' if r.get('amp') else 'fp32',
                                        'channels_last' if r.get('channels_last') else '',
                                        'compile' if r.get('compile') else '']))
        lines.append(f'| {r["options"]} | {r["model"]} ({r["network"]}) | {r["device"]} | {r["batch_size"]} '
                     f'| {r["workers"]} | {modes} | {r["iters_per_s"]:.2f} | {r["samples_per_s"]:.1f} '
                     f'| {_pct(r["data_share"])} | {_pct(r.get("feed_share"))} | {_pct(r["step_share"])} '
                     f'| {r["ms_median_iteration"]:.0f} | {r["ms"]["cpu"]:.0f} | {_mib(r["peak_memory_bytes"])} |')
    if results:
        r = results[0]
        loads = ', '.join(f'{x["load_average"]:.1f}' for x in results if x.get('load_average') is not None)
        lines += ['', f'{r["iters"]} iterations measured after {r["warmup"]} warm-up; {r["device_name"]}, '
                  f'torch {r["torch_version"]}; load average (1 min) at the end of each run: {loads}.',
                  'data: share of the iteration blocked in fetching the next batch; feed: BasicSR feed_data '
                  '(host-to-device copy and batch preparation on the device); step: learning-rate update and '
                  'optimisation step (mmengine: train_step, data preprocessor included); CPU ms/it: CPU time of '
                  'the main process (all its threads; data workers not counted).',
                  'peak memory: ' + '; '.join(sorted({x['peak_memory_method'] for x in results}))]
    return '\n'.join(lines)
