"""The `zmot evaluate --out DIR` report: metrics.json, four PNG plots and report.html.

:mod:`.stats` computes (bootstrap intervals over users, verdicts, HR by k and by history),
:mod:`.plots` draws with matplotlib (imported only when a figure is made, so importing the
report stays cheap), :mod:`.page` fills the ``report.html`` template and :mod:`.writer` ties
them together in :func:`write_report`.
"""

from recommender.offline.report.plots import PLOTS, colours
from recommender.offline.report.stats import (
    LEVEL,
    REFERENCE,
    Bootstrap,
    UserSums,
    Verdict,
    bootstrap,
    by_history,
    hr_by_k,
    verdicts,
)
from recommender.offline.report.writer import write_report

__all__ = [
    "LEVEL",
    "PLOTS",
    "REFERENCE",
    "Bootstrap",
    "UserSums",
    "Verdict",
    "bootstrap",
    "by_history",
    "colours",
    "hr_by_k",
    "verdicts",
    "write_report",
]
