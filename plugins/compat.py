"""Every patch the 2026 stack needs for BasicSR 1.4.2, MMagic 1.2.0 and mmengine 0.10.7.

This is the only module of the package that changes a third-party package. ``apply()`` runs once, from
``plugins/__init__.py``, before the first ``basicsr`` or ``mmagic`` import. Each patch names the upstream
problem it works around (see shared/docs/stack.md) and has a test in ``tests/test_compat.py`` that fails
without it.

py-lmdb: lmdb >= 2 refuses to open one environment twice in a process (jnwatson/py-lmdb#412), which breaks
two BasicSR datasets on one LMDB, or train + validation on one LMDB with ``num_workers: 0``. We pin
``lmdb<2`` in setup.py instead of patching ``lmdb.open``: the pin fixes BasicSR and mmengine's LMDB backends
alike, and ``check_lmdb_version`` turns a violated pin into a clear error instead of a failure mid-training.
"""
import collections
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import types

import torch

_APPLIED = False


def apply() -> None:
    """Apply every patch once; safe to call again."""
    global _APPLIED
    if _APPLIED:
        return
    _alias_torchvision_functional_tensor()
    _alias_numpy_bool8()
    _stub_mmcv_ext_if_not_compiled()
    _patch_basicsr_distributed()
    _patch_basicsr_reliability()
    _drop_basicsr_multi_validation_warning()
    _patch_mmengine()
    _APPLIED = True


# ---------------------------------------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------------------------------------
def _alias_torchvision_functional_tensor() -> None:
    """torchvision 0.17 removed ``transforms.functional_tensor``; basicsr 1.4.2 imports ``rgb_to_grayscale``
    from it in ``basicsr/data/degradations.py``, and its star imports make that kill ``import basicsr``
    (BasicSR#663, fixed on master, never released). ``transforms.functional`` has the same function."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        import torchvision.transforms.functional as functional
        sys.modules[name] = functional


# ---------------------------------------------------------------------------------------------------------
# numpy / mmcv (must precede the first mmagic import)
# ---------------------------------------------------------------------------------------------------------
def _alias_numpy_bool8() -> None:
    """numpy 2 removed ``np.bool8``; ``mmagic/utils/trans_utils.py`` uses it in a module-level dict, so
    ``import mmagic.models`` fails with AttributeError."""
    import numpy as np
    if not hasattr(np, 'bool8'):
        np.bool8 = np.bool_


MMCV_EXT_MESSAGE = ('mmcv op {name!r} needs the compiled mmcv (mmcv._ext), but only mmcv-lite is installed. '
                    "Install a full 'mmcv>=2.0.0,<2.2.0' built for your torch/CUDA to use models with mmcv ops "
                    '(EDVR, BasicVSR++, TDAN, StyleGAN1/2); nothing in this package needs them.')


class MissingCompiledMmcvOp:
    """Stands in for one compiled mmcv op; calling it raises an error that names the missing package."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(MMCV_EXT_MESSAGE.format(name=self.name))


def _stub_mmcv_ext_if_not_compiled() -> None:
    """mmcv-lite has no ``mmcv._ext``, but ``mmcv.ops`` loads it at import and several MMagic editors
    import ``mmcv.ops`` unguarded, so ``import mmagic.models`` fails (``No module named 'mmcv._ext'``).
    Where mmcv is installed without its compiled extension, register a stub module whose attributes are
    ops that raise a clear error when called. A compiled mmcv is never shadowed."""
    if 'mmcv._ext' in sys.modules or importlib.util.find_spec('mmcv') is None:
        return
    mmcv_dir = os.path.dirname(importlib.util.find_spec('mmcv').origin)
    if any(f.startswith('_ext') for f in os.listdir(mmcv_dir)):
        return  # the real compiled extension exists
    stub = types.ModuleType('mmcv._ext', 'Stub for the compiled mmcv ops, added by plugins.compat.')
    # mmcv.utils.check_ops_exist() goes through pkgutil/importlib, which reject a module without __spec__.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)

    def __getattr__(name):  # noqa: N807 (module-level __getattr__, PEP 562)
        if name.startswith('__'):
            raise AttributeError(name)  # inspect/pickle probe dunders: answering them breaks inspect
        return MissingCompiledMmcvOp(name)

    stub.__getattr__ = __getattr__
    sys.modules['mmcv._ext'] = stub


