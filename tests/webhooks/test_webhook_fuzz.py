"""Property: whatever arrives (any body, any headers, signed or not), the answer is never a 5xx.

Half of the generated bodies are signed correctly, so the fuzzing reaches the JSON parser and the
payload validation, not only the signature check. The endpoints are exercised over HTTP.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from include.returns_sync.sandbox.serving import serve_in_thread
from include.returns_sync.state import StateStore
from include.returns_sync.webhooks.app import WebhookReceiver, create_app
from include.returns_sync.webhooks.secrets import SigningKeys, StaticSecrets
from tests.webhooks.support import (
    LOOP_SECRET,
    WHIPLASH_CLIENT_ID,
    WHIPLASH_SECRET,
    consumer_return_payload,
    label_payload,
    loop_signature,
    whiplash_signature,
)

ALLOWED = {200, 400, 401, 413}
SIGNATURE_HEADERS = {"loop": "X-Loop-Signature", "whiplash": "X-WHIPLASH-SIGNATURE"}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "state.db"
    store = StateStore.from_url(f"sqlite:///{path}")
    store.migrate()
    secrets = StaticSecrets(
        {
            "loop": SigningKeys((LOOP_SECRET,)),
            "whiplash": SigningKeys((WHIPLASH_SECRET,), client_id=WHIPLASH_CLIENT_ID),
        }
    )
    server = serve_in_thread(create_app(WebhookReceiver(store=lambda: store, secrets=secrets)))
    yield server.url
    server.stop()
    store.dispose()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _mutated(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid payload with some fields replaced by arbitrary JSON or removed."""
    keys = sorted(template)
    return st.builds(
        lambda replaced, removed: {
            k: replaced.get(k, v) for k, v in template.items() if k not in removed
        },
        st.dictionaries(st.sampled_from(keys), json_values, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
    )


payload_bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    _mutated(label_payload()).map(lambda p: json.dumps(p).encode()),
    _mutated(consumer_return_payload()).map(lambda p: json.dumps(p).encode()),
    _mutated(consumer_return_payload()["consumer_return"]).map(
        lambda record: json.dumps(
            {"event_name": "consumer_return.completed", "consumer_return": record}
        ).encode()
    ),
)
#: RFC 9110 token characters: what a header name may be made of.
header_names = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=40
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80
).map(str.strip)


def _signature(vendor: str, body: bytes) -> str:
    return loop_signature(body) if vendor == "loop" else whiplash_signature(body)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    vendor=st.sampled_from(["loop", "whiplash"]),
    body=payload_bodies,
    signed=st.booleans(),
    signature=header_values,
    extra_headers=st.dictionaries(header_names, header_values, max_size=4),
)
def test_no_body_or_header_combination_produces_a_server_error(
    server_url: str,
    vendor: str,
    body: bytes,
    signed: bool,
    signature: str,
    extra_headers: dict[str, str],
) -> None:
    headers = {
        k: v
        for k, v in extra_headers.items()
        if k.lower() not in ("content-length", "host", "transfer-encoding")
    }
    headers[SIGNATURE_HEADERS[vendor]] = _signature(vendor, body) if signed else signature
    reply = requests.post(f"{server_url}/webhooks/{vendor}", data=body, headers=headers, timeout=10)
    assert reply.status_code in ALLOWED, (reply.status_code, reply.text)
    event(f"HTTP {reply.status_code}")
    if not signed and reply.status_code == 200:
        pytest.fail("an unsigned body was accepted")
    if reply.status_code == 400:
        assert reply.json()["detail"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vendor=st.sampled_from(["loop", "whiplash"]), payload=json_values)
def test_signed_arbitrary_json_is_either_accepted_or_a_400_with_a_reason(
    server_url: str, vendor: str, payload: Any
) -> None:
    body = json.dumps(payload).encode()
    reply = requests.post(
        f"{server_url}/webhooks/{vendor}",
        data=body,
        headers={SIGNATURE_HEADERS[vendor]: _signature(vendor, body)},
        timeout=10,
    )
    assert reply.status_code in (200, 400), (reply.status_code, reply.text)
