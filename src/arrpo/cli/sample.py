"""``arrpo sample``: the base model and a trained LoRA side by side on the same seeds (HTML grid)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``sample`` command to ``app``."""

    @app.command("sample")
    def sample(
        lora: Path = typer.Option(..., "--lora", help="Adapter folder written by `arrpo train` (run/final or a checkpoint)."),
        prompts: Path = typer.Option(..., "--prompts", help=".txt (one prompt a line) or .jsonl ({prompt, source})."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder: index.html, samples.jsonl, images/."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="The training config (its model section is used)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="A training preset instead of / under --config."),
        pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Override model.pretrained."),
        seeds: int = typer.Option(2, "--seeds", min=1, help="How many images per prompt (seeds --seed, --seed + 1, ...)."),
        seed: int = typer.Option(0, "--seed", help="Seed of this command's randomness: the first image seed."),
        steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Denoising steps (default: sampling.num_steps)."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    ) -> None:
        """Render base and trained model on the same prompts and seeds; write an HTML grid."""
        from arrpo.cli._common import fail

        if config is None and preset is None:
            raise typer.BadParameter("give --config FILE (the training config) and/or --preset NAME")
        import torch

        from arrpo.errors import describe_validation_error
        from arrpo.images import load_image
        from arrpo.rl.config import load_config
        from arrpo.rl.data import read_prompts
        from arrpo.rl.policies import load_policy
        from arrpo.rl.sample import LoraLoadError, check_adapter_dir, render_comparison

        overrides = {"model": {"pretrained": pretrained}} if pretrained else {}
        if out.exists() and not out.is_dir():
            raise fail(f"--out {out} is a file; give a folder (index.html, samples.jsonl and images/ go in it)")
        import yaml

        try:
            cfg = load_config(config, preset, overrides)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise fail(f"{config or preset}: {describe_validation_error(exc, whole='config')}") from None
        try:
            items = read_prompts(prompts)
        except (OSError, ValueError) as exc:
            message = str(exc)
            raise fail(message if str(prompts) in message else f"{prompts}: {message}") from None
        try:
            check_adapter_dir(lora)  # before loading the model
        except (OSError, ValueError) as exc:
            raise fail(str(exc)) from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        m = cfg.model
        try:
            policy = load_policy(
                m.family, m.pretrained, dtype=m.dtype, device=device, revision=m.revision, height=m.height,
                width=m.width, max_sequence_length=m.max_sequence_length, guidance=m.guidance,
            )  # fmt: skip
        except (OSError, ValueError, ImportError, RuntimeError) as exc:  # no such pipeline, old diffusers, wrong dtype
            raise fail(f"cannot load {m.family} pipeline {m.pretrained}: {exc}") from None
        sources = None
        if policy.needs_source:
            missing = [it.prompt for it in items if not it.source]
            if missing:
                raise fail(f"{m.family} edits a source image: every row of {prompts} needs a 'source' (missing for {missing[:3]})")
            try:
                sources = [load_image(it.source).to_pil() for it in items]
            except (OSError, ValueError) as exc:
                raise fail(f"{prompts}: {exc}") from None
        try:
            rows = render_comparison(
                policy, lora, items, [seed + s for s in range(seeds)], out,
                num_steps=steps or cfg.sampling.num_steps, shift=cfg.sampling.shift, sources=sources,
            )  # fmt: skip
        except LoraLoadError as exc:
            raise fail(str(exc)) from None
        typer.echo(f"{len(rows)} pairs (base | LoRA) in {out / 'index.html'}")