# ---------------------------------------------------------------------------------------------------------
# BasicSR: distributed launch, DDP wrapping and resume on CPU
# ---------------------------------------------------------------------------------------------------------
def _init_dist_pytorch_any_device(backend: str = 'nccl', **kwargs) -> None:
    """``torchrun`` initialisation that works with and without CUDA.

    BasicSR 1.4.2 does ``torch.cuda.set_device(RANK % device_count())`` (ZeroDivisionError on CPU, and the
    wrong GPU on nodes after the first, since it ignores LOCAL_RANK) and always uses nccl. Here: on GPU the
    device comes from LOCAL_RANK and the backend stays as asked (nccl); on CPU the backend is gloo."""
    import torch.distributed as dist
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, **kwargs)


def _model_to_device_any_device(self, net):
    """``BaseModel.model_to_device`` without CUDA-only DDP arguments.

    BasicSR wraps DDP with ``device_ids=[torch.cuda.current_device()]``, which fails on CPU. CPU modules
    must be wrapped with ``device_ids=None``."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        find_unused_parameters = self.opt.get('find_unused_parameters', False)
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def _load_resume_state_any_device(opt):
    """``basicsr.train.load_resume_state`` that works on CPU, with any working directory, and past bad files.

    BasicSR 1.4.2 maps the state with ``torch.cuda.current_device()`` (fails without CUDA) and, with
    ``--auto_resume``, looks in ``experiments/<name>`` relative to the working directory instead of the
    experiment folder it writes to (fixed in forks, e.g. neosr#109). It also takes the newest ``.state`` blindly:
    a truncated state or network file (a kill during a save before saves were atomic, a full disk) fails the
    resume with a traceback. Here ``--auto_resume`` takes the newest state whose state and network files load and
    logs the ones it skips; an unreadable ``path:resume_state`` stops with ``CheckpointError`` naming the file.
    The state is also kept for the data position of an exact resume (``plugins/common/resume.py``)."""
    from basicsr.train import check_resume

    from .common.resume import TRAIN_CONTEXT, find_resumable_state, load_training_state
    resume_state_path = None
    if opt['auto_resume']:
        resume_state_path, _ = find_resumable_state(
            opt, lambda line: print(f'Warning: {line}; trying an older one.', flush=True))
        if resume_state_path is not None:
            opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']
    if resume_state_path is None:
        return None
    if torch.cuda.is_available() and opt.get('num_gpu', 0) != 0:
        device = torch.device('cuda', torch.cuda.current_device())
    else:
        device = torch.device('cpu')
    resume_state = load_training_state(resume_state_path, device)
    check_resume(opt, resume_state['iter'])
    TRAIN_CONTEXT['resume_state'] = resume_state
    return resume_state


def _patch_basicsr_distributed() -> None:
    import basicsr.train
    import basicsr.utils.dist_util as dist_util
    from basicsr.models.base_model import BaseModel

    # init_dist() looks _init_dist_pytorch up as a module global at call time.
    dist_util._init_dist_pytorch = _init_dist_pytorch_any_device
    BaseModel.model_to_device = _model_to_device_any_device
    # train_pipeline() looks load_resume_state up as a module global of basicsr.train at call time.
    basicsr.train.load_resume_state = _load_resume_state_any_device
    # BasicSR's MultiStepRestartLR keeps its milestones in a Counter, which torch >= 2.6's weights_only load
    # of a training state refuses ("Unsupported global: collections.Counter"); a Counter is a plain dict.
    torch.serialization.add_safe_globals([collections.Counter])


# ---------------------------------------------------------------------------------------------------------
# BasicSR: atomic checkpoints, exact resume, non-finite guard, data faults (logic in plugins/common/)
# ---------------------------------------------------------------------------------------------------------
def _patch_basicsr_reliability() -> None:
    """Hooks into BasicSR 1.4.2's training pipeline; each piece is tested in tests/test_reliability*.py.

    * ``BaseModel.save_network`` / ``save_training_state`` write with ``torch.save`` straight to the final name: a
      kill during a save leaves a truncated ``net_g_<iter>.pth`` or ``<iter>.state`` that ``--auto_resume`` then
      picks. Ours write to a temporary file and rename it (``checkpoint_io``), and the state also holds the
      generator states and batches per epoch (``resume``).
    * ``train_pipeline`` re-seeds on resume and restarts the saved epoch from its first batch: its sampler becomes
      ``ResumableSampler``, told by ``create_train_val_dataloader`` where the saved run stopped.
    * ``BaseModel.validation`` draws from the global generators (a DataLoader iterator draws its base seed), so a
      validation at the save point, done by an uninterrupted run and not by a resumed one, shifted the training's
      random stream: validation runs with the generator states set aside.
    * ``build_model``: a NaN loss steps the optimizer with NaN gradients and trains on with NaN weights; the model
      gets the non-finite guard (``nonfinite``).
    * ``FileClient.get`` returns None for a missing LMDB key and ``imfrombytes`` returns None for bytes OpenCV
      cannot decode, which fail later as "'NoneType' object has no attribute 'astype'" with no file named:
      both raise ``DataFaultError`` naming the file or key, and every dataset built by ``build_dataset`` applies
      its ``on_data_fault`` policy (``data_faults``).
    """
    import basicsr.test
    import basicsr.train
    import basicsr.utils.img_util as img_util
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger
    from basicsr.utils.file_client import FileClient

    from .common import checkpoint_io, data_faults, nonfinite, resume

    if getattr(basicsr.train.build_model, '_plugins_compat', False):
        return  # already patched
    BaseModel.save_network = checkpoint_io.save_network
    BaseModel.save_training_state = checkpoint_io.save_training_state
    original_validation = BaseModel.validation

    def validation(self, *args, **kwargs):
        with resume.isolated_rng():
            return original_validation(self, *args, **kwargs)

    BaseModel.validation = validation

    # train_pipeline() looks these up as module globals of basicsr.train at call time.
    basicsr.train.EnlargedSampler = resume.ResumableSampler
    original_dataloaders = basicsr.train.create_train_val_dataloader

    def create_train_val_dataloader(opt, logger):
        result = original_dataloaders(opt, logger)
        train_loader, train_sampler = result[0], result[1]
        resume.TRAIN_CONTEXT['batches_per_epoch'] = len(train_loader)
        resume_state = resume.TRAIN_CONTEXT.pop('resume_state', None)
        if resume_state is not None:
            resume.plan_resume(resume_state, train_sampler, len(train_loader), train_loader.batch_size,
                               opt['rank'], logger)
        return result

    basicsr.train.create_train_val_dataloader = create_train_val_dataloader
    original_build_model = basicsr.train.build_model

    def build_model(opt):
        model = original_build_model(opt)
        nonfinite.install_nonfinite_guard(model, get_root_logger())
        return model

    build_model._plugins_compat = True
    basicsr.train.build_model = build_model
    original_build_dataset = basicsr.train.build_dataset

    def build_dataset(dataset_opt):
        return data_faults.apply_data_fault_policy(original_build_dataset(dataset_opt), dataset_opt,
                                                   get_root_logger())

    basicsr.train.build_dataset = basicsr.test.build_dataset = build_dataset
    _patch_basicsr_image_reading(FileClient, img_util, data_faults)


def _patch_basicsr_image_reading(FileClient, img_util, data_faults) -> None:  # noqa: N803 (a class)
    """See ``_patch_basicsr_reliability``: sourced bytes from ``FileClient.get``, a checked ``imfrombytes``."""
    import cv2
    import numpy as np
    original_get = FileClient.get
    original_imfrombytes = img_util.imfrombytes

    def get(self, filepath, client_key='default'):
        source = data_faults.describe_source(self.client, filepath, client_key)
        try:
            data = original_get(self, filepath, client_key)
        except OSError as err:
            raise data_faults.DataFaultError(f'cannot read {source}: {err}') from err
        if not data:
            raise data_faults.DataFaultError(f'cannot read {source}: ' + (
                'no such key' if data is None else 'the file is empty'))
        return data_faults.SourcedBytes.tag(data, source)

    flags = {'color': cv2.IMREAD_COLOR, 'grayscale': cv2.IMREAD_GRAYSCALE, 'unchanged': cv2.IMREAD_UNCHANGED}

    def imfrombytes(content, flag='color', float32=False):
        """BasicSR's ``imfrombytes`` (same arguments and result) that raises instead of returning None."""
        img = cv2.imdecode(np.frombuffer(content, np.uint8), flags[flag])
        if img is None:
            raise data_faults.DataFaultError(
                f'cannot decode image {getattr(content, "source", "<bytes>")} ({len(content)} bytes): truncated, '
                'corrupt, or not an image')
        return img.astype(np.float32) / 255. if float32 else img

    FileClient.get = get
    # Datasets did `from basicsr.utils import imfrombytes`: rebind the name wherever it was imported.
    for module in list(sys.modules.values()):
        if getattr(module, 'imfrombytes', None) is original_imfrombytes:
            module.imfrombytes = imfrombytes


MULTI_VALIDATION_WARNING = 'Multiple validation datasets are *only* supported by SRModel.'


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.text


def _drop_basicsr_multi_validation_warning() -> None:
    """BasicSR 1.4.2's ``train_pipeline`` warns "Multiple validation datasets are *only* supported by SRModel." at
    every validation of a run with more than one validation set, whatever the model, and then validates on each set
    anyway. Our models (all ``SRModel`` subclasses) score every set, and the text SR line validates on three splits:
    the ``basicsr`` logger drops that one message."""
    logger = logging.getLogger('basicsr')
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(MULTI_VALIDATION_WARNING))


