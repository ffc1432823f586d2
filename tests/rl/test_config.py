import pytest
from pydantic import ValidationError

from arrpo.rl.config import PRESETS, build_config


def test_official_presets_match_the_paper():
    flux = build_config(preset="official-flux")
    assert (flux.model.family, flux.sampling.num_steps, flux.sampling.eta, flux.sampling.shift) == ("flux", 8, 0.3, 3.0)
    assert (flux.reward.win, flux.reward.lose, flux.objective.clip_eps, flux.objective.beta) == (1.0, 0.1, 0.2, 0.01)
    assert (flux.lora.rank, flux.lora.alpha, flux.optim.lr, flux.optim.weight_decay) == (16, 32, 5e-5, 1e-4)
    assert flux.lora.target_modules == ["to_q", "to_k", "to_v", "to_out.0"] and flux.model.height == 512
    edit = build_config(preset="official-qwen-edit")
    assert (edit.model.family, edit.sampling.num_steps, edit.objective.beta) == ("qwen-image-edit", 10, 0.02)
    assert (edit.lora.rank, edit.lora.alpha, edit.optim.lr) == (32, 64, 1e-5)
    for cfg, batch in ((flux, 32), (edit, 16)):  # Table 3 batch sizes on the launchers' 8 GPUs
        assert 8 * cfg.optim.accumulate_samples == batch and cfg.samples_per_iteration == 2
        assert (cfg.optim.max_grad_norm, cfg.optim.betas, cfg.optim.eps) == (1.0, (0.9, 0.999), 1e-8)
        assert (cfg.reward.advantage_clip, cfg.train.iterations, cfg.train.checkpoint_every) == (5.0, 300, 50)
        assert (cfg.train.seed, cfg.sampling.sde, cfg.sampling.same_noise_in_group) == (42, "dance", True)
        assert cfg.objective.train_steps == "all_but_last" and cfg.objective.kl == "k1"
    assert (flux.model.guidance, edit.model.guidance) == (3.5, None)


def test_file_values_override_the_preset():
    cfg = build_config({"preset": "official-flux", "optim": {"lr": 1e-4}})
    assert cfg.optim.lr == 1e-4 and cfg.optim.weight_decay == 1e-4


def test_invalid_combinations_are_refused():
    with pytest.raises(ValidationError, match="micro_batch"):
        build_config({"optim": {"micro_batch": 3}}, preset="official-flux")
    with pytest.raises(ValidationError):
        build_config({"sampling": {"num_stepz": 3}})
    with pytest.raises(ValidationError, match="fraction"):
        build_config({"objective": {"train_steps": "random_fraction", "fraction": 1.5}})
    with pytest.raises(ValueError, match="unknown preset"):
        build_config(preset="nope")
    assert set(PRESETS) >= {"official-flux", "official-qwen-edit", "tiny-cpu"}


@pytest.mark.parametrize(("reward", "message"), [
    ({"win": float("nan")}, "win: must be a finite number"),
    ({"lose": float("-inf")}, "lose: must be a finite number"),
    ({"scale": float("inf")}, "scale: must be a finite number"),
    ({"win": -1.0}, r"win \+ lose must be positive"),
    ({"win": 0.05, "lose": -0.1}, r"win \+ lose must be positive"),
    ({"win": 1.5e308, "lose": 1.5e308}, "overflows"),
    ({"scale": 0.0}, "scale: must be positive"),
    ({"advantage_clip": 0.0}, "clip: must be a finite positive number"),
])
def test_reward_parameters_are_checked_when_the_config_is_read(reward, message):
    """The reward service's rule (arrpo.rewards.check_reward_parameters), before any model is loaded."""
    with pytest.raises(ValidationError, match=message):
        build_config({"reward": reward}, preset="official-flux")


def test_unusual_but_ordered_reward_parameters_are_accepted():
    cfg = build_config({"reward": {"win": -0.05, "lose": 0.1, "advantage_clip": None}}, preset="official-flux")
    assert (cfg.reward.win, cfg.reward.lose, cfg.reward.advantage_clip) == (-0.05, 0.1, None)


def test_train_cli_refuses_bad_reward_parameters_before_loading_models(tmp_path):
    from tests.rl.test_cli import _app
    from typer.testing import CliRunner

    config = tmp_path / "bad.yaml"
    # a pipeline folder that does not exist: the run would fail there if the config were accepted
    config.write_text(f"preset: tiny-cpu\nmodel: {{pretrained: {tmp_path / 'missing'}}}\nreward: {{win: .nan}}\n")
    result = CliRunner().invoke(_app(), ["train", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "win: must be a finite number" in result.output and "missing" not in result.output
