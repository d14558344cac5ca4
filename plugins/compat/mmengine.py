"""mmengine 0.10.7: resume on torch >= 2.6, ``launcher='pytorch'`` on CPU, atomic checkpoints and resume past bad
files, the ``on_data_fault`` option of dataloader configs, and a config formatted once instead of five times.

``apply(runner_module)`` runs when ``mmengine.runner.runner`` has been imported (a post-import hook installed by
``plugins.compat.apply``), before any Runner exists; ``import plugins`` alone imports nothing of mmengine. The
checkpoint-globals and formatting patches are tested in ``tests/compat/test_mmengine.py``; the launcher, checkpoint and
data-fault patches through runs in ``tests/engine/``.
"""
import os
import pickle

import numpy as np
import torch
import torch.distributed as dist
from mmengine.config import config as config_module
from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
from mmengine.dist import utils as mm_dist_utils
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model.wrappers.distributed import MMDistributedDataParallel
from mmengine.registry import DATASETS

from ..engine import data_faults, resume_policy
from ..engine.checkpoint_files import atomic_write_bytes, checkpoint_problem, checkpoint_write_error, load_error_reason
from ..engine.errors import CheckpointError
from ..engine.mmengine import checkpoint_keys


def apply(runner_module) -> None:
    """Patch mmengine (``runner_module``: the imported ``mmengine.runner.runner``); a second call changes nothing."""
    if getattr(runner_module.Runner.build_dataloader, '_plugins_compat', False):
        return  # already patched
    _allow_checkpoint_globals()
    _patch_launcher()
    _patch_checkpoints(runner_module)
    _patch_checkpoint_loading(runner_module)
    _patch_wrapped_checkpoint_keys(runner_module)
    _patch_data_faults(runner_module.Runner)
    _format_each_config_text_once()


