"""BasicSR 1.4.2: distributed launch and DDP on CPU and on multi-node GPU, resume on CPU and past bad files, atomic
checkpoints, exact resume, the non-finite guard, mixed precision, channels-last and torch.compile in training, data
faults, ``_base_`` in options files, and one misleading warning.

``apply(basicsr)`` runs when the ``basicsr`` package has been imported (a post-import hook installed by
``plugins.compat.apply``). The logic of each patch lives in ``plugins/engine/``; this module only wires it into
BasicSR's functions and classes. The launcher, resume-loading, ``_base_`` and warning patches are tested in
``tests/compat/test_basicsr.py``; the reliability patches through training runs in ``tests/engine/``.
"""
import atexit
import collections
import functools
import logging
import os
import os.path as osp
import shutil
import sys
import tempfile
import warnings

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ..engine import data_faults, resume_policy
from ..engine.basicsr import checkpoints, devices, mixed_precision, nonfinite_guard, resume, speed_options
from ..engine.basicsr.options import (OptionsLoader, add_run_defaults, apply_force_yml, force_yml_arguments, has_bases,
                                      launcher_argument, load_options, option_file_argument, options_to_yaml)
from ..engine.errors import DataFaultError, OptionsError

MULTI_VALIDATION_WARNING = 'Multiple validation datasets are *only* supported by SRModel.'


def apply(basicsr) -> None:
    """Patch BasicSR (the imported ``basicsr`` package); a second call changes nothing."""
    if getattr(basicsr.train.build_model, '_plugins_compat', False):
        return  # already patched
    run = resume.TrainingRun()  # what the train_pipeline patches hand on to each other (see its docstring)
    _patch_options_inheritance(basicsr, run)
    _patch_distributed(basicsr, run)
    _patch_resume_and_checkpoints(basicsr, run)
    _patch_training_step(basicsr, run)
    _patch_data_faults(basicsr)
    _drop_multi_validation_warning()
    # `python -m basicsr.train`: runpy warns that basicsr.train was imported (by basicsr/__init__.py) before it runs
    # as __main__, "this may result in unpredictable behaviour"; _adopt_patches makes __main__ run the patched one.
    warnings.filterwarnings('ignore', message=r"'basicsr\.(train|test)' found in sys\.modules after import of package "
                            "'basicsr'", category=RuntimeWarning)


