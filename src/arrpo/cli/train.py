"""``arrpo train``: RPO training of a flow-matching generator with a rubric-conditioned VLM judge.

Works as a plain command on one device and under ``accelerate launch`` (DDP, or FSDP through the
accelerate config); each prompt's group is generated, judged and trained on one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    def train(
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML/JSON config file."),
        preset: Optional[str] = typer.Option(None, "--preset", help="official-flux | official-qwen-edit | tiny-cpu."),
        pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Override model.pretrained."),
        prompts: Optional[Path] = typer.Option(None, "--prompts", help="Override data.prompts."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (checkpoints, final LoRA): overrides train.output_dir."),
        iterations: Optional[int] = typer.Option(None, "--iterations", help="Override train.iterations."),
        no_resume: bool = typer.Option(False, "--no-resume", help="Start fresh even if checkpoints exist."),
        print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    ) -> None:
        """Train LoRA adapters with Rubric Policy Optimization."""
        import logging

        from arrpo.errors import describe_validation_error
        from arrpo.rl.config import load_config

        overrides: dict = {}
        if pretrained:
            overrides.setdefault("model", {})["pretrained"] = pretrained
        if prompts:
            overrides.setdefault("data", {})["prompts"] = str(prompts)
        train_over = overrides.setdefault("train", {})
        if out:
            train_over["output_dir"] = str(out)
        if iterations is not None:
            train_over["iterations"] = iterations
        if no_resume:
            train_over["resume"] = None
        if config is None and preset is None:
            raise typer.BadParameter("give --config FILE and/or --preset NAME")
        import yaml

        from arrpo.cli._common import fail
        from arrpo.vlm.base import BackendUnavailable

        try:
            cfg = load_config(config, preset, overrides)
        except (OSError, ValueError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
            raise fail(f"{config or preset}: {describe_validation_error(exc, whole='config')}") from None
        if print_config:
            typer.echo(cfg.model_dump_json(indent=2))
            return
        from arrpo.rl.trainer import RPOTrainer, preflight

        try:
            preflight(cfg)  # before the model is loaded
        except ValueError as exc:
            raise fail(str(exc)) from None

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        try:
            trainer = RPOTrainer(cfg)
        except BackendUnavailable as exc:
            raise fail(f"judge.backend: {exc}") from None
        except (OSError, ValueError, ImportError) as exc:  # no such pipeline or prompts file, old diffusers
            raise fail(str(exc)) from None
        try:
            try:
                resumed = trainer.resume()
            except ValueError as exc:  # CheckpointError: every checkpoint damaged
                raise fail(str(exc)) from None
            if resumed:
                typer.echo(f"resumed from {resumed} at iteration {trainer.iteration}")
            history = trainer.train()
            trainer.save_checkpoint()  # every rank writes its own file, or ranks > 0 cannot resume
            if trainer.acc.is_main_process:
                out = trainer.export_lora(Path(cfg.train.output_dir) / "final")
                last = history[-1] if history else {}
                typer.echo(
                    f"done: {trainer.iteration} iterations, {trainer.optimizer_steps} optimizer steps, "
                    f"{trainer.skipped_updates} skipped; LoRA in {out}; last loss {last.get('loss')}"
                )
        finally:
            trainer.close()