def check_lmdb_version() -> None:
    """Raise a clear error when py-lmdb >= 2 is installed despite the ``lmdb<2`` pin (see module docstring)."""
    import lmdb
    if int(lmdb.__version__.split('.')[0]) >= 2:
        raise RuntimeError(f'py-lmdb {lmdb.__version__} is installed, but this package needs lmdb<2: '
                           'lmdb>=2 refuses to open one LMDB twice in a process (train + val on one LMDB). '
                           "Run: pip install 'lmdb<2'")


# ---------------------------------------------------------------------------------------------------------
# mmengine 0.10.7: resume on torch >= 2.6, launcher='pytorch' on CPU
# ---------------------------------------------------------------------------------------------------------
def _patch_mmengine() -> None:
    if importlib.util.find_spec('mmengine') is None:
        return
    _allow_mmengine_checkpoint_globals()
    _patch_mmengine_launcher()
    _patch_mmengine_checkpoints()
    _patch_mmengine_data_faults()


def _allow_mmengine_checkpoint_globals() -> None:
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
    import pickle

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
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


def _patch_mmengine_launcher() -> None:
    """mmengine 0.10.7 ``launcher='pytorch'`` calls ``torch.cuda.set_device(LOCAL_RANK)`` unconditionally
    ("Found no NVIDIA driver" on CPU, whatever ``dist_cfg.backend`` says) and the Runner wraps DDP with
    ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. On a machine without CUDA (nor the
    NPU/MLU/MUSA that mmengine also handles), initialise with gloo instead; elsewhere mmengine's own function
    runs unchanged. And drop ``device_ids`` when the wrapped module is on the CPU."""
    import mmengine.dist.utils as mm_dist_utils
    import torch.distributed as dist
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    from mmengine.model.wrappers.distributed import MMDistributedDataParallel

    if getattr(mm_dist_utils._init_dist_pytorch, '_plugins_compat', False):
        return  # already patched
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


