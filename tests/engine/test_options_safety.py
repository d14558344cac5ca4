"""Options files are data (issue 17): a Python tag never runs, duplicate keys and names that leave experiments/ are
refused, a training budget of 0 or less is refused, and a resume that finds only unreadable states stops instead
of training again from iteration 0 (``--allow-fresh-start`` allows it)."""
import re
import shutil

import pytest

from tests.engine.mmengine_runs import CONFIG, FAST
from tests.helpers import options_to_yaml, options, quick, run_config, run_options, run_tool, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
SRCNN_TEST = 'options/test/classic/srcnn_x2.yml'


def _with_python_tag(rel: str, dst, marker):
    """The resolved options of ``rel`` whose manual_seed (or name) is a tag that would create ``marker``."""
    text = options_to_yaml(options(rel))
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    key = 'manual_seed' if re.search(r'^manual_seed: ', text, flags=re.M) else 'name'
    text = re.sub(rf'^{key}: .*$', f'{key}: {tag}', text, count=1, flags=re.M)
    dst.write_text(text)
    return str(dst)


@pytest.mark.parametrize('tool', ['train', 'infer'])
def test_a_python_tag_in_an_options_file_never_runs(workdir, tool):
    """The process: tools/train.py and tools/infer.py read the file with a safe loader and stop with one line (exit
    2) naming the file and line; the command the tag names did not run."""
    marker = workdir / 'the_tag_ran'
    if tool == 'train':
        path = _with_python_tag(SRCNN_TRAIN, workdir / 'tagged.yml', marker)
        args = ['train.py', '-opt', path]
    else:
        path = _with_python_tag(SRCNN_TEST, workdir / 'tagged.yml', marker)
        args = ['infer.py', '-opt', path, '--checkpoint', workdir / 'none.pth', '--input', 'datasets/demo/val/LR_bicubic/X2']
    proc = run_tool(args, workdir, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and re.fullmatch(
        rf'error: {re.escape(path)}:\d+: the tag !!python/object/apply:os\.system would run Python code when the '
        r'file is read; options files hold plain YAML only \(numbers, strings, lists, mappings\)', lines[0]), proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not marker.exists()
    assert not (workdir / 'experiments').exists()


@pytest.mark.parametrize('bases, message', [
    ({'row.yml': '_base_: [b.py]\nname: row\n', 'b.py': 'scale = 2\n'},
     r"row\.yml: _base_ file 'b\.py' must be a YAML options file \(\.yml\)"),
    ({'row.yml': '_base_: [b.yml]\nname: row\n', 'b.yml': '_base_: [c.yml]\nscale: 2\n'},
     r"b\.yml: _base_ file 'c\.yml' not found \(looked for .*c\.yml\)"),
    ({'row.yml': '_base_: [b.yml]\nname: row\n', 'b.yml': '_base_: [row.yml]\nscale: 2\n'},
     r'row\.yml: _base_ files form a cycle: .*row\.yml -> .*b\.yml -> .*row\.yml'),
], ids=['python_base', 'missing_base_of_a_base', 'cycle'])
def test_base_files_that_mmengine_would_run_or_cannot_read_are_refused(workdir, bases, message):
    """A .py base would be executed by mmengine's Config; every file of the chain is checked before it reads one."""
    from plugins.engine.basicsr.options import load_options
    from plugins.engine.errors import OptionsError
    for name, text in bases.items():
        (workdir / name).write_text(text)
    with pytest.raises(OptionsError, match=message):
        load_options(str(workdir / 'row.yml'))


def test_a_python_tag_in_a_base_file_is_refused_before_mmengine_reads_it(workdir):
    """mmengine's Config reads YAML with PyYAML's full loader: every _base_ file is read safely first."""
    from plugins.engine.basicsr.options import load_options
    from plugins.engine.errors import OptionsError
    marker = workdir / 'the_tag_ran'
    (workdir / '_base_').mkdir()
    (workdir / '_base_' / 'b.yml').write_text(f"scale: 2\nnum_gpu: !!python/object/apply:os.system ['touch {marker}']\n")
    (workdir / 'row.yml').write_text('_base_: [_base_/b.yml]\nname: row\n')
    with pytest.raises(OptionsError, match=r'_base_/b\.yml:2: the tag !!python/object/apply:os\.system would run'):
        load_options(str(workdir / 'row.yml'))
    assert not marker.exists()


def test_basicsr_parse_options_reads_with_the_safe_loader(workdir):
    """BasicSR's own parser (``ordered_yaml``, patched in compat) builds no Python object either."""
    import yaml
    from basicsr.utils.options import ordered_yaml
    marker = workdir / 'the_tag_ran'
    with pytest.raises(yaml.YAMLError, match='would run Python code'):
        yaml.load(f"a: !!python/object/apply:os.system ['touch {marker}']\n", Loader=ordered_yaml()[0])
    assert not marker.exists()
    assert list(yaml.load('b: 1\na: 2\n', Loader=ordered_yaml()[0])) == ['b', 'a']  # key order kept


def _train_cli(argv, cwd, monkeypatch, capsys):
    """tools/train.py's main in this process: (exit status, stderr)."""
    from plugins.engine.cli import main
    from tests.helpers import exit_status
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        main([str(a) for a in argv], is_train=True)
        status = 0
    except SystemExit as err:
        status = exit_status(err)
    return status, capsys.readouterr().err


def test_duplicate_keys_are_an_error(workdir, monkeypatch, capsys):
    text = options_to_yaml(options(SRCNN_TRAIN))
    first = text.splitlines().index(next(line for line in text.splitlines() if line.startswith('scale:')))
    path = workdir / 'dup.yml'
    path.write_text(text + 'scale: 4\n')
    status, err = _train_cli(['-opt', path], workdir, monkeypatch, capsys)
    assert status == 2
    assert (f"error: {path}:{len(text.splitlines()) + 1}: duplicate key 'scale' (lines {first + 1} and "
            f"{len(text.splitlines()) + 1})") in err
    assert not (workdir / 'experiments').exists()


@pytest.mark.parametrize('name', ['../../escaped', '/tmp/escaped', 'a/b', '..'])
def test_a_name_that_leaves_experiments_is_refused(workdir, capsys, name):
    run = run_options(SRCNN_TRAIN, workdir, {'name': name}, name='x', capsys=capsys, check=False)
    assert run.status == 2
    assert (f"x.yml: name {name!r} must be a plain folder name (no path separator, not . or ..): the run writes to "
            'experiments/<name>') in run.errors
    assert not (workdir / 'experiments').exists() and not (workdir.parent / 'escaped').exists()


def test_a_non_positive_training_budget_is_refused_basicsr(workdir, capsys):
    run = run_options(SRCNN_TRAIN, workdir, {'train:total_iter': -5}, capsys=capsys, check=False)
    assert run.status == 2
    assert 'srcnn_x2.yml: train:total_iter must be > 0, got -5 (a run with no iterations trains nothing)' in run.errors
    assert not (workdir / 'experiments').exists()


def test_a_non_positive_training_budget_is_refused_mmengine(workdir, capsys):
    run = run_config(CONFIG, workdir, cfg_options=['train_cfg.max_iters=-5'], capsys=capsys, check=False)
    assert run.status == 2
    assert (f'error: {CONFIG}: train_cfg.max_iters must be an integer > 0, got -5 (a run with no iterations trains '
            'nothing)') in run.errors
    assert not (workdir / 'work_dirs').exists()


def _junk_states(folder, iterations):
    (folder / 'training_states').mkdir(parents=True)
    (folder / 'models').mkdir()
    for it in iterations:
        (folder / 'training_states' / f'{it}.state').write_bytes(b'not a torch file')


def test_auto_resume_with_only_unreadable_states_stops_basicsr(workdir, capsys):
    exp = workdir / 'experiments' / 'classic_srcnn_x2'
    _junk_states(exp, (2, 4))
    overrides = quick(SRCNN_TRAIN)
    run = run_options(SRCNN_TRAIN, workdir, overrides, args=['--auto_resume'], capsys=capsys, check=False)
    assert run.status == 1
    lines = [line for line in run.errors.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, run.errors
    assert lines[0].startswith('error: --auto_resume: none of the 2 saved state(s) of ')
    assert '4.state' in lines[0] and '2.state' in lines[0] and 'pass --allow-fresh-start' in lines[0]
    assert not (exp / 'models' / 'net_g_latest.pth').exists()  # nothing trained
    # --allow-fresh-start: the run starts again from iteration 0 (ours: BasicSR's own parser never sees the flag).
    run = run_options(SRCNN_TRAIN, workdir, overrides, args=['--auto_resume', '--allow-fresh-start'], capsys=capsys)
    assert run.status == 0
    assert (exp / 'models' / 'net_g_latest.pth').is_file()


def test_resume_with_only_unreadable_checkpoints_stops_mmengine(mmengine_srcnn_run, workdir, capsys):
    folder, _ = mmengine_srcnn_run
    shutil.copytree(folder / 'work', workdir / 'work')
    (workdir / 'work' / 'last_checkpoint').write_text(str(workdir / 'work' / 'iter_4.pth'))
    for ckpt in (workdir / 'work').glob('*.pth'):
        ckpt.write_bytes(b'junk')
    args = ['--work-dir', 'work', '--resume']
    run = run_config(CONFIG, workdir, args=args, cfg_options=['train_cfg.max_iters=2', *FAST], capsys=capsys,
                     check=False)
    assert run.status == 1
    lines = [line for line in run.errors.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and lines[0].startswith('error: --resume: none of the '), run.errors
    assert 'iter_4.pth' in lines[0] and 'iter_2.pth' in lines[0] and 'pass --allow-fresh-start' in lines[0]
    assert (workdir / 'work' / 'iter_2.pth').read_bytes() == b'junk'  # nothing trained over them
    run = run_config(CONFIG, workdir, args=args + ['--allow-fresh-start'],
                     cfg_options=['train_cfg.max_iters=2', *FAST], capsys=capsys)
    assert run.status == 0
    assert (workdir / 'work' / 'iter_2.pth').read_bytes() != b'junk'


def test_flat_options_round_trip_through_the_safe_loader(workdir):
    """The flat copies the tests write stay readable by the safe loader (no Python tags in options_to_yaml)."""
    from plugins.engine.basicsr.options import load_options
    assert load_options(write_options(SRCNN_TRAIN, workdir / 'flat.yml')) == options(SRCNN_TRAIN)
