"""Synthetic TextZoom-like LMDBs: rendered words, HR 128x32, LR 64x16 made by blur + downscale + noise.

Nothing is downloaded. Fonts: the DejaVu and STIX TTFs inside the matplotlib wheel. Words: a vocabulary made
here from the Zen of Python (``this.s``, shipped with CPython), pronounceable syllable strings and numbers,
so that labels exercise letters and digits, with mixed case and punctuation that the TextZoom label filter
removes (``"Don't"`` -> ``dont``).

Splits, by degradation strength (TextZoom's easy/medium/hard come from focal lengths; here from the blur,
the intermediate downscale before the final 64x16, and the noise):

    easy    blur sigma 0.4-0.8, downscale x2,    noise std 1-3   (of 255)
    medium  blur sigma 0.9-1.3, downscale x3,    noise std 3-6
    hard    blur sigma 1.4-2.0, downscale x4,    noise std 6-10
    train   each sample drawn from one of the three levels at random

Layout written by :func:`make_textzoom_like`: ``<out>/train/`` and ``<out>/test/{easy,medium,hard}/``, each a
TextZoom LMDB (see ``data.py``), plus ``<out>/manifest.json``.
"""
import codecs
import contextlib
import io
import json
import os
import os.path as osp
import random
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HR_SIZE = (128, 32)  # PIL (W, H)
LR_SIZE = (64, 16)
LEVELS = {  # blur sigma range, intermediate downscale factor, noise std range (0-255)
    'easy': ((0.4, 0.8), 2, (1., 3.)),
    'medium': ((0.9, 1.3), 3, (3., 6.)),
    'hard': ((1.4, 2.0), 4, (6., 10.)),
}
FONT_PREFIXES = ('DejaVuSans', 'DejaVuSerif', 'STIXGeneral')


def font_files() -> List[str]:
    """The DejaVu and STIX text TTFs inside the installed matplotlib wheel (sorted)."""
    import matplotlib
    folder = osp.join(osp.dirname(matplotlib.__file__), 'mpl-data', 'fonts', 'ttf')
    files = sorted(osp.join(folder, f) for f in os.listdir(folder)
                   if f.endswith('.ttf') and f.startswith(FONT_PREFIXES) and 'Display' not in f)
    if not files:
        raise FileNotFoundError(f'no DejaVu/STIX fonts in {folder}; is matplotlib installed?')
    return files


