"""Every exception this package raises to its users, in one place.

Two families, told apart by when they happen and how the tools end:

* ``OptionsError``: a problem with what the user gave (an options file or config, a command-line value, a checkpoint
  that does not fit), found before any work starts. The tools print ``error: <message>`` and exit 2.
* ``TrainingStopped``: a run that stopped on purpose, with a message for the user and no traceback needed:
  non-finite losses (``NonFiniteLossError``), a data fault under ``on_data_fault: stop`` (``DataFaultError``), an
  unreadable checkpoint (``CheckpointError``). ``tools/train.py`` prints ``error: <message>`` and exits 1.
"""


class OptionsError(ValueError):
    """A problem with an options file, config or command line, reported before any work starts. The message names
    the file and key."""


class TrainingStopped(RuntimeError):
    """A run stopped on purpose with a message for the user (no traceback needed)."""


class CheckpointError(TrainingStopped):
    """A checkpoint or training state that cannot be read or written (the wording: ``checkpoint_files.py``)."""


class DataFaultError(TrainingStopped):
    """An image that cannot be read; the message names the file or LMDB key."""


class NonFiniteLossError(TrainingStopped):
    """Too many consecutive iterations with a non-finite loss or gradient."""
