"""py-lmdb: version 2 refuses to open one environment twice in a process (jnwatson/py-lmdb#412), which breaks two
BasicSR datasets on one LMDB, or training and validation on one LMDB with ``num_workers: 0`` (BasicSR and MMagic).

setup.py pins ``lmdb<2`` instead of patching ``lmdb.open``: the pin fixes BasicSR's and mmengine's LMDB backends
alike. Where the pin was overridden, ``apply`` (run when ``lmdb`` is imported) makes ``lmdb.open`` fail at once with
the fix named, instead of a failure in the middle of training.
"""
import functools

LMDB_2_MESSAGE = ("py-lmdb {version} is installed, but this package needs lmdb<2: lmdb>=2 refuses to open one LMDB "
                  "twice in a process (train + val on one LMDB). Run: pip install 'lmdb<2'")


def check_lmdb_version(lmdb) -> None:
    """Raise RuntimeError naming the fix when ``lmdb`` (the module) is version 2 or newer."""
    if int(str(lmdb.__version__).split('.')[0]) >= 2:
        raise RuntimeError(LMDB_2_MESSAGE.format(version=lmdb.__version__))


def apply(lmdb) -> None:
    """Post-import hook of ``lmdb``: on lmdb >= 2, every ``lmdb.open`` raises the message above."""
    if getattr(lmdb.open, '_plugins_compat', False):
        return
    original_open = lmdb.open

    @functools.wraps(original_open)
    def open_checked(*args, **kwargs):
        check_lmdb_version(lmdb)
        return original_open(*args, **kwargs)

    open_checked._plugins_compat = True
    try:
        check_lmdb_version(lmdb)
    except RuntimeError:
        lmdb.open = open_checked
