"""SKU normalisation shared by RMA mapping and receipt reconciliation.

Loop, Shopify and Whiplash are typed by different people: "sku-1 ", "SKU-1" and "ＳＫＵ-1" are
the same product. We compare SKUs after Unicode NFKC folding, trimming, collapsing internal
whitespace and upper-casing; merchant aliases then map alternative SKUs onto a canonical one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

#: The key used for an item that arrived (or was listed) without any SKU at all.
BLANK_SKU = "<BLANK>"


def normalise_sku(raw: object, aliases: Mapping[str, str] | None = None) -> str:
    """Return the comparison key of a SKU; `aliases` maps normalised alias -> normalised SKU."""
    if raw is None:
        return BLANK_SKU
    text = str(raw)
    if not text.isascii():  # NFKC leaves ASCII alone; most SKUs are ASCII
        text = unicodedata.normalize("NFKC", text)
    # str.split() splits on exactly the characters `\s` matches (str.isspace).
    text = " ".join(text.split()).upper()
    if not text:
        return BLANK_SKU
    if aliases:
        return aliases.get(text, text)
    return text


def normalise_aliases(aliases: Mapping[str, str]) -> dict[str, str]:
    """Normalise both sides of an alias table so look-ups are insensitive to case and spaces."""
    return {normalise_sku(alias): normalise_sku(canonical) for alias, canonical in aliases.items()}
