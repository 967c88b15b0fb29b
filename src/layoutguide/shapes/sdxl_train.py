"""Training the SDXL-architecture shapes model (``shapes/sdxl_model.py``) with the shapes trainer.

    layoutguide shapes init-run --arch sdxl --out runs/shapes-sdxl         # a new run: SDXL architecture, stage 1
    layoutguide shapes train --out runs/shapes-sdxl --max-minutes 60       # trains, resumes, stops at a checkpoint
    layoutguide shapes export --run runs/shapes-sdxl --out DIR             # a StableDiffusionXLPipeline folder

Everything but the conditioning is the shapes trainer's (``shapes/train.py``): autoencoder first, then both text
encoders and the UNet jointly, on the same scenes, schedule, EMA, checkpoints and stages. The conditioning is SDXL's:
both encoders' penultimate states concatenated, the second's pooled embedding and the six size ids through
``added_cond_kwargs``. GLIGEN has no SDXL weights and its stage is refused here.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import InputError
from ..pipeline import seed_for
from ..text_mask import word_token_mask
from .sdxl_model import SDXLModelConfig, build_sdxl_components, encode_prompts, size_ids, zero_empty_captions
from .train import TrainConfig, Trainer, init_fresh_run

# The shipped shapes model's sampling defaults (its layoutguide.json): DDIM 30 steps, CFG 3 below t = 850. Its
# calibrated method step sizes are that model's and are not carried over.
SAMPLING_DEFAULTS: dict[str, Any] = {"num_inference_steps": 30, "guidance_scale": 3.0, "guidance_interval": [0, 850]}


def sdxl_stage1_config(**changes: Any) -> TrainConfig:
    """The shipped model's first stage (docs/shapes.md) on the SDXL architecture. One change: the end/padding tokens
    are masked out of the cross-attention from the first step (the shipped run switched it on at step 4,250, when
    its word attention was found not to localise)."""
    return dataclasses.replace(
        TrainConfig(
            arch="sdxl",
            unet_steps=6000,
            text_mask=True,
            sample_every=500,
            checkpoint_every=100,  # a CPU session trains a few hundred steps: keep what it did
            model=dataclasses.asdict(SDXLModelConfig()),
        ),
        **changes,
    )


def init_sdxl_run(
    run: str | Path, config: TrainConfig | None = None, autoencoder_from: str | Path | None = None
) -> None:
    """Start a new run folder for the SDXL architecture (fresh weights, the stage-1 recipe or ``config``; the
    autoencoder of ``autoencoder_from`` if given); then ``layoutguide shapes train --out RUN`` trains it."""
    config = config or sdxl_stage1_config()
    if config.arch != "sdxl":
        raise ValueError(f"init_sdxl_run needs arch 'sdxl', got {config.arch!r}")
    init_fresh_run(run, config, autoencoder_from)


class SDXLTrainer(Trainer):
    """The shapes trainer with SDXL's two text encoders and added conditioning."""

    text_encoder_names = ("text_encoder", "text_encoder_2")
    sampling_defaults = SAMPLING_DEFAULTS  # without them an SDXL folder samples with SDXL's 50 steps and CFG 5

    def model_config(self) -> SDXLModelConfig:  # type: ignore[override]  # the SDXL widths
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.model.items()}
        return SDXLModelConfig(**fields)

    def new_components(self, seed: int) -> dict:
        parts = build_sdxl_components(self.model_config(), seed=seed)
        self.tokenizer_2 = parts["tokenizer_2"]
        return parts

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """SDXL's ``(prompt_embeds, pooled_prompt_embeds)`` of ``captions`` by the encoders being trained."""
        return encode_prompts(
            [self.tokenizer, self.tokenizer_2], list(self.text_encoders.values()), captions, self.device
        )

    def unet_conditioning(self, captions: list[str], rng: random.Random | None = None) -> dict[str, Any]:
        """Concatenated token states, the end/padding mask, and ``added_cond_kwargs`` (pooled embedding, size ids).
        Empty captions get zero conditioning, as SDXL's unconditional branch (in training, half of them: see
        :func:`~layoutguide.shapes.sdxl_model.zero_empty_captions`)."""
        hidden, pooled = zero_empty_captions(*self.encode(captions), captions, rng)
        ids = size_ids(len(captions), self.model_config().image_size, self.device)
        return {
            "encoder_hidden_states": hidden,
            "encoder_attention_mask": self.text_mask(captions),
            "added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids},
        }

    def encode_text(self, captions: list[str], encoder: torch.nn.Module | None = None) -> torch.Tensor:
        if encoder is not None:
            raise ValueError("the SDXL shapes model encodes with both its text encoders; no other encoder is taken")
        return self.encode(captions)[0]

    def export_pipeline(self, gligen: bool = False) -> Any:
        """A diffusers ``StableDiffusionXLPipeline`` holding the EMA weights."""
        from diffusers import StableDiffusionXLPipeline

        self.refuse_gligen(gligen)
        return StableDiffusionXLPipeline(**self.ema_components(), force_zeros_for_empty_prompt=True)

    def refuse_gligen(self, gligen: bool = True) -> None:
        if gligen:
            raise InputError("GLIGEN has no SDXL weights: the SDXL shapes model has no GLIGEN stage (drop --gligen)")

    def gligen_components(self, ema_weights: bool = True) -> dict:
        self.refuse_gligen()
        return {}

    def train_gligen(self, *args: Any, **kwargs: Any) -> None:
        self.refuse_gligen()


