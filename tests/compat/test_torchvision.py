"""compat/torchvision.py: BasicSR 1.4.2 imports torchvision.transforms.functional_tensor, removed in torchvision 0.17."""
import subprocess
import sys

from tests.helpers import REPO, ONE_THREAD


def test_basicsr_imports_only_with_the_functional_tensor_alias():
    # Plain BasicSR: without the startup hook that the package installs (restoration_plugins_startup.py).
    plain = subprocess.run([sys.executable, '-c', 'import basicsr'], capture_output=True, text=True, cwd=REPO,
                           timeout=600, env=dict(ONE_THREAD, RESTORATION_PLUGINS_STARTUP='0'))
    assert plain.returncode != 0 and 'torchvision.transforms.functional_tensor' in plain.stderr

    import torchvision.transforms.functional as functional
    from basicsr.data import degradations
    assert sys.modules['torchvision.transforms.functional_tensor'] is functional
    assert degradations.rgb_to_grayscale is functional.rgb_to_grayscale
