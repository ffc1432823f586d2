"""Client for the arrpo reward service, synchronous (:class:`RewardClient`) and asynchronous
(:class:`AsyncRewardClient`).

Images may be bytes, client-side file paths, PIL images, :class:`~arrpo.images.ImageData`, numpy
arrays (HWC uint8 or float in [0, 1]) or torch tensors (CHW in [0, 1]); they are sent as base64.
A 503 from a saturated service is retried after its ``Retry-After``, and a connection that cannot
be made or drops is retried with exponential backoff, both within a retry budget
(``max_retries``, ``backoff``, ``max_wait``; :func:`retry_waits` gives the waits), ``GET /health``
included; other errors, and an exhausted budget, raise
:class:`RewardServiceError` carrying the service's status, code and message (status ``0`` and
code ``unreachable`` when no answer came at all). :func:`validate_options` checks request options
on the client before anything is sent.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import httpx

from arrpo.errors import ArrpoError, describe_validation_error
from arrpo.server.protocol import (
    CompareRequest,
    CompareResponse,
    GroupMemberResponse,
    GroupRewardsRequest,
    GroupRewardsResponse,
    Health,
    RubricMode,
    ServiceLimits,
)
from arrpo.vocab import OnBadVerdict, OrderPolicy, Pairing, RewardPreset

#: Environment variable holding the service token (shared with ``arrpo serve``).
TOKEN_ENV = "ARRPO_SERVE_TOKEN"


class RewardServiceError(ArrpoError, RuntimeError, kind="backend"):
    """The service refused or failed a request. ``status``/``code`` as sent by the service."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"reward service answered {status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


_PLACEHOLDER_IMAGE = "AA=="  # any text passes the schema; only the options are being checked


#: Placeholder candidates of a group whose size is not known when its options are checked: as many
#: as a large group has, so that only options no group could take are refused then.
_UNKNOWN_GROUP_SIZE = 64


def validate_options(endpoint: str, options: dict[str, Any], group_size: int | None = None) -> None:
    """Check request options against the protocol before anything is sent.

    ``endpoint`` is ``group_rewards`` or ``compare``; ``group_size``: the groups' size if known
    (options that depend on it, such as ``tournament_rounds``, are checked against it). Raises
    ``ValueError`` naming each unknown option (with the accepted ones) or bad value, so a typo
    fails at start-up, not mid-run.
    """
    import pydantic

    model = {"group_rewards": GroupRewardsRequest, "compare": CompareRequest}[endpoint]
    reserved = {"prompt", "images", "image_a", "image_b", "source"}
    accepted = sorted(set(model.model_fields) - reserved)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown {endpoint} option(s) {unknown}; accepted: {accepted}")
    body: dict[str, Any] = {"prompt": "option check", **options}
    if endpoint == "group_rewards":
        body["images"] = [_PLACEHOLDER_IMAGE] * max(2, group_size or _UNKNOWN_GROUP_SIZE)
    else:
        body["image_a"] = body["image_b"] = _PLACEHOLDER_IMAGE
    try:
        model.model_validate(body)
    except pydantic.ValidationError as exc:
        raise ValueError(f"invalid {endpoint} option(s): {describe_validation_error(exc, whole='')}") from None


def encode_image(image: Any) -> str:
    """Base64 text of one image, in any form the client accepts."""
    from arrpo.convert import image_bytes

    return base64.b64encode(image_bytes(image)).decode("ascii")


def compare_payload(
    prompt: str, image_a: Any, image_b: Any, *, source: Any = None, task: str | None = None,
    order: OrderPolicy | None = None, rubric: RubricMode = "auto", id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": prompt, "image_a": encode_image(image_a), "image_b": encode_image(image_b), "rubric": rubric,
    }
    return _common(body, source=source, task=task, order=order, id=id)


JSON_HEADERS = {"Content-Type": "application/json"}


def json_body(body: dict[str, Any]) -> bytes:
    """The request body as ASCII JSON: text UTF-8 cannot hold (a lone surrogate) travels as a
    ``\\u`` escape, so the service can name the field in a 422 instead of the encoder failing here."""
    return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def group_payload(
    prompt: str, images: Sequence[Any], *, source: Any = None, task: str | None = None,
    order: OrderPolicy | None = None, rubric: RubricMode = "auto", preset: RewardPreset = "official",
    win: float = 1.0, lose: float = 0.1, scale: float = 1.0, on_bad_verdict: OnBadVerdict = "mask_group",
    id: str | None = None, pairing: Pairing | None = None, tournament_rounds: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The body of ``/v1/group_rewards`` (``pairing``, ``tournament_rounds``, ``seed``: left to the
    server's defaults when ``None``)."""
    body: dict[str, Any] = {
        "prompt": prompt, "images": [encode_image(im) for im in images], "rubric": rubric, "preset": preset,
        "win": win, "lose": lose, "scale": scale, "on_bad_verdict": on_bad_verdict,
    }
    for key, value in (("pairing", pairing), ("tournament_rounds", tournament_rounds), ("seed", seed)):
        if value is not None:
            body[key] = value
    return _common(body, source=source, task=task, order=order, id=id)


def _common(body: dict[str, Any], *, source: Any, task: str | None, order: str | None, id: str | None):
    if source is not None:
        body["source"] = encode_image(source)
    for key, value in (("task", task), ("order", order), ("id", id)):
        if value is not None:
            body[key] = value
    return body


def member_payload(
    prompt: str, image: Any, *, group: str, group_size: int, anchor: Any = None, wait: float = 600.0,
    source: Any = None, task: str | None = None, order: OrderPolicy | None = None, **options: Any,
) -> dict[str, Any]:
    """The body of ``/v1/group_member``: one member of a group the service assembles (``options``:
    ``rubric``, ``rubric_inline``, ``preset``, ``win``, ``lose``, ``scale``, ``on_bad_verdict``, ``id``)."""
    body: dict[str, Any] = {"prompt": prompt, "image": encode_image(image), "group": group,
                            "group_size": group_size, "wait": wait, **options}
    if anchor is not None:
        body["anchor"] = encode_image(anchor)
    return _common(body, source=source, task=task, order=order, id=body.pop("id", None))


def _error(response: httpx.Response) -> RewardServiceError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except Exception:
        code, message = "http_error", response.text[:500] or response.reason_phrase
    retry_after = response.headers.get("retry-after")
    try:
        seconds = float(retry_after) if retry_after is not None else None
    except ValueError:
        seconds = None
    return RewardServiceError(response.status_code, code, message, seconds)


#: Transport failures worth retrying: no connection, or one that dropped before an answer. A read
#: timeout is not retried (the judge call may still be running; resending doubles the load).
RETRYABLE_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
    httpx.WriteError, httpx.PoolTimeout,
)


def unreachable(base_url: str, exc: Exception, attempts: int) -> RewardServiceError:
    """The error for a service that gave no answer after ``attempts`` tries."""
    return RewardServiceError(
        0, "unreachable",
        f"no answer from {base_url} after {attempts} attempt(s): {type(exc).__name__}: {exc}. "
        "Is `arrpo serve` running there, and is the URL right?",
    )


class _Settings:
    def __init__(
        self, base_url: str, token: str | None, timeout: float, max_retries: int, max_wait: float,
        backoff: float = 0.5,
    ):
        if max_retries < 0 or max_wait < 0 or backoff < 0:
            raise ValueError("max_retries, max_wait and backoff must not be negative")
        self.base_url = base_url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.backoff = backoff

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def after(self, attempt: int, outcome: httpx.Response | Exception) -> dict[str, Any] | float:
        """What follows attempt number ``attempt`` (from 0), given its response or transport
        error: the answer's JSON body, or the seconds to wait before trying again.

        Raises:
            RewardServiceError: the error is final (not retryable, or the budget is spent).
        """
        if isinstance(outcome, Exception):
            error = unreachable(self.base_url, outcome, attempt + 1)
            error.__cause__ = outcome
        elif outcome.status_code == 200:
            return outcome.json()
        else:
            error = _error(outcome)
        wait = self.wait_for(error, attempt)
        if wait is None:
            raise error
        return wait

    def wait_for(self, error: RewardServiceError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the error is final."""
        if error.status not in (0, 503) or attempt >= self.max_retries:
            return None
        backoff = self.backoff * 2.0 ** attempt
        wait = error.retry_after if error.retry_after is not None else backoff
        return max(0.0, min(self.max_wait, wait))  # a proxy's negative Retry-After means "now"


def retry_waits(max_retries: int, backoff: float, max_wait: float) -> list[float]:
    """The waits (seconds) before each retry of a request whose service stays unreachable: the
    budget a caller gives a service that is down or restarting (a 503 waits its ``Retry-After``
    instead, capped by the same ``max_wait``)."""
    return [min(max_wait, backoff * 2.0 ** attempt) for attempt in range(max_retries)]


class RewardClient:
    """Blocking client. Args: ``base_url`` (``http://host:port``), ``token`` (default from
    ``ARRPO_SERVE_TOKEN``), ``timeout`` per request, ``max_retries`` for 503s and connection
    errors, ``backoff`` (first wait when no ``Retry-After`` is given; doubles each try), ``max_wait``
    cap on any single wait."""

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 600.0,
        max_retries: int = 5, max_wait: float = 30.0, max_connections: int = 32, backoff: float = 0.5,
    ):
        self.settings = _Settings(base_url, token, timeout, max_retries, max_wait, backoff)
        self._http = httpx.Client(
            base_url=self.settings.base_url, timeout=timeout, headers=self.settings.headers(),
            limits=httpx.Limits(max_connections=max_connections),
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in itertools.count():
            step = self.settings.after(attempt, self._send(path, body))
            if isinstance(step, dict):
                return step
            time.sleep(step)
        raise AssertionError("unreachable")  # pragma: no cover

    def compare(self, prompt: str, image_a: Any, image_b: Any, **options: Any) -> CompareResponse:
        """Judge one pair (options: ``source``, ``task``, ``order``, ``rubric``, ``id``)."""
        return CompareResponse.model_validate(self._post("/v1/compare", compare_payload(prompt, image_a, image_b, **options)))

    def group_rewards(self, prompt: str, images: Sequence[Any], **options: Any) -> GroupRewardsResponse:
        """Rewards for a group (options: ``source``, ``preset``, ``win``, ``lose``, ``scale``, ``pairing``, ``tournament_rounds``, ...)."""
        return GroupRewardsResponse.model_validate(self._post("/v1/group_rewards", group_payload(prompt, images, **options)))

    def health(self) -> Health:
        """``GET /health``, retried like any request while the service is unreachable or saturated."""
        for attempt in itertools.count():
            step = self.settings.after(attempt, self._fetch("/health"))
            if isinstance(step, dict):
                return Health.model_validate(step)
            time.sleep(step)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, path: str) -> httpx.Response | Exception:
        try:
            return self._http.get(path)
        except RETRYABLE_TRANSPORT_ERRORS as exc:
            return exc

    def _send(self, path: str, body: dict[str, Any]) -> httpx.Response | Exception:
        try:
            return self._http.post(path, content=json_body(body), headers=JSON_HEADERS)
        except RETRYABLE_TRANSPORT_ERRORS as exc:  # judged by _Settings.after
            return exc

    def limits(self) -> ServiceLimits:
        """The service's request limits from ``/health``: how many images a group request may
        hold, the largest body."""
        return self.health().limits

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRewardClient:
    """Asynchronous client with the same methods as :class:`RewardClient`, awaited."""

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 600.0,
        max_retries: int = 5, max_wait: float = 30.0, max_connections: int = 64, backoff: float = 0.5,
    ):
        self.settings = _Settings(base_url, token, timeout, max_retries, max_wait, backoff)
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url, timeout=timeout, headers=self.settings.headers(),
            limits=httpx.Limits(max_connections=max_connections),
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in itertools.count():
            step = self.settings.after(attempt, await self._send(path, body))
            if isinstance(step, dict):
                return step
            await asyncio.sleep(step)
        raise AssertionError("unreachable")  # pragma: no cover

    async def compare(self, prompt: str, image_a: Any, image_b: Any, **options: Any) -> CompareResponse:
        body = await asyncio.to_thread(compare_payload, prompt, image_a, image_b, **options)
        return CompareResponse.model_validate(await self._post("/v1/compare", body))

    async def group_rewards(self, prompt: str, images: Sequence[Any], **options: Any) -> GroupRewardsResponse:
        body = await asyncio.to_thread(group_payload, prompt, images, **options)
        return GroupRewardsResponse.model_validate(await self._post("/v1/group_rewards", body))

    async def health(self) -> Health:
        """As :meth:`RewardClient.health`, awaited."""
        for attempt in itertools.count():
            step = self.settings.after(attempt, await self._fetch("/health"))
            if isinstance(step, dict):
                return Health.model_validate(step)
            await asyncio.sleep(step)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch(self, path: str) -> httpx.Response | Exception:
        try:
            return await self._http.get(path)
        except RETRYABLE_TRANSPORT_ERRORS as exc:
            return exc

    async def _send(self, path: str, body: dict[str, Any]) -> httpx.Response | Exception:
        try:
            return await self._http.post(path, content=json_body(body), headers=JSON_HEADERS)
        except RETRYABLE_TRANSPORT_ERRORS as exc:  # judged by _Settings.after
            return exc

    async def limits(self) -> ServiceLimits:
        """As :meth:`RewardClient.limits`."""
        return (await self.health()).limits

    async def group_member(self, prompt: str, image: Any, **options: Any) -> GroupMemberResponse:
        """One member of a group the service assembles (options as :func:`member_payload`); returns
        when the whole group is judged. The client's ``timeout`` must cover the group's ``wait``."""
        body = await asyncio.to_thread(member_payload, prompt, image, **options)
        return GroupMemberResponse.model_validate(await self._post("/v1/group_member", body))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_shared: dict[tuple, AsyncRewardClient] = {}


def shared_async_client(
    base_url: str, *, token: str | None = None, timeout: float = 600.0, max_retries: int = 5,
    max_wait: float = 30.0, backoff: float = 0.5,
) -> AsyncRewardClient:
    """One :class:`AsyncRewardClient` per process and setting, reused by every adapter call (its
    connection pool stays warm). Use it only from arrpo's shared event loop
    (:func:`arrpo._sync.run_sync`), where the adapters run their requests."""
    key = (base_url.rstrip("/"), token, timeout, max_retries, max_wait, backoff)
    client = _shared.get(key)
    if client is None:
        client = _shared[key] = AsyncRewardClient(
            base_url, token=token, timeout=timeout, max_retries=max_retries, max_wait=max_wait,
            backoff=backoff,
        )
    return client
