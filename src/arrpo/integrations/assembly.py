"""Whole groups out of a trainer's reward calls: across ranks, and across the calls of one epoch.

A trainer hands its samples to the reward in pieces. Flow-GRPO's samplers spread a prompt's k
copies over all ranks (one call per rank per batch, concurrently) and, with the newer sampler,
over several batches of an epoch; it reads the rewards only after sampling every batch. A
pairwise judge needs each group whole, so :class:`GroupAssembler`:

1. takes a ticket as each call starts and, in ticket order, all-gathers the call's samples with
   the other ranks (:mod:`arrpo.integrations.exchange`);
2. adds them to the open groups — by prompt and source image, a group complete at
   ``samples_per_prompt`` samples; without it, a group is what one call (all ranks) holds;
3. has every group completed by this call judged once, by an owner rank that keeps the group's
   images (the ranks that judge, and how many calls each has in flight, are planned from the
   service's capacity: :func:`arrpo.integrations.service.plan_judging`);
4. shares the outcomes, so every rank records its own samples' values, and returns a
   :class:`Pending` for the call — read it when the rewards are needed (Flow-GRPO: after sampling).

Which call of one rank pairs with which call of another follows the order the threads take their
tickets (:mod:`arrpo.integrations.exchange`); a group complete at k samples does not depend on it.
A group is never judged as a fragment. Reading a :class:`Pending` whose groups are still open
waits while calls come in; when none has started or finished for ``idle_timeout`` seconds the
open groups are fragments: they are dropped and :class:`RewardGroupError` names them, on every
rank. ``group_timeout`` bounds any wait. A failed request or an unjudgeable group raises in the
call that completed the group, on every rank, and again when a :class:`Pending` holding one of
its samples is read (``on_failure="raise"``), or is masked and counted (``"mask"``).

Each *window* — the calls until no group is left open, e.g. Flow-GRPO's sampling epoch — is one
step for the :class:`~arrpo.step_monitor.StepMonitor` (or, for hosts calling once per
group, each call adds to the monitor's running step).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from arrpo._sync import run_sync
from arrpo.client import RewardServiceError
from arrpo.convert import image_bytes, split_images
from arrpo.errors import ArrpoError
from arrpo.integrations.exchange import Exchange
from arrpo.integrations.judging import GroupJudge, GroupRequest, Outcome
from arrpo.integrations.service import JudgingPlan, plan_judging, process_gate
from arrpo.masking import check_host_std, std_preserving_fill
from arrpo.step_monitor import StepMonitor
from arrpo.vocab import HostStd

log = logging.getLogger("arrpo.integrations")

FailurePolicy = Literal["raise", "mask"]


class RewardGroupError(ArrpoError, ValueError, kind="bad_input"):
    """Samples that cannot be judged as asked: a single-sample or fragmented group, a group over
    the service's image limit, a sample without an anchor."""


def too_large(n: int, limit: int) -> str:
    return (
        f"a group of {n} images is over the service's limit of {limit} per request; lower the "
        "number of samples per prompt, raise --max-images on the service (and max_group_images "
        "here), or pass split_large_groups=True to judge near-equal sub-groups separately"
    )


@dataclass
class BatchScores:
    """Per-sample values in this call's sample order, with what stands behind them."""

    scores: list[float]
    rewards: list[float]
    advantages: list[float]
    mask: list[bool]
    groups: list[list[int]]
    masked_samples: int = 0
    masked_groups: int = 0
    failed_groups: int = 0
    unscorable_groups: int = 0
    promoted_samples: int = 0  # valid samples masked with their group (the masked-value rule)
    verdicts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unjudged: list[int] = field(default_factory=list)  # samples no verdict could be asked for
    filled: bool = False  # masked samples carry the std-preserving fill of their batch (arrpo.masking)

    def info(self) -> dict[str, Any]:
        return {
            "rewards": self.rewards, "advantages": self.advantages, "mask": self.mask, "groups": self.groups,
            "masked_samples": self.masked_samples, "unjudged": self.unjudged, "masked_groups": self.masked_groups,
            "failed_groups": self.failed_groups, "unscorable_groups": self.unscorable_groups,
            "promoted_samples": self.promoted_samples, "verdicts": self.verdicts, "errors": self.errors,
            "filled": self.filled,
        }


