"""Packages that logging options need but the package does not install by default: ``wandb`` (the ``wandb`` extra) and
``tensorboard`` (installed with BasicSR and the ``mmagic`` extra). The options check and the config check refuse an
option that needs one that is missing, with the line that installs it, before any work."""
import importlib.util

from .errors import OptionsError

INSTALL = {
    'wandb': 'pip install wandb (or, in this repository, pip install -e ".[wandb]")',
    'tensorboard': 'pip install tensorboard',
}


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported; looks it up only (``importlib.util.find_spec``), imports nothing."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, option: str, where: str, instead: str) -> None:
    """``OptionsError`` (one line: ``where``, the ``option`` that needs ``module``, the install line, and what to set
    ``instead``) when ``module`` is not installed."""
    if not is_installed(module):
        raise OptionsError(f'{where}: {option} needs {module}, which is not installed: {INSTALL[module]}; or {instead}')
