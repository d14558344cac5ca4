"""Fixtures of the low-light tests: the synthetic LOL-layout pairs, made once per session, and working folders."""
import os
from pathlib import Path

import pytest

from tests.conftest import build_once

GAIN = {'target_gain': (0.5, 1.5)}  # targets re-exposed at random: only the brightness plane tells their brightness


def lowlight_workdir(path, pairs) -> Path:
    """Make ``path`` a working directory whose datasets/lowlight_demo and datasets/LOL are the synthetic pairs."""
    os.makedirs(path / 'datasets', exist_ok=True)
    for name in ('lowlight_demo', 'LOL'):
        os.symlink(pairs, path / 'datasets' / name)
    return path


@pytest.fixture(scope='session')
def pairs(shared_dir) -> Path:
    """Small synthetic LOL-layout pairs (our485 / eval15), made once per session. Tests must not write there."""
    from plugins.lowlight.synthetic_pairs import make_pairs
    return build_once(shared_dir, 'lowlight_pairs',
                      lambda folder: make_pairs(str(folder), variants=3, max_side=256, seed=0, ranges=GAIN))
