"""A newcomer's first run of the default in-process model: the README's judge command without
network ends at once with the "download once or use --endpoint" advice; with network the model is
downloaded once with progress bars, missing libraries are named before any download, and a CPU
run says once that it will be slow."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import arrpo.vlm.transformers_local as local
from arrpo.vlm import BackendUnavailable, Message, VLMRequest
from arrpo.vlm.transformers_local import TransformersBackend, load_advice

ROOT = Path(__file__).resolve().parents[2]


def readme_judge_command() -> list[str]:
    """The ``arrpo judge …`` part of the README's first command."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "README.md has no bash block"
    first = " ".join(line.rstrip("\\").strip() for line in block.group(1).splitlines() if line.strip())
    judge = first[first.index("arrpo judge"):].split("#")[0]
    judge = re.split(r"\s(?:&&|;|\|\|)\s", judge)[0]
    return shlex.split(judge)


def _run_offline(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "OPENAI_", "HF_"))}
    merged = {**base, "HF_HOME": str(tmp_path / "hf"), "ARRPO_CACHE_DIR": str(tmp_path / "cache"),
              "PYTHONPATH": str(ROOT / "src"), **env}  # fmt: skip
    assert command[0] == "arrpo"
    return subprocess.run([sys.executable, "-m", "arrpo", *command[1:]], capture_output=True, text=True,
                          env=merged, cwd=ROOT, timeout=120)


def test_readme_opens_with_the_default_model_judging_the_bundled_pair():
    command = readme_judge_command()
    assert command[:2] == ["arrpo", "judge"]
    assert "--endpoint" not in command and "--model" not in command  # the embedded default
    paths = [a for a in command[2:] if a.endswith(".png")]
    assert len(paths) == 2 and all((ROOT / p).is_file() for p in paths)


@pytest.mark.parametrize("no_network", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_readme_judge_command_offline_says_download_once_or_use_endpoint(tmp_path, no_network):
    result = _run_offline(readme_judge_command(), tmp_path, **no_network)
    assert result.returncode == 2, result.stderr
    err = " ".join(result.stderr.split())
    assert "download them once, or use --endpoint" in err
    assert "hf download Qwen/Qwen3-VL-2B-Instruct" in err
    assert "--endpoint http://HOST:8000/v1" in err
    assert "Traceback" not in result.stderr


@pytest.fixture
def hub_online(monkeypatch):
    """The Hub looks reachable and nothing is cached; ``snapshot_download`` is a recorded stand-in."""
    import huggingface_hub

    calls: list[dict] = []
    monkeypatch.setattr(local, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(local, "cached_on_disk", lambda repo_id: False)

    def serve(folder):
        def snapshot_download(repo_id, **kwargs):
            calls.append({"repo_id": repo_id, **kwargs})
            return str(folder)

        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
        return calls

    return serve


async def test_first_use_downloads_once_with_progress_then_loads(tiny_llava_dir, hub_online, capsys):
    calls = hub_online(tiny_llava_dir)
    backend = TransformersBackend("arrpo-test/tiny-llava", device="cpu")
    response = await backend.complete(VLMRequest(messages=(Message.user("hi"),), max_tokens=2))
    assert isinstance(response.text, str)
    assert [c["repo_id"] for c in calls] == ["arrpo-test/tiny-llava"]
    assert "*.safetensors" in calls[0]["allow_patterns"] and "tqdm_class" not in calls[0]  # hub's own bars
    assert "downloading arrpo-test/tiny-llava once" in capsys.readouterr().err


def test_missing_torchvision_is_named_before_any_download(hub_online, tmp_path, monkeypatch):
    import importlib.util

    calls = hub_online(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a))
    with pytest.raises(BackendUnavailable) as info:
        TransformersBackend("Qwen/Qwen3-VL-2B-Instruct", device="cpu").load()
    assert calls == []
    message = str(info.value)
    assert "No module named 'torchvision'" in message and "pip install 'arrpo[local]'" in message


def test_a_mismatched_torchvision_gets_its_own_advice():
    message = load_advice("Qwen/Qwen3-VL-2B-Instruct", RuntimeError("operator torchvision::nms does not exist"))
    assert "torchvision, built for the installed torch" in message
    assert "--endpoint" in message


def test_cpu_notice_is_shown_once(tiny_llava_dir, capsys, monkeypatch):
    monkeypatch.setattr(local, "_CPU_NOTICE_SHOWN", False)
    TransformersBackend(str(tiny_llava_dir), device="cpu").load()
    TransformersBackend(str(tiny_llava_dir), device="cpu").load()
    err = capsys.readouterr().err
    assert err.count("judging will be slow") == 1
    assert "--endpoint http://HOST:8000/v1" in err



def _fake_hub_cache(hf_home: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as ``huggingface_hub`` caches a downloaded snapshot of ``repo_id``."""
    import shutil

    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)


def test_a_cached_model_loads_without_touching_the_network(tiny_llava_dir, tmp_path):
    _fake_hub_cache(tmp_path / "hf", "arrpo-test/tiny-llava", tiny_llava_dir)
    script = (
        "import arrpo.vlm.transformers_local as m\n"
        "def no_network(*a, **k): raise SystemExit('the network was probed')\n"
        "m.hub_reachable = no_network\n"
        "import huggingface_hub; huggingface_hub.snapshot_download = no_network\n"
        "m.TransformersBackend('arrpo-test/tiny-llava', device='cpu').load()\n"
        "print('loaded')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARRPO_", "HF_"))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**env, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "loaded" and "downloading" not in result.stderr
