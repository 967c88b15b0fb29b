"""Training the MMDiT shapes model (``shapes/mmdit_model.py``, SD3's architecture) with the shapes trainer.

    layoutguide shapes init-run --arch mmdit --out runs/shapes-mmdit      # a new run: SD3 architecture, stage 1
    layoutguide shapes train --out runs/shapes-mmdit --max-minutes 60     # trains, resumes, stops at a checkpoint
    layoutguide shapes export --run runs/shapes-mmdit --out DIR           # a StableDiffusion3Pipeline folder

Everything but the diffusion objective and the conditioning is the shapes trainer's (``shapes/train.py``):
autoencoder first, then the text encoders and the denoiser jointly, on the same scenes, learning-rate schedule, EMA,
checkpoints and stages. The objective is rectified flow: ``x_t = (1 - s) x_0 + s e`` at logit-normal ``s`` (SD3's
training distribution), the transformer predicting the velocity ``e - x_0`` at timestep ``1000 s``. The conditioning
is SD3's (:func:`~layoutguide.backbones.dit_families.encode_sd3_text`, the function the sampling pipeline uses).
Attention supervision (TokenCompose, ``--attn-token-weight`` / ``--attn-pixel-weight``) reads the text part of joint
attention, the maps the layout methods read on this model; the GLIGEN stage (a UNet's gated layers) is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from pathlib import Path
from typing import Any

import torch

from ..attention import AttentionRequest, AttentionStore
from ..backbones.dit_families import encode_sd3_text, sd3_text_layout
from ..errors import InputError
from ..joint_attention import joint_attention_control
from .mmdit_model import MMDiTModelConfig, build_mmdit_components
from .train import TrainConfig, Trainer, init_fresh_run

# Sampling defaults of an export (its layoutguide.json): 28 flow steps (SD3's default), CFG 3 (the shapes models')
SAMPLING_DEFAULTS: dict[str, Any] = {"num_inference_steps": 28, "guidance_scale": 3.0}


def mmdit_stage1_config(**changes: Any) -> TrainConfig:
    """The shipped model's first stage (docs/shapes.md) on the MMDiT architecture: same steps, batch, schedule and
    EMA; no text mask (an MMDiT's text tokens attend each other; the mask is a UNet cross-attention input)."""
    return dataclasses.replace(
        TrainConfig(
            arch="mmdit",
            unet_steps=6000,
            sample_every=500,
            checkpoint_every=100,
            model=dataclasses.asdict(MMDiTModelConfig()),
        ),
        **changes,
    )


def init_mmdit_run(
    run: str | Path, config: TrainConfig | None = None, autoencoder_from: str | Path | None = None
) -> None:
    """Start a new run folder for the MMDiT architecture (the autoencoder of ``autoencoder_from`` if given: the SDXL
    shapes model's has this model's widths); then ``layoutguide shapes train --out RUN`` trains it."""
    config = config or mmdit_stage1_config()
    if config.arch != "mmdit":
        raise ValueError(f"init_mmdit_run needs arch 'mmdit', got {config.arch!r}")
    init_fresh_run(run, config, autoencoder_from)


class MMDiTTrainer(Trainer):
    """The shapes trainer with SD3's transformer, three text encoders and a rectified-flow objective."""

    text_encoder_names = ("text_encoder", "text_encoder_2", "text_encoder_3")
    denoiser_name = "transformer"
    sampling_defaults = SAMPLING_DEFAULTS

    def __init__(self, out: str | Path, config: TrainConfig | None = None, device: str | None = None):
        super().__init__(out, config, device)
        if self.config.text_mask:
            raise InputError(
                "text_mask: the MMDiT shapes model has no cross-attention mask input (SD3 attends every text token, "
                "end and padding included); set it to false"
            )

    def model_config(self) -> MMDiTModelConfig:  # type: ignore[override]  # the MMDiT widths
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.model.items()}
        return MMDiTModelConfig(**fields)

    def new_components(self, seed: int) -> dict:
        parts = build_mmdit_components(self.model_config(), seed=seed)
        self.tokenizer_2, self.tokenizer_3 = parts["tokenizer_2"], parts["tokenizer_3"]
        return parts

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """SD3's ``(prompt_embeds, pooled_prompt_embeds)`` of ``captions`` by the encoders being trained."""
        encoders = self.text_encoders
        return encode_sd3_text(
            (encoders["text_encoder"], encoders["text_encoder_2"]),
            (self.tokenizer, self.tokenizer_2),
            (encoders["text_encoder_3"], self.tokenizer_3, self.model_config().t5_tokens),
            self.model_config().width,
            captions,
        )

    def encode_text(self, captions: list[str], encoder: torch.nn.Module | None = None) -> torch.Tensor:
        if encoder is not None:
            raise ValueError("the MMDiT shapes model encodes with its three text encoders; no other encoder is taken")
        return self.encode(captions)[0]

    def text_attention_capture(self, store: AttentionStore) -> contextlib.AbstractContextManager:
        """The text part of every block's joint attention (image queries over the CLIP columns, renormalised: the
        maps the pipeline's methods read), ``(B, heads, N, 77)`` as a UNet's cross-attention."""
        side = self.unet.config.sample_size
        layout = sd3_text_layout(self.tokenizer.model_max_length, self.model_config().t5_tokens)
        return joint_attention_control(
            self.unet, store, {"supervision": AttentionRequest("text")}, None, latent_hw=(side, side), layout=layout
        )

    def training_timesteps(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``1000 s`` with ``s = sigmoid(u)``, ``u ~ N(0, 1)``: SD3's logit-normal training times."""
        return torch.sigmoid(torch.randn(n, device=self.device, generator=gen)) * 1000

    def noised(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = (t / 1000).view(-1, 1, 1, 1)
        return (1 - s) * z0 + s * noise, noise - z0

    def denoise(self, zt: torch.Tensor, t: torch.Tensor, captions: list[str], rng: random.Random | None = None):
        hidden, pooled = self.encode(captions)
        return self.unet(hidden_states=zt, timestep=t, encoder_hidden_states=hidden, pooled_projections=pooled).sample

    def unet_conditioning(self, captions: list[str], rng: random.Random | None = None) -> dict[str, Any]:
        hidden, pooled = self.encode(captions)
        return {"encoder_hidden_states": hidden, "pooled_projections": pooled}

    def sample_latents(self, captions: list[str], steps: int, cfg_scale: float) -> torch.Tensor:
        """Flow-matching Euler with classifier-free guidance (the empty caption encoded, as SD3 samples)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        n, transformer = len(captions), self.unet
        conditioning = self.unet_conditioning([""] * n + captions)
        sched = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        sched.set_timesteps(steps)
        side = transformer.config.sample_size
        g = torch.Generator(self.device).manual_seed(0)
        z = torch.randn((n, transformer.config.in_channels, side, side), generator=g, device=self.device)
        for t in sched.timesteps:
            timestep = t.expand(2 * n).to(self.device)
            v_u, v_c = transformer(hidden_states=torch.cat([z, z]), timestep=timestep, **conditioning).sample.chunk(2)
            z = sched.step(v_u + cfg_scale * (v_c - v_u), t, z).prev_sample
        return z

    def export_pipeline(self, gligen: bool = False) -> Any:
        """A diffusers ``StableDiffusion3Pipeline`` holding the EMA weights."""
        from diffusers import StableDiffusion3Pipeline

        self.refuse_gligen(gligen)
        return StableDiffusion3Pipeline(**self.ema_components())

    def refuse_gligen(self, gligen: bool = True) -> None:
        if gligen:
            raise InputError("GLIGEN has no SD3 weights: the MMDiT shapes model has no GLIGEN stage (drop --gligen)")

    def gligen_components(self, ema_weights: bool = True) -> dict:
        self.refuse_gligen()
        return {}

    def train_gligen(self, *args: Any, **kwargs: Any) -> None:
        self.refuse_gligen()
