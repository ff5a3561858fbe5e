"""The metric names a PromQL expression reads (enough of PromQL for our rules and panels).

promtool parses the expressions; this only has to find the metric names in parsed-valid PromQL, so
it strips what cannot be a metric (strings, label matchers, `by (...)` lists, ranges, numbers,
function calls and keywords) and keeps the identifiers left over.
"""

from __future__ import annotations

import re

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_NUMBERS = re.compile(r"(?<![A-Za-z0-9_:])\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")  # 1e-9, 0.05, 93600
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _NUMBERS.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        word = match.group()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names
