"""A catalogue of hostile VLM answers, for reliability tests and ``benchmarks/hostile_answers.py``.

Each case is what a real server can send back: answers that crashed arrpo before (a lone UTF-16
surrogate, a rank with thousands of digits, 50,000-deep nesting), malformed and empty answers,
refusals (in the text and in the ``refusal`` field), content-filtered answers, answers given
only as a tool call, ties, out-of-range ranks, megabytes of content, content of the wrong type,
bodies that are not chat completions, error objects sent with status 200, dropped connections,
and 500/429 with odd ``Retry-After``.

A pair opts into a case through its prompt, ``case-<name>``; :func:`hostile_handler` (a
:mod:`arrpo.testing.scripted_server` handler) serves the case to every request about that pair,
retries included, and a plain correct answer otherwise. ``CASES[name][1]`` says whether the
answer may give a valid verdict (``False``: it must be ``invalid``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from arrpo.testing.scripted_server import ChatRequest, Reply

GOOD = '{"rank": [2, 1], "reason": "Image 2 is better."}'
HUGE_CHARS = 3_000_000


def _completion(content: object, finish: str = "stop", **message: object) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}}


def _tool_call(arguments: object) -> dict:
    return {"id": "call-1", "type": "function", "function": {"name": "rank", "arguments": arguments}}


#: The error a server sent with status 200 in the ``error-body-200`` case.
CONTEXT_ERROR = "This model's maximum context length is 8192 tokens. However, you requested 9731 tokens."


#: name -> (reply factory, whether the verdict can be valid)
CASES: dict[str, tuple[Callable[[], Reply], bool]] = {
    # the three answers that raised before
    "lone-surrogate": (lambda: Reply(text='{"rank":[2,1],"reason":"\ud800 x"}'), True),
    "rank-5000-digits": (lambda: Reply(text='{"rank":[' + "1" * 5000 + ',1]}'), False),
    "nested-50000": (lambda: Reply(text='{"rank":[2,1],"reason":' + "[" * 50_000 + "]" * 50_000 + "}"), True),
    # malformed, empty, refusals, ties, out-of-range
    "malformed-json": (lambda: Reply(text='{"rank": [2, 1, "reason": "unclosed'), False),
    "braces-only": (lambda: Reply(text="{{{{{{{{}}}"), False),
    "empty": (lambda: Reply(text=""), False),
    "null-content": (lambda: Reply(text=None), False),
    "refusal": (lambda: Reply(text="I'm sorry, but I can't help with comparing these images."), False),
    "tie": (lambda: Reply(text='{"rank": [1, 1], "reason": "equal"}'), False),
    "out-of-range": (lambda: Reply(text='{"rank": [3, 7]}'), False),
    "negative-float-rank": (lambda: Reply(text='{"rank": [-1e308, NaN]}'), False),
    "markup-in-winner": (lambda: Reply(text='{"winner": "[/bold] [red]x[/red]"}'), False),
    "control-chars": (lambda: Reply(text='{"rank":[2,1],"reason":"a\\u0000b\\u001b[2Jc"}'), True),
    # huge content
    "huge-content": (lambda: Reply(text='{"rank": [2, 1], "reason": "' + "x" * HUGE_CHARS + '"}'), False),
    "long-valid-reason": (lambda: Reply(text='{"rank": [2, 1], "reason": "' + "y" * 200_000 + '"}'), True),
    "think-flood": (lambda: Reply(text="<think>" * 12_000 + '{"rank": [2, 1]}'), False),
    # content of the wrong type, bodies that are not completions
    "content-number": (lambda: Reply(body=_completion(42)), False),
    "content-object": (lambda: Reply(body=_completion({"rank": [2, 1]})), True),
    "content-parts": (lambda: Reply(body=_completion([{"type": "text", "text": GOOD}])), True),
    "content-deep-list": (lambda: Reply(body=_completion([[[[[[[[[[]]]]]]]]]])), False),
    "usage-garbage": (lambda: Reply(body={**_completion(GOOD), "usage": {"prompt_tokens": "9" * 5000,
                                                                         "completion_tokens": [1]}}), True),
    "body-not-completion": (lambda: Reply(body={"hello": "world"}), False),
    "body-deep": (lambda: Reply(raw=b"[" * 100_000 + b"]" * 100_000), False),
    "body-html": (lambda: Reply(raw=b"<html><body>502 Bad Gateway</body></html>",
                                headers={"Content-Type": "text/html"}), False),
    "body-not-utf8": (lambda: Reply(raw=b'{"choices": [{"message": {"content": "\xff\xfe{\\"rank\\": [2, 1]}"}}]}'),
                      True),
    # answers withheld or given elsewhere: a refusal field, a content filter, only a tool call
    "refusal-field": (lambda: Reply(body=_completion(None, refusal="I can't help with comparing these images.")),
                      False),
    "content-filter": (lambda: Reply(body=_completion("", finish="content_filter")), False),
    "content-filter-partial": (lambda: Reply(body=_completion('{"rank": [2,', finish="content_filter")), False),
    "tool-call-only": (lambda: Reply(body=_completion(None, finish="tool_calls", tool_calls=[_tool_call(GOOD)])),
                       True),
    "tool-call-object": (lambda: Reply(body=_completion("", tool_calls=[_tool_call({"rank": [2, 1]})])), True),
    # an error object sent with status 200: not a transient failure
    "error-body-200": (lambda: Reply(body={"error": {"message": CONTEXT_ERROR, "type": "invalid_request_error",
                                                     "code": 400}}), False),
    "error-body-200-vllm": (lambda: Reply(body={"object": "error", "message": CONTEXT_ERROR, "code": 400}), False),
    # transport failures
    "connection-reset": (lambda: Reply(drop=True), False),
    "500-retry-after-soon": (lambda: Reply(status=500, headers={"Retry-After": "soon"}), False),
    "429-retry-after-negative": (lambda: Reply(status=429, headers={"Retry-After": "-3"}), False),
    "429-retry-after-nan": (lambda: Reply(status=429, headers={"Retry-After": "nan"}), False),
    "503-retry-after-date": (lambda: Reply(status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
                             False),
}

_CASE = re.compile(r"case-([a-z0-9-]+)")


def case_of(request: ChatRequest) -> str | None:
    match = _CASE.search(request.text)
    return match.group(1) if match else None


def hostile_handler(request: ChatRequest) -> Reply:
    """Serve the case named in the request's prompt; a correct answer for other pairs."""
    name = case_of(request)
    if name in CASES:
        return CASES[name][0]()
    return Reply(text=GOOD)
