"""Groups the service assembles itself, one request per member: ``POST /v1/group_member``.

Some hosts score one sample per call, in several processes, in no particular order — verl-omni's
``VisualRewardManager`` calls a reward function once per sample in whichever reward worker a
rollout picked. No client process ever holds a whole group there; every call reaches the service,
so the service gathers the group:

* every member names the group's key, its size and the same options; a member whose options
  differ from the group's is refused (409 ``group_conflict``);
* members are told apart by their image's bytes: a second copy of an image already in the group
  (a resent request, verl's padding duplicates) is answered with that member's value and does not
  count, before or after the group is judged (judged groups are remembered for a while);
* when ``group_size`` distinct images are in, the group is judged once — by its ``pairing``, or each
  member against the ``anchor`` — waiting for admission rather than answering 503 (the members'
  requests are already waiting), and each request gets its own member's value with the
  masked-value rule of :mod:`arrpo.masking` applied to the whole group (the hosts
  that use this cannot see masks);
* a group not complete ``wait`` seconds after its first member is never judged as a fragment:
  every waiting member, and any late one, is answered 504 ``group_incomplete`` naming how many
  arrived.

Every judged group counts in a :class:`~arrpo.step_monitor.StepMonitor` (warnings only),
so a mostly invalid group is a WARNING in the service's log with its share and commonest cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI

from arrpo.masking import host_values
from arrpo.rewards import group_rewards
from arrpo.server.errors import ApiError
from arrpo.server.inputs import decode_base64_field
from arrpo.server.protocol import (
    CompareRequest,
    GroupMemberRequest,
    GroupMemberResponse,
    GroupRewardsRequest,
)
from arrpo.step_monitor import StepMonitor, cause_of, masked_causes

log = logging.getLogger("arrpo.server")

T = TypeVar("T")

#: Judged groups remembered (for late copies of members), and for how long; a failed group is
#: remembered for its own wait.
REMEMBERED_GROUPS = 4096
REMEMBER_SECONDS = 900.0
#: Most groups gathered at once (with the bytes their members hold: 32 x --max-body-mb).
MAX_OPEN_GROUPS = 65536
#: Longest a complete group waits for admission before its members are answered 503.
ADMISSION_WAIT = 600.0


async def when_admitted(call: Callable[[], Awaitable[T]], wait: float = ADMISSION_WAIT) -> T:
    """``call()``, tried again while the service answers it 503 ``saturated`` (up to ``wait`` s).

    For requests the service holds itself (gathered groups, protocols whose clients cannot retry
    after ``Retry-After``): waiting here costs no client a retry and never draws a 503.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return await call()
        except ApiError as exc:
            left = deadline - time.monotonic()
            if exc.status != 503 or exc.code != "saturated" or left <= 0:
                raise
            await asyncio.sleep(min(0.25, left))


@dataclass
class MemberValues:
    """A judged group as its members are answered."""

    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    counts: tuple[int, int, int, int]  # pairs, valid, tie, invalid
    notes: list[str]
    cause: str | None


@dataclass
class _Group:
    key: str
    spec: str
    size: int
    first: GroupMemberRequest
    deadline: float
    members: dict[str, int] = field(default_factory=dict)  # image sha256 -> index
    images: list[str] = field(default_factory=list)  # base64, in index order
    held: int = 0
    done: asyncio.Future | None = None
    timer: asyncio.TimerHandle | None = None


def _spec(body: GroupMemberRequest) -> str:
    """What every member of a group must agree on (its options; the image and wait excluded)."""
    return json.dumps(body.model_dump(exclude={"image", "wait", "id"}, mode="json"), sort_keys=True)


