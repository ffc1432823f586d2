"""Flow-Factory's remote reward protocol, spoken by ``arrpo serve``: the user only sets a URL.

Flow-Factory's ``RemotePointwiseRewardModel`` and ``RemoteGroupwiseRewardModel``
(``flow_factory/rewards/my_reward_remote.py``) check ``GET {server_url}/health`` at start-up (any
status below 400 passes) and send ``POST {server_url}/compute`` with ``{"prompt": [...], "image":
[base64 PNG], "video", "condition_images": [[base64 PNG]], "condition_videos"}`` (an older client
adds ``kwargs``), expecting ``{"rewards": [one float per sample]}`` or ``{"error": "..."}``. Their
client retries any HTTP error or timeout blindly, at once and without the error's text, and raises
the ``error`` field of a 2xx answer at once — so every error here is a 200 answer with ``error``
set and ``rewards`` empty: the user reads the reason, and nothing is retried in vain.

A pairwise judge needs whole groups, and the protocol does not say how large a group is, so the
URL does: ``server_url: http://judge-host:8080/flow-factory/16`` for groups of 16. Under that URL:

* ``GET …/health`` answers the service's own ``/health`` body (status 200);
* ``POST …/compute`` groups the request's samples by prompt and source image (the first
  condition image); every group must hold exactly the URL's number of samples — a fragment is
  refused, never judged as a group. The group-wise client sends one whole group per request; the
  point-wise one sends ``batch_size`` samples, which are whole groups only with the
  ``group_contiguous`` sampler and a ``batch_size`` that is a multiple of the group size. Each
  group is judged once by the service's --pairing (concurrently), waiting for admission rather than answering 503;
  the values follow the masked-value rule (:mod:`arrpo.masking`): a group with a
  masked sample scores 0.0 throughout, exact only where Flow-Factory divides by each group's own
  std (``global_std: false``, ``advantage_aggregation: sum``), which the URL states by ending in
  ``/group-std`` (``…/flow-factory/16/group-std``); under the plain URL (Flow-Factory's defaults:
  one std of the batch, or GDPO) a request with a masked sample is answered with an ``error``
  naming those settings, so the step fails. A resent request (the client's retry after a read
  timeout) joins the judging in progress or gets the answer just given;
* ``POST …/load`` and ``…/offload`` (the newer client's control calls) succeed and do nothing.

The service token, when set, comes as URL user info (``http://arrpo:TOKEN@judge-host:8080/…``;
``requests`` sends it as HTTP Basic auth) or as a bearer token. ``POST /compute`` at the root
answers how to write the URL. Every mostly invalid request is a WARNING in the service's log
(:class:`~arrpo.step_monitor.StepMonitor`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware import Middleware

from arrpo.errors import ArrpoError
from arrpo.masking import batch_std_refusal, host_values
from arrpo.server.errors import ApiError, describe_unparsable_body
from arrpo.server.gather import when_admitted
from arrpo.server.metrics import MetricsMiddleware
from arrpo.server.protocol import GroupRewardsRequest
from arrpo.step_monitor import StepMonitor, masked_causes

log = logging.getLogger("arrpo.server")

PREFIX = "/flow-factory"
_ROUTE = re.compile(r"^/flow-factory/(?P<k>\d{1,4})/(?:(?P<std>group-std)/)?(?P<action>health|compute|load|offload)/?$")
#: Most groups one request may hold (each is judged at once).
MAX_GROUPS = 64
#: Answers kept for resent requests, and for how long (seconds).
RECENT_ANSWERS = 1024
RECENT_SECONDS = 600.0


class FlowFactoryError(ArrpoError, kind="bad_input"):
    """What the request gets as ``{"rewards": [], "error": message}``."""


class ComputeRequest(BaseModel):
    """The body of Flow-Factory's ``/compute`` (fields it may add later are ignored)."""

    model_config = ConfigDict(extra="ignore")

    prompt: list[str] = Field(min_length=1)
    image: list[str] | None = None
    video: Any = None
    condition_images: list[list[str]] | None = None
    condition_videos: Any = None
    kwargs: dict[str, Any] | None = None


