import pytest
import torch

from arrpo.rl.lora import add_lora
from arrpo.rl.policies import DEFAULT_LORA_TARGETS
from arrpo.rl.rollout import SDEParams, replay_step, rollout
from arrpo.rl.sde import sigma_schedule

SIZE = 32

FAMILIES = ["sd3", "flux", "flux-kontext", "qwen-image", "qwen-image-edit"]


def _setup(make_policy, family, source_image):
    policy = make_policy(family)
    add_lora(policy.transformer, rank=4, alpha=8, target_modules=DEFAULT_LORA_TARGETS[family])
    sources = [source_image(), source_image((10, 200, 10))] if policy.needs_source else None
    cond = policy.encode(["a red apple", "make it green"], sources)
    return policy, cond


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["dance", "flow"])
def test_ratio_is_exactly_one_on_first_replay(make_policy, family, kind, source_image):
    policy, cond = _setup(make_policy, family, source_image)
    gen = torch.Generator().manual_seed(0)
    sde = SDEParams(kind=kind, eta=0.7)
    traj = rollout(policy, cond, policy.initial_noise(2, gen), sigma_schedule(4, 3.0), sde, gen)
    assert traj.latents.shape[:2] == (2, 5) and traj.log_probs.shape == (2, 4)
    assert torch.isfinite(traj.log_probs).all()
    for t in range(traj.num_steps):
        step = replay_step(policy, traj, t, sde)
        assert step.log_prob.requires_grad
        ratio = torch.exp(step.log_prob - traj.log_probs[:, t])
        assert torch.equal(ratio, torch.ones_like(ratio)), (family, t, ratio)


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_gives_images_of_the_configured_size(make_policy, family, source_image):
    policy, cond = _setup(make_policy, family, source_image)
    gen = torch.Generator().manual_seed(0)
    traj = rollout(policy, cond, policy.initial_noise(2, gen), sigma_schedule(2, 3.0), SDEParams(), gen)
    images = policy.decode(traj.latents[:, -1])
    assert len(images) == 2 and images[0].size == (SIZE, SIZE)


def test_reference_disables_lora(make_policy, source_image):
    policy, cond = _setup(make_policy, "sd3", source_image)
    for name, p in policy.transformer.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    x = policy.initial_noise(2, torch.Generator().manual_seed(0))
    sigma = torch.full((2,), 0.5)
    with torch.no_grad():
        on = policy.velocity(x, sigma, cond)
        with policy.reference():
            off = policy.velocity(x, sigma, cond)
        again = policy.velocity(x, sigma, cond)
    assert not torch.allclose(on, off)
    assert torch.equal(on, again)


def test_editing_adapter_requires_sources(make_policy):
    policy = make_policy("flux-kontext")
    with pytest.raises(ValueError, match="source"):
        policy.encode(["make it blue"])


def test_qwen_image_edit_without_torchvision_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from arrpo.errors import ArrpoError
    from arrpo.rl.policies import MissingDependencyError, load_policy

    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if it were not installed
    missing = tmp_path / "no-pipeline-here"  # refused before anything is read from it
    with pytest.raises(MissingDependencyError, match=r"needs torchvision.*pip install 'arrpo\[train\]'") as caught:
        load_policy("qwen-image-edit", str(missing))
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, ArrpoError)
    assert "Qwen2VLProcessor" in str(caught.value)
    with pytest.raises(ValueError, match="no-pipeline-here") as other:  # T2I has no processor: no torchvision
        load_policy("qwen-image", str(missing))
    assert not isinstance(other.value, MissingDependencyError)


def test_train_cli_names_the_missing_torchvision(tmp_path, monkeypatch):
    import sys

    from tests.rl.test_cli import _app
    from typer.testing import CliRunner

    monkeypatch.setitem(sys.modules, "torchvision", None)
    config = tmp_path / "edit.yaml"
    config.write_text(f"preset: official-qwen-edit\nmodel: {{pretrained: {tmp_path / 'missing'}, dtype: float32}}\n"
                      "judge: {builtin: mean-red}\n")
    result = CliRunner().invoke(_app(), ["train", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "needs torchvision" in result.output and "pip install" in result.output