# ---------------------------------------------------------------------------------------------------------
# options files with _base_, and the device of the run
# ---------------------------------------------------------------------------------------------------------
def _patch_options_inheritance(basicsr, run: resume.TrainingRun) -> None:
    """``parse_options`` reads the ``-opt`` file with a plain YAML load, so a file with ``_base_`` would reach BasicSR
    unresolved. For such a file it now reads the resolved options (``engine/basicsr/options.py``), written as a flat
    YAML file of the same name in a temporary folder, which BasicSR then also copies into the experiment folder: the
    copy there is the whole set of options a run used, runnable with plain BasicSR. Files without ``_base_`` are
    read as before.

    It also decides the run's device and distributed backend before BasicSR initialises the process group
    (``engine/basicsr/devices.py``: ``run.device_plan``, read by the distributed patches below), and gives BasicSR
    the matching ``num_gpu``. The GPU loading options of our GPU recipes fit the device: on a CPU run
    ``prefetch_mode: cuda`` falls back to BasicSR's plain loader and ``pin_memory`` is off, and
    ``persistent_workers`` is off for a loader without workers.

    Options files are read safely (issue 17): BasicSR's ``ordered_yaml`` returned PyYAML's full ``Loader``, with
    which ``parse_options`` builds whatever Python object a tag names (``!!python/object/apply:os.system``). It now
    returns ``OptionsLoader`` (``engine/basicsr/options.py``: a ``SafeLoader`` keeping key order, refusing
    duplicate keys), so every file BasicSR reads is plain YAML, whoever calls it. Patching the loader rather than
    always handing BasicSR a flat copy keeps the experiment folder's copy of a file without ``_base_`` the user's own
    text (comments included); and ``parse_options`` reads every ``-opt`` file through ``load_options`` first, which
    stops a file with a Python tag or a duplicate key with one ``OptionsError`` line before BasicSR opens it.

    BasicSR's own scripts (``python -m basicsr.train -opt X.yml``, ``python -m basicsr.test``) run as our tools do:
    the options check first, outputs under the working directory (``_output_root``), and the patched pipeline
    (``_adopt_patches``). Every run gets our defaults for what BasicSR leaves off (``add_run_defaults``: progress
    bars in validation and test)."""
    options_module = basicsr.utils.options
    original_parse = options_module.parse_options
    original_ordered_yaml = options_module.ordered_yaml

    def ordered_yaml():
        return OptionsLoader, original_ordered_yaml()[1]

    options_module.ordered_yaml = ordered_yaml

    def parse_options(root_path, is_train=True):
        argv = list(sys.argv)
        root_path = _output_root(basicsr, root_path)
        index, path = option_file_argument(argv)
        script = _toolbox_script(basicsr)
        if script is not None:
            _adopt_patches(script, sys.modules['__main__'])
            _check_options_of_toolbox_script(path, is_train, argv)
        if path is None or not os.path.isfile(path):
            return original_parse(root_path, is_train)
        options = load_options(path)  # read once: the device plan and the flat copy both use it
        resolved = apply_force_yml(options, force_yml_arguments(argv), path)
        run.device_plan = devices.plan_devices(resolved, distributed=launcher_argument(argv) != 'none')
        if has_bases(path):
            folder = tempfile.mkdtemp(prefix='resolved_options_')
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            flat = os.path.join(folder, os.path.basename(path))
            with open(flat, 'w', encoding='utf-8') as f:
                f.write(f'# {path} with its _base_ files resolved\n' + options_to_yaml(options))
            sys.argv = argv[:index] + ['-opt', flat] + argv[index + 1 + (argv[index] == '-opt'):]
        try:
            opt, args = original_parse(root_path, is_train)
        finally:
            sys.argv = argv
        _apply_device_plan(opt, run.device_plan)
        add_run_defaults(opt)
        return opt, args

    options_module.parse_options = parse_options
    # train.py and test.py did `from basicsr.utils.options import parse_options`.
    basicsr.train.parse_options = basicsr.test.parse_options = parse_options


def _output_root(basicsr, root_path: str) -> str:
    """BasicSR's own ``train.py`` and ``test.py`` (``python -m basicsr.train``) pass the folder above the ``basicsr``
    package as ``root_path``, under which ``parse_options`` puts ``experiments/``, ``results/`` and ``tb_logger/``:
    ``site-packages`` for an installed BasicSR. Their outputs go under the working directory instead, as those of
    ``tools/train.py`` (and of BasicSR's scripts run from a BasicSR checkout). Other roots are kept."""
    toolbox_root = osp.dirname(osp.dirname(osp.abspath(basicsr.__file__)))
    return os.getcwd() if osp.realpath(root_path) == osp.realpath(toolbox_root) else root_path


def _toolbox_script(basicsr):
    """``basicsr.train`` or ``basicsr.test`` when the running script (``__main__``) is BasicSR's own ``train.py`` or
    ``test.py`` (``python -m basicsr.train``, ``python basicsr/train.py``), else None."""
    main_file = getattr(sys.modules.get('__main__'), '__file__', None)
    if not main_file:
        return None
    for module in (basicsr.train, basicsr.test):
        if osp.realpath(main_file) == osp.realpath(module.__file__):
            return module
    return None


def _adopt_patches(module, main) -> None:
    """``python -m basicsr.train`` runs ``train.py`` a second time as ``__main__`` (``import basicsr`` has imported
    and patched it as ``basicsr.train``), with its own globals: the unpatched functions and the names it imported
    (``build_model``, ``EnlargedSampler``). ``train_pipeline`` calls ``parse_options`` first and looks every other
    name up when it calls it, so binding in ``__main__`` every name that the patches replaced in ``module`` makes
    the script run the patched pipeline."""
    for name, value in vars(module).items():
        if getattr(value, '__module__', '').startswith('plugins.') and name in vars(main):
            setattr(main, name, value)


def _check_options_of_toolbox_script(path, is_train: bool, argv) -> None:
    """BasicSR's own scripts check the options as ``tools/train.py`` does: the first problem is one ``error:`` line
    and exit status 2, before any work."""
    from ..engine.basicsr.options_check import check_basicsr_options  # its checks import more of BasicSR
    try:
        check_basicsr_options(path, is_train=is_train, force_yml=force_yml_arguments(argv),
                              launcher=launcher_argument(argv))
    except OptionsError as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        sys.exit(2)


