"""tools/data/make_lmdb.py and ``plugins.common.image_io.write_lmdb``: an unreadable image is named (exit 1) or left
out with --skip-bad; the LMDB appears at --output complete or not at all; its meta_info.txt lists exactly its keys."""
import os

import numpy as np
import pytest

from tests.helpers import call_tool


@pytest.fixture
def images(tmp_path):
    """A folder of four small PNG images, one in a subfolder."""
    import cv2
    folder = tmp_path / 'imgs'
    os.makedirs(folder / 'sub')
    rng = np.random.default_rng(0)
    for name in ('a.png', 'b.png', 'c.png', 'sub/d.png'):
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    return folder


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _lmdb_keys(path):
    import lmdb
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return sorted(key.decode() for key, _ in txn.cursor())


def _meta_keys(path):
    return sorted(line.split(' ')[0].rsplit('.', 1)[0] for line in (path / 'meta_info.txt').read_text().splitlines())


def _error_lines(run):
    return [line for line in run.err.splitlines() if line.startswith('error:')]


def test_an_unreadable_image_is_named_and_nothing_is_written(images, tmp_path, capsys):
    _truncate(images / 'b.png')
    out = tmp_path / 'out' / 'imgs.lmdb'
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1], tmp_path, capsys,
                    check=False)
    assert run.status == 1 and _error_lines(run) == [
        f'error: cannot read image {images / "b.png"}: not an image, truncated, or a format OpenCV cannot decode; '
        f'nothing was written to {out} (fix or remove it, or pass --skip-bad to leave unreadable images out)'], run.err
    assert not out.exists() and not list(tmp_path.glob('**/*partial*'))


def test_skip_bad_leaves_unreadable_images_out_and_lists_them(images, tmp_path, capsys):
    _truncate(images / 'b.png')
    (images / 'sub' / 'e.jpg').write_bytes(b'')
    out = tmp_path / 'new' / 'parent' / 'imgs.lmdb'  # a missing parent folder is created
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--skip-bad', '--n-thread', 2],
                    tmp_path, capsys)
    assert f'skipped (cannot decode): {images / "b.png"}\n' in run.out
    assert f'skipped (cannot decode): {images / "sub" / "e.jpg"}\n' in run.out
    assert (f'wrote 3 images to {out}; skipped 2 that cannot be decoded (listed above); created the folder '
            f'{out.parent}\n') in run.out
    assert _lmdb_keys(out) == _meta_keys(out) == ['a', 'c', 'sub/d']
    assert sorted(os.listdir(out.parent)) == ['imgs.lmdb']  # no partial folder left


def test_a_failure_while_writing_leaves_no_lmdb_at_the_output(images, tmp_path, capsys, monkeypatch):
    from basicsr.utils import lmdb_util
    calls = []
    read_img_worker = lmdb_util.read_img_worker

    def failing_read(path, key, compress_level):
        calls.append(key)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return read_img_worker(path, key, compress_level)

    monkeypatch.setattr(lmdb_util, 'read_img_worker', failing_read)
    out = tmp_path / 'imgs.lmdb'
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1], tmp_path, capsys,
                    check=False)
    assert run.status == 1 and _error_lines(run) == [
        f'error: cannot write the LMDB {out}: [Errno 28] No space left on device (nothing was written there)']
    assert sorted(os.listdir(tmp_path)) == ['imgs']


def test_an_existing_output_is_refused_and_left_as_it_is(images, tmp_path, capsys):
    out = tmp_path / 'imgs.lmdb'
    call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1], tmp_path, capsys)
    assert _lmdb_keys(out) == _meta_keys(out) == ['a', 'b', 'c', 'sub/d']
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out], tmp_path, capsys, check=False)
    assert run.status == 2 and run.err.splitlines()[-1].endswith(
        f"error: --output '{out}' already exists: remove it or choose another folder")
    assert _lmdb_keys(out) == ['a', 'b', 'c', 'sub/d']
