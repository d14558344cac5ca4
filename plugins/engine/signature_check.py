"""Keyword arguments checked against the signature of the class or function they are passed to, with the closest
accepted name as a suggestion. Used by the BasicSR options check (networks, losses, optimizers, schedulers) and the
mmengine config check (every ``type`` with its arguments)."""
import difflib
import inspect
from typing import Dict, Iterable

from .errors import OptionsError


def suggest(key: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``known`` to ``key``, else ''."""
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    return f' Did you mean {close[0]!r}?' if close else ''


def check_kwargs(target, kwargs: Dict, where: str, prefix: str, ignore: Iterable[str] = ('type', )) -> None:
    """Raise ``OptionsError`` for a keyword of ``kwargs`` that ``target`` (a class or function) does not take; no check
    when it takes ``**kwargs`` or its signature cannot be read.

    ``where`` (the file) and ``prefix`` (the options path of ``kwargs``, e.g. ``network_g:``) start the message."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {'self'}
    for key in kwargs:
        if key not in accepted and key not in ignore:
            raise OptionsError(f'{where}: {prefix}{key} is not an argument of {getattr(target, "__name__", target)} '
                               f'(it takes: {", ".join(sorted(accepted)) or "nothing"}).{suggest(key, accepted)}')
