import json

import pytest
import typer
from typer.testing import CliRunner

from arrpo.cli.train import register


def _app():
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    return app


def test_train_command_runs_end_to_end(tmp_path, tiny_dirs):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red apple\na blue car\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"preset: tiny-cpu\nmodel:\n  pretrained: {tiny_dirs['sd3']}\ndata:\n  prompts: {prompts}\n"
        f"train:\n  iterations: 2\n  prompts_per_iteration: 1\n  output_dir: {tmp_path / 'run'}\n  gallery_every: 1\n"
        "optim:\n  accumulate_samples: 2\n"
    )
    result = CliRunner().invoke(_app(), ["train", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 optimizer steps" in result.output
    from diffusers import StableDiffusion3Pipeline

    for folder in (tmp_path / "run" / "final", tmp_path / "run" / "checkpoints" / "it000002"):
        pipe = StableDiffusion3Pipeline.from_pretrained(tiny_dirs["sd3"])  # what a user does next
        pipe.load_lora_weights(str(folder))
        assert pipe.get_active_adapters(), folder
    again = CliRunner().invoke(_app(), ["train", "--config", str(config), "--iterations", "3"])
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and "3 iterations" in again.output


def test_print_config_applies_preset_and_overrides():
    result = CliRunner().invoke(_app(), ["train", "--preset", "official-flux", "--iterations", "7", "--print-config"])
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["model"]["family"] == "flux" and cfg["train"]["iterations"] == 7
    assert cfg["objective"]["beta"] == 0.01 and cfg["lora"]["rank"] == 16


def test_vlm_judge_wiring_with_scripted_server(tmp_path):
    """The config's judge section builds the real PairwiseJudge over an OpenAI-compatible server."""
    pytest.importorskip("arrpo.judge")
    import asyncio

    from PIL import Image

    from arrpo.images import load_image
    from arrpo.rl.config import JudgeConfig
    from arrpo.rl.judging import build_judge
    from arrpo.schema import Comparison
    from arrpo.testing.scripted_server import Reply, ScriptedVLMServer

    with ScriptedVLMServer(lambda req: Reply('{"rank": [2, 1], "reason": "second is better"}')) as server:
        judge = build_judge(JudgeConfig(backend={"endpoint": server.base_url, "model": "scripted"}, order="given"))
        a, b = (load_image(Image.new("RGB", (16, 16), c)) for c in ("red", "blue"))
        verdict = asyncio.run(judge.judge(Comparison(prompt="x", image_a=a, image_b=b)))
    assert verdict.winner == "B"


def test_prompt_rubric_judge_writes_once_per_prompt(tmp_path):
    import asyncio
    import json

    from PIL import Image

    from arrpo.images import load_image
    from arrpo.rl.config import JudgeConfig
    from arrpo.rl.judging import build_judge
    from arrpo.schema import Comparison
    from arrpo.testing.scripted_server import Reply, ScriptedVLMServer

    def handler(request):
        if "Write an evaluation rubric" in request.text:
            return Reply(json.dumps({"themes": [{"theme": "Red dominates", "tips": ["count red pixels"]}]}))
        return Reply('{"rank": [1, 2], "reason": "first is redder"}')

    with ScriptedVLMServer(handler) as server:
        backend = {"endpoint": server.base_url, "model": "scripted", "cache_path": str(tmp_path / "responses.sqlite")}
        judge = build_judge(JudgeConfig(backend=backend, order="given", prompt_rubrics=True,
                                        rubric_cache_dir=str(tmp_path / "rubrics")))
        a, b = (load_image(Image.new("RGB", (16, 16), c)) for c in ("red", "blue"))

        async def both():
            return await asyncio.gather(*(judge.judge(Comparison(prompt="a red kite", image_a=a, image_b=b, id=str(i)))
                                          for i in range(3)))

        verdicts = asyncio.run(both())
        writes = [r for r in server.seen if "Write an evaluation rubric" in r.text]
        judged = [r for r in server.seen if "Evaluation Rubrics" in r.text]
    assert [v.winner for v in verdicts] == ["A", "A", "A"]
    assert len(writes) == 1 and len(judged) == 3 and all("Theme: Red dominates" in r.text for r in judged)
    assert len(list((tmp_path / "rubrics").glob("*.json"))) == 1