def _allow_checkpoint_globals() -> None:
    """torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine 0.10.7 stores its message hub
    (``HistoryBuffer`` holding numpy arrays and scalars) in them, so ``--resume`` and ``load_from`` fail with
    UnpicklingError (mmengine#1655, fixed on main by #1670, unreleased). Allow exactly the globals such a
    checkpoint holds (``torch.serialization.get_unsafe_globals_in_checkpoint`` on an mmengine 0.10.7 checkpoint:
    HistoryBuffer, numpy.ndarray, numpy.dtype, numpy._core.multiarray._reconstruct / scalar, builtins.getattr)
    and the classes of numeric dtypes (``numpy.dtypes.Float64DType`` ...), which the unpickler needs to set a
    dtype's state, rather than turning the safe loader off with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD. numpy 1 writes
    ``numpy.core.multiarray.*``: those names are allowed too.

    ``getattr`` comes from ``HistoryBuffer.__getstate__``, which saves its statistics methods; pickle writes
    ``HistoryBuffer.min`` as ``getattr(HistoryBuffer, 'min')``. The real ``getattr`` would let a checkpoint read
    any attribute of anything it can build, so the name ``builtins.getattr`` is bound to a function that
    allows exactly ``HistoryBuffer.min/max/current/mean`` and refuses the rest."""
    try:
        import numpy._core.multiarray as multiarray  # numpy >= 2
    except ImportError:
        import numpy.core.multiarray as multiarray  # numpy 1
    statistics = ('min', 'max', 'current', 'mean')  # HistoryBuffer._set_default_statistics

    def history_buffer_getattr(obj, name):
        if obj is HistoryBuffer and name in statistics:
            return getattr(HistoryBuffer, name)
        raise pickle.UnpicklingError(f'weights_only load: getattr({obj!r}, {name!r}) is not allowed; plugins.compat '
                                     f'allows getattr only for HistoryBuffer.{"/".join(statistics)}')

    # Unpickling a dtype ends in BUILD on the instance, which torch allows only for allowlisted types: the
    # per-dtype classes (numpy.dtypes.Float64DType ...) of the bool and numeric dtypes.
    dtype_classes = {type(np.dtype(code)) for code in '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']}
    safe = [HistoryBuffer, np.ndarray, np.dtype, *dtype_classes, (history_buffer_getattr, 'builtins.getattr')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        safe += [(multiarray._reconstruct, f'{module}._reconstruct'), (multiarray.scalar, f'{module}.scalar')]
    torch.serialization.add_safe_globals(safe)


def _patch_launcher() -> None:
    """mmengine 0.10.7 ``launcher='pytorch'`` calls ``torch.cuda.set_device(LOCAL_RANK)`` unconditionally
    ("Found no NVIDIA driver" on CPU, whatever ``dist_cfg.backend`` says) and the Runner wraps DDP with
    ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. On a machine without CUDA (nor the
    NPU/MLU/MUSA that mmengine also handles), initialise with gloo instead; elsewhere mmengine's own function
    runs unchanged. And drop ``device_ids`` when the wrapped module is on the CPU."""
    original_init_dist = mm_dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if torch.cuda.is_available() or is_npu_available() or is_mlu_available() or is_musa_available():
            return original_init_dist(backend, init_backend=init_backend, **kwargs)
        if init_backend != 'torch':
            raise ValueError(f'init_backend={init_backend!r} needs a GPU; on CPU only "torch" (gloo) works')
        dist.init_process_group(backend='gloo', **kwargs)  # nccl needs CUDA

    _init_dist_pytorch._plugins_compat = True
    # init_dist() looks _init_dist_pytorch up as a module global at call time.
    mm_dist_utils._init_dist_pytorch = _init_dist_pytorch

    # Runner.wrap_model passes device_ids=[LOCAL_RANK] to MMDistributedDataParallel, and
    # MMSeparateDistributedDataParallel builds one per sub-module: drop device_ids for CPU modules.
    original_ddp_init = MMDistributedDataParallel.__init__

    def __init__(self, module, detect_anomalous_params=False, **kwargs):  # noqa: N807
        if not any(p.is_cuda for p in module.parameters()):
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
        original_ddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


def _patch_checkpoints(runner_module) -> None:
    """mmengine 0.10.7 writes checkpoints with ``LocalBackend.put`` (``open(path, 'wb').write``) and then the
    ``last_checkpoint`` pointer file the same way, and ``--resume`` (``find_latest_checkpoint``) trusts that pointer:
    a kill during a save leaves a truncated ``iter_N.pth`` or an empty pointer, and the resume fails with a
    traceback. ``put`` now writes atomically (``plugins/engine/checkpoint_files.py``), and the latest checkpoint is the
    pointer's target if it loads, else the newest ``iter_*.pth`` / ``epoch_*.pth`` of the work dir that loads; the
    unreadable ones are logged."""
    def put(self, obj: bytes, filepath) -> None:
        is_checkpoint = str(filepath).endswith(('.pth', '.pt', '.ckpt'))
        try:
            os.makedirs(os.path.dirname(os.path.abspath(str(filepath))), exist_ok=True)
            # fsync for checkpoints only: put also writes logs and results, where a rename is protection enough.
            atomic_write_bytes(obj, str(filepath), durable=is_checkpoint)
        except OSError as err:
            if not is_checkpoint:  # the file named, not its temporary file (nor none: a failed write names none)
                raise OSError(err.errno, err.strerror or str(err), str(filepath)) from err
            # mmengine would end with a traceback (or a retry): stop with the file and the reason, the checkpoints
            # written before intact (the atomic write removed its temporary file).
            raise checkpoint_write_error('checkpoint', str(filepath), err) from err

    LocalBackend.put = put
    original_find = runner_module.find_latest_checkpoint

    def find_latest_checkpoint(path: str):
        pointed = checkpoint_in_work_dir(original_find(path), path)
        candidates = [pointed] if pointed else []
        numbered = [f for f in os.listdir(path) if f.endswith('.pth') and f.split('_')[0] in ('iter', 'epoch')
                    and f[:-4].split('_')[-1].isdigit()] if os.path.isdir(path) else []
        numbered.sort(key=lambda f: int(f[:-4].split('_')[-1]), reverse=True)
        candidates += [os.path.join(path, f) for f in numbered if os.path.join(path, f) != pointed]
        problems = []
        for candidate in candidates:
            problem = checkpoint_problem(candidate)
            if problem is None:
                return candidate
            print_log(f'cannot resume from {candidate}: {problem}; trying an older checkpoint.', logger='current',
                      level=30)
            problems.append(f'{candidate}: {problem}')
        if problems:  # checkpoints exist, none loads: stop rather than train again from 0 (engine/resume_policy.py)
            resume_policy.no_readable_state(problems, path, '--resume',
                                            lambda line: print_log(line, logger='current', level=30))
        return None

    runner_module.find_latest_checkpoint = find_latest_checkpoint


def _patch_checkpoint_loading(runner_module) -> None:
    """``--resume`` with an explicit file, ``load_from`` and ``tools/test.py --checkpoint`` load through
    ``_load_checkpoint``; a junk or truncated local file ended in a traceback with torch's text (``KeyError:
    174812789``, or the advice to reload with ``weights_only=False``, which would run the file's code). Now
    ``CheckpointError``: one line naming the file and the reason (``checkpoint_files.load_error_reason``)."""
    original_load = runner_module._load_checkpoint

    def _load_checkpoint(filename, *args, **kwargs):
        local = isinstance(filename, str) and '://' not in filename
        if local and not os.path.isfile(os.path.expanduser(filename)):
            raise CheckpointError(f'cannot load checkpoint {filename}: the file does not exist')
        try:
            return original_load(filename, *args, **kwargs)
        except Exception as err:
            if not local:
                raise
            raise CheckpointError(f'cannot load checkpoint {filename}: {load_error_reason(err)}') from err

    runner_module._load_checkpoint = _load_checkpoint


def _patch_wrapped_checkpoint_keys(runner_module) -> None:
    """Every mmengine checkpoint load into a model (``--resume``, ``load_from``, ``tools/test.py``, mmengine's
    ``load_checkpoint``) first renames the keys a torchrun run of a multi-network model wrote through its inner DDP
    wrappers (``generator.module.*``) to the ones mmengine's loader looks for (``engine/mmengine/checkpoint_keys.py``)."""
    from mmengine.runner import checkpoint as checkpoint_module
    original = checkpoint_module._load_checkpoint_to_model

    def _load_checkpoint_to_model(model, checkpoint, *args, **kwargs):
        state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
        if isinstance(state, dict):
            renamed = checkpoint_keys.unwrap_ddp_keys(state, checkpoint_keys.expected_keys(model))
            checkpoint = dict(checkpoint, state_dict=renamed) if 'state_dict' in checkpoint else renamed
        return original(model, checkpoint, *args, **kwargs)

    # load_checkpoint looks it up in its module; Runner.load_checkpoint imported the name into the runner module
    checkpoint_module._load_checkpoint_to_model = _load_checkpoint_to_model
    runner_module._load_checkpoint_to_model = _load_checkpoint_to_model


def checkpoint_in_work_dir(pointed, work_dir: str):
    """The checkpoint ``last_checkpoint`` points at, for a work dir that may have been copied or moved.

    mmengine writes the absolute path into ``last_checkpoint``: a copied work dir resumed from the original folder
    (or from nothing, when that was gone). When ``pointed`` lies outside ``work_dir`` and ``work_dir`` holds a file
    of the same name, that file is the one meant."""
    if not pointed or not work_dir:
        return pointed
    here = os.path.realpath(work_dir)
    if os.path.realpath(os.path.dirname(os.path.abspath(pointed))) == here:
        return pointed
    local = os.path.join(work_dir, os.path.basename(pointed))
    if os.path.isfile(local):
        print_log(f'last_checkpoint points to {pointed}, outside the work dir {work_dir} (copied or moved): '
                  f'resuming from {local}.', logger='current', level=30)
        return local
    return pointed


def _patch_data_faults(runner_class) -> None:
    """The ``on_data_fault`` policy of ``plugins/engine/data_faults.py`` on the mmengine side:

    * ``Runner.build_dataloader`` takes ``on_data_fault`` (``'stop'`` by default, or ``'skip'``) out of a dataloader
      config, which mmengine would pass on to ``DataLoader`` and fail, builds the dataset as mmengine does and wraps
      it with the policy (``plugins/compat/mmagic.py`` makes MMagic's image loading name the file it cannot read);
    * a dataset with no samples (an empty folder: mmengine fails with "need at least one array to concatenate")
      stops the run with ``DataFaultError`` naming its folders."""
    original_build_dataloader = runner_class.build_dataloader

    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        if isinstance(dataloader, dict):
            dataloader = dict(dataloader)  # the runner's config stays as written
            policy = dataloader.pop(data_faults.OPTION, 'stop')
            dataset = dataloader['dataset']
            if isinstance(dataset, dict):  # as mmengine's build_dataloader does
                dataset_cfg = dataset
                try:
                    dataset = DATASETS.build(dataset_cfg)
                    if hasattr(dataset, 'full_init'):
                        dataset.full_init()
                except ValueError as err:  # mmengine serializes an empty data list with np.concatenate([])
                    if 'need at least one array to concatenate' not in str(err):
                        raise
                    data_faults.check_not_empty(dataset_cfg, 0)
                if hasattr(dataset, '__len__'):
                    data_faults.check_not_empty(dataset_cfg, len(dataset))
            dataloader['dataset'] = data_faults.apply_data_fault_policy_mmengine(dataset, policy)
        return original_build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    build_dataloader._plugins_compat = True  # the mark apply() looks for
    runner_class.build_dataloader = staticmethod(build_dataloader)


def _format_each_config_text_once() -> None:
    """A Runner formats its config's text with yapf (``Config.pretty_text``) up to five times as it starts (the log,
    the config dump, the checkpoint meta, the run info), about 0.7 s each on a 2-core CPU, always the same text with
    the same style. yapf's ``FormatCode`` is a pure function of its arguments: its results are kept, so each text is
    formatted once per process; the formatted text is the same."""
    format_code, formatted = config_module.FormatCode, {}

    def format_code_once(text, style_config=None, **kwargs):
        key = (text, repr(style_config), repr(sorted(kwargs.items())))
        if key not in formatted:
            formatted[key] = format_code(text, style_config=style_config, **kwargs)
        return formatted[key]

    config_module.FormatCode = format_code_once
