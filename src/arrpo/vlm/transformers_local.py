"""In-process VLM backend on Hugging Face ``transformers`` (no server needed).

The model and its processor are loaded with ``AutoModelForImageTextToText`` / ``AutoProcessor``
on first use, prompts are rendered with the model's own chat template, and concurrent
:meth:`TransformersBackend.complete` calls are collected for a few milliseconds into one padded
batch that runs ``generate`` in a worker thread, so the event loop never blocks on the model.

The JSON-schema hint of a request is not enforced here (``transformers`` has no constrained
decoding); the judge validates every answer itself, as it does for servers that ignore it.

Needs the ``local`` extra (``pip install 'arrpo[local]'``): torch, transformers, accelerate and
torchvision. torchvision is not optional for the default model: in ``transformers`` 5 the
Qwen3-VL / Qwen2.5-VL processors include a torchvision-only video processor, and the processor
cannot be built without it (their image processor alone would fall back to PIL).

On first use a hub model is downloaded once into the Hugging Face cache with
``huggingface_hub``'s progress bars; on a CPU a one-time notice says that judging will be slow and
how to use a server instead (``--endpoint``).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
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

#: The model used when no endpoint and no model are configured: a small current instruct VLM.
DEFAULT_LOCAL_MODEL = "Qwen/Qwen3-VL-2B-Instruct"


def chat_messages(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    """Protocol messages → the content-list form chat templates take (``{"type": "image"}``
    placeholders in place, the images themselves passed to the processor separately)."""
    out = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image"})
            else:
                content.append({"type": "text", "text": part.text})
        out.append({"role": message.role, "content": content})
    return out


def pick_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` if available, else ``mps``, else ``cpu``; anything else is kept."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str, device: str) -> Any:
    """``auto`` → bfloat16 on GPUs that support it, float16 on other accelerators, float32 on CPU."""
    import torch

    if dtype != "auto":
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise BackendUnavailable(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
        return value
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def load_advice(model: str, error: BaseException) -> str:
    """The message shown when a model cannot be loaded: what happened and what to do."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "torchvision" in str(error).lower():
        return (
            f"cannot load the local VLM {model!r}: {reason}\n"
            "The Qwen-VL processors of transformers 5 need torchvision, built for the installed torch:\n"
            "  pip install 'arrpo[local]'    (installs a matching torch + torchvision pair)\n"
            "or, with a torch you installed yourself, the torchvision release made for it. "
            "Or point arrpo at a VLM server instead: --endpoint http://HOST:8000/v1 --model NAME."
        )
    if isinstance(error, ImportError):
        return (
            f"cannot load the local VLM {model!r}: a library is missing ({reason}).\n"
            "Install the in-process backend with: pip install 'arrpo[local]' (torch, transformers, "
            "accelerate, torchvision), or point arrpo at a VLM server: --endpoint http://HOST:8000/v1 --model NAME."
        )
    return (
        f"cannot load the local VLM {model!r}: {reason}\n"
        "The in-process backend needs the model's weights on this machine: download them once, or use --endpoint.\n"
        f"  - download once where there is network: hf download {model}\n"
        "    (then copy ~/.cache/huggingface here, or pass --model /path/to/the/downloaded/folder), or\n"
        "  - point arrpo at a VLM server instead: --endpoint http://HOST:8000/v1 --model NAME\n"
        "    (e.g. vllm serve Qwen/Qwen3-VL-8B-Instruct; see docs/backends.md)."
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face Hub (or ``HF_ENDPOINT``) opens within ``timeout``."""
    import os
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def cached_on_disk(repo_id: str) -> bool:
    """Whether the hub repository's ``config.json`` and weights (``model.safetensors`` or its shard
    index) are already in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        def cached(name: str) -> bool:
            return isinstance(try_to_load_from_cache(repo_id, name), str)

        return cached("config.json") and (cached("model.safetensors") or cached("model.safetensors.index.json"))
    except Exception:
        return False


def missing_libraries(model: str) -> list[str]:
    """The libraries ``model`` needs that are not installed (found without importing them): torch
    and transformers always, torchvision for Qwen-VL models (their processors need it)."""
    import importlib.util
    import re

    needed = ["torch", "transformers"]
    if re.search(r"qwen.*vl", Path(model).name if Path(model).is_dir() else model, re.IGNORECASE):
        needed.append("torchvision")
    return [name for name in needed if importlib.util.find_spec(name) is None]


def _raise_if_missing(model: str) -> None:
    missing = missing_libraries(model)
    if missing:
        raise ImportError(f"No module named {missing[0]!r}")


def _no_weights(model: str, reason: str) -> BackendUnavailable:
    advice = load_advice(model, OSError(reason))
    missing = missing_libraries(model)
    if missing:
        advice += f"\nAlso missing for the in-process backend: {', '.join(missing)} (pip install 'arrpo[local]')."
    return BackendUnavailable(advice)


