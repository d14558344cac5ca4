"""Unreadable images: report the file or LMDB key, then skip the sample or stop, as the option says.

BasicSR: ``datasets:<phase>:on_data_fault``; mmengine/MMagic: ``on_data_fault`` in a dataloader's config
(``train_dataloader = dict(..., on_data_fault='skip')``; ``plugins/compat/mmengine.py`` takes it out before mmengine builds
the loader, so mmengine never sees it). Either way:

* ``stop`` (default): the run stops with ``DataFaultError`` naming the dataset, the file or LMDB key and what is
  wrong (missing, empty, not decodable: truncated or not an image);
* ``skip``: the sample is replaced by the next readable one, a warning names the file, and the count of skipped
  samples is logged at the end of the run.

How the file is named: ``plugins/compat/basicsr.py`` makes BasicSR's ``FileClient.get`` raise ``DataFaultError`` for a
missing file or LMDB key and return the bytes tagged with their source (``SourcedBytes``), and makes
``imfrombytes`` raise ``DataFaultError`` with that source when OpenCV cannot decode them (``cv2.imdecode`` returns
None for a truncated PNG or JPEG); ``plugins/compat/mmagic.py`` makes MMagic's ``LoadImageFromFile`` raise
``DataFaultError`` naming the file. Datasets that read files another way (PIL, ``cv2.imread``) still get the
policy: an ``OSError`` from ``__getitem__`` counts as a data fault, named by the dataset's ``paths[index]`` (BasicSR)
or the ``*_path`` entries of ``get_data_info(index)`` (mmengine) when it has them.
"""
import multiprocessing
import os.path as osp
from typing import List

from torch.utils.data import Dataset, IterableDataset

from .errors import DataFaultError

OPTION = 'on_data_fault'
POLICIES = ('stop', 'skip')
DATASETS: List['DataFaultPolicy'] = []  # the wrapped datasets of this process, for the end-of-run summary


class SourcedBytes(bytes):
    """The bytes of one file or LMDB value, with ``source`` naming where they came from."""
    source = '<bytes>'

    @classmethod
    def tag(cls, data: bytes, source: str) -> 'SourcedBytes':
        tagged = cls(data)
        tagged.source = source
        return tagged


def describe_source(client, filepath, client_key: str) -> str:
    """'LMDB <db> key <k>' for BasicSR's LMDB backend, else the file path."""
    db_paths = getattr(client, 'db_paths', None)
    keys = list(getattr(client, '_client', {}) or {})
    if db_paths is not None:
        db = db_paths[keys.index(client_key)] if client_key in keys else db_paths[0]
        return f'LMDB {db} key {str(filepath)!r}'
    return str(filepath)


def _sample_name(dataset, index: int) -> str:
    """' (<path>)' for a BasicSR dataset (``paths``) or an mmengine one (``get_data_info``), else ''."""
    try:
        paths = getattr(dataset, 'paths', None)
        if paths is not None:
            return f' ({paths[index]})'
        if hasattr(dataset, 'get_data_info'):
            info = dataset.get_data_info(index)
            files = [str(v) for k, v in info.items() if k.endswith('_path')]
            return f' ({", ".join(files)})' if files else ''
    except (IndexError, KeyError, TypeError, AttributeError):
        pass
    return ''


def basicsr_logger():
    from basicsr.utils import get_root_logger
    return get_root_logger()


def mmengine_logger():
    from mmengine.logging import MMLogger
    return MMLogger.get_current_instance()


