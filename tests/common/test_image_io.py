"""tools/data/make_lmdb.py and ``plugins.common.image_io.write_lmdb``: an unreadable image is named (exit 1) or left
out with --skip-bad; the LMDB appears at --output complete or not at all; its meta_info.txt lists exactly its keys;
an existing --output is refused with the --overwrite hint, and replaced with --overwrite."""
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


def test_an_existing_output_is_refused_with_the_overwrite_hint_and_left_as_it_is(images, tmp_path, capsys):
    out = tmp_path / 'imgs.lmdb'
    call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1], tmp_path, capsys)
    assert _lmdb_keys(out) == _meta_keys(out) == ['a', 'b', 'c', 'sub/d']
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out], tmp_path, capsys, check=False)
    assert run.status == 2 and run.err.splitlines()[-1].endswith(
        f"error: --output '{out}' already exists: pass --overwrite to replace it, or choose another folder")
    assert _lmdb_keys(out) == ['a', 'b', 'c', 'sub/d']


def test_overwrite_replaces_an_existing_lmdb_with_the_new_images(images, tmp_path, capsys):
    out = tmp_path / 'imgs.lmdb'
    call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1], tmp_path, capsys)
    (images / 'b.png').unlink()
    (images / 'sub' / 'd.png').rename(images / 'e.png')
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1, '--overwrite'],
                    tmp_path, capsys)
    assert f'wrote 3 images to {out}; replaced the LMDB that was there (--overwrite)\n' in run.out
    assert _lmdb_keys(out) == _meta_keys(out) == ['a', 'c', 'e']
    assert sorted(os.listdir(tmp_path)) == ['imgs', 'imgs.lmdb']  # no partial or replaced folder left


def test_overwrite_keeps_the_existing_lmdb_when_the_new_one_cannot_be_made(images, tmp_path, capsys):
    out = tmp_path / 'imgs.lmdb'
    call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1], tmp_path, capsys)
    _truncate(images / 'b.png')
    run = call_tool(['data/make_lmdb.py', '--input', images, '--output', out, '--n-thread', 1, '--overwrite'],
                    tmp_path, capsys, check=False)
    assert run.status == 1 and _error_lines(run)[0].startswith(f'error: cannot read image {images / "b.png"}')
    assert _lmdb_keys(out) == _meta_keys(out) == ['a', 'b', 'c', 'sub/d']


# tools/data/make_subimages.py: BasicSR's sub-image rule (crops every --step, one more flush with the border when more
# than --thresh-size pixels remain), HR and LR crops of DIV2K's layout at the same places, refusal without --overwrite.