#: Files a transformers model folder needs (weights in safetensors); other formats are skipped.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py"]


def download_model(repo_id: str) -> str:
    """Download a hub model into the Hugging Face cache, with ``huggingface_hub``'s progress bars on
    stderr; returns the local folder. Called once: later loads find the model cached and use it
    without any network access (an interrupted download is completed with ``hf download``)."""
    from huggingface_hub import snapshot_download

    print(f"arrpo: downloading {repo_id} once into the Hugging Face cache (later runs load it from disk)…",
          file=sys.stderr, flush=True)
    return snapshot_download(repo_id, allow_patterns=MODEL_FILE_PATTERNS)


_CPU_NOTICE_SHOWN = False


def cpu_notice(model: str) -> None:
    """Say once per process that judging on the CPU is slow and how to use a server instead."""
    global _CPU_NOTICE_SHOWN
    if _CPU_NOTICE_SHOWN:
        return
    _CPU_NOTICE_SHOWN = True
    print(
        f"arrpo: no GPU found, running {model} on the CPU: judging will be slow.\n"
        "       For speed, point arrpo at a VLM server: --endpoint http://HOST:8000/v1 --model NAME "
        "(e.g. vllm serve Qwen/Qwen3-VL-8B-Instruct; see docs/backends.md).",
        file=sys.stderr, flush=True,
    )


