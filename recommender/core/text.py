"""Search-query normalisation: the same tokens whatever the case, accents or umlauts.

"Fernseher Reparatur", "fernseher reparatur" and "FERNSEHER-REPARATUR" give the same tokens;
"Größe" becomes "grosse" and "riparazione tv" keeps both words. Filler words of German, English
and Italian are dropped so they do not dilute a profile.
"""

from __future__ import annotations

import re
import unicodedata

STOPWORDS = frozenset(
    # English
    "a an and are as at be by for from how i in is it my near of on or the to with me "
    # German
    "am auf aus bei das dem den der des die ein eine einen einer fur im in ist mit nach "
    "und von vom zu zum zur "
    # Italian
    "a al alla con da del della di e il in la le lo nel per su un una uno".split()
)

_NON_WORD = re.compile(r"[^0-9a-z]+")

PREFIX_LEN = 5
"""Length of the prefix token that ties word forms together ("reparatur", "reparieren")."""


def fold(text: str) -> str:
    """Lower-case ASCII-ish text: case folded, accents and umlauts stripped ("ß" -> "ss")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(query: str) -> list[str]:
    """Distinct normalised tokens of a query, in order of first appearance."""
    seen: dict[str, None] = {}
    for token in _NON_WORD.split(fold(query)):
        if len(token) >= 2 and token not in STOPWORDS:
            seen.setdefault(token, None)
    return list(seen)
