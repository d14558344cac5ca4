"""torchvision: ``transforms.functional_tensor``, removed in torchvision 0.17, which kills ``import basicsr``."""
import importlib
import sys

NAME = 'torchvision.transforms.functional_tensor'


def apply() -> None:
    """basicsr 1.4.2 imports ``rgb_to_grayscale`` from ``torchvision.transforms.functional_tensor`` in
    ``basicsr/data/degradations.py``, and its star imports make that kill ``import basicsr`` (BasicSR#663, fixed on
    master, never released). ``transforms.functional`` has the same function: alias the module name to it. Must run
    before the first ``basicsr`` import."""
    if NAME in sys.modules:
        return
    try:
        importlib.import_module(NAME)
    except ImportError:
        import torchvision.transforms.functional as functional
        sys.modules[NAME] = functional
