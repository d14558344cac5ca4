"""Text SR line (seed 001): TSRN, CRNN recognizer, joint SR + recognition, TextZoom LMDB.

Every module of this folder is imported, so each registers its components in BasicSR's registries.
"""
from ..engine.registration import import_submodules

import_submodules(__name__, __path__)