@dataclass
class _Open:
    """A group being assembled. ``members``: (rank, ticket, index) of each sample, arrival order;
    ``images`` only on the owner rank."""

    serial: int
    prompt: str
    source_key: str | None
    owner: int
    members: list[tuple[int, int, int]] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)


@dataclass
class _Scope:
    """The host's std scope (Flow-GRPO: one epoch, all ranks): every completed group's valid values
    and masked count, identical on every rank; ``fill`` (reward, advantage) once sealed."""

    rewards: list[float] = field(default_factory=list)
    advantages: list[float] = field(default_factory=list)
    masked: int = 0
    fill: tuple[float, float] | None = None

    def add(self, outcome: Outcome) -> None:
        for reward, advantage, valid in zip(outcome.rewards, outcome.advantages, outcome.mask, strict=True):
            if valid:
                self.rewards.append(reward)
                self.advantages.append(advantage)
            else:
                self.masked += 1

    def seal(self) -> tuple[float, float]:
        if self.fill is None:  # the host's np.std: population std
            self.fill = (std_preserving_fill(self.rewards, self.masked), std_preserving_fill(self.advantages, self.masked))
        return self.fill


@dataclass
class _Done:
    """A judged group as this rank keeps it (for its own samples)."""

    outcome: Outcome
    members: list[tuple[int, int, int]]
    prompt: str
    scope: _Scope | None = None


