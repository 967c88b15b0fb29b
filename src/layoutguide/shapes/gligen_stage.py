"""Stage 3 of the shapes trainer: GLIGEN's gated self-attention layers and position net trained on the frozen base
(docs/shapes.md, "The GLIGEN stage"); :class:`~.train.Trainer` calls these, and the SDXL and MMDiT trainers refuse
them (no GLIGEN weights exist for those architectures)."""

from __future__ import annotations

import contextlib
import math
import random
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..attention import AttentionRequest, AttentionStore, attention_control, recording
from ..methods.gligen import MAX_OBJECTS, fuser_position_code, grounding_phrase
from .grounding_captions import stage_captions
from .model import build_components
from .train import EMA, attention_grounding_loss, is_gligen_param, load_optim_state, optim_state
from .world import COLOURS, PLURALS, TRAIN_SEEDS, make_scene

if TYPE_CHECKING:
    from .train import Trainer


def box_masks(layouts, masks: torch.Tensor) -> torch.Tensor:
    """``(B, K, H, W)`` each layout's region boxes on its canvas, K = the most regions in a layout; zero where
    ``masks`` (B, >=K) drops a layout's grounding (null grounding)."""
    k = max(len(layout.regions) for layout in layouts)
    out = torch.zeros(len(layouts), k, layouts[0].height, layouts[0].width)
    for b, layout in enumerate(layouts):
        boxes = torch.from_numpy(layout.rasterize(layout.height, layout.width, boxes_only=True))
        out[b, : len(boxes)] = boxes
    return out * masks[:, :k, None, None].cpu()


