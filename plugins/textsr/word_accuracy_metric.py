"""Word accuracy as TextZoom computes it, registered in BasicSR's ``METRIC_REGISTRY``, and per-split summaries.

TextZoom counts a word as recognised when the filtered prediction equals the filtered label, both passed
through ``str_filt(·, 'lower')`` (lower-case, ``0-9a-z`` only). The E/M/H/A tables of TextZoom and of the seed
report easy, medium, hard and their average *weighted by the number of samples* (the seed's A-ACC 0.5596 =
(0.7024 x 1619 + 0.5539 x 1411 + 0.3939 x 1343) / 4373), which :func:`split_summary` reproduces.
"""
from typing import Dict, Sequence, Union

from basicsr.utils.registry import METRIC_REGISTRY

from .labels import filter_label


@METRIC_REGISTRY.register()
def calculate_word_accuracy(pred: Union[str, Sequence[str]], label: Union[str, Sequence[str]], **kwargs) -> float:
    """Fraction of words whose filtered prediction equals the filtered label (1.0 or 0.0 for one word).

    Args:
        pred: recognised word(s). label: ground-truth word(s), same number. Other keyword arguments (the
            images BasicSR passes to every metric) are ignored.
    """
    preds, labels = ([pred], [label]) if isinstance(pred, str) else (list(pred), list(label))
    if len(preds) != len(labels):
        raise ValueError(f'calculate_word_accuracy: {len(preds)} predictions for {len(labels)} labels')
    if not preds:
        raise ValueError('calculate_word_accuracy: no words to compare')
    return sum(filter_label(p) == filter_label(t) for p, t in zip(preds, labels)) / len(preds)


def split_summary(results: Dict[str, Dict], names: Dict[str, str] = None) -> Dict[str, Dict[str, float]]:
    """Add the sample-weighted average ``'A'`` to per-split results.

    Args:
        results: ``{split name: {'num': n, metric: value, ...}}`` in validation order.
        names: optional short names (e.g. ``{'val_easy': 'E'}``); default: the split names.

    Returns:
        ``{short name: {metric: value}, ..., 'A': {metric: weighted mean}}``.
    """
    names = names or {}
    out = {names.get(k, k): {m: v for m, v in r.items() if m != 'num'} for k, r in results.items()}
    total = sum(r['num'] for r in results.values())
    metrics = [m for m in next(iter(results.values())) if m != 'num']
    out['A'] = {m: sum(r[m] * r['num'] for r in results.values()) / total for m in metrics}
    return out


def format_split_table(summary: Dict[str, Dict[str, float]], title: str = '') -> str:
    """A markdown table with one row per metric and one column per split (E, M, H, A)."""
    cols = list(summary)
    metrics = list(next(iter(summary.values())))
    lines = [f'| {title} | ' + ' | '.join(cols) + ' |', '|' + '---|' * (len(cols) + 1)]
    for m in metrics:
        lines.append(f'| {m} | ' + ' | '.join(f'{summary[c][m]:.4f}' for c in cols) + ' |')
    return '\n'.join(lines)


def read_split_metrics(path: str) -> Dict[str, Dict[str, float]]:
    """The summary (``{split: {metric: value}}``) of the last line of a ``split_metrics.jsonl``."""
    import json
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    if not lines:
        raise ValueError(f'{path} is empty')
    return json.loads(lines[-1])['metrics']


def format_runs_tables(runs: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """One markdown table per metric, a row per run and a column per split (E/M/H/A as in the seed's tables).

    Metrics missing from a run (e.g. its own recognizer's accuracy for bicubic) are shown as '-'."""
    metrics = []
    for summary in runs.values():
        for values in summary.values():
            metrics += [m for m in values if m not in metrics]
    splits = list(next(iter(runs.values())))
    out = []
    for m in metrics:
        out.append('| run | ' + ' | '.join(f'{s} {m}' for s in splits) + ' |')
        out.append('|' + '---|' * (len(splits) + 1))
        for run, summary in runs.items():
            cells = [f'{summary[s][m]:.4f}' if m in summary.get(s, {}) else '-' for s in splits]
            out.append(f'| {run} | ' + ' | '.join(cells) + ' |')
        out.append('')
    return '\n'.join(out)