class EMASampler:
    """Samples a run's EMA weights as ``pipe(prompt=..., seed=...)`` does for the competence benchmark
    (``layoutguide.bench.run_competence``), before LayoutPipeline loads SDXL folders: DDIM, classifier-free guidance
    with zero unconditional conditioning inside the guidance interval, the conditional prediction alone above it.
    Each image's initial noise comes from its own seed, drawn as LayoutPipeline draws it."""

    def __init__(self, trainer: SDXLTrainer, defaults: dict[str, Any] | None = None):
        from diffusers import DDIMScheduler

        self.trainer = trainer
        self.defaults = {**SAMPLING_DEFAULTS, **(defaults or {})}
        parts = trainer.ema_components()
        self.parts = {name: parts[name].to(trainer.device).eval() for name in ("unet", "vae", *trainer.text_encoders)}
        self.scheduler = DDIMScheduler.from_config(trainer.scheduler.config)
        self.model_defaults: dict[str, Any] = dict(self.defaults)

    @torch.no_grad()
    def __call__(
        self,
        prompt: list[str],
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: list[int],
        progress: bool = False,
    ) -> Any:
        trainer, unet, vae = self.trainer, self.parts["unet"], self.parts["vae"]
        steps = num_inference_steps or self.defaults["num_inference_steps"]
        scale = self.defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        low, high = self.defaults["guidance_interval"] or (0, math.inf)
        n = len(prompt)
        hidden, pooled = encode_prompts(
            [trainer.tokenizer, trainer.tokenizer_2],
            [self.parts[name] for name in trainer.text_encoders],
            prompt,
            trainer.device,
        )
        mask = word_token_mask(trainer.tokenizer, prompt).to(trainer.device) if trainer.config.text_mask else None
        side = unet.config.sample_size
        z = torch.stack(
            [
                torch.randn(
                    (unet.config.in_channels, side, side), generator=torch.Generator().manual_seed(seed_for(s, 0, 0))
                )
                for s in seed
            ]
        ).to(trainer.device)
        ids = size_ids(2 * n, self.trainer.model_config().image_size, trainer.device)
        zeros = torch.zeros_like(hidden)
        both_mask = None if mask is None else torch.cat([word_token_mask(trainer.tokenizer, [""] * n), mask.cpu()])
        self.scheduler.set_timesteps(steps)
        for t in self.scheduler.timesteps:
            if low <= int(t) <= high and scale > 1.0:
                eps_u, eps_c = unet(
                    torch.cat([z, z]),
                    t,
                    encoder_hidden_states=torch.cat([zeros, hidden]),
                    encoder_attention_mask=None if both_mask is None else both_mask.to(trainer.device),
                    added_cond_kwargs={"text_embeds": torch.cat([torch.zeros_like(pooled), pooled]), "time_ids": ids},
                ).sample.chunk(2)
                eps = eps_u + scale * (eps_c - eps_u)
            else:
                eps = unet(
                    z,
                    t,
                    encoder_hidden_states=hidden,
                    encoder_attention_mask=mask,
                    added_cond_kwargs={"text_embeds": pooled, "time_ids": ids[:n]},
                ).sample
            z = self.scheduler.step(eps, t, z).prev_sample
        images = vae.decode(z / vae.config.scaling_factor).sample
        arrays = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return _Images([Image.fromarray(a) for a in arrays])


@dataclasses.dataclass
class _Images:
    images: list[Image.Image]
