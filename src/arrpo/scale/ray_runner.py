"""Judge many comparisons on a Ray cluster: an actor pool, verdicts streamed in completion order.

Each worker is a Ray actor holding its own backend, opened from the same
:class:`~arrpo.vlm.settings.BackendSettings` (an HTTP client, or a local model on the worker's
GPU), and its own :class:`~arrpo.judge.PairwiseJudge` built from the same
:class:`~arrpo.judge_settings.JudgeSettings` (they travel as its JSON, so every field does). Comparisons
travel in small chunks as plain data with the image *bytes* (never paths a worker may not see);
each chunk's unique images are sent once. Verdicts come back as each chunk finishes, so a caller
can append them to its resumable run file as they arrive.

A worker that dies mid-run (killed, out of memory, node lost) loses nothing: its unfinished chunks
are sent again to a fresh worker. A chunk's verdicts are only yielded once it has finished, so no
comparison is yielded twice. Verdicts are the single-process ones: same prompts, same order
policy, same cache keys.

Usage (the CLIs' ``--ray ADDRESS``)::

    for index, verdict in judge_on_ray(comparisons, backend, JudgeSettings(order="both"), address="auto"):
        writer.write(verdict.model_dump(mode="json"))
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from arrpo.images import ImageData
from arrpo.judge_settings import JudgeSettings
from arrpo.rubric import Rubric
from arrpo.schema import Comparison, Verdict
from arrpo.vlm.base import VLMBackend
from arrpo.vlm.settings import BackendSettings

BackendSource = Union[BackendSettings, Callable[[], VLMBackend]]


# ----------------------------------------------------------------- wire format
def pack_chunk(items: Sequence[tuple[int, Comparison]]) -> dict[str, Any]:
    """Comparisons (with their indices) → plain data: image bytes once each, rubrics as JSON."""
    images: dict[str, tuple[bytes, str, int, int]] = {}

    def ref(image: ImageData | None) -> str | None:
        if image is None:
            return None
        images.setdefault(image.sha256, (image.data, image.mime, image.width, image.height))
        return image.sha256

    rows = []
    for index, c in items:
        rows.append({
            "index": index, "id": c.id, "task": c.task, "prompt": c.prompt,
            "a": ref(c.image_a), "b": ref(c.image_b), "source": ref(c.source),
            "rubric": c.rubric.model_dump_json() if c.rubric is not None else None,
        })
    return {"images": images, "rows": rows}


def unpack_chunk(chunk: Mapping[str, Any]) -> list[tuple[int, Comparison]]:
    """Inverse of :func:`pack_chunk` (image hashes are recomputed from the bytes)."""
    images = chunk_images(chunk)
    return [(row["index"], unpack_row(images, row)) for row in chunk["rows"]]


def chunk_images(chunk: Mapping[str, Any]) -> dict[str, ImageData]:
    """A packed chunk's images by hash."""
    return {key: ImageData(data, mime, w, h, origin=f"<ray:{key[:12]}>")
            for key, (data, mime, w, h) in chunk["images"].items()}


def unpack_row(images: Mapping[str, ImageData], row: Mapping[str, Any]) -> Comparison:
    """One packed row as a :class:`Comparison`."""
    return Comparison(
        task=row["task"], prompt=row["prompt"], id=row["id"],
        image_a=images[row["a"]], image_b=images[row["b"]],
        source=images[row["source"]] if row["source"] else None,
        rubric=Rubric.model_validate_json(row["rubric"]) if row["rubric"] else None,
    )