def presented_token(authorization: str | None) -> str | None:
    """The token in a ``Bearer`` header, or the password of a ``Basic`` one (URL user info)."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


class FlowFactoryRemote:
    """ASGI middleware answering Flow-Factory's paths (see the module); everything else passes on."""

    def __init__(self, app: Any, service: Any):
        self.app = app
        self.service = service
        self.monitor = StepMonitor(max_dead_steps=0, what="Flow-Factory request")
        self._inflight: dict[str, asyncio.Future] = {}
        self._recent: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self._warned_sizes: set[int] = set()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        match = _ROUTE.match(path)
        if match is None and path != "/compute" and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if match is None:
            status, body = (200, self._failure(self._where(scope))) if path == "/compute" else (404, self._failure(
                f"no Flow-Factory route {path!r}; use {PREFIX}/<group size>/compute and …/health"))
        elif match["action"] == "health":
            status, body = (200, self._health(int(match["k"]))) if method in ("GET", "HEAD") else (
                405, self._failure("use GET for /health"))
        elif method != "POST":
            status, body = 405, self._failure(f"use POST for /{match['action']}")
        else:
            status, body = 200, await self._post(scope, receive, int(match["k"]), match["action"],
                                                 "group" if match["std"] else "batch")
        await self._send(send, status, body)

    # ------------------------------------------------------------------ routes
    def _health(self, k: int) -> dict:
        problem = self._size_problem(k)
        if problem and k not in self._warned_sizes:
            self._warned_sizes.add(k)
            log.warning("arrpo serve: Flow-Factory health check for %s/%d: %s", PREFIX, k, problem)
        return {**self.service.health().model_dump(mode="json"), "flow_factory": {"group_size": k, "problem": problem}}

    async def _post(self, scope: dict, receive: Any, k: int, action: str, host_std: str = "batch") -> dict:
        try:
            self._authorize(scope)
            raw = await self._read(scope, receive)
            if action in ("load", "offload"):
                return {"status": "ok", "error": None, "note": "the judge model is served elsewhere; nothing to do"}
            answer = await self._compute(raw, k)
            masked = answer.get("mask", []).count(False)
            if masked and host_std == "batch":  # Flow-Factory's default std (or GDPO) spans the whole batch
                raise FlowFactoryError(batch_std_refusal(
                    "flow_factory_remote", masked, "a /compute request holds groups, never the whole batch"))
            return answer
        except FlowFactoryError as exc:
            log.info("arrpo serve: Flow-Factory request refused: %s", exc)
            return self._failure(str(exc))
        except Exception as exc:  # never a bare 500: the client would retry it blind
            log.exception("arrpo serve: Flow-Factory request failed")
            return self._failure(f"internal error: {type(exc).__name__}")

    def _authorize(self, scope: dict) -> None:
        token = self.service.config.token
        if not token:
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization")
        presented = presented_token(raw.decode("latin-1") if raw is not None else None)
        if presented is None:
            raise FlowFactoryError("unauthorized: this service needs its token; put it in the URL as user info, "
                                   "server_url: http://arrpo:<token>@host:port/flow-factory/<group size>")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise FlowFactoryError("forbidden: the token in server_url is not this service's token")

    async def _read(self, scope: dict, receive: Any) -> bytes:
        limit = self.service.config.max_body_bytes
        too_large = (f"the request body is over the {limit:,}-byte limit; lower batch_size or the image size "
                     "(or raise --max-body-mb on the service)")
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise FlowFactoryError(too_large)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise FlowFactoryError("the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise FlowFactoryError(too_large)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    # ------------------------------------------------------------------ compute
    async def _compute(self, raw: bytes, k: int) -> dict:
        problem = self._size_problem(k)
        if problem:
            raise FlowFactoryError(problem)
        digest = hashlib.sha256(b"%d:" % k + raw).hexdigest()
        self._forget_old()
        if digest in self._recent:
            return self._recent[digest][1]
        running = self._inflight.get(digest)
        if running is not None:  # the client's retry of a request still being judged
            return await asyncio.shield(running)
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight[digest] = future
        try:
            answer = await self._judge(self._parse(raw), k)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else FlowFactoryError("interrupted"))
            raise
        finally:
            self._inflight.pop(digest, None)
        future.set_result(answer)
        self._recent[digest] = (time.monotonic() + RECENT_SECONDS, answer)
        while len(self._recent) > RECENT_ANSWERS:
            self._recent.popitem(last=False)
        return answer

    def _parse(self, raw: bytes) -> ComputeRequest:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise FlowFactoryError(describe_unparsable_body(exc)) from None
        if not isinstance(data, dict):
            raise FlowFactoryError(f"the body must be a JSON object, not {type(data).__name__}")
        try:
            body = ComputeRequest.model_validate(data)
        except pydantic.ValidationError as exc:
            where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
            raise FlowFactoryError(f"malformed request: {where}") from None
        n = len(body.prompt)
        if body.video is not None or body.condition_videos is not None:
            raise FlowFactoryError("video rewards are not supported: arrpo judges images")
        if body.image is None:
            raise FlowFactoryError("no 'image' in the request: arrpo judges images (the reward's required_fields "
                                   "must include 'image')")
        if len(body.image) != n:
            raise FlowFactoryError(f"{n} prompts but {len(body.image)} images: one image per prompt")
        if body.condition_images is not None and len(body.condition_images) != n:
            raise FlowFactoryError(f"{n} prompts but {len(body.condition_images)} condition image lists")
        return body

    def _groups(self, body: ComputeRequest, k: int) -> list[tuple[str, str | None, list[int]]]:
        """(prompt, source, members) per group, in first-appearance order; every group exactly ``k``."""
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, prompt in enumerate(body.prompt):
            conditions = body.condition_images[i] if body.condition_images is not None else []
            groups.setdefault((prompt, conditions[0] if conditions else None), []).append(i)
        if len(groups) > MAX_GROUPS:
            raise FlowFactoryError(f"{len(groups)} groups in one request, over the {MAX_GROUPS} allowed; lower batch_size")
        for (prompt, _), members in groups.items():
            if len(members) != k:
                raise FlowFactoryError(
                    f"{len(members)} sample(s) of prompt {prompt[:80]!r} in this request, but the URL says groups of "
                    f"{k}: a request must hold whole groups, and a fragment is never judged as one. "
                    f"RemoteGroupwiseRewardModel sends one group per request: set the URL's number to the "
                    f"trainer's group_size. RemotePointwiseRewardModel needs sampler_type: group_contiguous and a "
                    f"batch_size that is a multiple of {k} (or use RemoteGroupwiseRewardModel)"
                )
        return [(prompt, source, members) for (prompt, source), members in groups.items()]

    async def _judge(self, body: ComputeRequest, k: int) -> dict:
        groups = self._groups(body, k)
        try:
            requests = [GroupRewardsRequest(prompt=prompt, images=[body.image[i] for i in members], source=source,  # type: ignore[index]
                                            id=f"flow-factory:{n}") for n, (prompt, source, members) in enumerate(groups)]
        except pydantic.ValidationError as exc:
            raise FlowFactoryError(f"malformed request: {exc.errors()[0]['msg']}") from None
        outcomes = await asyncio.gather(
            *(when_admitted(lambda r=r: self.service.group_rewards(r)) for r in requests), return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if isinstance(failure, ApiError):
            raise FlowFactoryError(f"{failure.code}: {failure.message}")
        if isinstance(failure, ArrpoError):
            raise FlowFactoryError(f"{failure.kind}: {failure}")
        if failure is not None:
            log.error("arrpo serve: Flow-Factory request failed", exc_info=failure)
            raise FlowFactoryError(f"internal error: {type(failure).__name__}")
        rewards = [0.0] * len(body.prompt)
        mask = [False] * len(body.prompt)
        causes: dict[str, int] = {}
        for (_, _, members), response in zip(groups, outcomes, strict=True):
            values = host_values(response.rewards, response.advantages, response.mask)
            for position, i in enumerate(members):
                rewards[i], mask[i] = values.rewards[position], values.mask[position]
            masked_here = values.mask.count(False)
            if masked_here:
                cause = next(iter(masked_causes(response)), "a sample of the group is masked")
                causes[cause] = causes.get(cause, 0) + masked_here
        self.monitor.step(len(rewards), mask.count(False), causes)
        return {"rewards": rewards, "error": None, "mask": mask}

    # ------------------------------------------------------------------ helpers
    def _size_problem(self, k: int) -> str | None:
        limit = self.service.config.max_images
        if k < 2:
            return (f"groups of {k} cannot be judged pairwise; sample at least 2 per prompt (and leave arrpo out "
                    "of eval_reward_args when evaluation samples one per prompt)")
        if k > limit:
            return f"groups of {k} are over this service's --max-images {limit}; restart it with --max-images {k}"
        return None

    @staticmethod
    def _where(scope: dict) -> str:
        host = dict(scope.get("headers") or []).get(b"host", b"host:port").decode("latin-1")
        return (f"arrpo serve answers Flow-Factory under {PREFIX}/<group size>: set server_url: "
                f"http://{host}{PREFIX}/<k>, k = the trainer's group_size (e.g. {PREFIX}/16)")

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._recent and next(iter(self._recent.values()))[0] < now:
            self._recent.popitem(last=False)

    @staticmethod
    def _failure(message: str) -> dict:
        return {"rewards": [], "error": message}

    @staticmethod
    async def _send(send: Any, status: int, body: dict) -> None:
        payload = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def mount_flow_factory(app: Any, service: Any) -> None:
    """Answer Flow-Factory's paths in ``app``: inside the metrics middleware (so they are counted),
    before the token and body guards of arrpo's own protocol (this protocol has its own)."""
    after = next((i + 1 for i, m in enumerate(app.user_middleware) if m.cls is MetricsMiddleware), 0)
    app.user_middleware.insert(after, Middleware(FlowFactoryRemote, service=service))
