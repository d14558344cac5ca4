"""The toolboxes' own scripts on our options and configs, unchanged, in the installed environment: ``python -m
basicsr.train`` / ``python -m basicsr.test`` on a classic options file and MMagic's packaged ``tools/train.py`` /
``tools/test.py CONFIG CHECKPOINT`` on an inpainting config, each for a few iterations on the demo data. They work
because installing the package puts ``restoration_plugins_startup.pth`` in site-packages (see that module)."""
import glob
import importlib.util
import os
import os.path as osp
import re
import site
import subprocess
import sys

import pytest

from tests.conftest import make_workdir
from tests.helpers import ONE_THREAD, REPO

CLASSIC_TRAIN = osp.join(REPO, 'options', 'train', 'classic', 'srcnn_x2.yml')
CLASSIC_TEST = osp.join(REPO, 'options', 'test', 'classic', 'srcnn_x2.yml')
INPAINT = osp.join(REPO, 'options', 'mmagic', 'inpaint', 'base_demo.py')
# BasicSR's scripts put experiments/, results/ and tb_logger/ under the folder above the basicsr package.
BASICSR_ROOT = osp.dirname(importlib.util.find_spec('basicsr').submodule_search_locations[0])


def _run(cmd, cwd, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ONE_THREAD)
    env.pop('PYTHONPATH', None)  # what a user's shell has: the installed package, not the checkout on the path
    return subprocess.run([str(c) for c in cmd], cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                          env=env)


def _ok(proc):
    assert proc.returncode == 0, f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n' \
        f'{proc.stderr[-5000:]}'
    return proc


@pytest.fixture(scope='module')
def folder(tmp_path_factory, demo_data):
    """A working directory outside the repository, with the demo data at datasets/demo."""
    return make_workdir(tmp_path_factory.mktemp('toolbox_scripts'), demo_data)


def test_the_installed_startup_file_waits_for_a_toolbox_and_imports_nothing():
    """The .pth file is in site-packages; at start-up it loads our module, which imports nothing (its cumulative
    import time is its own) and puts its finder on sys.meta_path; neither torch nor our package is imported until
    a toolbox is."""
    pth = [p for d in site.getsitepackages() for p in glob.glob(osp.join(d, 'restoration_plugins_startup.pth'))]
    assert pth and open(pth[0]).read().startswith('import restoration_plugins_startup;'), site.getsitepackages()
    code = ('import sys\nprint(any(type(f).__name__ == "FirstToolboxImportFinder" for f in sys.meta_path), '
            'sorted({"plugins", "torch", "numpy", "basicsr"} & set(sys.modules)))')
    proc = _ok(_run([sys.executable, '-X', 'importtime', '-c', code], REPO))
    assert proc.stdout.split('\n')[0] == 'True []'
    (line, ) = [x for x in proc.stderr.splitlines() if x.split('|')[-1].strip() == 'restoration_plugins_startup']
    own, cumulative = (int(v) for v in re.findall(r'\d+', line)[:2])
    assert own == cumulative, line


def test_import_plugins_imports_no_library_the_startup_waits_for_but_basicsr():
    """The startup finder imports our package inside the first import of one of these libraries (mmengine for
    MMagic's tools): one of them imported by ``import plugins`` would then be imported within its own import."""
    code = ('import sys, plugins, restoration_plugins_startup as s\nloaded = sorted(s.TOOLBOXES & set(sys.modules))\n'
            'from basicsr.utils.registry import ARCH_REGISTRY\nprint(loaded, "SRCNN" in ARCH_REGISTRY)')
    proc = _ok(_run([sys.executable, '-c', code], REPO))
    assert proc.stdout.split('\n')[0] == "['basicsr'] True", proc.stdout


def test_basicsr_train_script_runs_our_options_with_outputs_in_the_working_directory(folder):
    proc = _ok(_run([sys.executable, '-m', 'basicsr.train', '-opt', CLASSIC_TRAIN, '--force_yml',
                     'name=toolbox_srcnn_x2', 'train:total_iter=2', 'train:scheduler:periods=[2]', 'val:val_freq=100',
                     'logger:save_checkpoint_freq=2', 'logger:print_freq=1', 'datasets:train:batch_size_per_gpu=2',
                     'datasets:train:num_worker_per_gpu=0'], folder))
    assert 'Device: cpu' in proc.stdout  # our device plan: the patched pipeline ran
    assert (folder / 'experiments' / 'toolbox_srcnn_x2' / 'models' / 'net_g_latest.pth').is_file()
    assert (folder / 'tb_logger' / 'toolbox_srcnn_x2').is_dir()
    for sub in ('experiments', 'tb_logger'):
        assert not osp.exists(osp.join(BASICSR_ROOT, sub, 'toolbox_srcnn_x2'))
    log = open(glob.glob(str(folder / 'experiments' / 'toolbox_srcnn_x2' / 'train_*.log'))[0]).read()
    assert 'iter:       2' in log and '# psnr' in log  # two iterations, then the final validation


def test_basicsr_test_script_runs_our_options(folder):
    model = folder / 'experiments' / 'toolbox_srcnn_x2' / 'models' / 'net_g_latest.pth'
    if not model.is_file():
        pytest.skip('needs the model of test_basicsr_train_script_runs_our_options_with_outputs_in_the_working_dir')
    _ok(_run([sys.executable, '-m', 'basicsr.test', '-opt', CLASSIC_TEST, '--force_yml', 'name=toolbox_srcnn_x2_test',
              f'path:pretrain_network_g={model}'], folder))
    (log, ) = glob.glob(str(folder / 'results' / 'toolbox_srcnn_x2_test' / 'test_*.log'))
    assert re.search(r'# psnr: \d+\.\d+', open(log).read())
    assert not osp.exists(osp.join(BASICSR_ROOT, 'results', 'toolbox_srcnn_x2_test'))


def test_basicsr_train_script_refuses_bad_options_with_one_line(folder):
    proc = _run([sys.executable, '-m', 'basicsr.train', '-opt', CLASSIC_TRAIN, '--force_yml', 'name=toolbox_bad',
                 'train:total_iter=0'], folder)
    lines = [x for x in proc.stderr.splitlines() if x.startswith('error:')]
    assert proc.returncode == 2 and len(lines) == 1 and 'train:total_iter' in lines[0], proc.stderr[-3000:]
    assert not (folder / 'experiments' / 'toolbox_bad').exists()


def _mmagic_tool(name: str) -> str:
    return osp.join(importlib.util.find_spec('mmagic').submodule_search_locations[0], '.mim', 'tools', name)


def test_mmagic_packaged_train_and_test_tools_run_our_inpainting_config(folder):
    _ok(_run([sys.executable, _mmagic_tool('train.py'), INPAINT, '--cfg-options', 'train_cfg.max_iters=2',
              'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1'],
             folder))
    work = folder / 'work_dirs' / 'base_demo'  # MMagic's default work dir, under the working directory
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()
    proc = _ok(_run([sys.executable, _mmagic_tool('test.py'), INPAINT, checkpoint], folder))
    assert re.search(r'Iter\(test\) \[\d+/\d+\].*PSNR: \d+\.\d+', proc.stdout + proc.stderr)
