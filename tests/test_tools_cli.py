"""One command-line convention for every tool under tools/: --help works and exits 0, a bad flag exits 2 with a
message (argparse's, or the tool's own `error:` line). Every tool is found by a glob, so a new tool is covered."""
import glob
import os.path as osp
import runpy
import sys

import pytest

from tests.helpers import REPO, exit_status

TOOLS = sorted(osp.relpath(p, osp.join(REPO, 'tools')) for p in glob.glob(osp.join(REPO, 'tools', '**', '*.py'),
                                                                             recursive=True))


def _run(tool, argv, monkeypatch, capsys):
    """Run tools/<tool> as a script in this process; (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, 'argv', [f'tools/{tool}', *argv])
    status = 0
    try:
        runpy.run_path(osp.join(REPO, 'tools', tool), run_name='__main__')
    except SystemExit as err:
        status = exit_status(err)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_the_tools_are_where_the_layout_says():
    assert {'train.py', 'test.py', 'infer.py', 'benchmark.py'} <= set(TOOLS)
    assert all(osp.dirname(t) in ('', 'data', 'classic', 'blindsr', 'lowlight', 'textsr', 'inpaint') for t in TOOLS)
    assert all(osp.basename(t).startswith('make_') for t in TOOLS if osp.dirname(t) == 'data')


@pytest.mark.parametrize('tool', TOOLS)
def test_help_works(tool, monkeypatch, capsys):
    status, out, err = _run(tool, ['--help'], monkeypatch, capsys)
    assert status == 0, err[-2000:]
    assert 'usage:' in out and '--' in out


@pytest.mark.parametrize('tool', TOOLS)
def test_a_bad_flag_exits_2_with_a_message(tool, monkeypatch, capsys):
    status, out, err = _run(tool, ['--no-such-flag'], monkeypatch, capsys)
    assert status == 2, (out + err)[-2000:]
    assert 'error' in err and 'Traceback' not in err


@pytest.mark.parametrize('tool', [t for t in TOOLS if t in ('train.py', 'test.py')])
def test_train_and_test_help_lists_both_toolboxes(tool, monkeypatch, capsys):
    _, out, _ = _run(tool, ['--help'], monkeypatch, capsys)
    assert '-opt OPTIONS.yml' in out and 'CONFIG.py' in out and 'torchrun' in out
