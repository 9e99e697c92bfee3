"""Error parsing: every vendor error shape becomes a clear, secret-free `VendorError`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from include.returns_sync.clients.errors import (
    VendorAuthError,
    VendorBadResponse,
    VendorConflict,
    VendorError,
    VendorNotFound,
    VendorRateLimited,
    VendorServerError,
    VendorValidationError,
    describe_error_body,
    error_for_status,
    parse_json_body,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"errors": {"message": "Return is closed.", "code": "UNPROCESSABLE_RETURN"}},
            "UNPROCESSABLE_RETURN",
            "Return is closed.",
        ),
        (
            {"error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}},
            "GEN-UNAUTHORIZED",
            "Unauthorized.",
        ),
        ({"message": "Return is cancelled."}, None, "Return is cancelled."),
        (
            {"content": "Return is expired and cannot be processed."},
            None,
            "Return is expired and cannot be processed.",
        ),
        ({"errors": {"code": "NOT_FOUND"}}, "NOT_FOUND", None),
        ({"message": "x", "errors": {"from": ["bad date"]}}, None, "x"),
        ({"errors": {"sku": ["is invalid", "is taken"]}}, None, "sku: is invalid, is taken"),
        ({"error": "invalid_grant", "error_description": "spent"}, "invalid_grant", "spent"),
        ({"error": "OverRateLimit", "message": "Rate limit exceeded"}, None, "Rate limit exceeded"),
        ("false", None, "false"),
        ([1, 2], None, None),
    ],
)
def test_every_known_error_shape_yields_its_code_and_message(
    body: object, code: str | None, message: str | None
) -> None:
    assert describe_error_body(body) == (code, message)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, VendorValidationError),
        (401, VendorAuthError),
        (403, VendorAuthError),
        (404, VendorNotFound),
        (409, VendorConflict),
        (422, VendorValidationError),
        (429, VendorRateLimited),
        (500, VendorServerError),
        (502, VendorServerError),
        (503, VendorServerError),
    ],
)
def test_each_status_maps_to_its_error_class(status: int, kind: type[VendorError]) -> None:
    error = error_for_status(
        "whiplash",
        status,
        {"message": "m"},
        "GET",
        "/api/v2/items",
        conn_id="c",
        credential_hint="h",
    )
    assert type(error) is kind
    assert error.status == status and error.vendor == "whiplash" and error.path == "/api/v2/items"


def test_an_unlisted_status_is_a_plain_vendor_error_with_the_http_phrase() -> None:
    error = error_for_status("loop", 405, None, "GET", "/x", conn_id="c", credential_hint="h")
    assert type(error) is VendorError
    assert "Method Not Allowed" in str(error)


def test_an_auth_error_names_the_connection_and_what_to_check() -> None:
    error = error_for_status(
        "loop",
        401,
        {"error": {"code": "401", "http_code": "GEN-UNAUTHORIZED", "message": "Unauthorized."}},
        "GET",
        "/warehouse/return/list",
        conn_id="loop_default",
        credential_hint="API key (password field)",
    )
    text = str(error)
    assert "'loop_default'" in text
    assert "check the API key (password field)" in text
    assert "GEN-UNAUTHORIZED" in text


def test_an_html_page_is_a_bad_response_naming_status_and_content_type_but_not_the_body() -> None:
    page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>secret-ish echo</body></html>"
    with pytest.raises(VendorBadResponse) as raised:
        parse_json_body("loop", 502, "text/html; charset=utf-8", page, "GET", "/x")
    text = str(raised.value)
    assert "HTML page" in text and "502" in text and "text/html" in text
    assert "echo" not in text and "<h1>" not in text
    assert raised.value.transient, "a gateway's 5xx page is worth retrying"


def test_html_served_as_json_is_still_recognised_as_html() -> None:
    with pytest.raises(VendorBadResponse, match="HTML page"):
        parse_json_body("loop", 200, "application/json", b"  <html></html>", "GET", "/x")


def test_malformed_json_is_a_bad_response_with_its_size_not_its_content() -> None:
    with pytest.raises(VendorBadResponse) as raised:
        parse_json_body("whiplash", 200, "application/json", b'{"id": 1, "tok', "GET", "/x")
    text = str(raised.value)
    assert "malformed JSON" in text and "200" in text and "application/json" in text
    assert "tok" not in text
    assert not raised.value.transient


def test_an_empty_body_is_none_and_json_scalars_decode() -> None:
    assert parse_json_body("loop", 204, None, b"", "PUT", "/x") is None
    assert parse_json_body("loop", 200, "application/json", b'"true"', "POST", "/x") == "true"
    assert parse_json_body("loop", 200, "text/plain", b"true", "POST", "/x") is True


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = parse_retry_after(later)
    assert waited is not None and 25 <= waited <= 31
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_long_vendor_messages_are_clipped() -> None:
    _, message = describe_error_body({"message": "x" * 5000})
    assert message is not None and len(message) <= 300