class DataFaultPolicy(Dataset):
    """Wraps a dataset to apply ``on_data_fault``; other attributes are the wrapped dataset's.

    ``name`` says which dataset in the messages (``datasets:train``); ``option`` how to set the skip policy in the
    toolbox's terms; ``get_logger`` (a module-level function, so that spawned data workers can pickle it) gives the
    logger after unpickling."""

    def __init__(self, dataset, name: str, policy: str, logger, option: str = None, get_logger=basicsr_logger):
        if policy not in POLICIES:
            raise ValueError(f'{name}: {OPTION} must be one of {", ".join(POLICIES)}, got {policy!r}')
        self.dataset, self.name, self.policy, self.logger = dataset, name, policy, logger
        self.option, self.get_logger = option or f'{name}:{OPTION}: skip', get_logger
        self.skipped = multiprocessing.Value('l', 0)  # shared with forked or spawned data workers
        DATASETS.append(self)

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):
        if name.startswith('__') or 'dataset' not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __deepcopy__(self, memo):
        # mmengine's build_dataloader deep-copies its config, dataset instance included: the wrapper (whose skip
        # counter is shared memory, which cannot be copied) and the dataset it holds are used as they are.
        return self

    def __getstate__(self):
        state = dict(self.__dict__)
        state['logger'] = None  # loggers hold locks; a spawned worker takes BasicSR's root logger
        return state

    def __getitem__(self, index):
        size = len(self.dataset)
        for attempt in range(size):
            item = (index + attempt) % size
            try:
                return self.dataset[item]
            except (DataFaultError, OSError) as err:
                where = f'{self.name} sample {item}{_sample_name(self.dataset, item)}'
                if self.policy == 'stop':
                    raise DataFaultError(f'{where}: {err}. Fix or remove the file, or set '
                                         f'{self.option} to train without it.') from err
                with self.skipped.get_lock():
                    self.skipped.value += 1
                self._log().warning(f'Skipping {where}: {err}')
        raise DataFaultError(f'{self.name}: no sample of the {size} can be read')

    def _log(self):
        if self.logger is None:
            self.logger = self.get_logger()
        return self.logger


def apply_data_fault_policy(dataset, dataset_opt, logger):
    """Wrap a dataset built by BasicSR's ``build_dataset`` with the option's policy (map-style datasets only: an
    iterable dataset has no index to skip to, and its read errors propagate unchanged)."""
    if isinstance(dataset, IterableDataset):
        return dataset
    policy = dataset_opt.get(OPTION, 'stop')
    return DataFaultPolicy(dataset, f"datasets:{dataset_opt.get('phase', dataset_opt.get('name', '?'))}", policy,
                           logger)


def apply_data_fault_policy_mmengine(dataset, policy: str):
    """The same for a dataset built from an mmengine dataloader config (``on_data_fault`` taken out of it)."""
    if isinstance(dataset, IterableDataset):
        return dataset
    root = getattr(dataset, 'data_root', None)
    name = f'{type(dataset).__name__}' + (f' at {root}' if root else '')
    return DataFaultPolicy(dataset, name, policy, None, option="on_data_fault='skip' in its dataloader config",
                           get_logger=mmengine_logger)


def summary() -> List[str]:
    """End-of-run lines: how many samples each dataset skipped."""
    return [f'{d.name}: {d.skipped.value} unreadable sample(s) skipped ({OPTION}: skip); '
            'their paths are in the warnings above.' for d in DATASETS if d.skipped.value]


# ---------------------------------------------------------------------------------------------------------
# pairs that do not fit: sizes (per sample, under the policy) and partners (when the dataset is built)
# ---------------------------------------------------------------------------------------------------------
def check_paired_crop(gt_hw, lq_hw, gt_patch_size: int, scale: int, gt: str = '', lq: str = '') -> None:
    """Raise ``DataFaultError`` naming both images and their sizes when GT is not ``scale`` x LQ, or LQ is smaller
    than the LQ crop (``gt_patch_size // scale``); ``gt`` / ``lq`` name the images (their paths where known). The
    check BasicSR's ``paired_random_crop`` and MMagic's ``PairedRandomCrop`` make, with a message that names the
    files, so that ``on_data_fault`` stops on the sample or skips it."""
    (h_gt, w_gt), (h_lq, w_lq) = (int(v) for v in gt_hw[:2]), (int(v) for v in lq_hw[:2])
    sizes = f'GT{" " + str(gt) if gt else ""} is {w_gt}x{h_gt}, LQ{" " + str(lq) if lq else ""} is {w_lq}x{h_lq}'
    if h_gt != h_lq * scale or w_gt != w_lq * scale:
        raise DataFaultError(f'{sizes}: GT is not {scale}x LQ (scale {scale})')
    lq_patch = gt_patch_size // scale
    if h_lq < lq_patch or w_lq < lq_patch:
        raise DataFaultError(f'{sizes}: smaller than the training crop (GT {gt_patch_size}x{gt_patch_size}, LQ '
                             f'{lq_patch}x{lq_patch})')


