"""Bearer-token auth, the refusal to serve openly off loopback, and tokens never reaching the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from arrpo.server import ServerThread, ServiceConfig, UnsafeBindError
from arrpo.server.auth import check_bind, is_loopback
from tests.serve.helpers import TOKEN, b64_png

BODY = {"prompt": "p", "image_a": b64_png(200), "image_b": b64_png(20)}


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.org", False), ("", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_refuses_to_bind_openly_without_a_token():
    for host in ("0.0.0.0", "::", "192.168.1.10"):
        with pytest.raises(UnsafeBindError, match="without a token"):
            check_bind(host, None)
    check_bind("127.0.0.1", None)  # loopback without a token is fine
    check_bind("0.0.0.0", TOKEN)  # a token makes any address fine
    with pytest.raises(UnsafeBindError, match="at least 16"):
        check_bind("0.0.0.0", "short")


def test_server_thread_refuses_0_0_0_0_without_token(service):
    with pytest.raises(UnsafeBindError):
        ServerThread(service.app, host="0.0.0.0")


@pytest.fixture
def secured(start_service):
    """A service constructed with auth required (as it would be off loopback), with access logs on."""
    return start_service(config=ServiceConfig(token=TOKEN), access_log=True, log_level="debug")


@pytest.mark.parametrize(("headers", "status", "fragment"), [
    ({}, 401, "missing bearer token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "malformed Authorization"),
    ({"Authorization": "Bearer"}, 401, "malformed Authorization"),
    ({"Authorization": "Bearer wrong-token-wrong-token"}, 403, "invalid bearer token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, 403, "invalid bearer token"),
])
def test_missing_or_wrong_token_is_rejected(secured, headers, status, fragment):
    for path, body in (("/v1/compare", BODY), ("/v1/group_rewards", {"prompt": "p", "images": [b64_png(1)] * 2})):
        response = httpx.post(secured.url + path, json=body, headers=headers, timeout=30)
        assert response.status_code == status
        assert fragment in response.json()["error"]["message"]
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(secured.url + "/metrics", headers=headers).status_code == status
    assert secured.vlm.requests == 0  # nothing reached the VLM


def test_right_token_is_accepted_and_health_is_open(secured):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(secured.url + "/v1/compare", json=BODY, headers=auth, timeout=30)
    assert response.status_code == 200 and response.json()["verdict"]["winner"] == "A"
    assert httpx.get(secured.url + "/metrics", headers=auth).status_code == 200
    assert httpx.get(secured.url + "/health").status_code == 200


def test_tokens_never_logged(secured, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-wrong-token-123"
    httpx.post(secured.url + "/v1/compare", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    httpx.post(secured.url + "/v1/compare", json=BODY, headers={"Authorization": f"Bearer {wrong}"}, timeout=30)
    httpx.post(secured.url + "/v1/compare", json={"image_a": TOKEN}, headers={"Authorization": f"Bearer {TOKEN}"})
    secured.thread.stop()  # flush shutdown logging too
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records)
    assert "uvicorn.access" in text  # the access log was captured...
    assert TOKEN not in text and wrong not in text  # ...and holds no token
    assert TOKEN not in repr(secured.state.config) and "<set>" in repr(secured.state.config)