def _patch_mmengine_checkpoints() -> None:
    """mmengine 0.10.7 writes checkpoints with ``LocalBackend.put`` (``open(path, 'wb').write``) and then the
    ``last_checkpoint`` pointer file the same way, and ``--resume`` (``find_latest_checkpoint``) trusts that pointer:
    a kill during a save leaves a truncated ``iter_N.pth`` or an empty pointer, and the resume fails with a
    traceback. ``put`` now writes atomically (``plugins/common/checkpoint_io.py``), and the latest checkpoint is the
    pointer's target if it loads, else the newest ``iter_*.pth`` / ``epoch_*.pth`` of the work dir that loads; the
    unreadable ones are logged."""
    import mmengine.runner.runner as mm_runner_module
    from mmengine.fileio.backends.local_backend import LocalBackend
    from mmengine.logging import print_log

    from .common.checkpoint_io import atomic_write_bytes, checkpoint_problem

    if getattr(LocalBackend.put, '_plugins_compat', False):
        return  # already patched

    def put(self, obj: bytes, filepath) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(str(filepath))), exist_ok=True)
        # fsync for checkpoints only: put also writes logs and results, where a rename is protection enough.
        atomic_write_bytes(obj, str(filepath), durable=str(filepath).endswith(('.pth', '.pt', '.ckpt')))

    put._plugins_compat = True
    LocalBackend.put = put
    original_find = mm_runner_module.find_latest_checkpoint

    def find_latest_checkpoint(path: str):
        pointed = original_find(path)
        candidates = [pointed] if pointed else []
        numbered = [f for f in os.listdir(path) if f.endswith('.pth') and f.split('_')[0] in ('iter', 'epoch')
                    and f[:-4].split('_')[-1].isdigit()] if os.path.isdir(path) else []
        numbered.sort(key=lambda f: int(f[:-4].split('_')[-1]), reverse=True)
        candidates += [os.path.join(path, f) for f in numbered if os.path.join(path, f) != pointed]
        for candidate in candidates:
            problem = checkpoint_problem(candidate)
            if problem is None:
                return candidate
            print_log(f'cannot resume from {candidate}: {problem}; trying an older checkpoint.', logger='current',
                      level=30)
        return None

    mm_runner_module.find_latest_checkpoint = find_latest_checkpoint


