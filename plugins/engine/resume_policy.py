"""What a resume does when training states exist but none can be read, on both toolboxes.

``tools/train.py -opt X.yml --auto_resume`` (BasicSR) and ``tools/train.py X.py --resume`` (mmengine) take the newest
readable state and skip the unreadable ones with a warning. When states exist and *none* of them can be read, the
toolboxes would start again from iteration 0 and end with exit code 0, as if the run had resumed (mmengine logs
"Auto resumed from the latest checkpoint None"): the run stops instead (``CheckpointError``, exit 1) with the files
and why each cannot be read. ``--allow-fresh-start`` (both tools) lets it start from iteration 0 anyway, with a
warning. A work dir or experiment without any state starts afresh as before.

The flag is ours: ``tools/train.py`` takes it out of the command line (``take_flag``) before BasicSR's or
mmengine's argument parser sees it, and the resume code reads it here (``fresh_start_allowed``).
"""
from typing import List, Sequence, Tuple

from .errors import CheckpointError

FLAG = '--allow-fresh-start'
_ALLOWED = [False]


def take_flag(argv: Sequence[str]) -> Tuple[List[str], bool]:
    """(``argv`` without ``--allow-fresh-start``, whether it was there); records the choice for this run."""
    argv = list(argv)
    allowed = FLAG in argv
    _ALLOWED[0] = allowed
    return [a for a in argv if a != FLAG], allowed


def fresh_start_allowed() -> bool:
    """Whether the run in progress was started with ``--allow-fresh-start``."""
    return _ALLOWED[0]


def no_readable_state(problems: List[str], where: str, resume_flag: str, warn) -> None:
    """Resume was asked for, ``problems`` lists each existing state that cannot be read (file: why), and none can:
    raise ``CheckpointError`` naming them, or, under ``--allow-fresh-start``, ``warn`` (a function taking one line)
    that the run starts from iteration 0."""
    listed = '; '.join(problems)
    if fresh_start_allowed():
        warn(f'{resume_flag}: none of the {len(problems)} saved state(s) of {where} can be read ({listed}); '
             f'{FLAG}: starting again from iteration 0.')
        return
    raise CheckpointError(f'{resume_flag}: none of the {len(problems)} saved state(s) of {where} can be read: '
                          f'{listed}. Nothing was trained. Restore a readable state, or pass {FLAG} to start again '
                          'from iteration 0.')
