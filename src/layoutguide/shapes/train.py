"""Train the shapes-world model: first the autoencoder, then the text encoder + UNet on its latents.

    layoutguide shapes train --out runs/shapes                  # resumes from runs/shapes/ckpt if present
    layoutguide shapes train --out runs/shapes --unet-steps 200 # a short run
    layoutguide shapes export --run runs/shapes --out DIR       # write a diffusers folder (EMA weights)

Scenes are rendered on the fly from seeds (step * batch + i), so a resumed run sees exactly the data it
would have seen, and no dataset sits on disk. CUDA is used when present; on 2 CPU cores the default run
takes about an hour. Checkpoints are safetensors (weights and optimiser moments) plus a JSON state file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..attention import AttentionRequest, AttentionStore, attention_control, recording
from ..layout import atomic_write_text
from ..loading import pick_device
from ..pipeline import LayoutPipeline
from ..text_mask import word_token_mask
from .model import ModelConfig, build_components
from .world import PLURALS, TRAIN_SEEDS, make_scene


@dataclasses.dataclass
class TrainConfig:
    # autoencoder (stage 1)
    vae_steps: int = 1500
    vae_batch: int = 16
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6  # small: we need sharp reconstructions, not a smooth prior
    # denoiser (stage 2)
    unet_steps: int = 8000
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1  # empty captions, for classifier-free guidance
    # Mask the end and padding tokens out of the UNet's cross-attention. Without it this model routed ~80% of its
    # attention to them (CLIP's causal encoder puts the whole caption there) and its word maps did not localise,
    # which is the premise of every attention-based layout method.
    text_mask: bool = False
    # Token-level attention supervision (TokenCompose, Wang et al., CVPR 2024): each caption's colour and shape
    # tokens are pushed to attend inside their objects' masks, on every cross-attention layer. Stable Diffusion's
    # word maps localise after web-scale training; a model trained from scratch on a few thousand batches of
    # shapes does not (docs/shapes.md measures it), and every attention-based layout method assumes they do.
    # ``attn_token_weight`` weighs TokenCompose's L_token, (1 - share of the token's attention inside its mask)^2;
    # ``attn_pixel_weight`` their L_pixel, BCE of the max-normalised map against the mask.
    attn_token_weight: float = 0.0
    attn_pixel_weight: float = 0.0
    max_objects: int = 4
    # Share of training scenes with 1, 2, ... max_objects objects (None: uniform, the shipped recipe). A fine-tuning
    # stage can lean on one-object scenes when a model draws extra objects beside the one a caption asks for.
    object_count_weights: list[float] | None = None
    # The warm-up + cosine learning-rate schedule runs from this step to ``unet_steps``: set it to a finished
    # run's step to fine-tune it (e.g. with attention supervision switched on) on a fresh schedule.
    schedule_start: int = 0
    # bookkeeping
    seed: int = 0
    checkpoint_every: int = 250
    sample_every: int = 1000
    max_minutes: float | None = None  # stop (after a checkpoint) once this much wall time has passed
    model: dict = dataclasses.field(default_factory=lambda: dataclasses.asdict(ModelConfig()))
    # "sd": the shipped model's Stable Diffusion architecture; "sdxl": SDXL's (shapes/sdxl_model.py), trained by
    # shapes/sdxl_train.py's SDXLTrainer. ``open_trainer`` picks the trainer from it.
    arch: str = "sd"


def render_batch(
    seeds: list[int],
    p_uncond: float,
    rng: random.Random,
    max_objects: int,
    count_weights: list[float] | None = None,
) -> tuple[torch.Tensor, list[str], list]:
    """Images in [-1, 1], shape (B, 3, 64, 64), their captions ("" for the unconditional share) and scenes.

    ``count_weights`` (one per count 1..``max_objects``) draws each scene's object count; the draw is seeded by
    the scene's seed, so a batch is the same whatever else the run does."""
    images, captions, scenes = [], [], []
    for seed in seeds:
        n_objects: int | tuple[int, int] = (1, max_objects)
        if count_weights is not None:
            n_objects = random.Random(seed).choices(range(1, len(count_weights) + 1), weights=count_weights)[0]
        scene = make_scene(seed % TRAIN_SEEDS, n_objects=n_objects)
        images.append(np.asarray(scene.render(), dtype=np.float32))
        captions.append("" if rng.random() < p_uncond else scene.caption)
        scenes.append(scene)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0  # (B, 3, H, W)
    return x, captions, scenes


