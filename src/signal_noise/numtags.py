"""Numbers for the report's prose: formatted, and tagged with where they came from.

The contract the report tests read: every number shown is wrapped as
``<span class="num" data-key="params.hidden_size.signal.effect" data-spec=".2f">1.52</span>``.
``data-key`` is the number's dotted path in the result dict of ``analyze.analyze_table`` (as ``get``
reads it), or, with a prefix and an extra class, ``setup.*`` (class ``num setup``) for the ``setup`` dict
of ``render.describe_setup``, ``derived.*`` (``num derived``) for a number computed in the prose from
others, and ``const.*`` (``num const``) for a constant of the model or method. ``data-spec`` is the format
spec it was shown with, and the text is ``fmt(value, spec)``, HTML-escaped: "n/a" for None, and spec
``p`` a p-value with three decimals or "< 0.001". So a reader or a test can look each key up and check
what is shown (tests/test_report.py does so for every analysis key in the rendered HTML). The
write-up's own figures carry class ``ref`` and keys ``writeup.*``; an interval is two tagged numbers
inside ``<span class='ci'>[lo, hi]</span>``.
"""
from __future__ import annotations

import html
import inspect
import re

from . import power, writeup

SPAN_TEXT = re.compile(r"<span[^>]*>([^<]*)</span>")
P_DISPLAY_MIN = 0.001  # p-values below this are shown as "< 0.001"
BARELY_LEARNED = 0.5   # a mean accuracy below this fraction gets a warning that the models hardly trained
# the level of analyze's bootstrap intervals (it does not record it in its result)
CI_LEVEL = inspect.signature(power.effect_ci).parameters["confidence"].default


# ---------------------------------------------------------------------------- numbers
def get(result: dict, key: str):
    """The value at a dotted path of ``result`` ("params.hidden_size.signal.ci.0")."""
    value = result
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def pp_spec(v: float | None) -> str:
    """Format for a difference in percentage points: two decimals, three below 0.1."""
    return ".3f" if v is not None and round(abs(v), 2) < 0.1 else ".2f"


def ratio_spec(v: float | None) -> str:
    return ".2f" if v is None or abs(v) < 1 else ".1f" if abs(v) < 10 else ".0f"


def fmt(v, spec: str) -> str:
    """``v`` as shown: "n/a" for None; spec "p" is a p-value (three decimals, or "< 0.001")."""
    if v is None:
        return "n/a"
    if spec == "p":
        return f"< {P_DISPLAY_MIN}" if v < P_DISPLAY_MIN else f"{v:.3f}"
    return format(v, spec)


def _span(cls: str, key: str, v, spec: str) -> str:
    return f'<span class="{cls}" data-key="{key}" data-spec="{spec}">{html.escape(fmt(v, spec))}</span>'


def num(result: dict, key: str, spec=None) -> str:
    """The value at ``key`` of the analysis, formatted and tagged. ``spec``: a format spec, or a function
    of the value giving one; percentage points (``pp_spec``) by default."""
    v = get(result, key)
    spec = pp_spec if spec is None else spec
    return _span("num", key, v, spec(v) if callable(spec) else spec)


def pval(result: dict, key: str) -> str:
    """"p = 0.049" or "p < 0.001", the number tagged."""
    v = get(result, key)
    return f"p {'= ' if v is None or v >= P_DISPLAY_MIN else ''}{num(result, key, 'p')}"


def derived(v, key: str, spec: str) -> str:
    return _span("num derived", f"derived.{key}", v, spec)


def const(v, key: str, spec: str = "d") -> str:
    return _span("num const", f"const.{key}", v, spec)


def setup_num(setup: dict, key: str, spec: str = "d") -> str:
    return _span("num setup", f"setup.{key}", get(setup, key), spec)


def ref(v: float, key: str) -> str:
    return _span("ref", f"writeup.{key}", v, "g")


def ci(result: dict, key: str, spec=None) -> str:
    lo, hi = get(result, key)
    if lo is None or hi is None:
        return "[n/a]"
    return f"<span class='ci'>[{num(result, key + '.0', spec)}, {num(result, key + '.1', spec)}]</span>"


def level(result: dict, key: str) -> str:
    """A hyperparameter level (a label, shown as it is)."""
    return num(result, key, "")


def safe_ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is zero (shown as n/a)."""
    return a / b if b else None


def epoch_text(result: dict, which: str = "epoch") -> str:
    """The analysed (or first) epoch number as a tagged span."""
    return num(result, which, "d")


def headline(key_signal: str) -> writeup.Quoted:
    """The write-up's quoted figure for one of this build's Signal keys."""
    return next(h for h in writeup.HEADLINES if h.key_signal == key_signal)