def grounding_attention_loss(
    store: AttentionStore, boxes: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """TokenCompose's ``(L_token, L_pixel)`` on GLIGEN's fuser attention: grounding token k plays the word, box k
    (``boxes`` (B, K, H, W)) its mask; ``valid`` (B, >=K) marks real grounding tokens. The recorded maps are
    ``(B, heads, N + 30, N + 30)`` over [visual; grounding] tokens; the visual queries' rows are used."""
    k = boxes.shape[1]
    maps = {}
    for name, probs in store.maps.items():
        gh, gw = store.layers[name].grid(store.latent_hw)
        maps[name] = probs[:, :, : gh * gw, gh * gw :]  # visual queries -> grounding keys
    index = torch.arange(k, device=boxes.device).expand(len(boxes), k)
    return attention_grounding_loss(maps, store.layers, store.latent_hw, index, boxes, valid[:, :k])


@torch.no_grad()
def _init_attention_gates(trainable: dict[str, torch.nn.Parameter], alpha: float) -> None:
    """A fresh GLIGEN stage's attention gates (``alpha_attn``) set to ``alpha`` instead of GLIGEN's zero."""
    for n, p in trainable.items():
        if n.endswith(".alpha_attn"):
            p.fill_(alpha)


def gligen_components(trainer: Trainer, ema_weights: bool = True) -> dict:
    """A gated (GLIGEN) UNet holding the trained base weights; fusers and position net fresh or from the run."""
    parts = trainer.ema_components()
    gated = build_components(trainer.model_config(), seed=trainer.config.seed + 7, gated=True)["unet"]
    missing, unexpected = gated.load_state_dict(parts["unet"].state_dict(), strict=False)
    assert not unexpected and all(is_gligen_param(k) for k in missing), (missing, unexpected)
    name = "gligen_ema.safetensors" if ema_weights else "gligen.safetensors"
    if (trainer.ckpt / name).exists():
        gated.load_state_dict(load_file(trainer.ckpt / name), strict=False)
    parts["unet"] = gated
    return parts


def check_gligen_options(trainer: Trainer, min_timestep: int, grounding_text: str) -> None:
    if not 0 <= min_timestep < trainer.scheduler.config.num_train_timesteps:
        raise ValueError(
            f"min_timestep must be in [0, {trainer.scheduler.config.num_train_timesteps}), got {min_timestep}"
        )
    if grounding_text not in ("head", "phrase"):
        raise ValueError(f"grounding_text must be 'head' or 'phrase', got {grounding_text!r}")


def train_gligen(
    trainer: Trainer,
    steps: int = 3000,
    batch: int = 32,
    lr: float = 5e-4,
    p_drop: float = 0.1,
    gate_lr_scale: float = 20.0,
    ema_decay: float = 0.995,
    attn_gate_init: float = 0.0,
    min_timestep: int = 0,
    grounding_token_weight: float = 0.0,
    grounding_pixel_weight: float = 0.0,
    position_code: bool = False,
    grounding_text: str = "head",
    colourless_captions: float = 0.0,
    null_captions: float = 0.0,
) -> None:
    """GLIGEN's recipe on the shapes world: base UNet and text encoder frozen, only the gated self-attention
    layers and the position net learn. With ``grounding_text="head"`` grounding phrases carry the shape only
    ("circle"), captions keep the colours, so box grounding (spatial) and colour (textual) can be measured apart.
    With ``"phrase"`` they carry the region's whole phrase ("red circle"), as GLIGEN is trained on real data:
    the box then says which colour goes where, which binds attributes to objects.

    The gates (``alpha_attn``, ``alpha_dense``, zero at init as in GLIGEN) get ``gate_lr_scale`` times the
    learning rate: at the base rate a first 1,218-step run left every tanh(alpha) below 0.07, i.e. the new
    layers were still almost switched off, and a run of a few thousand steps is all a CPU allows.

    ``attn_gate_init`` (0 in GLIGEN) starts a fresh run's attention gates at that alpha: with a zero gate the
    fuser's attention gets no gradient, and on the shapes world it never switched on (docs/shapes.md).
    ``min_timestep`` (0 in GLIGEN) trains on noise levels from that timestep up only, where the object positions
    are least determined by the noisy image and the boxes should help most.

    ``grounding_token_weight`` / ``grounding_pixel_weight`` (0 in GLIGEN) add TokenCompose's two attention losses
    to the fusers' attention, with each grounding token as the "word" and its box as the mask: the share of a
    grounding token's attention (from the visual tokens) that comes from inside its box, and the BCE of its
    max-normalised map against the box. Not GLIGEN's recipe: a training aid, as the base model's attention
    supervision is; the architecture and inference are unchanged. Why (docs/shapes.md, the GLIGEN stage): the
    fusers start with uniform attention over 256 visual and 30 grounding tokens, so the 1-4 real grounding tokens
    get 0.3-1.4% of it, and in thousands of steps on this model the denoising loss alone never made that attention
    box-selective; with the loss it is (L_token 0.039 after 250 steps).

    ``position_code`` (not in GLIGEN) trains with :func:`~layoutguide.methods.gligen.fuser_position_code` on, a
    fixed 2D sinusoidal code on the fusers' visual tokens: the frozen tiny base's features carry little absolute
    position, and without it the supervised attention matches content instead (the tokens of an object already
    visible in x_t attend to its grounding token): box-selective on training scenes, useless for placing an
    object in noise (docs/results/gligen/position-experiment-fix.md). A model trained with it
    must be sampled with it (the gligen method's ``position_code`` option; ``export`` writes it into the
    model's defaults).

    ``colourless_captions`` (0 in the shipped stage) is the share of captions that name the shapes but no colour,
    as real GLIGEN's grounding data often lacks attributes, and ``null_captions`` (0 there) the share of empty
    captions with the boxes kept, as its detection data without captions (:mod:`.grounding_captions`)."""
    check_gligen_options(trainer, min_timestep, grounding_text)
    parts = trainer.gligen_components(ema_weights=False)
    unet, text = parts["unet"].to(trainer.device), parts["text_encoder"].to(trainer.device)
    text.requires_grad_(False).eval()
    trainable = {n: p for n, p in unet.named_parameters() if is_gligen_param(n)}
    unet.requires_grad_(False)
    for p in trainable.values():
        p.requires_grad_(True)
    if trainer.state.get("gligen_step", 0) == 0 and attn_gate_init:
        _init_attention_gates(trainable, attn_gate_init)
    gates = [p for n, p in trainable.items() if n.endswith((".alpha_attn", ".alpha_dense"))]
    others = [p for n, p in trainable.items() if not n.endswith((".alpha_attn", ".alpha_dense"))]
    opt = torch.optim.AdamW(
        [{"params": others, "lr": lr}, {"params": gates, "lr": lr * gate_lr_scale}], weight_decay=0.0
    )
    if (trainer.ckpt / "gligen_optim.safetensors").exists():
        load_optim_state(opt, load_file(trainer.ckpt / "gligen_optim.safetensors"))
    ema = EMA({"unet": unet}, ema_decay)
    if (trainer.ckpt / "gligen_ema.safetensors").exists():
        ema.shadow.update(
            {f"unet.{k}": v.to(trainer.device) for k, v in load_file(trainer.ckpt / "gligen_ema.safetensors").items()}
        )
    scaling = trainer.vae.config.scaling_factor
    alphas = trainer.scheduler.alphas_cumprod.to(trainer.device)
    start = trainer.state.get("gligen_step", 0)
    trained_with = trainer.state.get("gligen_config", {}).get("position_code", False)
    if start and trained_with != position_code:
        raise ValueError(
            f"this run's GLIGEN stage was trained with position_code={trained_with}; resume it with the same setting"
        )
    gen = torch.Generator(trainer.device).manual_seed(trainer.config.seed + 3 + start)
    rng = random.Random(trainer.config.seed + 3 + start)
    colour_rng = random.Random(trainer.config.seed + 5 + start)
    width = unet.config.cross_attention_dim
    # Grounding tokens embed the head noun as the layout writes it ("circle", or "circles" for a group), or the
    # whole phrase ("red circles"): what the gligen method feeds with the same grounding_text.
    nouns = sorted(set(PLURALS) | set(PLURALS.values()))
    phrases = nouns if grounding_text == "head" else [f"{c} {n}" for c in COLOURS for n in nouns]
    with torch.no_grad():
        ids = trainer.tokenizer(phrases, padding=True, return_tensors="pt").input_ids.to(trainer.device)
        phrase_embedding = dict(zip(phrases, text(ids).pooler_output))
    gligen_config = {
        "lr": lr,
        "batch": batch,
        "p_drop": p_drop,
        "gate_lr_scale": gate_lr_scale,
        "ema_decay": ema_decay,
        "attn_gate_init": attn_gate_init,
        "min_timestep": min_timestep,
        "grounding_token_weight": grounding_token_weight,
        "grounding_pixel_weight": grounding_pixel_weight,
        "position_code": position_code,
        "grounding_text": grounding_text,
        "colourless_captions": colourless_captions,
        "null_captions": null_captions,
    }
    previous = trainer.state.get("gligen_config")
    if start and previous is not None and previous != gligen_config:
        # the stage goes on with another recipe: keep the one of the steps so far, so the export's is whole
        trainer.state.setdefault("gligen_stages", []).append({"until_gligen_step": start, "config": previous})
    trainer.state["gligen_config"] = gligen_config
    supervise = grounding_token_weight > 0 or grounding_pixel_weight > 0
    store, request = AttentionStore(), AttentionRequest(kind="grounding", sides=None, places=("down", "mid", "up"))
    latent_side = unet.config.sample_size
    bar = tqdm(range(start, steps), desc="gligen", initial=start, total=steps)
    with (
        attention_control(unet, store, [request] if supervise else [], latent_hw=(latent_side, latent_side)),
        fuser_position_code(unet, (latent_side, latent_side)) if position_code else contextlib.nullcontext(),
    ):
        for step in bar:
            seeds = [TRAIN_SEEDS // 2 + step * batch + i for i in range(batch)]  # another slice of the training seeds
            scenes = [make_scene(s % TRAIN_SEEDS, n_objects=(1, trainer.config.max_objects)) for s in seeds]
            x = (
                torch.from_numpy(np.stack([np.asarray(sc.render(), dtype=np.float32) for sc in scenes])).permute(
                    0, 3, 1, 2
                )
                / 127.5
                - 1.0
            )
            captions = stage_captions(
                scenes, trainer.config.p_uncond, colourless_captions, rng, colour_rng, null_captions
            )
            layouts = [sc.layout(with_masks=False) for sc in scenes]
            boxes = torch.zeros(batch, MAX_OBJECTS, 4, device=trainer.device)
            embeds = torch.zeros(batch, MAX_OBJECTS, width, device=trainer.device)
            masks = torch.zeros(batch, MAX_OBJECTS, device=trainer.device)
            for b, layout in enumerate(layouts):
                if rng.random() < p_drop:
                    continue  # null grounding, so the model also works without boxes (and for CFG's uncond half)
                for k, region in enumerate(layout.regions):
                    boxes[b, k] = torch.tensor(region.box, device=trainer.device)
                    embeds[b, k] = phrase_embedding[grounding_phrase(region.phrase, grounding_text)]
                    masks[b, k] = 1
            with torch.no_grad():
                z0 = trainer.vae.encode(x.to(trainer.device)).latent_dist.mean * scaling
                cond = trainer.encode_text(captions, text)  # the frozen (EMA) text encoder
            t = torch.randint(
                min_timestep,
                trainer.scheduler.config.num_train_timesteps,
                (batch,),
                device=trainer.device,
                generator=gen,
            )
            noise = torch.randn(z0.shape, device=trainer.device, generator=gen)
            a = alphas[t].view(-1, 1, 1, 1)
            with recording(store, cfg=False, step=step, on=supervise):
                pred = unet(
                    a.sqrt() * z0 + (1 - a).sqrt() * noise,
                    t,
                    cond,
                    encoder_attention_mask=trainer.text_mask(captions),
                    cross_attention_kwargs={"gligen": {"boxes": boxes, "positive_embeddings": embeds, "masks": masks}},
                ).sample
            mse = F.mse_loss(pred, noise)
            loss, extra = mse, {}
            if supervise:
                l_token, l_pixel = grounding_attention_loss(
                    store, box_masks(layouts, masks).to(trainer.device), masks > 0
                )
                store.clear()
                loss = mse + grounding_token_weight * l_token + grounding_pixel_weight * l_pixel
                extra = {"g_token": l_token.item(), "g_pixel": l_pixel.item()}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(trainable.values()), trainer.config.grad_clip)
            opt.step()
            ema.update({"unet": unet}, step)
            trainer.state["gligen_step"] = step + 1
            gate = max(abs(math.tanh(p.item())) for p in gates)
            bar.set_postfix(
                loss=f"{mse.item():.4f}", max_gate=f"{gate:.2f}", **{k: f"{v:.3f}" for k, v in extra.items()}
            )
            done = step + 1 == steps or trainer._out_of_time()
            if (step + 1) % trainer.config.checkpoint_every == 0 or done:
                trainer._log(
                    stage="gligen",
                    step=step + 1,
                    loss=mse.item(),
                    **extra,
                    max_gate=gate,
                    seconds=time.time() - trainer.started,
                )
                trainer._save({n: p for n, p in unet.state_dict().items() if n in trainable}, "gligen.safetensors")
                trainer._save(
                    {k[5:]: v for k, v in ema.shadow.items() if k[5:] in trainable}, "gligen_ema.safetensors"
                )
                trainer._save(optim_state(opt), "gligen_optim.safetensors")
                trainer._save_state()
            if done:
                break
