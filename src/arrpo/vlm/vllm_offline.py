"""Offline vLLM backend: a ``vllm.LLM`` engine inside this process (GPU machines).

Concurrent requests are gathered into one ``LLM.chat`` call (vLLM then batches them on the GPU
with its own scheduler); images go in as base64 data URLs, the same message format as the HTTP
path; a request's JSON schema becomes vLLM's structured-output (guided decoding) constraint.

vLLM is imported only when the engine is created, so arrpo works without it; request
construction (:func:`vllm_conversation`, :func:`sampling_options`, :func:`make_sampling_params`)
is plain Python and tested without vLLM. Install with ``pip install 'arrpo[vllm]'``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from arrpo.images import load_image
from arrpo.schema import Usage
from arrpo.vlm.base import (
    BackendUnavailable,
    ImagePart,
    Message,
    VLMRequest,
    VLMResponse,
    options_tag,
)
from arrpo.vlm.batching import MicroBatcher
from arrpo.vlm.openai_compat import to_openai_messages


def vllm_conversation(messages: tuple[Message, ...] | list[Message], max_pixels: int | None = None) -> list[dict]:
    """Protocol messages → the OpenAI-style conversation ``LLM.chat`` takes (images as data URLs,
    downscaled to ``max_pixels`` first when given)."""
    if max_pixels:
        messages = [
            Message(m.role, tuple(
                ImagePart(load_image(p.image, max_pixels=max_pixels)) if isinstance(p, ImagePart) else p
                for p in m.parts
            ))
            for m in messages
        ]
    return to_openai_messages(messages)


def sampling_options(request: VLMRequest, *, guided_json: bool = True) -> dict[str, Any]:
    """``SamplingParams`` fields for a request; ``json_schema`` is the schema to enforce, if any."""
    options: dict[str, Any] = {"temperature": request.temperature, "max_tokens": request.max_tokens}
    if request.seed is not None:
        options["seed"] = request.seed
    if guided_json and request.json_schema is not None:
        options["json_schema"] = request.json_schema
    return options


def make_sampling_params(vllm: Any, options: dict[str, Any]) -> Any:
    """Build ``vllm.SamplingParams`` from :func:`sampling_options`, on either structured-output API:
    ``StructuredOutputsParams(json=...)`` (vLLM ≥ 0.11) or ``GuidedDecodingParams(json=...)`` (older)."""
    options = dict(options)
    schema = options.pop("json_schema", None)
    if schema is not None:
        params_module = vllm.sampling_params
        if hasattr(params_module, "StructuredOutputsParams"):
            options["structured_outputs"] = params_module.StructuredOutputsParams(json=schema)
        else:
            options["guided_decoding"] = params_module.GuidedDecodingParams(json=schema)
    return vllm.SamplingParams(**options)


class VLLMBackend:
    """A VLM served by an in-process ``vllm.LLM`` engine.

    Args:
        model: hub id or local folder.
        dtype: ``auto`` | ``bfloat16`` | ``float16`` | ``float32``.
        max_model_len: context length (smaller saves GPU memory).
        max_images: images allowed per prompt (``limit_mm_per_prompt``); the judge sends 2 or 3.
            Videos are set to 0, so Qwen-VL models reserve no memory for video inputs.
        tensor_parallel_size, gpu_memory_utilization: passed to ``vllm.LLM``.
        max_pixels: pixel budget per image before it is sent.
        guided_json: enforce a request's JSON schema with structured outputs.
        chat_template_kwargs: e.g. ``{"enable_thinking": False}`` for hybrid-thinking models.
        max_batch_size, batch_window_s: how concurrent requests are gathered into one ``chat`` call.
        engine_kwargs: any further ``vllm.LLM`` arguments.
    """

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = 16384,
        max_images: int = 3,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_pixels: int | None = None,
        guided_json: bool = True,
        chat_template_kwargs: dict[str, Any] | None = None,
        max_batch_size: int = 256,
        batch_window_s: float = 0.02,
        engine_kwargs: dict[str, Any] | None = None,
    ):
        self.model_name = model
        self.max_pixels = max_pixels
        self.guided_json = guided_json
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.engine_args: dict[str, Any] = {
            "model": model,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            # no videos: without "video": 0 vLLM reserves memory for the largest video the model takes
            "limit_mm_per_prompt": {"image": max_images, "video": 0},
            **({"max_model_len": max_model_len} if max_model_len else {}),
            **(engine_kwargs or {}),
        }
        self._vllm: Any = None
        self._llm: Any = None
        self._load_error: BackendUnavailable | None = None
        self._load_lock = threading.Lock()
        self._batcher = MicroBatcher(self._run_batch, max_batch_size=max_batch_size, window_s=batch_window_s)

    @property
    def model_id(self) -> str:
        budget = f"@{self.max_pixels}px" if self.max_pixels else ""
        tag = options_tag({
            "chat_template_kwargs": self.chat_template_kwargs, "guided_json": None if self.guided_json else False,
        })
        return f"vllm:{self.model_name}{budget}{tag}"

    @property
    def batches(self) -> int:
        return self._batcher.batches

    def load(self) -> None:
        """Start the vLLM engine now (otherwise on the first request).

        Raises:
            BackendUnavailable: vLLM is not installed or the engine cannot start; says what to do.
        """
        with self._load_lock:
            if self._llm is not None:
                return
            if self._load_error is not None:
                raise self._load_error
            try:
                import vllm
            except ImportError as exc:
                self._load_error = BackendUnavailable(
                    "the offline vLLM backend needs vLLM, which is not installed: pip install 'arrpo[vllm]' "
                    "on a Linux machine with a CUDA GPU, or use --backend transformers, or an --endpoint "
                    f"(e.g. a vllm serve on another machine) ({exc})"
                )
                raise self._load_error from exc
            try:
                self._llm = vllm.LLM(**self.engine_args)
            except Exception as exc:  # engine start failures come in many types
                self._load_error = BackendUnavailable(
                    f"cannot start vLLM for {self.model_name!r}: {type(exc).__name__}: {exc}\n"
                    "Check the model id or folder, GPU memory (lower max_model_len or gpu_memory_utilization) "
                    "and that the weights are on this machine (hf download MODEL)."
                )
                raise self._load_error from exc
            self._vllm = vllm

    async def complete(self, request: VLMRequest) -> VLMResponse:
        return await self._batcher.submit(request)

    def _run_batch(self, requests: list[VLMRequest]) -> list[VLMResponse]:
        self.load()
        started = time.perf_counter()
        conversations = [vllm_conversation(r.messages, self.max_pixels) for r in requests]
        params = [make_sampling_params(self._vllm, sampling_options(r, guided_json=self.guided_json)) for r in requests]
        outputs = self._llm.chat(
            conversations, sampling_params=params, use_tqdm=False,
            chat_template_kwargs=self.chat_template_kwargs or None,
        )
        latency = time.perf_counter() - started
        return [response_from_output(o, self.model_name, latency) for o in outputs]

    async def aclose(self) -> None:
        self._llm = None


def response_from_output(output: Any, model: str, latency_s: float = 0.0) -> VLMResponse:
    """A ``vllm.RequestOutput`` → :class:`VLMResponse` (text, token counts, finish reason)."""
    best = output.outputs[0]
    return VLMResponse(
        text=best.text,
        usage=Usage(
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=len(best.token_ids or []),
        ),
        model=model,
        finish_reason=best.finish_reason,
        latency_s=latency_s,
    )
