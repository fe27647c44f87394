"""Short summaries of results for a terminal and a notebook: a few-line ``repr`` and an HTML table.

A result lists what a researcher reads first (the value, ε, whether the solve converged, the sizes)
as ``(name, text)`` rows in its ``_summary_rows()``; :class:`Summarised` turns those rows into the
``repr`` (one row a line) and into ``_repr_html_`` (a two-column table that Jupyter shows). Tensors
are never printed: the full numbers stay one attribute away (``res.label_distances``,
``res.to_dict()``). A row whose text starts with :data:`ALERT` (an unconverged solve) is drawn in
red in the table, so a number that should not be trusted does not look like one that should.
"""

from __future__ import annotations

import html
import math

__all__ = ["Summarised", "ALERT", "number"]

#: the start of a row text that must stand out (a solve that did not converge)
ALERT = "NO"


def number(value, digits: int = 6) -> str:
    """A float with ``digits`` significant digits (``nan``/``None`` as ``-``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


class Summarised:
    """Mixin: ``repr`` and ``_repr_html_`` from the class's ``_summary_rows()``.

    Dataclasses that use it must be declared with ``@dataclass(repr=False)``, else the generated
    ``repr`` (every field, tensors included) replaces this one.
    """

    def _summary_rows(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        rows = self._summary_rows()
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {text}" for name, text in rows]
        return "\n".join([f"{type(self).__name__}:"] + lines)

    def _repr_html_(self) -> str:
        cells = []
        for name, text in self._summary_rows():
            style = "text-align:left" + (";color:#c00;font-weight:bold" if text.startswith(ALERT) else "")
            cells.append(f'<tr><th style="text-align:left">{html.escape(name)}</th>'
                         f'<td style="{style}">{html.escape(text)}</td></tr>')
        return (f"<table><caption style=\"text-align:left\"><b>{html.escape(type(self).__name__)}"
                f"</b></caption>{''.join(cells)}</table>")
