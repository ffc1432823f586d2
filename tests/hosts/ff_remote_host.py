"""Flow-Factory's remote reward models, re-written from its sources for these tests.

Behaviour (not code) of ``flow_factory/rewards/my_reward_remote.py``: ``RemoteRewardClient``
(``GET /health`` with a 5 s timeout, only ``r.ok`` read; ``POST /compute`` with base64 PNGs;
``raise_for_status`` and every ``requests`` error retried at once, ``retry_attempts`` in all, then
``RuntimeError("Failed to connect …")``; an ``error`` field raised at once as ``RuntimeError("Server
error: …")``; the newer ``/load`` and ``/offload`` control calls), the two model classes (health
check in ``__init__``, ``required_fields = ("prompt", "image")``, PIL inputs), and
``RewardProcessor``'s point-wise path (the rank's samples in ``batch_size`` chunks, one request per
chunk, in order). The group-wise paths are those of :mod:`tests.hosts.flow_factory_host`.
Facts in /work/notes/hosts.md.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

import requests
import torch
from PIL import Image

from tests.hosts.flow_factory_host import _media_to_pil, filter_kwargs

log = logging.getLogger(__name__)


def image_to_b64(image: Image.Image | torch.Tensor) -> str:
    if isinstance(image, torch.Tensor):
        array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype("uint8")
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def build_payload(prompt, image=None, video=None, condition_images=None, condition_videos=None) -> dict:
    return {
        "prompt": prompt,
        "image": [image_to_b64(im) for im in image] if image else None,
        "video": [[image_to_b64(f) for f in v] for v in video] if video else None,
        "condition_images": [[image_to_b64(im) for im in ims] for ims in condition_images] if condition_images else None,
        "condition_videos": condition_videos or None,
    }


class RemoteRewardClient:
    """The HTTP client; ``attempts`` counts the POSTs sent (for the tests)."""

    def __init__(self, server_url: str, timeout: float = 60.0, retries: int = 3):
        self.url = server_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.attempts = 0

    def health_check(self) -> bool:
        try:
            with requests.Session() as session:
                return session.get(f"{self.url}/health", timeout=5.0).ok
        except Exception as exc:
            log.warning("Health check failed: %s", exc)
            return False

    def _post_control(self, endpoint: str) -> bool:
        for attempt in range(self.retries):
            try:
                with requests.Session() as session:
                    r = session.post(f"{self.url}/{endpoint}", timeout=self.timeout)
                if r.status_code == 404:
                    return False
                r.raise_for_status()
                data = r.json() if r.content else {}
                if data.get("error"):
                    raise RuntimeError(f"Server error: {data['error']}")
                return True
            except requests.RequestException as exc:
                if attempt == self.retries - 1:
                    raise RuntimeError(f"Failed to call /{endpoint} on {self.url}: {exc}") from exc
        raise RuntimeError("Unreachable")

    def compute(self, prompt, image=None, video=None, condition_images=None, condition_videos=None) -> list[float]:
        payload = build_payload(prompt, image, video, condition_images, condition_videos)
        return self.post_payload(payload)

    def post_payload(self, payload: Any) -> list[float]:
        for attempt in range(self.retries):
            try:
                self.attempts += 1
                with requests.Session() as session:
                    r = session.post(f"{self.url}/compute", json=payload, timeout=self.timeout)
                r.raise_for_status()
                data = r.json()
                if data.get("error"):
                    raise RuntimeError(f"Server error: {data['error']}")
                return data["rewards"]
            except requests.RequestException as exc:
                if attempt == self.retries - 1:
                    raise RuntimeError(f"Failed to connect to {self.url}: {exc}") from exc
        raise RuntimeError("Unreachable")


class _RemoteModel:
    required_fields: tuple[str, ...] = ("prompt", "image")
    use_tensor_inputs = False
    default_timeout = 60.0

    def __init__(self, config: Any):
        self.device = torch.device("cpu")
        server_url = getattr(config, "server_url", None)
        if not server_url:
            raise ValueError(f"server_url is required for {type(self).__name__}")
        self.client = RemoteRewardClient(server_url, timeout=getattr(config, "timeout", self.default_timeout),
                                         retries=getattr(config, "retry_attempts", 3))
        if not self.client.health_check():
            raise RuntimeError(f"Cannot connect to reward server at {server_url}")

    def __call__(self, prompt, image=None, video=None, condition_images=None, condition_videos=None):
        rewards = self.client.compute(prompt=prompt, image=image, video=video, condition_images=condition_images,
                                      condition_videos=condition_videos)
        return torch.tensor(rewards, dtype=torch.float32)


class RemotePointwiseRewardModel(_RemoteModel):
    """``PointwiseRewardModel`` subclass in Flow-Factory."""


class RemoteGroupwiseRewardModel(_RemoteModel):
    """``GroupwiseRewardModel`` subclass in Flow-Factory (timeout 120 s by default)."""

    default_timeout = 120.0


def pointwise_rewards(model: RemotePointwiseRewardModel, samples: list, batch_size: int) -> torch.Tensor:
    """``_compute_pointwise_rewards``: the rank's samples in order, ``batch_size`` per request;
    the declared fields every sample of the chunk has (not None), media as PIL."""
    out = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        declared = filter_kwargs(model.__call__, **{k: chunk[0][k] for k in chunk[0].keys()})  # noqa: SIM118
        fields = {k: [getattr(s, k) for s in chunk] for k in declared if all(getattr(s, k) is not None for s in chunk)}
        out.append(torch.as_tensor(model(**_media_to_pil(model, fields)), dtype=torch.float32))
    return torch.cat(out)