def _apply_device_plan(opt, plan: devices.DevicePlan) -> None:
    """Give BasicSR's options the planned ``num_gpu`` (its models put themselves on CUDA when it is not 0) and say
    on rank 0 what the plan changed."""
    opt['num_gpu'] = plan.num_gpu
    devices.record_process_group(opt)  # the logged dist_params name the backend used (gloo on CPU), not the file's
    lines = list(plan.notes)
    for phase, dataset in (opt.get('datasets') or {}).items():
        if plan.device_type == 'cpu' and dataset.get('prefetch_mode') == 'cuda':
            dataset['prefetch_mode'] = None
            lines.append(f'datasets:{phase}:prefetch_mode: cuda needs a GPU; this CPU run uses the plain data loader.')
        if plan.device_type == 'cpu':
            dataset['pin_memory'] = False  # page-locked memory only speeds up copies to a GPU
        if not dataset.get('num_worker_per_gpu'):
            dataset['persistent_workers'] = False  # torch refuses it without workers; there is nothing to keep
    if opt.get('rank', 0) == 0:
        print(f'Device: {plan.device_type}' + (f', process group: {plan.backend}' if opt.get('dist') else ''),
              flush=True)
        for line in lines:
            print(f'Warning: {line}', flush=True)


# ---------------------------------------------------------------------------------------------------------
# distributed launch and DDP
# ---------------------------------------------------------------------------------------------------------
def _patch_distributed(basicsr, run: resume.TrainingRun) -> None:
    """``torchrun`` initialisation that follows the run's device plan, and DDP on either device.

    * BasicSR 1.4.2's ``_init_dist_pytorch`` does ``torch.cuda.set_device(RANK % device_count())`` (ZeroDivisionError
      on CPU, and the wrong GPU on nodes after the first, since it ignores LOCAL_RANK) and always uses nccl, also
      for a CPU model (``num_gpu: 0``). Here: a CUDA run takes the GPU of LOCAL_RANK and the asked backend (nccl), a
      CPU run gloo, both with ``dist_params:timeout``. ``--launcher slurm`` keeps BasicSR's initialisation, with
      the timeout.
    * ``BaseModel.model_to_device`` wraps DDP with ``device_ids=[torch.cuda.current_device()]``, which fails on
      CPU: CPU modules are wrapped with ``device_ids=None``. ``num_gpu > 1`` without a launcher (DataParallel)
      warns that torchrun is the better way."""
    dist_util = basicsr.utils.dist_util
    original_slurm = dist_util._init_dist_slurm

    def plan_or_default():
        return run.device_plan or devices.plan_devices({}, distributed=True)

    def init_dist_pytorch(backend='nccl', **kwargs):
        plan = plan_or_default()
        if plan.device_type == 'cuda':
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
        kwargs.setdefault('timeout', plan.timeout)
        dist.init_process_group(backend=plan.backend, **kwargs)

    def init_dist_slurm(backend='nccl', port=None, timeout=None):
        init_process_group = dist.init_process_group
        dist.init_process_group = functools.partial(init_process_group, timeout=plan_or_default().timeout)
        try:
            original_slurm(backend, port)
        finally:
            dist.init_process_group = init_process_group

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused_parameters = self.opt.get('find_unused_parameters', False)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
        elif self.opt['num_gpu'] > 1:
            basicsr.utils.get_root_logger().warning(devices.DATA_PARALLEL_WARNING.format(n=self.opt['num_gpu']))
            net = DataParallel(net)
        return net

    # init_dist() looks these up as module globals at call time.
    dist_util._init_dist_pytorch = init_dist_pytorch
    dist_util._init_dist_slurm = init_dist_slurm
    basicsr.models.base_model.BaseModel.model_to_device = model_to_device