# --------------------------------------------------------------------- worker
class JudgeWorker:
    """The body of one Ray actor: a backend and a judge, judging chunks concurrently.

    ``settings_json`` is :class:`JudgeSettings` as JSON, ``rubric_json`` the judge's default rubric
    as JSON (``None``: the comparisons carry theirs, or the direct judge).
    """

    def __init__(self, backend: BackendSource, settings_json: str, rubric_json: str | None = None):
        self._source = backend
        self._settings_json = settings_json
        self._rubric_json = rubric_json
        self._judge: Any = None

    def _ensure_judge(self) -> Any:
        if self._judge is None:
            from arrpo.judge import PairwiseJudge
            from arrpo.vlm.settings import open_judge_backend

            source = self._source
            settings = JudgeSettings.model_validate_json(self._settings_json)
            backend = open_judge_backend(source, settings) if isinstance(source, BackendSettings) else source()
            rubric = Rubric.model_validate_json(self._rubric_json) if self._rubric_json else None
            self._judge = PairwiseJudge(backend, settings, rubric=rubric)
        return self._judge

    async def judge_chunk(self, chunk: Mapping[str, Any]) -> list[tuple[int, str, int]]:
        """Judge a packed chunk; returns ``(index, verdict JSON, HTTP retries)`` per comparison.

        A comparison that fails in any way (its data, the judge) ends as its own ``invalid``
        verdict naming the exception, as in the single-process judge; only
        :class:`~arrpo.vlm.base.BackendUnavailable` is reported for the whole chunk (index ``-1``).
        """
        from arrpo.vlm.base import BackendUnavailable

        rows = chunk["rows"]
        try:
            judge = self._ensure_judge()
            images = chunk_images(chunk)
            return list(await asyncio.gather(*(self._judge_row(judge, images, row) for row in rows)))
        except BackendUnavailable as exc:  # a user must act: report it, do not judge
            return [(-1, str(exc), 0)]
        except Exception as exc:  # no judge or no images: every comparison of the chunk is invalid
            return [(row["index"], Verdict.failed(exc, id=row.get("id")).model_dump_json(), 0) for row in rows]

    @staticmethod
    async def _judge_row(judge: Any, images: Mapping[str, ImageData], row: Mapping[str, Any]) -> tuple[int, str, int]:
        from arrpo.vlm.wrappers import counting_retries

        try:
            comparison = unpack_row(images, row)
        except (ValueError, KeyError, TypeError) as exc:  # a row that cannot be rebuilt is its own verdict
            return row["index"], Verdict.failed(exc, id=row.get("id")).model_dump_json(), 0
        with counting_retries() as tally:
            verdict = await judge.judge(comparison)  # never raises but BackendUnavailable (its contract)
        return row["index"], verdict.model_dump_json(), tally.retries

    def pid(self) -> int:
        import os

        return os.getpid()


# --------------------------------------------------------------------- driver
@dataclass
class RunStats:
    chunks: int = 0
    resubmitted: int = 0
    workers_replaced: int = 0