class GroupGatherer:
    """The open, judged and failed groups of one service (lives on its event loop)."""

    def __init__(self, service: Any, *, max_held_bytes: int, monitor: StepMonitor | None = None):
        self.service = service
        self.max_held_bytes = max_held_bytes
        self.monitor = monitor or StepMonitor(max_dead_steps=0, what="gathered group")
        self.open: dict[str, _Group] = {}
        self.finished: OrderedDict[str, tuple[float, _Group]] = OrderedDict()
        self.held = 0

    # ------------------------------------------------------------------ members
    async def join(self, body: GroupMemberRequest) -> GroupMemberResponse:
        """Add one member; answer it with its value once its group is judged."""
        limit = self.service.config.max_images
        if body.group_size > limit:
            raise ApiError(413, "too_many_images",
                           f"group_size: {body.group_size} members, over the limit of {limit} per group "
                           "(start the service with a larger --max-images)")
        digest = hashlib.sha256(decode_base64_field("image", body.image)).hexdigest()
        self._forget_old()
        remembered = self.finished.get(body.group)
        if remembered is not None:
            group = remembered[1]
            if digest in group.members and group.spec == _spec(body):  # a copy of a member: its value
                return self._answer(body.group, group, digest, await asyncio.shield(group.done), duplicate=True)
            if group.done.done() and group.done.exception() is not None:
                raise group.done.exception()  # a late member of a failed group gets the group's error
        group = self.open.get(body.group)
        if group is None:
            if len(self.open) >= MAX_OPEN_GROUPS:
                raise ApiError(503, "saturated", f"the service is gathering {len(self.open)} groups, as many as it "
                               "may; retry shortly", {"Retry-After": "5"})
            group = self._open(body)
        elif group.spec != _spec(body):
            raise ApiError(409, "group_conflict",
                           f"group {body.group[:80]!r}: this member's group_size, prompt, source, anchor or "
                           "options differ from the group's first member; every member must send the same")
        duplicate = digest in group.members
        if not duplicate:
            if self.held + len(body.image) > self.max_held_bytes:
                raise ApiError(503, "saturated", "the service holds as many waiting group members as it may; "
                               "retry shortly", {"Retry-After": "5"})
            group.members[digest] = len(group.images)
            group.images.append(body.image)
            group.held += len(body.image)
            self.held += len(body.image)
            if len(group.images) == group.size:
                self._close(group)
                asyncio.get_running_loop().create_task(self._judge(group))
        values = await asyncio.shield(group.done)
        return self._answer(body.group, group, digest, values, duplicate=duplicate)

    def _open(self, body: GroupMemberRequest) -> _Group:
        loop = asyncio.get_running_loop()
        group = _Group(body.group, _spec(body), body.group_size, body, time.monotonic() + body.wait)
        group.done = loop.create_future()
        group.done.add_done_callback(lambda f: f.cancelled() or f.exception())  # no 'never retrieved'
        group.timer = loop.call_later(body.wait, self._expire, group)
        self.open[body.group] = group
        return group

    def _close(self, group: _Group, remember: float = REMEMBER_SECONDS) -> None:
        """The group is complete or failed: no member joins it any more; it is remembered for
        ``remember`` seconds (its copies and late members are answered from it)."""
        self.open.pop(group.key, None)
        if group.timer is not None:
            group.timer.cancel()
        self.finished[group.key] = (time.monotonic() + remember, group)
        self.finished.move_to_end(group.key)
        while len(self.finished) > REMEMBERED_GROUPS:
            self.finished.popitem(last=False)

    def _release(self, group: _Group) -> None:
        self.held -= group.held
        group.held = 0
        group.images = []

    def _expire(self, group: _Group) -> None:
        if self.open.get(group.key) is not group:
            return
        self._close(group, remember=group.first.wait)
        self._release(group)
        error = ApiError(
            504, "group_incomplete",
            f"group {group.key[:80]!r}: {len(group.members)} of {group.size} members arrived within "
            f"{group.first.wait:.0f} s; a fragment is never judged as a group. Check that group_size is the "
            "trainer's samples per prompt for this call (validation often samples fewer) and that every "
            "sample of the group is scored",
        )
        log.warning("arrpo serve: %s", error.message)
        group.done.set_exception(error)  # type: ignore[union-attr]

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key in [key for key, (until, _) in self.finished.items() if until < now]:
            del self.finished[key]

    # ------------------------------------------------------------------ judging
    async def _judge(self, group: _Group) -> None:
        try:
            values = await (self._against_anchor(group) if group.first.anchor is not None else self._all_pairs(group))
        except BaseException as exc:  # every member gets the error, as its own answer
            group.done.set_exception(exc)  # type: ignore[union-attr]
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._release(group)
        masked = sum(not m for m in values.mask)
        self.monitor.step(group.size, masked, {values.cause: masked} if masked and values.cause else {})
        group.done.set_result(values)  # type: ignore[union-attr]

    def _options(self, body: GroupMemberRequest) -> dict[str, Any]:
        return body.model_dump(include={"prompt", "source", "task", "order", "rubric", "rubric_inline"},
                               exclude_none=True)

    async def _all_pairs(self, group: _Group) -> MemberValues:
        body = group.first
        request = GroupRewardsRequest(
            **self._options(body), images=group.images, preset=body.preset, win=body.win, lose=body.lose,
            scale=body.scale, on_bad_verdict=body.on_bad_verdict, id=f"gathered:{group.key[:200]}",
            pairing=body.pairing, tournament_rounds=body.tournament_rounds, seed=body.seed,
        )  # the service's group_rewards sizes admission by the pairing (its default when none is named)
        response = await when_admitted(lambda: self.service.group_rewards(request))
        causes = masked_causes(response)
        return self._values(response.rewards, response.advantages, response.mask,
                            (response.n_pairs, response.n_valid, response.n_tie, response.n_invalid),
                            list(response.notes), causes)

    async def _against_anchor(self, group: _Group) -> MemberValues:
        """Each member judged against the anchor, mapped as a group of the members plus the anchor
        (each member's one comparison is with the anchor), so the preset's rules apply unchanged."""
        body = group.first
        n = len(group.images)

        async def one(k: int) -> Any:
            request = CompareRequest(**self._options(body), image_a=group.images[k], image_b=body.anchor,
                                     id=f"gathered:{group.key[:200]}:{k}")
            return (await when_admitted(lambda: self.service.compare(request))).verdict

        verdicts = await asyncio.gather(*(one(k) for k in range(n)))
        outcome = group_rewards(n + 1, [(k, n) for k in range(n)], [v.winner for v in verdicts],
                                preset=body.preset, win=body.win, lose=body.lose, scale=body.scale,
                                on_bad_verdict=body.on_bad_verdict)
        reasons = Counter("tie" if v.winner == "tie" else f"invalid verdict: {v.invalid_reason or '?'}"
                          for v in verdicts if v.winner not in ("A", "B"))
        masked = sum(not m for m in outcome.mask[:n])
        causes = Counter({cause_of(reasons.most_common(1)[0][0] if reasons else "masked"): masked}) if masked else Counter()
        counts = (outcome.n_pairs, outcome.n_valid, outcome.n_tie, outcome.n_invalid)
        return self._values(outcome.rewards[:n], outcome.advantages[:n], outcome.mask[:n], counts,
                            list(outcome.notes), causes)

    @staticmethod
    def _values(rewards: list[float], advantages: list[float], mask: list[bool], counts: tuple,
                notes: list[str], causes: Counter) -> MemberValues:
        values = host_values(rewards, advantages, mask)
        cause = causes.most_common(1)[0][0] if causes else None
        if values.promoted:
            notes = [*notes, f"{values.promoted} valid member(s) masked with their group: a host that cannot "
                     "see masks must get one value for the whole group"]
        return MemberValues(values.rewards, values.advantages, values.mask, counts, notes, cause)

    @staticmethod
    def _answer(key: str, group: _Group, digest: str, values: MemberValues, *, duplicate: bool
                ) -> GroupMemberResponse:
        index = group.members[digest]
        masked = not any(values.mask)
        return GroupMemberResponse(
            group=key, index=index, group_size=group.size,
            duplicate=duplicate,
            reward=values.rewards[index], advantage=values.advantages[index], mask=values.mask[index],
            masked=masked, cause=None if values.mask[index] else (values.cause or "masked"),
            n_pairs=values.counts[0], n_valid=values.counts[1], n_tie=values.counts[2],
            n_invalid=values.counts[3], notes=values.notes,
        )


def mount_gathering(app: FastAPI, service: Any, dependencies: list) -> GroupGatherer:
    """Add ``POST /v1/group_member`` to ``app`` (``dependencies``: the token check)."""
    gatherer = GroupGatherer(service, max_held_bytes=32 * service.config.max_body_bytes)

    @app.post("/v1/group_member", response_model=GroupMemberResponse, dependencies=dependencies,
              responses={409: {"description": "Options differ from the group's."},
                         504: {"description": "The group was not complete within its wait."}})
    async def group_member(body: GroupMemberRequest) -> GroupMemberResponse:
        """One member of a group the service assembles; answered with its value once the group is judged."""
        return await gatherer.join(body)

    app.state.gatherer = gatherer
    return gatherer