# ---------------------------------------------------------------------------------------------------------
# resume, atomic checkpoints, exact resume
# ---------------------------------------------------------------------------------------------------------
def _patch_resume_and_checkpoints(basicsr, run: resume.TrainingRun) -> None:
    """Hooks into BasicSR 1.4.2's training pipeline (logic in ``engine/basicsr/resume.py`` and ``checkpoints.py``):

    * ``load_resume_state`` maps the state with ``torch.cuda.current_device()`` (fails without CUDA; on a GPU it puts
      the saved random states on the GPU, where the generators cannot take them; ours loads onto the CPU) and, with
      ``--auto_resume``, looks in ``experiments/<name>`` relative to the working directory instead of the experiment
      folder it writes to (fixed in forks, e.g. neosr#109). It also takes the newest ``.state`` blindly: a truncated
      state or network file fails the resume with a traceback. Here ``--auto_resume`` takes the newest state whose
      state and network files load and logs the ones it skips; an unreadable ``path:resume_state`` stops with
      ``CheckpointError`` naming the file. The state is also kept for the data position of an exact resume.
    * ``BaseModel.save_network`` / ``save_training_state`` write with ``torch.save`` straight to the final name: a
      kill during a save leaves a truncated ``net_g_<iter>.pth`` or ``<iter>.state`` that ``--auto_resume`` then
      picks. Ours write to a temporary file and rename it, and the state also holds the generator states and
      batches per epoch.
    * ``train_pipeline`` re-seeds on resume and restarts the saved epoch from its first batch: its sampler becomes
      ``ResumableSampler``, told by ``create_train_val_dataloader`` where the saved run stopped.
    * ``BaseModel.validation`` draws from the global generators (a DataLoader iterator draws its base seed), so a
      validation at the save point, done by an uninterrupted run and not by a resumed one, shifted the training's
      random stream: validation runs with the generator states set aside.
    * BasicSR's ``MultiStepRestartLR`` keeps its milestones in a Counter, which torch >= 2.6's weights_only load of a
      training state refuses ("Unsupported global: collections.Counter"); a Counter is a plain dict: allowed.
    """
    train, base_model = basicsr.train, basicsr.models.base_model.BaseModel

    def load_resume_state(opt):
        if 'root_path' in opt:  # train_pipeline has just set it to its own root_path, under which it puts tb_logger/
            opt['root_path'] = _output_root(basicsr, opt['root_path'])
        run.start()
        resume_state_path = None
        if opt['auto_resume']:
            resume_state_path, skipped = resume.find_resumable_state(
                opt, lambda line: print(f'Warning: {line}; trying an older one.', flush=True))
            if resume_state_path is not None:
                opt['path']['resume_state'] = resume_state_path
            elif skipped:  # states exist, none loads: stop rather than train again from 0 (engine/resume_policy.py)
                resume_policy.no_readable_state(skipped, opt['path']['training_states'], '--auto_resume',
                                                lambda line: print(f'Warning: {line}', flush=True))
        elif opt['path'].get('resume_state'):
            resume_state_path = opt['path']['resume_state']
        if resume_state_path is None:
            return None
        resume_state = resume.load_training_state(resume_state_path)
        train.check_resume(opt, resume_state['iter'])
        run.resume_state = resume_state
        return resume_state

    # train_pipeline() looks these up as module globals of basicsr.train at call time.
    train.load_resume_state = load_resume_state
    train.EnlargedSampler = resume.ResumableSampler
    original_dataloaders = train.create_train_val_dataloader

    def create_train_val_dataloader(opt, logger):
        resume.log_deferred_warnings(logger)  # the resume's warnings, printed before the log file existed
        result = original_dataloaders(opt, logger)
        train_loader, train_sampler = result[0], result[1]
        run.batches_per_epoch = len(train_loader)
        resume_state = run.take_resume_state()
        if resume_state is not None:
            resume.plan_resume(resume_state, train_sampler, len(train_loader), train_loader.batch_size,
                               opt['rank'], logger)
        return result

    train.create_train_val_dataloader = create_train_val_dataloader

    base_model.save_network = checkpoints.save_network

    def save_training_state(self, epoch, current_iter):
        checkpoints.save_training_state(self, epoch, current_iter, run.state_extras())

    base_model.save_training_state = save_training_state
    original_validation = base_model.validation

    def validation(self, *args, **kwargs):
        with resume.isolated_rng():
            return original_validation(self, *args, **kwargs)

    base_model.validation = validation
    torch.serialization.add_safe_globals([collections.Counter])