class RayJudgeRunner:
    """A pool of :class:`JudgeWorker` actors on a Ray cluster.

    Args:
        backend: the :class:`BackendSettings` every worker opens (or a picklable factory).
        settings: the :class:`JudgeSettings` of every worker's judge (default: its defaults).
        rubric: the judges' default rubric, for comparisons that carry none.
        num_workers: actors in the pool (default: one per CPU of the cluster, at most 8, or one per
            GPU when ``num_gpus_per_worker`` is set).
        chunk_size: comparisons per task (the unit that is resent when a worker dies).
        chunks_in_flight: tasks queued per worker (keeps each worker busy).
        num_cpus_per_worker, num_gpus_per_worker: Ray resources of each actor (GPUs for local models).
        max_attempts: how often one chunk may be lost to dying workers before the run fails.
    """

    def __init__(
        self,
        backend: BackendSource,
        settings: JudgeSettings | None = None,
        *,
        rubric: Rubric | None = None,
        num_workers: int | None = None,
        chunk_size: int = 8,
        chunks_in_flight: int = 2,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float = 0,
        max_attempts: int = 3,
    ):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("connect to Ray first: arrpo.scale.ray_runner.connect(address)")
        self._backend = backend
        self.settings = settings or JudgeSettings()
        self._rubric_json = rubric.model_dump_json() if rubric is not None else None
        self.chunk_size = max(1, chunk_size)
        self.chunks_in_flight = max(1, chunks_in_flight)
        self.max_attempts = max(1, max_attempts)
        self._actor_class = ray.remote(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker,
                                       max_restarts=0)(JudgeWorker)
        if num_workers is None:
            resources = ray.cluster_resources()
            if num_gpus_per_worker:
                num_workers = max(1, int(resources.get("GPU", 1) // num_gpus_per_worker))
            else:
                num_workers = max(1, min(8, int(resources.get("CPU", 1) // max(num_cpus_per_worker, 1e-3))))
        self.workers = [self._new_worker() for _ in range(num_workers)]
        self.stats = RunStats()

    def _new_worker(self) -> Any:
        return self._actor_class.remote(self._backend, self.settings.model_dump_json(), self._rubric_json)

    def run(self, comparisons: Iterable[Comparison]) -> Iterator[tuple[int, Verdict]]:
        """Yield ``(index in comparisons, verdict)`` as verdicts arrive (completion order)."""
        for index, verdict, _ in self.run_with_retries(comparisons):
            yield index, verdict

    def run_with_retries(self, comparisons: Iterable[Comparison]) -> Iterator[tuple[int, Verdict, int]]:
        """As :meth:`run`, with the HTTP retries each comparison's model calls needed on its worker
        (so callers can count every model call, as the single-process runs do).

        A chunk whose task fails (an exception on the worker, not a lost worker) ends as ``invalid``
        verdicts naming the exception for its comparisons; the run goes on.
        """
        import ray
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError

        indexed = list(enumerate(comparisons))
        queue = deque(
            (n, pack_chunk(indexed[start:start + self.chunk_size]))
            for n, start in enumerate(range(0, len(indexed), self.chunk_size))
        )
        self.stats.chunks = len(queue)
        attempts: dict[int, int] = {}
        in_flight: dict[Any, tuple[int, dict, int]] = {}  # ref → (chunk number, chunk, worker slot)
        load = [0] * len(self.workers)
        yielded: set[int] = set()
        while queue or in_flight:
            for slot in range(len(self.workers)):
                while queue and load[slot] < self.chunks_in_flight:
                    number, chunk = queue.popleft()
                    ref = self.workers[slot].judge_chunk.remote(chunk)
                    in_flight[ref] = (number, chunk, slot)
                    load[slot] += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                number, chunk, slot = in_flight.pop(ref)
                load[slot] -= 1
                try:
                    results = ray.get(ref)
                except (RayActorError, WorkerCrashedError, ObjectLostError) as exc:  # node or object lost too
                    attempts[number] = attempts.get(number, 0) + 1
                    if attempts[number] >= self.max_attempts:
                        raise RuntimeError(
                            f"chunk {number} was lost {attempts[number]} times to failing workers: {exc}"
                        ) from exc
                    self._replace_if_dead(slot)
                    queue.appendleft((number, chunk))
                    self.stats.resubmitted += 1
                    continue
                except RayTaskError as exc:  # the task itself raised: its comparisons end invalid
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                    results = [(row["index"], Verdict.failed(cause, id=row["id"]).model_dump_json(), 0)
                               for row in chunk["rows"]]
                if results and results[0][0] == -1:
                    from arrpo.vlm.base import BackendUnavailable

                    raise BackendUnavailable(results[0][1])
                for index, payload, retries in results:
                    if index not in yielded:
                        yielded.add(index)
                        yield index, Verdict.model_validate_json(payload), retries

    def _replace_if_dead(self, slot: int) -> None:
        import ray
        from ray.exceptions import RayActorError

        worker = self.workers[slot]
        try:
            ray.get(worker.pid.remote(), timeout=30)
            return  # still alive: the failure was the task's, not the worker's
        except (RayActorError, ray.exceptions.GetTimeoutError):
            pass
        ray.kill(worker, no_restart=True)
        self.workers[slot] = self._new_worker()
        self.stats.workers_replaced += 1

    def shutdown(self) -> None:
        """Stop the pool's actors."""
        import ray

        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        self.workers = []


def connect(address: str | None = None, **init_kwargs: Any) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to; ``None`` or
    ``local``: start a local one). Does nothing when already connected."""
    import ray

    if ray.is_initialized():
        return
    if address in (None, "", "local"):
        ray.init(include_dashboard=False, **init_kwargs)
    else:
        ray.init(address=address, **init_kwargs)


def judge_on_ray(
    comparisons: Iterable[Comparison],
    backend: BackendSource,
    settings: JudgeSettings | None = None,
    *,
    rubric: Rubric | None = None,
    address: str | None = None,
    **runner_options: Any,
) -> Iterator[tuple[int, Verdict]]:
    """Connect to Ray, judge ``comparisons`` on an actor pool, yield ``(index, verdict)`` as they
    finish, and stop the pool at the end (see :class:`RayJudgeRunner` for ``runner_options``)."""
    connect(address)
    runner = RayJudgeRunner(backend, settings, rubric=rubric, **runner_options)
    try:
        yield from runner.run(comparisons)
    finally:
        runner.shutdown()