def grounding_targets(tokenizer, scenes, captions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched :func:`caption_token_targets`: ``token_index`` (B, K), ``token_masks`` (B, K, H, W), ``valid``
    (B, K)."""
    per_sample = [caption_token_targets(tokenizer, sc) if cap else [] for sc, cap in zip(scenes, captions)]
    k = max(1, max(len(t) for t in per_sample))
    size = scenes[0].size
    index = torch.zeros(len(scenes), k, dtype=torch.long)
    masks = torch.zeros(len(scenes), k, size, size)
    valid = torch.zeros(len(scenes), k, dtype=torch.bool)
    for b, targets in enumerate(per_sample):
        for j, (token, mask) in enumerate(targets):
            index[b, j], masks[b, j], valid[b, j] = token, torch.from_numpy(mask.astype(np.float32)), True
    return index, masks, valid


def caption_token_targets(tokenizer, scene) -> list[tuple[int, np.ndarray]]:
    """``(token index, mask)`` for each colour and shape word of ``scene.caption``; a group ("two red
    circles") gets the union of its objects' masks. Count words and "and" are left unsupervised."""
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(scene.caption, truncation=True).input_ids)
    groups: dict[tuple[str, str], np.ndarray] = {}
    for obj, mask in zip(scene.objects, scene.masks()):
        key = (obj.colour, obj.shape)
        groups[key] = groups[key] | mask if key in groups else mask
    targets, cursor = [], 1
    for (colour, shape), mask in groups.items():  # caption order: groups by first appearance
        noun = shape if sum(o.colour == colour and o.shape == shape for o in scene.objects) == 1 else PLURALS[shape]
        for word in (colour, noun):
            cursor = tokens.index(word + "</w>", cursor)
            targets.append((cursor, mask))
            cursor += 1
    return targets


def attention_grounding_loss(
    maps: dict[str, torch.Tensor],
    layers: dict,
    latent_hw: tuple[int, int],
    token_index: torch.Tensor,
    token_masks: torch.Tensor,
    valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TokenCompose's two losses averaged over layers: ``(L_token, L_pixel)``.

    ``maps``: cross-attention probabilities ``(B, heads, Nq, 77)`` per layer; ``token_index`` ``(B, K)`` the
    supervised tokens, ``token_masks`` ``(B, K, H, W)`` their masks in [0, 1], ``valid`` ``(B, K)`` which of the
    K slots are used (captions have different numbers of words; empty captions have none).
    """
    weight = valid.float()
    denom = weight.sum().clamp(min=1.0)
    token_loss: Any = 0.0  # a tensor after the first layer
    pixel_loss: Any = 0.0
    for name, probs in maps.items():
        gh, gw = layers[name].grid(latent_hw)
        attn = probs.mean(1)  # (B, Nq, 77)
        attn = attn.gather(2, token_index[:, None, :].expand(-1, attn.shape[1], -1))  # (B, Nq, K)
        target = F.adaptive_avg_pool2d(token_masks, (gh, gw)).flatten(2).transpose(1, 2)  # (B, Nq, K)
        share = (attn * target).sum(1) / attn.sum(1).clamp(min=1e-8)
        token_loss = token_loss + ((1 - share) ** 2 * weight).sum() / denom
        normalised = (attn / attn.amax(1, keepdim=True).clamp(min=1e-8)).clamp(1e-6, 1 - 1e-6)
        bce = F.binary_cross_entropy(normalised, target, reduction="none").mean(1)
        pixel_loss = pixel_loss + (bce * weight).sum() / denom
    return token_loss / len(maps), pixel_loss / len(maps)


def is_gligen_param(name: str) -> bool:
    """Parameters GLIGEN adds to a UNet: the gated self-attention ("fuser") layers and the position net."""
    return ".fuser." in name or name.startswith("position_net.")


def optim_state(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW moments as a flat tensor dict (safetensors, not pickle)."""
    flat = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            flat[f"{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return flat


def load_optim_state(opt: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for name, value in flat.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    sd["state"] = state
    opt.load_state_dict(sd)


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, modules: dict[str, torch.nn.Module], decay: float):
        self.decay = decay
        self.shadow = {
            f"{m}.{n}": p.detach().clone() for m, mod in modules.items() for n, p in mod.state_dict().items()
        }

    @torch.no_grad()
    def update(self, modules: dict[str, torch.nn.Module], step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for m, mod in modules.items():
            for n, p in mod.state_dict().items():
                shadow = self.shadow[f"{m}.{n}"]
                if p.dtype.is_floating_point:
                    shadow.lerp_(p, 1 - decay)
                else:
                    shadow.copy_(p)

    def state_for(self, name: str) -> dict[str, torch.Tensor]:
        prefix = name + "."
        return {k[len(prefix) :]: v for k, v in self.shadow.items() if k.startswith(prefix)}


class Trainer:
    text_encoder_names: tuple[str, ...] = ("text_encoder",)  # trained with the UNet, in this order
    # the denoiser's component name (the MMDiT's "transformer"); ``self.unet`` holds it whatever the architecture
    denoiser_name = "unet"
    sampling_defaults: dict[str, Any] = {}  # an export's layoutguide.json starts from these (the SD run: none)

    def __init__(self, out: str | Path, config: TrainConfig | None = None, device: str | None = None):
        self.out = Path(out)
        self.ckpt = self.out / "ckpt"
        self.ckpt.mkdir(parents=True, exist_ok=True)
        state_file = self.ckpt / "state.json"
        self.state: dict[str, Any] = (
            json.loads(state_file.read_text()) if state_file.exists() else {"vae_step": 0, "unet_step": 0}
        )
        if config is None:
            config = TrainConfig(**self.state["config"]) if "config" in self.state else TrainConfig()
        self.config = config
        previous = self.state.get("config")
        if previous is not None and previous.get("schedule_start", 0) != config.schedule_start:
            # a new stage (fine-tune on a restarted schedule): keep the recipe of the steps so far, so the export's
            # is whole
            self.state.setdefault("stages", []).append(
                {
                    "until_unet_step": self.state["unet_step"],
                    "until_gligen_step": self.state.get("gligen_step", 0),
                    "config": previous,
                }
            )
        self.state["config"] = dataclasses.asdict(config)
        self.device = pick_device(device)
        parts = self.new_components(seed=config.seed)
        self.vae, self.unet, self.text_encoder = parts["vae"], parts[self.denoiser_name], parts["text_encoder"]
        self.text_encoders = {name: parts[name] for name in self.text_encoder_names}
        self.tokenizer, self.scheduler = parts["tokenizer"], parts["scheduler"]
        for name in ("vae", self.denoiser_name, *self.text_encoder_names):
            path = self.ckpt / f"{name}.safetensors"
            if path.exists():
                parts[name].load_state_dict(load_file(path))
        if "scaling_factor" in self.state:
            self.vae.register_to_config(scaling_factor=self.state["scaling_factor"])
        for m in (self.vae, self.unet, *self.text_encoders.values()):
            m.to(self.device)
        self.started = time.time()
        self.log_file = self.out / "log.jsonl"

    # ------------------------------------------------------------------------------------------- helpers
    def model_config(self) -> ModelConfig:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in self.config.model.items()}
        return ModelConfig(**fields)

    def new_components(self, seed: int) -> dict:
        """Fresh components of this run's architecture."""
        return build_components(self.model_config(), seed=seed)

    def unet_conditioning(self, captions: list[str], rng: random.Random | None = None) -> dict[str, Any]:
        """The UNet's text inputs for ``captions`` (keyword arguments after the timestep). ``rng``: training's
        random draws, for architectures whose conditioning draws any."""
        return {
            "encoder_hidden_states": self.encode_text(captions),
            "encoder_attention_mask": self.text_mask(captions),
        }

    def training_timesteps(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The training step's timesteps: uniform integers over the schedule (DDPM)."""
        return torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), device=self.device, generator=gen)

    def noised(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The noisy latents at ``t`` and the prediction target: variance-preserving noising, epsilon target."""
        a = self.scheduler.alphas_cumprod.to(self.device)[t].view(-1, 1, 1, 1)
        return a.sqrt() * z0 + (1 - a).sqrt() * noise, noise

    def denoise(self, zt: torch.Tensor, t: torch.Tensor, captions: list[str], rng: random.Random | None = None):
        """The denoiser's prediction for ``captions`` (the conditioning of :meth:`unet_conditioning`)."""
        return self.unet(zt, t, **self.unet_conditioning(captions, rng)).sample

    def text_attention_capture(self, store: AttentionStore) -> contextlib.AbstractContextManager:
        """Capture processors that record, into ``store``, the denoiser's text attention that the supervision losses
        read: every cross-attention layer's ``(B, heads, N, 77)`` probabilities."""
        side = self.unet.config.sample_size
        request = AttentionRequest(kind="cross", sides=None, places=("down", "mid", "up"))
        return attention_control(self.unet, store, [request], latent_hw=(side, side))

    def _log(self, **record) -> None:
        with open(self.log_file, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _out_of_time(self) -> bool:
        return self.config.max_minutes is not None and time.time() - self.started > 60 * self.config.max_minutes

    def _save_state(self) -> None:
        atomic_write_text(self.ckpt / "state.json", json.dumps(self.state, indent=2))

    def _save(self, tensors: dict[str, torch.Tensor], name: str) -> None:
        tmp = self.ckpt / f".{name}.tmp"
        out, storages = {}, set()
        for k, v in tensors.items():  # a tied weight (T5's shared embedding) is stored once per name
            v = v.detach().contiguous().cpu()
            storage = v.untyped_storage().data_ptr()
            out[k] = v.clone() if storage in storages else v
            storages.add(storage)
        save_file(out, str(tmp))
        tmp.replace(self.ckpt / name)

    def encode_text(self, captions: list[str], encoder: torch.nn.Module | None = None) -> torch.Tensor:
        """Per-token embeddings (B, 77, D) of the captions, by ``encoder`` (default: the one being trained)."""
        ids = self.tokenizer(
            captions,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return (encoder or self.text_encoder)(ids.to(self.device))[0]

    def text_mask(self, captions: list[str]) -> torch.Tensor | None:
        """Cross-attention keys the UNet may use: start token and words (None when ``text_mask`` is off)."""
        if not self.config.text_mask:
            return None
        return word_token_mask(self.tokenizer, captions).to(self.device)

    # ------------------------------------------------------------------------------------------- stage 1
    def train_vae(self) -> None:
        cfg = self.config
        if self.state["vae_step"] >= cfg.vae_steps and "scaling_factor" in self.state:
            return
        opt = torch.optim.AdamW(self.vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        if (self.ckpt / "vae_optim.safetensors").exists():
            load_optim_state(opt, load_file(self.ckpt / "vae_optim.safetensors"))
        rng = random.Random(cfg.seed + 1)
        bar = tqdm(
            range(self.state["vae_step"], cfg.vae_steps),
            desc="autoencoder",
            initial=self.state["vae_step"],
            total=cfg.vae_steps,
        )
        for step in bar:
            seeds = [TRAIN_SEEDS - 1 - (step * cfg.vae_batch + i) for i in range(cfg.vae_batch)]
            x, _, _ = render_batch(seeds, 0.0, rng, cfg.max_objects)
            x = x.to(self.device)
            posterior = self.vae.encode(x).latent_dist
            recon = self.vae.decode(posterior.sample()).sample
            rec_loss = F.l1_loss(recon, x) + F.mse_loss(recon, x)
            loss = rec_loss + cfg.kl_weight * posterior.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.vae.parameters(), cfg.grad_clip)
            opt.step()
            self.state["vae_step"] = step + 1
            bar.set_postfix(rec=f"{rec_loss.item():.4f}")
            done = step + 1 == cfg.vae_steps or self._out_of_time()
            if (step + 1) % cfg.checkpoint_every == 0 or done:
                self._log(stage="vae", step=step + 1, rec=rec_loss.item(), seconds=time.time() - self.started)
                self._save(self.vae.state_dict(), "vae.safetensors")
                self._save(optim_state(opt), "vae_optim.safetensors")
                self._save_state()
            if done:
                break
        if self.state["vae_step"] < cfg.vae_steps:
            return  # stopped by max_minutes; the latent scaling is measured when the stage is done
        # Scale latents to unit variance, as Stable Diffusion's 0.18215 does for its VAE.
        with torch.no_grad():
            x, _, _ = render_batch(list(range(TRAIN_SEEDS - 1, TRAIN_SEEDS - 513, -1)), 0.0, rng, cfg.max_objects)
            z = torch.cat([self.vae.encode(c.to(self.device)).latent_dist.mean for c in x.split(64)])
        self.state["scaling_factor"] = float(1.0 / z.std())
        self.vae.register_to_config(scaling_factor=self.state["scaling_factor"])
        self._save_state()

    # ------------------------------------------------------------------------------------------- stage 2
    def train_unet(self) -> None:
        cfg = self.config
        self.vae.requires_grad_(False).eval()
        modules = {self.denoiser_name: self.unet, **self.text_encoders}
        params = [p for module in modules.values() for p in module.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
        if (self.ckpt / "optim.safetensors").exists():
            load_optim_state(opt, load_file(self.ckpt / "optim.safetensors"))
        ema = EMA(modules, cfg.ema_decay)
        if (self.ckpt / "ema.safetensors").exists():
            ema.shadow = {k: v.to(self.device) for k, v in load_file(self.ckpt / "ema.safetensors").items()}
        scaling = self.vae.config.scaling_factor
        gen = torch.Generator(self.device).manual_seed(cfg.seed + self.state["unet_step"])
        rng = random.Random(cfg.seed + self.state["unet_step"])
        start = self.state["unet_step"]
        supervise = cfg.attn_token_weight > 0 or cfg.attn_pixel_weight > 0
        store = AttentionStore()
        bar = tqdm(range(start, cfg.unet_steps), desc="denoiser", initial=start, total=cfg.unet_steps)
        # Capture processors go in once for the whole stage (only on the text-attention layers, only when
        # supervising); they fall through to the stock processors when not recording (sample grids).
        with self.text_attention_capture(store) if supervise else contextlib.nullcontext():
            for step in bar:
                # linear warm-up, then cosine decay to 10% over the planned steps
                progress = min(1.0, (step - cfg.schedule_start) / max(1, cfg.unet_steps - cfg.schedule_start))
                warm = min(1.0, (step - cfg.schedule_start + 1) / cfg.warmup)
                lr = cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
                for group in opt.param_groups:
                    group["lr"] = lr
                seeds = [step * cfg.batch + i for i in range(cfg.batch)]
                x, captions, scenes = render_batch(seeds, cfg.p_uncond, rng, cfg.max_objects, cfg.object_count_weights)
                with torch.no_grad():
                    z0 = self.vae.encode(x.to(self.device)).latent_dist.mean * scaling  # (B, 4, 16, 16)
                t = self.training_timesteps(len(seeds), gen)
                noise = torch.randn(z0.shape, device=self.device, generator=gen)
                zt, target = self.noised(z0, noise, t)
                with recording(store, cfg=False, step=step, on=supervise):
                    pred = self.denoise(zt, t, captions, rng)
                mse = F.mse_loss(pred, target)
                loss, extra = mse, {}
                if supervise:
                    index, masks, valid = (
                        v.to(self.device) for v in grounding_targets(self.tokenizer, scenes, captions)
                    )
                    l_token, l_pixel = attention_grounding_loss(
                        store.maps, store.layers, store.latent_hw, index, masks, valid
                    )
                    store.clear()  # the loss holds the graph; the dict need not keep the maps until the next step
                    loss = mse + cfg.attn_token_weight * l_token + cfg.attn_pixel_weight * l_pixel
                    extra = {"l_token": l_token.item(), "l_pixel": l_pixel.item()}
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                ema.update(modules, step)
                self.state["unet_step"] = step + 1
                bar.set_postfix(loss=f"{mse.item():.4f}", lr=f"{lr:.1e}", **{k: f"{v:.3f}" for k, v in extra.items()})
                done = step + 1 == cfg.unet_steps or self._out_of_time()
                if (step + 1) % cfg.checkpoint_every == 0 or done:
                    self._log(
                        stage="unet",
                        step=step + 1,
                        loss=mse.item(),
                        **extra,
                        grad_norm=float(grad_norm),
                        seconds=time.time() - self.started,
                    )
                    for name, module in modules.items():
                        self._save(module.state_dict(), f"{name}.safetensors")
                    self._save(ema.shadow, "ema.safetensors")
                    self._save(optim_state(opt), "optim.safetensors")
                    self._save_state()
                if cfg.sample_every and (step + 1) % cfg.sample_every == 0:
                    self.sample_grid(self.out / f"samples_{step + 1:06d}.png", ema)
                if done:
                    break

    @torch.no_grad()
    def sample_grid(
        self, path: Path, ema: EMA | None = None, n: int = 16, steps: int = 30, cfg_scale: float = 3.0
    ) -> None:
        """A quick look at progress: n held-out captions sampled with the EMA weights (:meth:`sample_latents`)."""
        from PIL import Image

        modules = {self.denoiser_name: self.unet, **self.text_encoders}
        backup = None
        if ema is not None:
            backup = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}
            for name, m in modules.items():
                m.load_state_dict(ema.state_for(name))
        for m in modules.values():
            m.eval()
        try:
            captions = [make_scene(10_000_000 + i).caption for i in range(n)]
            z = self.sample_latents(captions, steps, cfg_scale)
            img = self.vae.decode(z / self.vae.config.scaling_factor).sample
            img = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            side = int(math.ceil(math.sqrt(n)))
            grid = Image.new("RGB", (side * 64, side * 64), "white")
            for i, im in enumerate(img):
                grid.paste(Image.fromarray(im), ((i % side) * 64, (i // side) * 64))
            grid.save(path)
            (path.with_suffix(".txt")).write_text("\n".join(captions) + "\n")
        finally:
            for name, m in modules.items():
                if backup is not None:
                    m.load_state_dict(backup[name])
                m.train()

    def sample_latents(self, captions: list[str], steps: int, cfg_scale: float) -> torch.Tensor:
        """Latents of ``captions`` by the denoiser as it is (DDIM, classifier-free guidance, fixed noise)."""
        from diffusers import DDIMScheduler

        unet, n = self.unet, len(captions)
        conditioning = self.unet_conditioning([""] * n + captions)
        sched = DDIMScheduler.from_config(self.scheduler.config)
        sched.set_timesteps(steps)
        g = torch.Generator(self.device).manual_seed(0)
        side = unet.config.sample_size
        z = torch.randn((n, unet.config.in_channels, side, side), generator=g, device=self.device)
        for t in sched.timesteps:
            eps_u, eps_c = unet(torch.cat([z, z]), t, **conditioning).sample.chunk(2)
            z = sched.step(eps_u + cfg_scale * (eps_c - eps_u), t, z).prev_sample
        return z

    # ------------------------------------------------------------------------------------------- stage 3
    def gligen_components(self, ema_weights: bool = True) -> dict:
        """A gated (GLIGEN) UNet holding the trained base weights (:func:`.gligen_stage.gligen_components`)."""
        from .gligen_stage import gligen_components

        return gligen_components(self, ema_weights)

    def train_gligen(self, **options: Any) -> None:
        """Stage 3, GLIGEN's gated layers on the frozen base: :func:`.gligen_stage.train_gligen` (its options)."""
        from .gligen_stage import train_gligen

        train_gligen(self, **options)

    def export_pipeline(self, gligen: bool = False) -> Any:
        """The pipeline ``export`` saves: EMA weights (``gligen``: the gated model)."""
        return LayoutPipeline(**(self.gligen_components() if gligen else self.ema_components()))

    def run(self) -> None:
        self.train_vae()
        if not self._out_of_time():
            self.train_unet()

    def ema_components(self) -> dict:
        """Components with the EMA weights loaded, for export."""
        parts = self.new_components(seed=0)
        parts["vae"].load_state_dict(load_file(self.ckpt / "vae.safetensors"))
        parts["vae"].register_to_config(scaling_factor=self.state["scaling_factor"])
        ema = load_file(self.ckpt / "ema.safetensors")
        for name in (self.denoiser_name, *self.text_encoder_names):
            prefix = name + "."
            parts[name].load_state_dict({k[len(prefix) :]: v for k, v in ema.items() if k.startswith(prefix)})
        return parts


# The shapes models read their full-latent 16x16 layers (level 0), where their methods were calibrated
# (docs/shapes.md), not the quarter-latent level Stable Diffusion's published choices mean; refocus's early stop
# keeps the raw-loss comparison its loss_scale was tuned with. The shipped models' layoutguide.json hold the same.
SHAPES_LAYER_DEFAULTS: dict[str, dict[str, object]] = {
    "refocus": {"level": 0, "early_stop_on": "raw"},
    "boxdiff": {"level": 0},
    "layout-guidance": {"level": 0},
    "attend-excite": {"level": 0},
    "zestguide": {"levels": [0]},
}


def pin_shapes_layers(defaults: dict) -> None:
    """Add :data:`SHAPES_LAYER_DEFAULTS` (and ``attention_level`` 0 for returned maps) to a shapes model's defaults,
    keeping any value already there."""
    defaults.setdefault("attention_level", 0)
    methods = defaults.setdefault("methods", {})
    for name, pins in SHAPES_LAYER_DEFAULTS.items():
        for key, value in pins.items():
            methods.setdefault(name, {}).setdefault(key, value)


def export(run: str | Path, out: str | Path, *, gligen: bool = False) -> None:
    """Write the run's EMA weights as a diffusers pipeline folder plus ``training.json`` (recipe and progress);
    ``gligen=True`` writes the gated (GLIGEN) model of stage 3 instead."""
    trainer = open_trainer(run, device="cpu")
    out = Path(out)
    defaults_file = out / "layoutguide.json"
    written = json.loads(defaults_file.read_text()) if defaults_file.exists() else {}
    defaults = {**trainer.sampling_defaults, **written}  # keep calibrated defaults written earlier
    defaults["text_mask"] = "words" if trainer.config.text_mask else "none"
    pin_shapes_layers(defaults)
    if gligen:
        config = trainer.state.get("gligen_config", {})
        methods = defaults.setdefault("methods", {})
        for name in ("gligen", "reground"):  # sample as the stage was trained
            methods.setdefault(name, {}).update(
                position_code=bool(config.get("position_code", False)),
                grounding_text=config.get("grounding_text", "head"),
            )
    trainer.export_pipeline(gligen).save_pretrained(out)
    atomic_write_text(defaults_file, json.dumps(defaults, indent=2) + "\n")
    recipe = {
        "config": trainer.state["config"],
        "vae_step": trainer.state["vae_step"],
        "unet_step": trainer.state["unet_step"],
        "gligen_step": trainer.state.get("gligen_step", 0),
        "scaling_factor": trainer.state["scaling_factor"],
        "stages": trainer.state.get("stages", []),
    }
    if gligen and "gligen_config" in trainer.state:
        recipe["gligen_config"] = trainer.state["gligen_config"]
        recipe["gligen_stages"] = trainer.state.get("gligen_stages", [])
    atomic_write_text(out / "training.json", json.dumps(recipe, indent=2) + "\n")


def init_run_from_export(folder: str | Path, run: str | Path) -> None:
    """Start a run folder from an exported model (``export``'s output, e.g. the committed weights), so training
    can go on where the export left it: weights (the export's EMA weights serve as both the live and the EMA
    copy), step counts, recipe and latent scaling. Optimiser moments are not exported: they restart, which the
    warm-up of the learning-rate schedule absorbs. A gated (GLIGEN) export also seeds the GLIGEN stage."""
    folder, ckpt = Path(folder), Path(run) / "ckpt"
    if (ckpt / "state.json").exists():
        raise FileExistsError(f"{ckpt} already holds a run; choose another run folder")
    recipe = json.loads((folder / "training.json").read_text())
    denoiser = "transformer" if (folder / "transformer").is_dir() else "unet"  # the MMDiT's export: SD3's folder
    unet = load_file(folder / denoiser / "diffusion_pytorch_model.safetensors")
    texts = {  # SDXL's has two, the MMDiT's three
        name: load_file(folder / name / "model.safetensors")
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3")
        if (folder / name).is_dir()
    }
    for text in texts.values():  # save_pretrained drops T5's tied input embedding; the trainer's state_dict has it
        if "shared.weight" in text and "encoder.embed_tokens.weight" not in text:
            text["encoder.embed_tokens.weight"] = text["shared.weight"].clone()
    gligen = {k: v for k, v in unet.items() if is_gligen_param(k)}
    base = {k: v for k, v in unet.items() if k not in gligen}
    ckpt.mkdir(parents=True, exist_ok=True)
    files = {
        "vae.safetensors": load_file(folder / "vae" / "diffusion_pytorch_model.safetensors"),
        f"{denoiser}.safetensors": base,
        **{f"{name}.safetensors": text for name, text in texts.items()},
        "ema.safetensors": {
            **{f"{denoiser}.{k}": v for k, v in base.items()},
            **{f"{name}.{k}": v for name, text in texts.items() for k, v in text.items()},
        },
    }
    if gligen:
        files.update({"gligen.safetensors": gligen, "gligen_ema.safetensors": gligen})
    for name, tensors in files.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(ckpt / name))
    state = {k: recipe[k] for k in ("config", "vae_step", "unet_step", "scaling_factor")}
    state["stages"] = recipe.get("stages", [])
    if gligen:
        state["gligen_step"] = recipe.get("gligen_step", 0)
        for key in ("gligen_config", "gligen_stages"):
            if key in recipe:
                state[key] = recipe[key]
    atomic_write_text(ckpt / "state.json", json.dumps(state, indent=2))


def init_fresh_run(run: str | Path, config: TrainConfig, autoencoder_from: str | Path | None = None) -> None:
    """Start a new run folder with fresh weights of ``config.arch``; then ``layoutguide shapes train --out RUN``.

    ``autoencoder_from`` (a run folder or an exported model whose autoencoder stage is done) seeds the autoencoder
    and its latent scaling instead of training a new one: the stage's steps are marked done, so training starts with
    the denoiser. Architectures that share an autoencoder (the SDXL and MMDiT shapes models) then also share their
    latent space, as SD3 and SDXL do not but as the shapes world's comparisons want (one encoder, one decoder)."""
    ckpt = Path(run) / "ckpt"
    if (ckpt / "state.json").exists():
        raise FileExistsError(f"{ckpt} already holds a run; choose another run folder")
    state: dict[str, Any] = {"vae_step": 0, "unet_step": 0, "config": dataclasses.asdict(config)}
    vae = None
    if autoencoder_from is not None:
        vae, state["scaling_factor"] = read_autoencoder(autoencoder_from, config)
        state["vae_step"], state["autoencoder_from"] = config.vae_steps, str(autoencoder_from)
    ckpt.mkdir(parents=True, exist_ok=True)
    if vae is not None:
        save_file(vae, str(ckpt / "vae.safetensors"))
    atomic_write_text(ckpt / "state.json", json.dumps(state, indent=2))


def read_autoencoder(source: str | Path, config: TrainConfig) -> tuple[dict[str, torch.Tensor], float]:
    """The trained autoencoder weights and latent scaling of a run folder or an exported shapes model, checked to
    fit ``config``'s autoencoder (same widths, latent channels and image size)."""
    from types import SimpleNamespace

    from ..errors import InputError
    from .model import build_vae

    source = Path(source)
    if (source / "ckpt" / "state.json").is_file():  # a run folder
        record, weights = json.loads((source / "ckpt" / "state.json").read_text()), source / "ckpt" / "vae.safetensors"
    elif (source / "training.json").is_file():  # an export
        record = json.loads((source / "training.json").read_text())
        weights = source / "vae" / "diffusion_pytorch_model.safetensors"
    else:
        raise InputError(
            f"--autoencoder-from: {source} is neither a training run (ckpt/state.json) nor an exported "
            "shapes model (training.json); give one of those folders"
        )
    done = record.get("vae_step", 0) >= record["config"]["vae_steps"] and "scaling_factor" in record
    if not done or not weights.is_file():
        raise InputError(
            f"--autoencoder-from: {source} has not finished its autoencoder stage; train it further "
            "or give another folder"
        )
    tensors = load_file(weights)
    fields = {"vae_channels": (16, 32), "latent_channels": 4, "norm_groups": 16, "image_size": 64, **config.model}
    try:
        build_vae(SimpleNamespace(**fields)).load_state_dict(tensors)
    except RuntimeError as e:
        raise InputError(
            f"--autoencoder-from: {source}'s autoencoder does not fit this run's (model.vae_channels "
            f"{list(fields['vae_channels'])}, latent_channels {fields['latent_channels']}): "
            f"{str(e).splitlines()[0]}"
        ) from None
    return tensors, float(record["scaling_factor"])


def open_trainer(out: str | Path, config: TrainConfig | None = None, device: str | None = None) -> Trainer:
    """The trainer of the run in ``out`` for its architecture (``config.arch``, else the run's own)."""
    state_file = Path(out) / "ckpt" / "state.json"
    if config is None and state_file.exists():
        arch = json.loads(state_file.read_text())["config"].get("arch", "sd")
    else:
        arch = config.arch if config is not None else "sd"
    if arch == "sdxl":
        from .sdxl_train import SDXLTrainer

        return SDXLTrainer(out, config, device)
    if arch == "mmdit":
        from .mmdit_train import MMDiTTrainer

        return MMDiTTrainer(out, config, device)
    if arch != "sd":
        raise ValueError(f"arch must be 'sd', 'sdxl' or 'mmdit', got {arch!r}")
    return Trainer(out, config, device)


if __name__ == "__main__":  # pragma: no cover
    import sys

    Trainer(sys.argv[1] if len(sys.argv) > 1 else "runs/shapes").run()