class GroupAssembler:
    """Assemble, judge and hand back whole groups (see the module docstring).

    Args:
        judge: sends the groups. exchange: the ranks (``LocalExchange`` for one process).
        samples_per_prompt: the trainer's k; None: a group is one call's samples of a prompt.
        group_size: fixed contiguous chunks of one call instead of grouping by prompt.
        on_failure: ``raise`` or ``mask``. monitor: the dead-step monitor.
        window_steps: each window is one monitor step (Flow-GRPO); else every call adds to it.
        ordered: calls exchange in ticket order (needed when several ranks exchange).
        independent_ranks: processes judging against the same service without this exchange.
        host_std: ``batch``: the host divides by one std of all samples given before it reads any
            (Flow-GRPO's ``global_std``); masked samples then get the std-preserving fill of that
            scope, read once no call has come in for ``idle_timeout`` seconds. ``group``: 0.0.
    """

    def __init__(self, judge: GroupJudge, exchange: Exchange, monitor: StepMonitor, *,
                 samples_per_prompt: int | None = None, group_size: int | None = None,
                 on_failure: FailurePolicy = "raise", window_steps: bool = False, ordered: bool = True,
                 idle_timeout: float = 10.0, group_timeout: float = 3600.0, independent_ranks: int = 1,
                 host_std: HostStd = "group"):
        self.judge = judge
        self.exchange = exchange
        self.monitor = monitor
        self.samples_per_prompt = samples_per_prompt
        self.group_size = group_size
        self.on_failure = on_failure
        self.window_steps = window_steps
        self.ordered = ordered
        self.idle_timeout = idle_timeout
        self.group_timeout = group_timeout
        self.independent_ranks = independent_ranks
        self.host_std = check_host_std(host_std)
        self._scope = _Scope()
        self._unread: set[int] = set()  # calls exchanged, values not read yet (a new scope starts when none)
        self.stats: Counter[str] = Counter()
        self._state = threading.Condition()
        self._open: dict[tuple, _Open] = {}
        self._serial = 0
        self._done: dict[int, _Done] = {}  # judged groups holding samples of this rank
        self._where: dict[tuple[int, int], int] = {}  # (ticket, index) -> group serial
        self._refs: dict[int, int] = {}  # group serial -> local samples not yet read
        self._in_flight = 0
        self._last_activity = time.monotonic()
        self._window = Counter()  # samples, masked; causes in _window_causes
        self._window_causes: Counter = Counter()
        self._warned_contention = False

    # ------------------------------------------------------------------ calls
    def submit(self, images: Any, prompts: list[str], sources: list[Any] | None = None) -> Pending:
        """Add one call's samples (blocking while its completed groups are judged)."""
        items = split_images(images)
        if len(items) != len(prompts):
            raise ValueError(f"{len(items)} images but {len(prompts)} prompts")
        if sources is not None and len(sources) != len(items):
            raise ValueError(f"{len(items)} images but {len(sources)} source images")
        encoded = [image_bytes(im) for im in items]
        source_bytes = [image_bytes(s) for s in sources] if sources is not None else None
        ticket = self.exchange.ticket()
        with self._state:
            self._in_flight += 1
            self._last_activity = time.monotonic()
        try:
            with self.exchange.turn(ticket) if self.ordered else contextlib.nullcontext():
                self._exchange(ticket, [str(p) for p in prompts], encoded, source_bytes)
        except BaseException:
            with self._state:  # this call raised: nobody will read its samples' values
                self._unread.discard(ticket)
                for place in [p for p in self._where if p[0] == ticket]:
                    serial = self._where.pop(place)
                    self._refs[serial] -= 1
                    if self._refs[serial] <= 0:
                        del self._refs[serial], self._done[serial]
            raise
        finally:
            with self._state:
                self._in_flight -= 1
                self._last_activity = time.monotonic()
                self._state.notify_all()
        return Pending(self, ticket, len(items))

    def _exchange(self, ticket: int, prompts: list[str], encoded: list[bytes], sources: list[bytes] | None) -> None:
        keys = [hashlib.sha256(s).hexdigest() for s in sources] if sources is not None else [None] * len(prompts)
        facts = self.judge.facts
        try:
            limit, capacity, problem = run_sync(facts.image_limit()), run_sync(facts.capacity()), None
        except RewardServiceError as exc:  # shared, so that every rank raises it
            limit, capacity, problem = 0, 0, (exc.status, exc.code, exc.message)
        payload = {
            "samples": list(zip(prompts, keys, encoded, strict=True)),
            "sources": dict(zip(keys, sources, strict=True)) if sources is not None else {},
            "limit": limit, "capacity": capacity, "problem": problem,
        }
        with self._state:
            payload["fresh"], payload["sealed"] = not self._unread, self._scope.fill is not None
        gathered = self.exchange.all_gather(payload)
        self._next_scope(ticket, gathered)
        problems = [part["problem"] for part in gathered if part["problem"]]
        if problems and self.on_failure == "raise":
            raise RewardServiceError(*problems[0])
        # an unreadable /health under on_failure="mask": the groups completed now fail unsent
        limit = min(part["limit"] for part in gathered) if not problems else 2
        capacity = min(part["capacity"] for part in gathered) if not problems else 1
        with self._state:
            completed = self._deposit(ticket, gathered, limit, capacity, unsent=bool(problems))
        mine = {serial: request for serial, (group, request, why) in completed.items()
                if request is not None}
        gate_share = self._plan(capacity, max((len(g.members) for g, _, _ in completed.values()), default=2)).share
        outcomes = run_sync(self.judge.judge(mine, process_gate(facts.url, gate_share), limit)) if mine else {}
        for serial, (group, _, why) in completed.items():
            if group.owner != self.exchange.rank or serial in outcomes:
                continue
            if problems:
                status, code, _ = problems[0]
                outcomes[serial] = Outcome.masked(len(group.members), f"service answered {status} ({code})",
                                                  error=problems[0])
            else:
                outcomes[serial] = Outcome.masked(len(group.members), why or "unjudged", unscorable=why)
        shared: dict[int, Outcome] = {}
        for part in self.exchange.all_gather(outcomes):
            shared.update(part)
        with self._state:
            monitor = self._record(completed, shared)
            self._state.notify_all()
        self._fail_on(completed, shared, monitor)

    def _next_scope(self, ticket: int, gathered: list[dict]) -> None:
        """Start a new std scope when every rank had read all its calls (the host's next epoch);
        refuse, on every rank, a call joining a scope whose masked samples were already handed out."""
        with self._state:
            self._unread.add(ticket)
            if any(part["fresh"] for part in gathered):
                self._scope = _Scope()
                return
        if self.host_std == "batch" and any(part["sealed"] for part in gathered):
            raise RewardGroupError(
                "a reward call came in after masked samples of the same epoch had their values read: host_std="
                "'batch' fills masked samples from every reward the host divides by one std, so all reward calls "
                "of an epoch must start before its rewards are read (Flow-GRPO: use with_arrpo, whose values are "
                f"read after sampling, and an idle_timeout ({self.idle_timeout:g} s) longer than the gap between "
                "two reward calls), or set config.sample.global_std = False and host_std='group'")

    # --------------------------------------------------------------- planning
    def _plan(self, capacity: int, largest: int) -> JudgingPlan:
        coordinated = self.exchange.world_size > 1
        ranks = self.exchange.world_size if coordinated else self.independent_ranks
        return plan_judging(capacity, self.judge.units(largest), ranks, coordinated=coordinated)

    def _deposit(self, ticket: int, gathered: list[dict], limit: int, capacity: int, unsent: bool = False
                 ) -> dict[int, tuple[_Open, GroupRequest | None, str | None]]:
        """Add every rank's samples to the open groups; the groups this call completes, each with
        the request to send (owner only, unless ``unsent``) or why it cannot be judged. Identical
        on every rank."""
        sources: dict[str, bytes] = {}
        for part in gathered:
            sources.update(part["sources"])
        arrivals = [(rank, index, *sample) for rank, part in enumerate(gathered)
                    for index, sample in enumerate(part["samples"])]
        k = self.samples_per_prompt
        largest = k or max(2, self._largest_call_group(arrivals))
        plan = self._plan(capacity, largest)
        owners = plan.judges if self.exchange.world_size > 1 else 1  # independent ranks judge their own
        completed: dict[int, tuple[_Open, GroupRequest | None, str | None]] = {}
        chunked = self._chunks(arrivals) if self.group_size else None
        for position, (rank, index, prompt, key, png) in enumerate(arrivals):
            if chunked is not None:
                group_key: tuple = ("chunk", ticket, chunked[position])
            elif k:
                group_key = ("k", prompt, key)
            else:
                group_key = ("call", ticket, prompt, key)
            group = self._open.get(group_key)
            if group is None:
                group = self._open[group_key] = _Open(self._serial, prompt, key, self._serial % owners)
                self._serial += 1
            group.members.append((rank, ticket, index))
            if group.owner == self.exchange.rank:
                group.images.append(png)
            if k and len(group.members) == k:
                completed[group.serial] = (self._open.pop(group_key), None, None)
        if not k:  # one call's groups are complete at its end
            for group_key in [gk for gk in self._open if gk[1] == ticket]:
                group = self._open.pop(group_key)
                completed[group.serial] = (group, None, None)
        sizes = sorted({len(g.members) for g, _, _ in completed.values()})
        for serial, (group, _, _) in list(completed.items()):
            why = None if unsent else self._unscorable(group, limit, sizes)
            request = None
            if why is None and group.owner == self.exchange.rank and not unsent:
                request = GroupRequest(group.prompt, group.images, sources.get(group.source_key) if group.source_key else None)
            completed[serial] = (group, request, why)
        if plan.contended and not self._warned_contention:
            self._warned_contention = True
            log.warning("arrpo reward: %d ranks judge groups of %d judge calls each, but the service admits %d at "
                        "once: some requests will be answered 503 and retried; start it with --max-pending %d or more",
                        plan.judges, self.judge.units(largest), capacity, plan.needed)
        return completed

    def _largest_call_group(self, arrivals: list) -> int:
        counts = Counter((prompt, key) for _, _, prompt, key, _ in arrivals)
        return max(counts.values(), default=2)

    def _chunks(self, arrivals: list) -> list[int]:
        """Fixed contiguous chunks of ``group_size`` (one process), each of one prompt and source."""
        size = self.group_size
        if len(arrivals) % size:
            raise RewardGroupError(f"a batch of {len(arrivals)} samples is not a multiple of group_size {size}")
        chunks = [position // size for position in range(len(arrivals))]
        for start in range(0, len(arrivals), size):
            keys = {(a[2], a[3]) for a in arrivals[start:start + size]}
            if len(keys) > 1:
                raise RewardGroupError(
                    f"samples {start}..{start + size - 1} (one group of group_size {size}) do not share one "
                    f"prompt and source image: {sorted(p for p, _ in keys)[:3]}; each run of {size} samples "
                    "must be one prompt's group, in a row"
                )
        return chunks

    def _unscorable(self, group: _Open, limit: int, sizes: list[int]) -> str | None:
        n, prompt = len(group.members), group.prompt[:80]
        if n < 2:
            return (f"prompt {prompt!r} has a single sample; a pairwise judge needs its whole group "
                    "(check that every rank calls the reward with all of its samples, or use mode='pointwise')")
        if n > limit and not self.judge.split_large_groups:
            return too_large(n, limit) + f" (prompt {prompt!r})"
        if not self.samples_per_prompt and self.exchange.world_size > 1 and len(sizes) > 1 and n < sizes[-1]:
            return (f"groups gathered from {self.exchange.world_size} ranks have unequal sizes {sizes}: prompt "
                    f"{prompt!r} with {n} is a fragment; set samples_per_prompt to the trainer's k")
        return None

    # ---------------------------------------------------------------- results
    def _record(self, completed: dict, shared: dict[int, Outcome]) -> tuple[str, tuple] | None:
        """Keep this rank's samples' outcomes and count the window. Returns the monitor's part:
        ``("step", counts)`` when a window ends (nothing left open), ``("observe", counts)`` for
        hosts calling once per group, or None."""
        me = self.exchange.rank
        for serial, (group, _, _) in completed.items():
            outcome = shared[serial]
            self._window["samples"] += len(group.members)
            self._window["masked"] += sum(not m for m in outcome.mask)
            self._window_causes.update(outcome.causes)
            self.stats["groups"] += 1
            self.stats["masked_groups"] += int(not any(outcome.mask))
            self.stats["failed_groups"] += int(outcome.error is not None)
            self.stats["unscorable_groups"] += int(outcome.unscorable is not None)
            local = [(ticket, index) for rank, ticket, index in group.members if rank == me]
            self._scope.add(outcome)
            if local:
                self._done[serial] = _Done(outcome, group.members, group.prompt, self._scope)
                self._refs[serial] = len(local)
                for place in local:
                    self._where[place] = serial
        if not self._window["samples"] or (self.window_steps and self._open):
            return None
        counts = (self._window["samples"], self._window["masked"], dict(self._window_causes))
        self._window, self._window_causes = Counter(), Counter()
        return ("step" if self.window_steps else "observe", counts)

    def _fail_on(self, completed: dict, shared: dict[int, Outcome], monitor: tuple[str, tuple] | None) -> None:
        """Raise, on every rank alike, what this call's groups say must stop the step."""
        if monitor is not None:
            kind, counts = monitor
            (self.monitor.step if kind == "step" else self.monitor.observe)(*counts)
        if self.on_failure != "raise":
            return
        bad = [s for s in sorted(completed) if shared[s].unscorable is not None]
        if bad:
            raise RewardGroupError(f"{len(bad)} of {len(completed)} group(s) cannot be judged; first: "
                                   f"{shared[bad[0]].unscorable}")
        failed = [s for s in sorted(completed) if shared[s].error is not None]
        if failed:
            status, code, message = shared[failed[0]].error  # type: ignore[misc]
            group = completed[failed[0]][0]
            raise RewardServiceError(status, code, f"{message} [{len(failed)} of {len(completed)} group(s) failed; "
                                                   f"first: prompt {group.prompt[:80]!r}, {len(group.members)} images]")

    def resolve(self, ticket: int, n: int, idle_timeout: float | None = None) -> BatchScores:
        """The values of call ``ticket``'s ``n`` samples, once its groups are judged. A group still
        open when no call has been in flight for ``idle_timeout`` seconds (default: the
        assembler's) is a fragment."""
        started = time.monotonic()
        idle_limit = self.idle_timeout if idle_timeout is None else idle_timeout
        with self._state:
            while True:
                if all((ticket, i) in self._where for i in range(n)):
                    if self._needs_scope(ticket, n, idle_limit):
                        self._state.wait(timeout=0.05)
                        continue
                    return self._scores(ticket, n)
                idle = time.monotonic() - self._last_activity
                timed_out = time.monotonic() - started > self.group_timeout
                if (self._in_flight == 0 and idle >= idle_limit) or timed_out:
                    had_open = bool(self._open)
                    error = self._fragments(ticket, timed_out)
                    if self.on_failure == "raise" or not had_open:
                        raise error
                    continue  # the fragments were masked
                self._state.wait(timeout=0.05)

    def _needs_scope(self, ticket: int, n: int, idle_limit: float) -> bool:
        """Under ``host_std="batch"``, whether a masked sample of this call still waits for its std
        scope to close: no group open and no call in flight for ``idle_limit`` seconds, or a newer
        scope begun. Seals the scope when it is closed."""
        if self.host_std != "batch":
            return False
        scopes = {id(done.scope): done.scope for i in range(n)
                  for done in [self._done[self._where[(ticket, i)]]] if not all(done.outcome.mask)}
        for scope in scopes.values():
            if scope is None or scope.fill is not None:
                continue
            quiet = (not self._open and self._in_flight == 0
                     and time.monotonic() - self._last_activity >= idle_limit)
            if scope is self._scope and not quiet:
                return True
            scope.seal()
        return False

    def read(self, ticket: int) -> None:
        """Call ``ticket``'s values were read (once every call is, the next call starts a new scope)."""
        with self._state:
            self._unread.discard(ticket)

    def _fragments(self, ticket: int, timed_out: bool = False) -> RewardGroupError:
        """Take every open group (the epoch's fragments) out and say which they were; under
        ``on_failure="mask"`` their samples are recorded as masked (never judged)."""
        k = self.samples_per_prompt
        groups, self._open = list(self._open.values()), {}
        self._window, self._window_causes = Counter(), Counter()
        if self.on_failure == "mask":
            for group in groups:
                why = f"prompt {group.prompt[:80]!r}: {len(group.members)} of {k} samples (a fragment)"
                self._record({group.serial: (group, None, why)},
                             {group.serial: Outcome.masked(len(group.members), why, unscorable=why)})
            self._window, self._window_causes = Counter(), Counter()
        first = next((g for g in groups if any(t == ticket for _, t, _ in g.members)), groups[0] if groups else None)
        if first is None:
            return RewardGroupError("no samples of this reward call were recorded")
        why = f"waited {self.group_timeout:.0f} s" if timed_out else "no reward call is left to complete it"
        return RewardGroupError(
            f"{len(groups)} group(s) incomplete when their rewards were read ({why}); first: prompt "
            f"{first.prompt[:80]!r} has {len(first.members)} of {k} samples. Read the rewards only after "
            f"every batch of the epoch was given to the reward, and check that samples_per_prompt={k} is the "
            "trainer's samples per prompt (Flow-GRPO: config.sample.num_image_per_prompt)"
        )

    def _scores(self, ticket: int, n: int) -> BatchScores:
        out = BatchScores([0.0] * n, [0.0] * n, [0.0] * n, [False] * n, [])
        serials: dict[int, list[int]] = {}
        for i in range(n):
            serials.setdefault(self._where.pop((ticket, i)), []).append(i)
        failure: Exception | None = None
        for serial, local in serials.items():
            done = self._done[serial]
            outcome = done.outcome
            positions = {member: pos for pos, member in enumerate(done.members)}
            fill = done.scope.fill if done.scope is not None else None
            for i in local:
                pos = positions[(self.exchange.rank, ticket, i)]
                out.rewards[i], out.advantages[i] = outcome.rewards[pos], outcome.advantages[pos]
                out.mask[i] = outcome.mask[pos]
                if fill is not None and not out.mask[i]:
                    out.rewards[i], out.advantages[i] = fill
                    out.filled = True
            out.groups.append(local)
            out.promoted_samples += outcome.promoted
            for winner, count in outcome.verdicts.items():
                out.verdicts[winner] = out.verdicts.get(winner, 0) + count
            if outcome.unscorable:
                out.unscorable_groups += 1
                out.unjudged += local
                out.errors.append(f"group {local}: {outcome.unscorable}")
                failure = failure or RewardGroupError(outcome.unscorable)
            elif outcome.error:
                out.failed_groups += 1
                status, code, message = outcome.error
                out.errors.append(f"group {local}: service answered {status} ({code}): {message}")
                failure = failure or RewardServiceError(status, code, message)
            elif not any(outcome.mask):
                out.masked_groups += 1
            self._refs[serial] -= len(local)
            if self._refs[serial] <= 0:  # every local sample of the group is read
                del self._refs[serial], self._done[serial]
        out.masked_samples = sum(not m for m in out.mask)
        if failure is not None and self.on_failure == "raise":
            raise failure
        return out


class Pending:
    """The values of one reward call, read when they are needed (:meth:`result`)."""

    def __init__(self, assembler: GroupAssembler, ticket: int, n: int):
        self._assembler = assembler
        self._ticket = ticket
        self._n = n
        self._result: BatchScores | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def result(self, idle_timeout: float | None = None) -> BatchScores:
        """Block until every group of this call is judged; raise what stops the step. A group
        still open once no reward call is running for ``idle_timeout`` seconds is a fragment."""
        with self._lock:
            if self._result is None and self._error is None:
                try:
                    self._result = self._assembler.resolve(self._ticket, self._n, idle_timeout)
                except BaseException as exc:
                    self._error = exc
                finally:
                    self._assembler.read(self._ticket)
            if self._error is not None:
                raise self._error
            return self._result  # type: ignore[return-value]