def vocabulary(seed: int = 0, num_syllable_words: int = 400, num_numbers: int = 100) -> List[str]:
    """Words from the Zen of Python, syllable pseudo-words and numbers (deterministic for a seed)."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    zen = codecs.decode(this.s, 'rot13')  # stored ROT13-encoded in CPython's this.py
    words = sorted({w.strip('.,!*-') for w in zen.split() if 2 <= len(w.strip('.,!*-')) <= 12})
    rng = random.Random(seed)
    onsets, vowels, codas = 'b c d f g h j k l m n p r s t v w z br ch cl dr gr pl sh st th tr'.split(), \
        'a e i o u ai ea oo ou'.split(), ['', 'n', 'r', 's', 't', 'nd', 'st', 'ck', 'x', 'm']
    made = set()
    while len(made) < num_syllable_words:
        word = ''.join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(1, 3))) + rng.choice(codas)
        made.add(word.capitalize() if rng.random() < 0.3 else word.upper() if rng.random() < 0.1 else word)
    numbers = {str(rng.randint(0, 10 ** rng.randint(1, 5))) for _ in range(num_numbers)}
    return words + sorted(made) + sorted(numbers)


def _colours(rng: random.Random):
    """Foreground and background RGB with a luminance difference of at least 90 (of 255)."""
    while True:
        fg, bg = tuple(rng.randint(0, 255) for _ in range(3)), tuple(rng.randint(0, 255) for _ in range(3))
        lum = [0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] for c in (fg, bg)]
        if abs(lum[0] - lum[1]) >= 90:
            return fg, bg


def render_word(word: str, font_path: str, rng: random.Random) -> Image.Image:
    """Render ``word`` with a random colour pair, tightly cropped with a small margin, resized to 128x32 RGB."""
    font = ImageFont.truetype(font_path, 48)
    fg, bg = _colours(rng)
    left, top, right, bottom = font.getbbox(word)
    pad_x, pad_y = rng.randint(2, 10), rng.randint(2, 8)
    canvas = Image.new('RGB', (right - left + 2 * pad_x, bottom - top + 2 * pad_y), bg)
    ImageDraw.Draw(canvas).text((pad_x - left, pad_y - top), word, font=font, fill=fg)
    return canvas.resize(HR_SIZE, Image.BICUBIC)


def degrade(hr: Image.Image, level: str, rng: random.Random) -> Image.Image:
    """LR 64x16: Gaussian blur, downscale by the level's factor (bicubic), up/down to 64x16, Gaussian noise."""
    (b0, b1), factor, (n0, n1) = LEVELS[level]
    img = hr.filter(ImageFilter.GaussianBlur(rng.uniform(b0, b1)))
    img = img.resize((HR_SIZE[0] // factor, HR_SIZE[1] // factor), Image.BICUBIC)
    if img.size != LR_SIZE:
        img = img.resize(LR_SIZE, Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    noise = np.random.default_rng(rng.randint(0, 2 ** 31)).normal(0, rng.uniform(n0, n1), arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).round().astype(np.uint8))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    return buf.getvalue()


def write_textzoom_lmdb(out: str, samples: Sequence[Dict]) -> None:
    """Write ``[{'hr': PIL, 'lr': PIL, 'label': str}, ...]`` as a TextZoom LMDB (1-based keys, num-samples)."""
    import lmdb
    os.makedirs(out, exist_ok=True)
    env = lmdb.open(out, map_size=max(len(samples) * 64 * 1024, 1 << 22))
    with env.begin(write=True) as txn:
        for i, s in enumerate(samples, 1):
            txn.put(b'image_hr-%09d' % i, _png(s['hr']))
            txn.put(b'image_lr-%09d' % i, _png(s['lr']))
            txn.put(b'label-%09d' % i, s['label'].encode('utf-8'))
        txn.put(b'num-samples', str(len(samples)).encode())
    env.close()


def make_split(num: int, level: str, seed: int, words: Sequence[str], fonts: Sequence[str], progress=None) -> List[Dict]:
    """``num`` samples of a split ('easy', 'medium', 'hard', or 'train' = a random level per sample)."""
    rng = random.Random(seed)
    samples = []
    for _ in range(num):
        word = rng.choice(words)
        hr = render_word(word, rng.choice(fonts), rng)
        lvl = rng.choice(sorted(LEVELS)) if level == 'train' else level
        samples.append({'hr': hr, 'lr': degrade(hr, lvl, rng), 'label': word, 'level': lvl})
        if progress is not None:
            progress.update(1)
    return samples


def make_textzoom_like(out: str, num_train: int = 512, num_test: int = 64, seed: int = 0, progress=None) -> Dict:
    """Write ``<out>/train`` and ``<out>/test/{easy,medium,hard}`` and a manifest; returns the manifest.

    Train and test words are drawn from disjoint halves of the vocabulary (test words are unseen)."""
    words = vocabulary(seed)
    random.Random(seed).shuffle(words)
    train_words, test_words = words[::2], words[1::2]
    fonts = font_files()
    splits = {'train': (num_train, 'train', train_words)}
    splits.update({f'test/{lvl}': (num_test, lvl, test_words) for lvl in ('easy', 'medium', 'hard')})
    manifest = {'hr_size': HR_SIZE, 'lr_size': LR_SIZE, 'levels': LEVELS, 'fonts': [osp.basename(f) for f in fonts],
                'seed': seed, 'splits': {}}
    for k, (name, (num, level, pool)) in enumerate(splits.items()):
        samples = make_split(num, level, seed + 1000 * (k + 1), pool, fonts, progress)
        write_textzoom_lmdb(osp.join(out, name), samples)
        manifest['splits'][name] = {'num': num, 'vocabulary': len(pool)}
    with open(osp.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest
