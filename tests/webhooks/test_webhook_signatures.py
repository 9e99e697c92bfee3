"""Signature checks: the vendors' recipes on the raw bytes, nothing else passes."""

from __future__ import annotations

import json

import pytest

from include.returns_sync.webhooks.signatures import verify_loop, verify_whiplash
from tests.webhooks.support import (
    LOOP_SECRET,
    WHIPLASH_CLIENT_ID,
    WHIPLASH_SECRET,
    label_payload,
    loop_signature,
    php_json,
    whiplash_signature,
)


def test_a_loop_signature_over_the_raw_body_is_accepted() -> None:
    body = php_json(label_payload())
    assert verify_loop(body, loop_signature(body), [LOOP_SECRET])


def test_a_loop_body_reserialised_differently_no_longer_matches_its_signature() -> None:
    raw = php_json(label_payload(tracking_number="1Z/999"))
    assert b"\\/" in raw  # Loop escapes slashes; json.dumps does not
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert json.loads(reserialised) == json.loads(raw)
    assert not verify_loop(reserialised, loop_signature(raw), [LOOP_SECRET])


def test_a_whiplash_body_reserialised_with_spaces_no_longer_matches_its_signature() -> None:
    raw = b'{"event_name":"consumer_return.completed","consumer_return":{"id":1}}'
    assert not verify_whiplash(
        json.dumps(json.loads(raw)).encode(), whiplash_signature(raw), [WHIPLASH_SECRET]
    )


def test_a_signature_made_with_another_secret_is_rejected() -> None:
    body = php_json(label_payload())
    assert not verify_loop(body, loop_signature(body, "someone-else"), [LOOP_SECRET])
    assert not verify_whiplash(body, whiplash_signature(body, "someone-else"), [WHIPLASH_SECRET])


def test_any_of_several_configured_secrets_verifies_during_a_rotation() -> None:
    body = php_json(label_payload())
    assert verify_loop(body, loop_signature(body, "new-secret"), ["old-secret", "new-secret"])


@pytest.mark.parametrize(
    "header",
    ["", "   ", "not base64!", "QUJD", "A" * 300, None],
    ids=["empty", "blank", "not-base64", "short-digest", "huge", "missing"],
)
def test_malformed_loop_signature_headers_are_rejected(header: str | None) -> None:
    assert not verify_loop(b"{}", header, [LOOP_SECRET])


def test_a_hex_signature_is_not_accepted_as_a_loop_signature() -> None:
    body = b"{}"
    assert not verify_loop(body, whiplash_signature(body, LOOP_SECRET), [LOOP_SECRET])


def test_a_base64_signature_is_not_accepted_as_a_whiplash_signature() -> None:
    body = b"{}"
    assert not verify_whiplash(body, loop_signature(body, WHIPLASH_SECRET), [WHIPLASH_SECRET])


def test_whiplash_hex_is_accepted_in_either_case_and_with_surrounding_space() -> None:
    body = b'{"a":1}'
    signature = whiplash_signature(body)
    assert verify_whiplash(body, f" {signature.upper()} ", [WHIPLASH_SECRET])


def test_whiplash_signs_an_empty_body_with_the_client_id() -> None:
    signature = whiplash_signature(WHIPLASH_CLIENT_ID.encode())
    assert verify_whiplash(b"", signature, [WHIPLASH_SECRET], WHIPLASH_CLIENT_ID)
    assert not verify_whiplash(b"", signature, [WHIPLASH_SECRET], None)


def test_nothing_verifies_without_a_secret() -> None:
    body = b"{}"
    assert not verify_loop(body, loop_signature(body, ""), [])
    assert not verify_whiplash(body, whiplash_signature(body, ""), [])