def _few(names, count: int = 5) -> str:
    names = sorted(names)
    return ', '.join(names[:count]) + (f' and {len(names) - count} more' if len(names) > count else '')


def check_folder_partners(input_folder: str, gt_folder: str, input_names, gt_names, filename_tmpl: str = '{}',
                          input_key: str = 'lq', gt_key: str = 'gt') -> None:
    """Raise ``DataFaultError`` naming the missing partner files when a GT image of ``gt_folder`` has no
    ``input_folder`` image named by ``filename_tmpl``, or ``input_folder`` holds images no GT image pairs with (what
    BasicSR's ``paired_paths_from_folder`` asserts, naming the count or a bare file name)."""
    input_set = set(input_names)
    wanted = {f'{filename_tmpl.format(osp.splitext(g)[0])}{osp.splitext(g)[1]}': g for g in gt_names}
    missing = [name for name in wanted if name not in input_set]
    if missing:
        first = missing[0]
        raise DataFaultError(f'{input_key} image {osp.join(input_folder, first)} is missing: the partner of '
                             f'{osp.join(gt_folder, wanted[first])} ({len(missing)} of {len(wanted)} {gt_key} images '
                             f'have no {input_key} partner in {input_folder}: {_few(missing)})')
    extra = sorted(input_set - set(wanted))
    if extra:
        raise DataFaultError(f'{input_folder} has {len(extra)} {input_key} image(s) without a {gt_key} partner in '
                             f'{gt_folder}: {_few(extra)}')


def check_lmdb_partners(input_folder: str, gt_folder: str, input_key: str = 'lq', gt_key: str = 'gt') -> None:
    """Raise ``DataFaultError`` naming both LMDBs and a few keys when their ``meta_info.txt`` key sets differ (or one
    cannot be read), where BasicSR's ``paired_paths_from_lmdb`` says only "Keys in lq_folder and gt_folder are
    different"."""
    keys = {}
    for key, folder in ((input_key, input_folder), (gt_key, gt_folder)):
        meta = osp.join(folder, 'meta_info.txt')
        try:
            with open(meta) as f:
                keys[key] = {line.split('.')[0] for line in f}  # BasicSR's key: the name up to its first dot
        except OSError as err:
            raise DataFaultError(f'cannot read the {key} LMDB\'s key list {meta}: {err.strerror or err}') from err
    only_input, only_gt = keys[input_key] - keys[gt_key], keys[gt_key] - keys[input_key]
    if only_input or only_gt:
        parts = [f'{len(keys_)} only in {name} ({_few(keys_)})' for keys_, name in
                 ((only_gt, gt_folder), (only_input, input_folder)) if keys_]
        raise DataFaultError(f'the {gt_key} LMDB {gt_folder} and the {input_key} LMDB {input_folder} list different '
                             f'keys in meta_info.txt: {"; ".join(parts)}')


def check_not_empty(dataset_cfg: dict, size: int) -> None:
    """Raise ``DataFaultError`` naming the folders of an mmengine dataset config that gave no samples."""
    if size:
        return
    root = str(dataset_cfg.get('data_root') or '')
    prefix = dataset_cfg.get('data_prefix') or {}
    folders = [osp.join(root, str(p)) for p in (prefix.values() if isinstance(prefix, dict) else [prefix])] or [root]
    ann = dataset_cfg.get('ann_file')
    where = f'annotation file {osp.join(root, str(ann))}' if ann else ', '.join(folders)
    raise DataFaultError(f'{dataset_cfg.get("type", "dataset")} has no samples: nothing found in {where} (an empty '
                         'folder, or data_root / data_prefix pointing to the wrong place)')