def _coordinate_image(h, w, scale=1):
    """BGR uint8 (h, w, 3): channel 0 = row, channel 1 = column, channel 2 = scale, so a crop tells where it was."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows, cols, np.full((h, w), scale)], axis=-1).astype(np.uint8)


def _corners(folder):
    """{sub-image name: (row, column) of its top-left pixel in the source, (height, width)} of a folder of crops."""
    import cv2
    out = {}
    for name in sorted(os.listdir(folder)):
        img = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
        out[name] = ((int(img[0, 0, 0]), int(img[0, 0, 1])), img.shape[:2])
    return out


def test_crop_starts_follow_basicsr_rule_with_the_last_crop_flush_beyond_thresh():
    from tests.helpers import load_tool
    crop_starts = load_tool('data/make_subimages.py').crop_starts
    assert crop_starts(100, 48, 40, 5) == [0, 40, 52]  # 12 pixels left after 40 + 48 > 5: one more, flush
    assert crop_starts(100, 48, 40, 12) == [0, 40]  # 12 left, not more than 12: none
    assert crop_starts(96, 48, 48, 0) == [0, 48]  # the grid ends on the border
    assert crop_starts(47, 48, 40, 0) == []  # smaller than a crop


def test_hr_sub_images_count_names_and_positions_and_a_too_small_image_is_listed(tmp_path, capsys):
    import cv2
    hr = tmp_path / 'HR'
    hr.mkdir()
    cv2.imwrite(str(hr / '0001.png'), _coordinate_image(100, 130))
    cv2.imwrite(str(hr / 'tiny.png'), _coordinate_image(47, 130))  # lower than a crop: no sub-image, listed
    run = call_tool(['data/make_subimages.py', '--input', hr, '--crop-size', 48, '--step', 40, '--thresh-size', 5],
                    tmp_path, capsys)
    # rows 0, 40 and 52 (flush: 12 > 5 left); columns 0, 40, 80 (2 <= 5 left after 80 + 48: no flush crop)
    expected = [(y, x) for y in (0, 40, 52) for x in (0, 40, 80)]
    assert _corners(tmp_path / 'HR_sub') == {f'0001_s{i:03d}.png': (pos, (48, 48))
                                             for i, pos in enumerate(expected, start=1)}
    assert f'skipped (smaller than --crop-size 48): {hr / "tiny.png"}\n' in run.out
    assert f'cut 1 image (1 skipped) into 9 sub-images of 48x48 (step 40, thresh 5): {hr}_sub\n' in run.out
    assert sorted(os.listdir(tmp_path)) == ['HR', 'HR_sub']  # no partial folder left


def test_lr_sub_images_are_the_hr_crops_divided_by_the_scale_for_both_lr_names(tmp_path, capsys):
    import cv2
    for sub in ('HR', 'LR/X2', 'LR/X4'):
        os.makedirs(tmp_path / sub)
    cv2.imwrite(str(tmp_path / 'HR' / '0001.png'), _coordinate_image(100, 130))
    cv2.imwrite(str(tmp_path / 'LR' / 'X2' / '0001x2.png'), _coordinate_image(50, 65, 2))  # DIV2K's LR name
    cv2.imwrite(str(tmp_path / 'LR' / 'X4' / '0001.png'), _coordinate_image(25, 32, 4))  # the demo data's
    call_tool(['data/make_subimages.py', '--input', tmp_path / 'HR', '--lr-input', tmp_path / 'LR', '--scales', 2, 4,
               '--crop-size', 48, '--step', 40, '--thresh-size', 1], tmp_path, capsys)
    # the HR grid lies on 100 x 128 (130 cut to a multiple of lcm(2, 4)): columns 0, 40, 80, nothing left over
    expected = [(y, x) for y in (0, 40, 52) for x in (0, 40, 80)]
    hr = _corners(tmp_path / 'HR_sub')
    assert list(hr.values()) == [(pos, (48, 48)) for pos in expected]
    for s in (2, 4):
        lr = _corners(tmp_path / 'LR' / f'X{s}_sub')
        assert list(lr) == list(hr)  # the same names, for filename_tmpl '{}'
        assert list(lr.values()) == [((y // s, x // s), (48 // s, 48 // s)) for y, x in expected]


def test_make_subimages_refuses_an_existing_output_and_overwrite_replaces_it(tmp_path, capsys):
    import cv2
    hr = tmp_path / 'HR'
    hr.mkdir()
    cv2.imwrite(str(hr / 'a.png'), _coordinate_image(96, 96))
    call_tool(['data/make_subimages.py', '--input', hr, '--crop-size', 48, '--step', 48], tmp_path, capsys)
    assert len(os.listdir(tmp_path / 'HR_sub')) == 4
    run = call_tool(['data/make_subimages.py', '--input', hr, '--crop-size', 32, '--step', 32], tmp_path, capsys,
                    check=False)
    assert run.status == 2 and run.err.splitlines()[-1].endswith(
        f"error: '{hr}_sub' already exists: pass --overwrite to replace it, or choose another --output")
    assert len(os.listdir(tmp_path / 'HR_sub')) == 4
    run = call_tool(['data/make_subimages.py', '--input', hr, '--crop-size', 32, '--step', 32, '--overwrite'],
                    tmp_path, capsys)
    assert run.out.endswith('; replaced what was there (--overwrite)\n')
    assert len(os.listdir(tmp_path / 'HR_sub')) == 9 and sorted(os.listdir(tmp_path)) == ['HR', 'HR_sub']


def test_make_subimages_names_a_missing_lr_partner_and_writes_nothing(tmp_path, capsys):
    import cv2
    for sub in ('HR', 'LR/X2'):
        os.makedirs(tmp_path / sub)
    cv2.imwrite(str(tmp_path / 'HR' / 'a.png'), _coordinate_image(96, 96))
    cv2.imwrite(str(tmp_path / 'HR' / 'b.png'), _coordinate_image(96, 96))
    cv2.imwrite(str(tmp_path / 'LR' / 'X2' / 'ax2.png'), _coordinate_image(48, 48, 2))
    run = call_tool(['data/make_subimages.py', '--input', tmp_path / 'HR', '--lr-input', tmp_path / 'LR',
                     '--scales', 2, '--crop-size', 48, '--step', 48], tmp_path, capsys, check=False)
    assert run.status == 1 and _error_lines(run) == [
        f'error: no LR partner of {tmp_path / "HR" / "b.png"} in {tmp_path / "LR" / "X2"} (looked for bx2.* and b.*); '
        'nothing was written']
    assert sorted(os.listdir(tmp_path)) == ['HR', 'LR'] and os.listdir(tmp_path / 'LR') == ['X2']