class TransformersBackend:
    """A VLM running inside this process with ``transformers``.

    Args:
        model: hub id or local folder (default :data:`DEFAULT_LOCAL_MODEL`).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:1`` | ``mps``.
        dtype: ``auto`` | ``float32`` | ``bfloat16`` | ``float16``.
        max_pixels: pixel budget per image (images above it are downscaled with
            :func:`arrpo.images.load_image`, the same control as the HTTP path).
        max_batch_size: most requests per ``generate`` call.
        batch_window_s: how long to wait for more concurrent requests before running a batch.
        local_files_only: never try the network (default: whatever ``HF_HUB_OFFLINE`` says).
        chat_template_kwargs: extra variables for the chat template (e.g.
            ``{"enable_thinking": False}`` for hybrid-thinking models).
        trust_remote_code: allow model repositories with their own code.
    """

    def __init__(
        self,
        model: str = DEFAULT_LOCAL_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_pixels: int | None = None,
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
        local_files_only: bool | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
    ):
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.max_pixels = max_pixels
        self.local_files_only = local_files_only
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.trust_remote_code = trust_remote_code
        self._model: Any = None
        self._processor: Any = None
        self._load_error: BackendUnavailable | None = None
        self._load_lock = threading.Lock()
        self._batcher = MicroBatcher(
            self._run_batch, max_batch_size=max_batch_size, window_s=batch_window_s, key=_batch_key
        )

    @property
    def batches(self) -> int:
        """``generate`` calls made so far."""
        return self._batcher.batches

    @property
    def model_id(self) -> str:
        budget = f"@{self.max_pixels}px" if self.max_pixels else ""
        return f"transformers:{self.model_name}{budget}{options_tag({'chat_template_kwargs': self.chat_template_kwargs})}"

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load processor and model now (otherwise done on the first request).

        Raises:
            BackendUnavailable: the libraries or the weights are missing; the message says what to do.
        """
        with self._load_lock:
            if self._model is not None:
                return
            if self._load_error is not None:
                raise self._load_error
            try:
                self._model, self._processor = self._load_model()
            except BackendUnavailable as exc:
                self._load_error = exc
                raise
            except (ImportError, OSError, ValueError, KeyError, RuntimeError) as exc:
                self._load_error = BackendUnavailable(load_advice(self.model_name, exc))
                raise self._load_error from exc

    def _weights_source(self) -> tuple[str, bool]:
        """Where to load from and whether offline: a folder, the cache, or a first download.
        Checked before torch and transformers are imported, so a missing model is reported at once."""
        import os

        offline = self.local_files_only
        if offline is None:
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        source = self.model_name
        if Path(source).is_dir():
            return source, offline
        if cached_on_disk(source):
            return source, True  # downloaded before: no network at all
        if offline:
            raise _no_weights(source, "not in the local Hugging Face cache, and downloads are off (HF_HUB_OFFLINE)")
        if not hub_reachable():
            # Without this check from_pretrained spends minutes retrying an unreachable hub.
            raise _no_weights(source, "not in the local Hugging Face cache, and the Hub is unreachable")
        _raise_if_missing(source)  # not after a download of gigabytes
        try:
            return download_model(source), True  # progress bars the first time; a cache check later
        except Exception as exc:  # hub errors come in many types (HTTP, disk, auth)
            raise BackendUnavailable(load_advice(self.model_name, exc)) from exc

    def _load_model(self) -> tuple[Any, Any]:
        source, offline = self._weights_source()
        _raise_if_missing(self.model_name)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = pick_device(self.device)
        dtype = pick_dtype(self.dtype, device)
        common = {"local_files_only": offline, "trust_remote_code": self.trust_remote_code}
        processor = AutoProcessor.from_pretrained(source, **common)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype, **common)
        model.to(device)
        return self._ready(model, processor)

    @classmethod
    def from_loaded(cls, model: Any, processor: Any, *, name: str = "in-memory", **kwargs: Any) -> TransformersBackend:
        """A backend over a model and processor already in memory (a notebook's, or one built with
        random weights by ``benchmarks/gpu_proof.py``): nothing is loaded or downloaded; requests
        go through the same chat template, batching and ``generate`` as a loaded model's. The model
        stays on its device. ``kwargs`` are the constructor's (``max_pixels``, ``max_batch_size``…).

        Raises:
            BackendUnavailable: the processor has no chat template.
        """
        backend = cls(name, **kwargs)
        backend._model, backend._processor = backend._ready(model, processor)
        return backend

    def _ready(self, model: Any, processor: Any) -> tuple[Any, Any]:
        """Evaluation mode, left padding, a pad token; refuse a processor without a chat template."""
        model.eval()
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"  # generation continues every row at the same position
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(processor, "chat_template", None) is None and getattr(tokenizer, "chat_template", None) is None:
            raise BackendUnavailable(
                f"{self.model_name!r} has no chat template; use an instruct/chat VLM (e.g. {DEFAULT_LOCAL_MODEL})"
            )
        if getattr(getattr(model, "device", None), "type", None) == "cpu":
            cpu_notice(self.model_name)
        return model, processor

    # ---------------------------------------------------------------- requests
    async def complete(self, request: VLMRequest) -> VLMResponse:
        return await self._batcher.submit(request)

    def _run_batch(self, requests: list[VLMRequest]) -> list[VLMResponse]:
        self.load()
        return self.generate(requests)

    def prepare_inputs(self, requests: list[VLMRequest]) -> Any:
        """The processor's batch for ``requests`` (on the model's device): prompts rendered with the
        model's chat template, images (downscaled to ``max_pixels``) in message order, left padding.
        For Qwen-VL models this holds ``pixel_values`` and ``image_grid_thw``, and each image's
        ``<|image_pad|>`` run is widened to its grid."""
        self.load()
        processor, model = self._processor, self._model
        texts = [
            processor.apply_chat_template(
                chat_messages(r.messages), add_generation_prompt=True, tokenize=False,
                **self.chat_template_kwargs,
            )
            for r in requests
        ]
        images = [
            [load_image(img, max_pixels=self.max_pixels).to_pil() for m in r.messages for img in m.images]
            for r in requests
        ]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(images):
            kwargs["images"] = images
        inputs = processor(**kwargs).to(model.device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        return inputs

    def generate(self, requests: list[VLMRequest]) -> list[VLMResponse]:
        """Answer requests of one batch key in one padded ``generate`` call (blocking)."""
        import torch

        started = time.perf_counter()
        inputs = self.prepare_inputs(requests)
        processor, model = self._processor, self._model
        first = requests[0]
        max_new = max(r.max_tokens for r in requests)
        tokenizer = getattr(processor, "tokenizer", processor)
        options: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tokenizer.pad_token_id}
        if first.temperature > 0:
            options.update(do_sample=True, temperature=first.temperature)
            if first.seed is not None:
                torch.manual_seed(first.seed)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = model.generate(**inputs, **options)
        prompt_len = inputs["input_ids"].shape[1]
        stop_ids = _stop_ids(model, tokenizer)
        latency = time.perf_counter() - started
        responses = []
        for row, request in enumerate(requests):
            generated = output[row, prompt_len:].tolist()
            cut = next((i for i, t in enumerate(generated) if t in stop_ids), None)
            stopped = cut is not None and cut < request.max_tokens
            tokens = generated[: cut if stopped else request.max_tokens]
            responses.append(
                VLMResponse(
                    text=tokenizer.decode(tokens, skip_special_tokens=True),
                    usage=Usage(
                        prompt_tokens=int(inputs["attention_mask"][row].sum()),
                        completion_tokens=len(tokens) + (1 if stopped else 0),
                    ),
                    model=self.model_name,
                    finish_reason="stop" if stopped else "length",
                    latency_s=latency,
                )
            )
        return responses

    async def aclose(self) -> None:
        self._model = self._processor = None


def _batch_key(request: VLMRequest) -> tuple:
    """Requests with the same key can share a ``generate`` call."""
    has_images = any(m.images for m in request.messages)
    if request.temperature > 0:
        return ("sample", request.temperature, request.seed, has_images)
    return ("greedy", has_images)


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id,
                  tokenizer.pad_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids
