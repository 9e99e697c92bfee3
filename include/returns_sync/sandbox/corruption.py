"""Opt-in bad payloads for one record: what a misbehaving vendor sends (tests only).

Vendors do not always answer with the JSON their contracts promise: a field goes missing, an id
turns into a number, a quantity into text, a SKU picks up a non-breaking space, a proxy serves
an HTML error page with status 200. `Corruptions` lets a test make the simulators do exactly that
for one record, and only for it, so the test can show that the bad record affects nothing else:

    sandbox.loop.corrupt(return_id, without("state"))
    sandbox.whiplash.corrupt(consumer_return_id, on_items(lambda item: {**item, "sku": None}))
    sandbox.loop.corrupt(return_id, HTML_ERROR_PAGE)

A mutator receives a deep copy of the record's vendor JSON and returns what is served instead
(any JSON value). It is applied where the record leaves the simulator through the API (lists,
details, single gets), never to the backend's state nor to the inspection helpers tests use to
check the outcome. `HTML_ERROR_PAGE` replaces the whole answer of an endpoint that serves this
one record (Loop's return details); inside a list, which other records share, the record is
served unchanged.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Mutator = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class HtmlErrorPage:
    """An HTML page served instead of JSON (a CDN or proxy answering for the vendor)."""

    status: int = 200
    body: bytes = (
        b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
        b"<body><h1>We'll be right back</h1><p>Maintenance in progress.</p></body></html>"
    )


#: Serve an HTML maintenance page with status 200 instead of this record's JSON.
HTML_ERROR_PAGE = HtmlErrorPage()


class Corruptions:
    """Record id -> what to serve instead of the record's JSON. Thread-safe; empty by default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Mutator | HtmlErrorPage] = {}

    def corrupt(self, record_id: object, mutate: Mutator | HtmlErrorPage) -> None:
        """From now on, serve `mutate(view)` (or the HTML page) for this record."""
        if not isinstance(mutate, HtmlErrorPage) and not callable(mutate):
            raise TypeError("mutate must be a function of the record's JSON or HTML_ERROR_PAGE")
        with self._lock:
            self._by_id[str(record_id)] = mutate

    def clear(self, record_id: object | None = None) -> None:
        """Serve this record (or every record, without an id) as it really is again."""
        with self._lock:
            if record_id is None:
                self._by_id.clear()
            else:
                self._by_id.pop(str(record_id), None)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._by_id)

    def in_list(self, record_id: object, view: dict[str, Any]) -> Any:
        """The record as a list serves it (an HTML page cannot replace one element of a list)."""
        mutate = self._lookup(record_id)
        if mutate is None or isinstance(mutate, HtmlErrorPage):
            return view
        return mutate(copy.deepcopy(view))

    def alone(self, record_id: object, view: dict[str, Any]) -> Any:
        """The record as an endpoint serving only it answers: JSON value or `HtmlErrorPage`."""
        mutate = self._lookup(record_id)
        if mutate is None:
            return view
        if isinstance(mutate, HtmlErrorPage):
            return mutate
        return mutate(copy.deepcopy(view))

    def _lookup(self, record_id: object) -> Mutator | HtmlErrorPage | None:
        if not self:
            return None
        with self._lock:
            return self._by_id.get(str(record_id))


# --------------------------------------------------------------------------- ready-made mutators


def without(*fields: str) -> Mutator:
    """Drop top-level fields (a vendor that forgot them)."""

    def mutate(view: dict[str, Any]) -> Any:
        for name in fields:
            view.pop(name, None)
        return view

    return mutate


def replace(**values: Any) -> Mutator:
    """Set top-level fields to other values: nulls, wrong types, empty or huge arrays."""

    def mutate(view: dict[str, Any]) -> Any:
        view.update(values)
        return view

    return mutate


def on_items(change: Callable[[dict[str, Any]], Any], field: str | None = None) -> Mutator:
    """Apply `change` to every element of the record's item array; `change` may return a list
    (one element becomes several) or None (the element is dropped).

    The array is `line_items` for a Loop return and `return_items` for a Whiplash consumer
    return; pass `field` for another one.
    """

    def mutate(view: dict[str, Any]) -> Any:
        name = field or ("line_items" if "line_items" in view else "return_items")
        changed: list[Any] = []
        for element in view.get(name) or []:
            result = change(element)
            if isinstance(result, list):
                changed.extend(result)
            elif result is not None:
                changed.append(result)
        view[name] = changed
        return view

    return mutate


def chain(*mutators: Mutator) -> Mutator:
    """Several corruptions of one record, applied in order."""

    def mutate(view: dict[str, Any]) -> Any:
        result: Any = view
        for step in mutators:
            result = step(result)
        return result

    return mutate
