"""The mmengine SRCNN demo config run a few iterations on the demo data, shared by the mmengine tests (tests/engine)
and the mmengine compat tests (tests/compat): the config, the fast overrides, the session-wide 4-iteration run, and
reading a run's log."""
import glob
import os.path as osp

from tests.conftest import build_once, make_workdir
from tests.helpers import REPO, run_config

CONFIG = osp.join(REPO, 'options', 'mmagic', 'classic', 'srcnn_x2_demo.py')
# A few iterations, validation and checkpoints every 2, one validation image, small batches, no worker processes
# (in this process, the infinite training loader's workers would outlive the run and take 10 s to shut down when
# the loader is collected during the next run).
FAST = ['train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=4', 'val_dataloader.dataset.indices=1', 'val_dataloader.num_workers=0',
        'train_dataloader.num_workers=0']


def logs(work) -> set:
    """The mmengine log files of a work dir (one ``<timestamp>/<timestamp>.log`` per run)."""
    return set(glob.glob(osp.join(str(work), '*', '*.log')))


def run_log(work, before: set) -> str:
    """The text of the one log a run wrote into ``work`` (``before``: the logs that were there already)."""
    (log,) = logs(work) - before
    with open(log) as f:
        return f.read()


def mmengine_srcnn_iter4(shared_dir, demo_data):
    """A 4-iteration run of the demo config (checkpoints at 2 and 4, validation at 2 and 4), built once per session:
    ``<folder>/work`` and its log ``<folder>/train.log``. Read it; copy ``work`` before writing next to it."""
    def build(folder):
        make_workdir(folder, demo_data)
        run_config(CONFIG, folder, args=['--work-dir', 'work'], cfg_options=['train_cfg.max_iters=4', *FAST])
        (folder / 'train.log').write_text(run_log(folder / 'work', set()))
    return build_once(shared_dir, 'mmengine_srcnn_x2_iter4', build)