# ---------------------------------------------------------------------------------------------------------
# the training step: channels-last, torch.compile, mixed precision, the non-finite guard
# ---------------------------------------------------------------------------------------------------------
def _patch_training_step(basicsr, run: resume.TrainingRun) -> None:
    """``build_model`` installs on the built training model, in this order (logic in ``engine/basicsr/``):
    ``train:channels_last`` and ``train:compile`` (``speed_options.py``), ``train:amp`` (``mixed_precision.py``), and
    the non-finite guard (``nonfinite_guard.py``: a NaN loss would step the optimizer with NaN gradients and train on
    with NaN weights), which wraps the mixed-precision step and leaves the fp16 gradient check to the scaler.

    * ``BaseModel.model_to_device`` (the distributed section's) first puts ``network_g`` in channels-last, before
      DDP.
    * ``BaseModel.get_bare_model`` unwraps DataParallel and DDP only: it also unwraps ``torch.compile``, so
      checkpoints, the EMA update and loading see the plain network (plain state-dict keys).
    * ``BaseModel.resume_training`` restores the optimizers and schedulers: also the fp16 gradient scaler (the
      state is saved by ``checkpoints.save_training_state``), so resume stays exact.
    """
    train, base_model = basicsr.train, basicsr.models.base_model.BaseModel
    original_build_model = train.build_model

    def build_model(opt):
        model = original_build_model(opt)
        logger = basicsr.utils.get_root_logger()
        speed_options.install_speed_options(model, logger)
        amp = mixed_precision.install_mixed_precision(model, logger)
        nonfinite_guard.install_nonfinite_guard(model, logger, run.epoch_of_iteration, amp)
        return model

    build_model._plugins_compat = True  # the mark apply() looks for
    train.build_model = build_model
    original_model_to_device = base_model.model_to_device

    def model_to_device(self, net):
        return original_model_to_device(self, speed_options.prepare_network(self, net))

    def get_bare_model(self, net):
        return speed_options.bare_network(net)

    original_resume_training = base_model.resume_training

    def resume_training(self, resume_state):
        original_resume_training(self, resume_state)
        mixed_precision.load_scaler_state(self, resume_state, basicsr.utils.get_root_logger())

    base_model.model_to_device = model_to_device
    base_model.get_bare_model = get_bare_model
    base_model.resume_training = resume_training


# ---------------------------------------------------------------------------------------------------------
# data faults
# ---------------------------------------------------------------------------------------------------------
def _patch_data_faults(basicsr) -> None:
    """``FileClient.get`` returns None for a missing LMDB key and ``imfrombytes`` returns None for bytes OpenCV cannot
    decode, which fail later as "'NoneType' object has no attribute 'astype'" with no file named: both raise
    ``DataFaultError`` naming the file or key, and every dataset built by ``build_dataset`` applies its
    ``on_data_fault`` policy (``engine/data_faults.py``).

    Pairs that do not fit: ``paired_random_crop`` raises ``DataFaultError`` naming the GT file and both sizes (GT
    not ``scale`` x LQ, or smaller than the crop), which the policy stops on or skips like an unreadable file;
    ``paired_paths_from_folder`` and ``paired_paths_from_lmdb`` raise it naming the missing partner files or the
    differing LMDB keys when the dataset is built (BasicSR asserts with a count, or names neither LMDB)."""
    original_build_dataset = basicsr.train.build_dataset

    def build_dataset(dataset_opt):
        try:
            dataset = original_build_dataset(dataset_opt)
        except DataFaultError as err:  # a partner missing: no sample to skip to, the dataset is wrong
            raise DataFaultError(f"datasets:{dataset_opt.get('phase', dataset_opt.get('name', '?'))}: {err}") from err
        return data_faults.apply_data_fault_policy(dataset, dataset_opt, basicsr.utils.get_root_logger())

    basicsr.train.build_dataset = basicsr.test.build_dataset = build_dataset
    file_client = basicsr.utils.file_client.FileClient
    img_util = basicsr.utils.img_util
    original_get = file_client.get
    original_imfrombytes = img_util.imfrombytes

    def get(self, filepath, client_key='default'):
        source = data_faults.describe_source(self.client, filepath, client_key)
        try:
            data = original_get(self, filepath, client_key)
        except OSError as err:
            raise DataFaultError(f'cannot read {source}: {err}') from err
        if not data:
            raise DataFaultError(f'cannot read {source}: ' + ('no such key' if data is None else 'the file is empty'))
        return data_faults.SourcedBytes.tag(data, source)

    flags = {'color': cv2.IMREAD_COLOR, 'grayscale': cv2.IMREAD_GRAYSCALE, 'unchanged': cv2.IMREAD_UNCHANGED}

    def imfrombytes(content, flag='color', float32=False):
        """BasicSR's ``imfrombytes`` (same arguments and result) that raises instead of returning None."""
        img = cv2.imdecode(np.frombuffer(content, np.uint8), flags[flag])
        if img is None:
            raise DataFaultError(f'cannot decode image {getattr(content, "source", "<bytes>")} ({len(content)} '
                                 'bytes): truncated, corrupt, or not an image')
        return img.astype(np.float32) / 255. if float32 else img

    file_client.get = get
    # Datasets did `from basicsr.utils import imfrombytes`: rebind the name wherever it was imported.
    _rebind_everywhere({'imfrombytes': (original_imfrombytes, imfrombytes)})
    _patch_paired_data_checks(basicsr)


