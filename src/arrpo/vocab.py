"""Every word of arrpo's vocabulary, each defined once.

A vocabulary is one ``Literal`` here and nowhere else: pydantic models, typer options (which then
validate and list the choices themselves) and messages all use it; :func:`choices` gives its words
at run time. This module imports nothing of arrpo, so every floor may use it.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

#: What is judged: a text-to-image pair, or two edits of a source image.
Task = Literal["t2i", "edit"]
#: A verdict: A or B preferred, a tie, or no usable judgement.
Winner = Literal["A", "B", "tie", "invalid"]
#: The order a pair is shown in: ``AB`` shows A as Image 1.
Order = Literal["AB", "BA"]
#: Which orders the judge asks: only A|B, one seeded coin per comparison, or both (position-bias control).
OrderPolicy = Literal["given", "random", "both"]
#: What two disagreeing orders give under ``both``.
DisagreePolicy = Literal["tie", "invalid", "first"]
#: How a group's verdicts become rewards (``arrpo.rewards``).
RewardPreset = Literal["official", "symmetric", "zscore"]
#: What a tie or invalid verdict does to its group's rewards.
OnBadVerdict = Literal["mask_group", "drop_pair"]
#: Which pairs of a group are judged.
Pairing = Literal["all_pairs", "random_pairs", "tournament"]
#: Which VLM backend runs the judge (``auto``: from the endpoint/model given).
BackendKind = Literal["auto", "openai", "transformers", "vllm"]
#: Why a backend call failed, as far as the endpoint that served it is concerned: ``connect``
#: (refused, reset, DNS), ``timeout``, ``server_error`` (5xx and other retryable statuses),
#: ``rate_limited`` (429), ``bad_response`` (a body that is not a chat completion), ``rejected`` (a
#: 4xx about the request itself: never the endpoint's fault), ``other``.
BackendFault = Literal["connect", "timeout", "server_error", "rate_limited", "bad_response", "rejected", "other"]
#: Where an endpoint of a pool stands: taking requests, out of rotation after a failure, or cooled
#: down and answering (or awaiting) one probe request that decides whether it is back.
EndpointState = Literal["up", "cooling", "probing"]
#: Whether an OpenAI-compatible request asks for JSON output.
JsonMode = Literal["auto", "json_object", "off"]
#: Which order an evaluation calls "forward": the preferred image first, or the dataset's own order.
ForwardOrder = Literal["preferred_first", "given"]
#: The formats of a rubric-learning seed file.
SeedFormat = Literal["auto", "jsonl", "authors", "mjbench"]
#: The orders rubric verification asks (``given`` is refused: it lets position bias pass).
VerifyOrder = Literal["random", "both"]
#: How a judge request is laid out: the authors' (labelled images first, the instructions and rubric
#: last, one user message) or ``cached`` (instructions and rubric as a system message first, so a
#: server's prefix cache serves them to every request).
PromptLayout = Literal["authors", "cached"]
#: Tool evidence a judge can gather for a pair (``ocr``: the text a prompt asks for, read in each image).
EvidenceKind = Literal["ocr"]
#: What decisive OCR evidence does to a VLM's winner (``arrpo.evidence.decide``).
OcrPolicy = Literal["evidence", "tiebreak", "override"]
#: How much a web server (``arrpo serve``, ``label``, ``review``) logs: uvicorn's levels.
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
#: The std a host divides advantages by: each group's own, or one std of the whole batch (arrpo.masking).
HostStd = Literal["group", "batch"]
#: The generator families RPO trains.
ModelFamily = Literal["sd3", "flux", "flux-kontext", "qwen-image", "qwen-image-edit"]


def choices(vocabulary: Any) -> tuple[str, ...]:
    """The words of a vocabulary defined above, in their order (``choices(OrderPolicy)``)."""
    return tuple(get_args(vocabulary))
