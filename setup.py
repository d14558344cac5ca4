"""Installable plugin package for BasicSR 1.4.2 and MMagic 1.2.0.

Install torch first (pinned), then BasicSR without build isolation, then this package:

    pip install torch==2.14.1 torchvision==0.29.1
    pip install numpy cython "setuptools>=77,<82"
    pip install --no-build-isolation basicsr==1.4.2
    pip install -e ".[mmagic,test]"

`make demo` / `make test` do exactly this in `.venv` (see the Makefile).
"""
from setuptools import find_packages, setup

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
    ],
    # Text SR line, optional: PP-OCRv4's recognizer inside the wheel as an independent accuracy metric (offline).
    # rapidocr-onnxruntime's metadata wants opencv-python; `pip install --no-deps rapidocr-onnxruntime==1.4.4` after
    # the other three avoids a second OpenCV next to opencv-python-headless. Not needed by the tests.
    'textsr-ocr': [
        'rapidocr-onnxruntime==1.4.4',
        'onnxruntime>=1.16,<2',
        'pyclipper>=1.3,<2',
        'shapely>=2,<3',
    ],
    'test': [
        'pytest>=8,<10',
        'pytest-timeout>=2.2,<3',
        'pytest-xdist>=3.5,<4',  # `make test` runs the suite in one worker per core
        'filelock>=3.12,<5',  # trained checkpoints shared by the xdist workers (tests/conftest.py: build_once)
    ],
}

setup(
    name='restoration-plugins',
    version='0.1.0',
    description='Five image-restoration research lines as BasicSR / MMagic plugins',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=('plugins', 'plugins.*')),
    python_requires='>=3.9,<3.13',  # BasicSR 1.4.2's setup.py fails to build on Python 3.13 (BasicSR#725)
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license='Apache-2.0',
)
