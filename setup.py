"""Installable plugin package for BasicSR 1.4.2 and MMagic 1.2.0.

Install torch first (pinned), then BasicSR without build isolation, then this package:

    pip install torch==2.14.1 torchvision==0.29.1
    pip install numpy cython "setuptools>=77,<82"
    pip install --no-build-isolation basicsr==1.4.2
    pip install -e ".[mmagic,test]"

`make demo` / `make test` do exactly this in `.venv` (see the Makefile).
"""
import os.path as osp

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# The toolboxes' own scripts (python -m basicsr.train, MMagic's tools/train.py, mim train mmagic) run with our patches
# and registrations because this .pth file, installed at the top of site-packages, makes every Python process of the
# environment load restoration_plugins_startup.py, which waits for the first import of BasicSR, MMagic, mmcv or
# mmengine (see its docstring; a process that imports none of them pays about a millisecond).
STARTUP_MODULE = 'restoration_plugins_startup'
STARTUP_PTH = f'{STARTUP_MODULE}.pth'


class BuildPyWithStartupPth(build_py):
    """``build_py`` that also writes ``restoration_plugins_startup.pth`` at the top of what is installed: the build
    folder of a wheel, or for ``pip install -e .`` the editable wheel itself (setuptools builds it in the folder it
    gives the ``install`` command as ``install_lib``; its own ``__editable__`` .pth is written there too)."""

    def run(self):
        super().run()
        folder = self.get_finalized_command('install').install_lib if self.editable_mode else self.build_lib
        self.mkpath(folder)
        with open(osp.join(folder, STARTUP_PTH), 'w', encoding='utf-8') as f:
            f.write(f'import {STARTUP_MODULE}; {STARTUP_MODULE}.install()\n')


# Upper bounds keep pip from pulling a multi-GB torch release or an API break we have not seen.
INSTALL_REQUIRES = [
    'torch>=2.1,<=2.14.1',
    'torchvision>=0.16,<=0.29.1',
    'basicsr==1.4.2',
    # py-lmdb >= 2 refuses a second open of one environment in a process (jnwatson/py-lmdb#412),
    # which breaks train + val on one LMDB with num_workers 0 in BasicSR and MMagic. See plugins/compat/lmdb.py.
    'lmdb>=1.4,<2',
    'opencv-python-headless>=4.8,<6',
    'numpy>=1.24,<3',
    'pyyaml>=6,<7',
    'tqdm>=4.60,<5',
    'scikit-image>=0.22,<0.27',  # ships the colour photos the demo data is made from
    'matplotlib>=3.7,<4',  # ships grace_hopper.jpg and draws the demo figure
    'mmengine>=0.10.7,<0.11',
    # torch 2.14 needs >= 77.0.3; mmengine 0.10.7 needs pkg_resources, removed in setuptools 82.
    'setuptools>=77.0.3,<82',
    # BasicSR 1.4.2's calculate_fid calls scipy.linalg.sqrtm(..., disp=False): SciPy 1.17 warns, 1.18 removes it.
    'scipy>=1.10,<1.18',
    'pytorch-msssim>=1.0,<2',  # differentiable SSIM / MS-SSIM: low-light L1 + (1 - SSIM), inpainting MS-SSIM + L1
]

EXTRAS_REQUIRE = {
    # The verified MMagic recipe of shared/docs/stack.md: pure-Python mmcv and the last diffusers/hub/transformers
    # releases that mmagic 1.2.0 still imports with.
    'mmagic': [
        'mmengine==0.10.7',
        'mmcv-lite==2.1.0',
        'mmagic==1.2.0',
        'diffusers==0.24.0',
        'huggingface_hub<0.26',
        'transformers<4.46',
        'lpips>=0.1.4,<0.2',
        'pandas>=2,<4',
        'resize_right>=0.0.2,<0.1',
        'albumentations>=1.3,<3',
        'einops>=0.6,<1',
        'click>=8,<9',
        'tensorboard>=2.14,<3',  # TensorboardVisBackend of options/mmagic/_base_/default_runtime.py
    ],
    # Weights & Biases logging, optional: BasicSR's logger:wandb:project, mmengine's WandbVisBackend.
    'wandb': ['wandb>=0.16,<1'],
    # Text SR line, optional: PP-OCRv4's recognizer inside the wheel as an independent accuracy metric (offline).
    # rapidocr-onnxruntime's metadata wants opencv-python; `pip install --no-deps rapidocr-onnxruntime==1.4.4` after
    # the other three avoids a second OpenCV next to opencv-python-headless. Not needed by the tests.
    'textsr-ocr': [
        'rapidocr-onnxruntime==1.4.4',
        'onnxruntime>=1.16,<2',
        'pyclipper>=1.3,<2',
        'shapely>=2,<3',
    ],
    # tools/export.py: ONNX files (TorchScript needs nothing more) and the check of them against PyTorch.
    'export': [
        'onnx>=1.16,<2',
        'onnxruntime>=1.16,<2',
    ],
    'test': [
        'pytest>=8,<10',
        'pytest-timeout>=2.2,<3',
        'pytest-xdist>=3.5,<4',  # `make test` runs the suite in one worker per core
        'filelock>=3.12,<5',  # trained checkpoints shared by the xdist workers (tests/conftest.py: build_once)
        'onnx>=1.16,<2',  # tests/common/test_export.py checks and runs the exported ONNX files (the export extra)
        'onnxruntime>=1.16,<2',
    ],
}

setup(
    name='restoration-plugins',
    version='0.1.0',
    description='Five image-restoration research lines as BasicSR / MMagic plugins',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=('plugins', 'plugins.*')),
    py_modules=[STARTUP_MODULE],
    cmdclass={'build_py': BuildPyWithStartupPth},
    python_requires='>=3.9,<3.13',  # BasicSR 1.4.2's setup.py fails to build on Python 3.13 (BasicSR#725)
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license='Apache-2.0',
)
