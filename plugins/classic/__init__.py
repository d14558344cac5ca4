"""Classic SR line (seed 002): SRCNN and its families, registered in BasicSR."""
from . import archs  # noqa: F401
