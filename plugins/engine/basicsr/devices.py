"""The device of a BasicSR run and the distributed backend that goes with it, decided once from the options and the
machine, before BasicSR initialises anything.

BasicSR 1.4.2 chooses the two separately: the model goes to CUDA when ``num_gpu != 0``, the process group always
uses nccl, and ``num_gpu: auto`` means every visible GPU. On a GPU machine that gives two failures and a trap:
``num_gpu: 0`` under torchrun puts a CPU model in an nccl group (DDP: "No backend type associated with device type
cpu"); ``num_gpu: 0`` without a launcher trains on the CPU without a word; and ``auto`` with 8 GPUs and no launcher
wraps the network in ``DataParallel``, which splits every batch across GPUs inside one process (slower than DDP,
and wrong for networks whose output is not batch-first, such as CRNN's ``(T, N, C)``).

In our options ``num_gpu`` means what a GPU user expects, and one process drives one GPU:

* ``auto`` (our files' setting): the GPU of this process when CUDA is visible, else the CPU. More GPUs: torchrun
  (``--nproc_per_node=N ... --launcher pytorch``), one process per GPU.
* ``0``: the CPU, also when CUDA is visible (a warning says so); under torchrun the backend is then gloo.
* ``N >= 1``: GPUs (refused by the options check when no CUDA device is visible). ``N > 1`` without a launcher is
  BasicSR's ``DataParallel`` (a warning recommends torchrun; refused for the models that bypass or break it).

``dist_params: {timeout: seconds}`` sets the time a collective waits for the other ranks (default 1800 s: rank 0
validates and saves alone while the others wait at their next collective; torch's own default for nccl, 10 minutes,
ends long validations with a timeout, and a frozen rank is still detected within this bound).
"""
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Dict, List, Optional

import torch

DEFAULT_TIMEOUT_S = 1800
# Models that cannot run under BasicSR's DataParallel: CMDSR calls its sub-networks directly (the wrapper would be
# bypassed, one GPU gets the whole batch); the text SR model's CRNN returns (T, N, C), which DataParallel would
# split and gather along T, breaking CTC.
NO_DATA_PARALLEL = ('CMDSRModel', 'TextSRModel')


@dataclass
class DevicePlan:
    """What a run uses: ``device_type`` ('cuda' or 'cpu'), the ``num_gpu`` BasicSR is given (0 selects the CPU in
    its models and prefetchers), the process-group ``backend`` and collective ``timeout``, and lines to log."""
    device_type: str
    num_gpu: int
    backend: str
    timeout: timedelta
    notes: List[str] = field(default_factory=list)


def timeout_of(opt: Dict) -> timedelta:
    """``dist_params:timeout`` (seconds) as a timedelta; the default when it is absent."""
    seconds = (opt.get('dist_params') or {}).get('timeout', DEFAULT_TIMEOUT_S)
    return timedelta(seconds=float(seconds))


def plan_devices(opt: Dict, distributed: bool, cuda_count: Optional[int] = None) -> DevicePlan:
    """Decide the device, ``num_gpu``, backend and timeout of a run (see the module docstring).

    ``cuda_count`` is the number of visible CUDA devices (``torch.cuda.device_count()`` when None)."""
    if cuda_count is None:
        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    requested = opt.get('num_gpu', 'auto')
    notes = []
    if requested == 'auto':
        num_gpu = 1 if cuda_count else 0
        if cuda_count > 1 and not distributed:
            notes.append(f'num_gpu: auto uses one GPU per process ({cuda_count} are visible): launch with torchrun '
                         f'--nproc_per_node={cuda_count} ... --launcher pytorch to train on all of them.')
    else:
        num_gpu = int(requested)
        if num_gpu == 0 and cuda_count:
            notes.append(f'num_gpu: 0 runs on the CPU although {cuda_count} CUDA device(s) are visible; set '
                         'num_gpu: auto to train on the GPU.')
    if distributed and num_gpu > 1:
        num_gpu = 1  # a torchrun process drives the GPU of its LOCAL_RANK
    device_type = 'cuda' if num_gpu and cuda_count else 'cpu'
    asked_backend = (opt.get('dist_params') or {}).get('backend', 'nccl')
    backend = asked_backend if device_type == 'cuda' else 'gloo'  # nccl has no CPU tensors
    return DevicePlan(device_type, num_gpu if device_type == 'cuda' else 0, backend, timeout_of(opt), notes)


def record_process_group(opt: Dict) -> None:
    """Write the backend of the initialised process group into ``opt['dist_params']['backend']``, so that the options
    BasicSR logs (and ``dist_params`` as the run's code reads it) name the backend the run uses: gloo for CPU
    processes, where the options file's ``dist_params`` says nccl. Nothing for a run without a process group."""
    if opt.get('dist') and torch.distributed.is_available() and torch.distributed.is_initialized():
        opt['dist_params'] = {**(opt.get('dist_params') or {}), 'backend': torch.distributed.get_backend()}


def device_problem(opt: Dict, launcher: str, cuda_count: Optional[int] = None) -> Optional[str]:
    """What is wrong with ``num_gpu`` (a valid value: the options check tests its type first),
    ``dist_params:timeout`` and the CUDA prefetcher's ``pin_memory`` for this machine and launcher, or None."""
    if cuda_count is None:
        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    value = opt.get('num_gpu', 'auto')
    timeout = (opt.get('dist_params') or {}).get('timeout', DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return f'dist_params:timeout must be a positive number of seconds, got {timeout!r}'
    for phase, dataset in (opt.get('datasets') or {}).items():
        if dataset.get('prefetch_mode') == 'cuda' and dataset.get('pin_memory') is not True:
            return (f'datasets:{phase}:prefetch_mode: cuda copies pinned batches ahead on a CUDA stream: set '
                    f'datasets:{phase}:pin_memory: true')
    if value == 'auto' or value == 0:
        return None
    if not cuda_count:
        return (f'num_gpu: {value} asks for a GPU but no CUDA device is visible; use num_gpu: auto (the GPU when '
                'there is one, else the CPU) or 0 (the CPU)')
    if value > cuda_count:
        return f'num_gpu: {value} but only {cuda_count} CUDA device(s) are visible'
    if value > 1 and launcher == 'none' and opt.get('model_type') in NO_DATA_PARALLEL:
        return (f'num_gpu: {value} without a launcher would use DataParallel, which {opt["model_type"]} does not '
                f'support; use one GPU per process: torchrun --nproc_per_node={value} tools/train.py -opt ... '
                '--launcher pytorch (with num_gpu: auto)')
    return None


DATA_PARALLEL_WARNING = ('num_gpu: {n} without a launcher: BasicSR splits each batch over {n} GPUs with '
                         'DataParallel in one process; torchrun --nproc_per_node={n} ... --launcher pytorch '
                         '(one process per GPU, DistributedDataParallel) is faster.')