def _patch_mmengine_data_faults() -> None:
    """The ``on_data_fault`` policy of ``plugins/common/data_faults.py`` on the mmengine side.

    * ``Runner.build_dataloader`` takes ``on_data_fault`` (``'stop'`` by default, or ``'skip'``) out of a dataloader
      config, which mmengine would pass on to ``DataLoader`` and fail, builds the dataset as mmengine does and wraps
      it with the policy.
    * MMagic 1.2.0's ``LoadImageFromFile`` names no file when it cannot read one: an undecodable (truncated) file
      fails in ``cv2.cvtColor`` ("!_src.empty()") or as "'NoneType' object has no attribute 'shape'", a missing LMDB
      key in ``np.frombuffer(None)``. It now raises ``DataFaultError`` with the path or key."""
    from mmengine.registry import DATASETS
    from mmengine.runner import Runner

    from .common import data_faults

    if getattr(Runner.build_dataloader, '_plugins_compat', False):
        return  # already patched
    original_build_dataloader = Runner.build_dataloader

    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        if isinstance(dataloader, dict):
            dataloader = dict(dataloader)  # the runner's config stays as written
            policy = dataloader.pop(data_faults.OPTION, 'stop')
            dataset = dataloader['dataset']
            if isinstance(dataset, dict):  # as mmengine's build_dataloader does
                dataset = DATASETS.build(dataset)
                if hasattr(dataset, 'full_init'):
                    dataset.full_init()
            dataloader['dataset'] = data_faults.apply_data_fault_policy_mmengine(dataset, policy)
        return original_build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    build_dataloader._plugins_compat = True
    Runner.build_dataloader = staticmethod(build_dataloader)
    if importlib.util.find_spec('mmagic') is not None:
        _patch_mmagic_image_loading(data_faults.DataFaultError)


def _patch_mmagic_image_loading(DataFaultError) -> None:  # noqa: N803 (a class)
    """See ``_patch_mmengine_data_faults``."""
    import cv2
    from mmagic.datasets.transforms.loading import LoadImageFromFile

    original_load_image = LoadImageFromFile._load_image

    def source(self, filename) -> str:
        """The file, or ``LMDB <db> key '<k>'`` as BasicSR's side says it (MMagic's LMDB key is the file stem)."""
        args = self.backend_args or {}
        if args.get('backend') == 'lmdb':
            return f"LMDB {args.get('db_path')} key {os.path.splitext(os.path.basename(str(filename)))[0]!r}"
        return str(filename)

    def undecodable(self, filename) -> Exception:
        return DataFaultError(f'cannot decode image {source(self, filename)}: truncated, corrupt, or not an image')

    def _load_image(self, filename):
        try:
            img = original_load_image(self, filename)
        except OSError as err:  # a missing or unreadable file (PIL's "cannot identify image file" too)
            raise DataFaultError(f'cannot read image {source(self, filename)}: {err}') from err
        except TypeError as err:  # the LMDB backend returned None: np.frombuffer(None)
            raise DataFaultError(f'cannot read image {source(self, filename)}: no such key') from err
        except cv2.error as err:  # cv2.imdecode gave None, then cv2.cvtColor(None) failed
            raise undecodable(self, filename) from err
        if img is None:
            raise undecodable(self, filename)
        return img

    LoadImageFromFile._load_image = _load_image