def _patch_paired_data_checks(basicsr) -> None:
    """Sizes and partners of paired data, checked with messages that name the files (see ``_patch_data_faults``)."""
    from basicsr.data import data_util, transforms
    from basicsr.utils import scandir
    originals = {name: getattr(module, name) for module, name in (
        (transforms, 'paired_random_crop'), (data_util, 'paired_paths_from_folder'),
        (data_util, 'paired_paths_from_lmdb'))}

    def size(img):
        return tuple(img.size()[-2:]) if torch.is_tensor(img) else img.shape[:2]

    def paired_random_crop(img_gts, img_lqs, gt_patch_size, scale, gt_path=None):
        gt = img_gts[0] if isinstance(img_gts, list) else img_gts
        lq = img_lqs[0] if isinstance(img_lqs, list) else img_lqs
        data_faults.check_paired_crop(size(gt), size(lq), gt_patch_size, scale, gt=gt_path or '')
        return originals['paired_random_crop'](img_gts, img_lqs, gt_patch_size, scale, gt_path)

    def paired_paths_from_folder(folders, keys, filename_tmpl):
        if len(folders) == 2 and len(keys) == 2:
            for folder, key in zip(folders, keys):
                if not os.path.isdir(folder):
                    raise DataFaultError(f'the {key} folder {folder} does not exist')
            data_faults.check_folder_partners(*folders, list(scandir(folders[0])), list(scandir(folders[1])),
                                              filename_tmpl, *keys)
        return originals['paired_paths_from_folder'](folders, keys, filename_tmpl)

    def paired_paths_from_lmdb(folders, keys):
        if len(folders) == 2 and len(keys) == 2 and all(str(f).endswith('.lmdb') for f in folders):
            data_faults.check_lmdb_partners(*folders, *keys)
        return originals['paired_paths_from_lmdb'](folders, keys)

    # Datasets did `from basicsr.data.transforms import paired_random_crop` ...: rebind the names where imported
    # (their defining modules included).
    _rebind_everywhere({'paired_random_crop': (originals['paired_random_crop'], paired_random_crop),
                        'paired_paths_from_folder': (originals['paired_paths_from_folder'], paired_paths_from_folder),
                        'paired_paths_from_lmdb': (originals['paired_paths_from_lmdb'], paired_paths_from_lmdb)})


def _rebind_everywhere(replacements) -> None:
    """For each ``name: (original, replacement)``, point every loaded module's global ``name`` that is ``original``
    at ``replacement``: a function imported by name (``from m import f``) is a separate binding in each module."""
    for module in list(sys.modules.values()):
        for name, (original, replacement) in replacements.items():
            if getattr(module, name, None) is original:
                setattr(module, name, replacement)


# ---------------------------------------------------------------------------------------------------------
# a misleading warning
# ---------------------------------------------------------------------------------------------------------
class DropMessage(logging.Filter):
    """A logging filter that drops the records whose message is exactly ``text``."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.text


def _drop_multi_validation_warning() -> None:
    """BasicSR 1.4.2's ``train_pipeline`` warns "Multiple validation datasets are *only* supported by SRModel." at
    every validation of a run with more than one validation set, whatever the model, and then validates on each set
    anyway. Our models (all ``SRModel`` subclasses) score every set, and the text SR line validates on three splits:
    the ``basicsr`` logger drops that one message."""
    logger = logging.getLogger('basicsr')
    if not any(isinstance(f, DropMessage) for f in logger.filters):
        logger.addFilter(DropMessage(MULTI_VALIDATION_WARNING))
