"""Why does the shapes GLIGEN model barely ground? Do its visual features know where they are?

GLIGEN's gated self-attention has no positional encoding: a visual token can attend to the grounding token
of the box it lies in only if its own features already encode its absolute position (in Stable Diffusion's
deep UNet, zero padding and large receptive fields put it there). Two subcommands:

    python benchmarks/gligen_position_probe.py probe --n 96 --out docs/results/gligen/position-probe.md
    python benchmarks/gligen_position_probe.py experiment --steps 400 --out docs/results/gligen/position-experiment.md

``probe`` measures both halves of the argument on noised latents of held-out scenes, with grounding on:
*linear probes* on the input of every fuser (the block's hidden states after self-attention): ridge regression
from the features to the token's x and y (R^2 and RMSE on held-out scenes) and, as a control that the probe can
read what the features do carry, to "this token lies on an object"; and the *grounding attention*: for every
object, the attention its grounding token receives from visual tokens inside its box divided by what it
receives from tokens outside (1 = the fuser cannot tell where a box is).

``experiment`` is the causal test: GLIGEN's stage is trained from the same base for the same steps, as
published (arm ``plain``) and with a fixed 2D sinusoidal position code added to the fusers' normalised visual tokens
(arm ``position``, :func:`layoutguide.methods.gligen.fuser_position_code`). If missing position is what stops
grounding, only the second
learns box-selective attention, lowers the denoising loss with boxes given, and places objects. A third arm
(``gate``) starts the fusers' attention gates at ``--gate-init`` instead of GLIGEN's zero, which tests the other
explanation: a zero gate passes no gradient to the attention that reads the grounding tokens. A fourth
(``highnoise``) trains on timesteps from ``--min-timestep`` up only, where the boxes should help most. Two more test
the fix the shipped shapes GLIGEN model uses: ``supervised`` adds the grounding-attention loss (each grounding token's
attention should come from inside its box; ``train_gligen(grounding_token_weight=1)``), and ``supervised+position``
adds it and the position code (the shipped recipe, library function ``fuser_position_code``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from pathlib import Path

import numpy as np
import torch


def ridge_r2(train_x, train_y, test_x, test_y, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Held-out R^2 and RMSE of a ridge regression (features standardised on the training split), one per target
    column."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mu) / sd, (test_x - mu) / sd
    a = np.hstack([a, np.ones((len(a), 1))])
    b = np.hstack([b, np.ones((len(b), 1))])
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ train_y)
    residual = ((b @ w - test_y) ** 2).sum(0)
    total = ((test_y - test_y.mean(0)) ** 2).sum(0)
    return 1 - residual / total, np.sqrt(residual / len(test_y))


def held_out_batch(pipe, n: int, seed: int):
    """Scenes of a benchmark suite with their clean latents, text embeddings, text mask and GLIGEN inputs."""
    from layoutguide.bench import shapes_suite
    from layoutguide.methods.base import GuidanceContext
    from layoutguide.methods.gligen import grounding_inputs

    scenes = shapes_suite(n, seed=seed)
    layouts = [s.layout(with_masks=True) for s in scenes]
    images = (
        torch.from_numpy(np.stack([np.asarray(s.render(), dtype=np.float32) for s in scenes])).permute(0, 3, 1, 2)
        / 127.5
        - 1
    )
    with torch.no_grad():
        z0 = pipe.vae.encode(images).latent_dist.mean * pipe.vae.config.scaling_factor
        cond = pipe.encode_prompt([layout.prompt for layout in layouts])
    ctx = GuidanceContext(
        layouts, [], 1, tuple(z0.shape[-2:]), z0.device, pipe.scheduler.alphas_cumprod, torch.zeros(1)
    )
    gligen = grounding_inputs(pipe, ctx, "head")
    return scenes, ctx, z0, cond, pipe.text_attention_mask([layout.prompt for layout in layouts]), gligen


def measure(pipe, n: int = 96, timesteps=(250, 500, 750)) -> list[dict]:
    """Per fuser block: probe R^2/RMSE for x, y and on-object, and the median own-box in/out grounding attention."""
    from layoutguide.attention import AttentionRequest, AttentionStore, attention_control, recording
    from layoutguide.methods.gligen import grounded_blocks

    unet = pipe.unet
    grounded = {id(block) for block in grounded_blocks(unet)}
    blocks = {name: m for name, m in unet.named_modules() if id(m) in grounded}
    scenes, ctx, z0, cond, text_mask, gligen = held_out_batch(pipe, n, seed=4)
    generator = torch.Generator().manual_seed(0)
    features: dict[str, list[torch.Tensor]] = {name: [] for name in blocks}
    hooks = [
        blocks[name].fuser.register_forward_pre_hook(lambda m, a, name=name: features[name].append(a[0].detach()))
        for name in blocks
    ]
    store = AttentionStore()
    request = AttentionRequest("grounding", None, ("down", "mid", "up"))
    ratios: dict[str, list[float]] = {}
    try:
        with attention_control(unet, store, [request], latent_hw=ctx.latent_hw), torch.no_grad():
            for t in timesteps:
                a = pipe.scheduler.alphas_cumprod[t]
                x_t = a.sqrt() * z0 + (1 - a).sqrt() * torch.randn(z0.shape, generator=generator)
                with recording(store, cfg=False, step=0):
                    unet(
                        x_t,
                        torch.full((len(z0),), t),
                        cond,
                        encoder_attention_mask=text_mask,
                        cross_attention_kwargs={"gligen": gligen},
                    )
                for name, probs in store.get(request).items():  # (B, heads, N + 30, N + 30)
                    grid = store.layers[name].grid(ctx.latent_hw)
                    cells = grid[0] * grid[1]
                    to_tokens = probs[:, :, :cells, cells:].mean(1)  # (B, N, 30)
                    for b in range(len(scenes)):
                        boxes = ctx.region_masks(b, grid, boxes_only=True).flatten(1)  # (R, N)
                        for r in range(len(boxes)):
                            inside = boxes[r] > 0.5
                            if inside.all() or not inside.any():
                                continue
                            ratio = to_tokens[b, inside, r].mean() / to_tokens[b, ~inside, r].mean().clamp(min=1e-12)
                            ratios.setdefault(name.removesuffix(".fuser.attn"), []).append(float(ratio))
    finally:
        for h in hooks:
            h.remove()

    held_out = len(scenes) // 4
    rows = []
    for name in blocks:
        feats = torch.cat(features[name]).float().numpy()  # (T*B, N, C), timestep-major
        n_tok = feats.shape[1]
        side = int(round(n_tok**0.5))
        ys, xs = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        coords = np.stack([xs.ravel(), ys.ravel()], 1)  # (N, 2)
        on_object = np.stack(
            [ctx.layouts[b].rasterize(side, side).max(0).ravel() for b in range(len(scenes))]
        )  # (B, N)
        scene_of = np.tile(np.arange(len(scenes)), feats.shape[0] // len(scenes))
        test = scene_of >= len(scenes) - held_out
        targets = np.concatenate([np.broadcast_to(coords, (len(feats), n_tok, 2)), on_object[scene_of][..., None]], -1)
        r2, rmse = ridge_r2(
            feats[~test].reshape(-1, feats.shape[-1]),
            targets[~test].reshape(-1, 3),
            feats[test].reshape(-1, feats.shape[-1]),
            targets[test].reshape(-1, 3),
        )
        rows.append(
            {
                "block": name,
                "side": side,
                "r2": r2,
                "rmse_px": rmse[:2] * scenes[0].size,
                "ratio": float(np.median(ratios.get(name, [float("nan")]))),
            }
        )
    return rows


PROBE_HEADER = [
    "| block | grid | R^2 x | R^2 y | position error (RMSE, image px) | R^2 on-object (control) | grounding "
    "attention, own box in/out (median) |",
    "|---|---|---|---|---|---|---|",
]


def probe_lines(rows: list[dict]) -> list[str]:
    return [
        f"| {r['block']} | {r['side']}x{r['side']} | {r['r2'][0]:.3f} | {r['r2'][1]:.3f} | {r['rmse_px'][0]:.1f} / "
        f"{r['rmse_px'][1]:.1f} | {r['r2'][2]:.3f} | {r['ratio']:.2f} |"
        for r in rows
    ]


def denoising_losses(pipe, n: int = 64, timesteps=(100, 300, 500, 700, 900)) -> dict[int, dict[str, float]]:
    """Per timestep, on held-out scenes: the denoising MSE with their boxes given (``boxes``) and with null
    grounding (``null``; boxes / null < 1: the boxes help), and the mean |difference| of the noise prediction
    between boxes and null (``box_effect``) and between boxes and no fuser at all (``fuser_effect``). One batch
    of scenes, one noise draw per timestep in order."""
    scenes, ctx, z0, cond, text_mask, gligen = held_out_batch(pipe, n, seed=5)
    null = {**gligen, "masks": torch.zeros_like(gligen["masks"])}
    generator = torch.Generator().manual_seed(1)
    out = {}
    with torch.no_grad():
        for t in timesteps:
            a = pipe.scheduler.alphas_cumprod[t]
            noise = torch.randn(z0.shape, generator=generator)
            x_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
            pred = {
                key: pipe.unet(
                    x_t,
                    torch.full((len(z0),), t),
                    cond,
                    encoder_attention_mask=text_mask,
                    cross_attention_kwargs=kwargs,
                ).sample
                for key, kwargs in (("boxes", {"gligen": gligen}), ("null", {"gligen": null}), ("no fuser", None))
            }
            out[t] = {
                "boxes": float(torch.nn.functional.mse_loss(pred["boxes"], noise)),
                "null": float(torch.nn.functional.mse_loss(pred["null"], noise)),
                "box_effect": float((pred["boxes"] - pred["null"]).abs().mean()),
                "fuser_effect": float((pred["boxes"] - pred["no fuser"]).abs().mean()),
            }
    return out


def gate_lines(unet) -> list[str]:
    """tanh of each fuser's attention and dense gates (0 = the fuser's branch is off)."""
    from layoutguide.methods.gligen import grounded_blocks

    return [
        "| block | tanh(alpha_attn) | tanh(alpha_dense) |",
        "|---|---|---|",
        *(
            f"| {name} | {math.tanh(block.fuser.alpha_attn.item()):.3f} | "
            f"{math.tanh(block.fuser.alpha_dense.item()):.3f} |"
            for name, block in unet.named_modules()
            if any(block is b for b in grounded_blocks(unet))
        ),
    ]


def run_probe(args) -> None:
    from layoutguide.loading import SHIPPED_MODEL, load_pipeline

    pipe = load_pipeline(args.model or SHIPPED_MODEL.parent / "shapes-gligen")
    with position_context(pipe):
        run_probe_on(args, pipe)


def run_probe_on(args, pipe) -> None:
    losses = denoising_losses(pipe)
    lines = [
        "Denoising loss with the true boxes / with null grounding, 64 held-out scenes (< 1: the boxes help): "
        + ", ".join(f"t={t}: {v['boxes'] / v['null']:.4f}" for t, v in losses.items())
        + ". Mean |change of the noise prediction| from the boxes (true vs null): "
        + ", ".join(f"{v['box_effect']:.1e}" for v in losses.values())
        + "; from the fusers as a whole (true boxes vs no fuser): "
        + ", ".join(f"{v['fuser_effect']:.1e}" for v in losses.values())
        + ".",
        "",
        *gate_lines(pipe.unet),
        "",
        f"Probes on {args.n} held-out scenes (three quarters train the probe, a quarter test it), noise timesteps "
        "250/500/750, "
        f"model `{args.model or 'shapes-gligen (shipped)'}`. Objects are 12-30 px on a 64 px canvas; a probe that "
        "knew "
        "nothing would err by 18.5 px (the spread of a uniform coordinate).",
        "",
        *PROBE_HEADER,
        *probe_lines(measure(pipe, args.n)),
    ]
    write(args, "GLIGEN position probe", f"python benchmarks/gligen_position_probe.py probe --n {args.n}", lines)


def run_experiment(args) -> None:
    from layoutguide.bench import MethodSpec, run_shapes_bench
    from layoutguide.loading import SHIPPED_MODEL, load_pipeline
    from layoutguide.shapes.train import Trainer, export, init_run_from_export

    base = Path(args.base or SHIPPED_MODEL)
    lines = [
        f"GLIGEN stage trained for {args.steps} steps (batch {args.batch}, the trainer's defaults otherwise) on the "
        f"base `{base.name}`, "
        f"once per arm; object-in-box and colour accuracy of `gligen` (beta 1) on {args.n} benchmark layouts (suite "
        "seed 1); denoising "
        "loss with boxes given / with null grounding on 64 held-out scenes (< 1: the boxes help).",
        "",
        "| arm | loss with boxes / null | object-in-box | colour acc | found | median in/out grounding attention "
        "(16x16 blocks) | (8x8 blocks) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in args.arms.split(","):
        run = args.work / arm
        if not (run / "ckpt" / "state.json").exists():
            init_run_from_export(base, run)
        trainer = Trainer(run, device="cpu")
        trainer.train_gligen(steps=args.steps, batch=args.batch, **ARMS[arm](args))
        export(run, args.work / f"{arm}-model", gligen=True)
        pipe = load_pipeline(args.work / f"{arm}-model")
        with position_context(pipe):
            losses = denoising_losses(pipe)
            gain = sum(v["boxes"] for v in losses.values()) / sum(v["null"] for v in losses.values())
            rows = measure(pipe, 48)
            spec = MethodSpec("gligen", "gligen", {"beta": 1.0, "grounding_text": "head"})
            scores = run_shapes_bench(pipe, [spec], n=args.n, seed=1, out=args.work / f"{arm}-bench", progress=False)[
                "methods"
            ]["gligen"]
        by_side = {s: np.median([r["ratio"] for r in rows if r["side"] == s]) for s in (16, 8)}
        lines.append(
            f"| {arm} | {gain:.3f} | {scores['object_in_box']:.3f} | {scores['colour_acc']:.3f} | "
            f"{scores['found_rate']:.3f} | {by_side[16]:.2f} | {by_side[8]:.2f} |"
        )
        print(lines[-1], flush=True)
    write(
        args,
        "GLIGEN position experiment",
        f"python benchmarks/gligen_position_probe.py experiment --arms {args.arms} --steps {args.steps} --n {args.n}",
        lines,
    )


# train_gligen's options per experiment arm
ARMS = {
    "plain": lambda args: {},
    "position": lambda args: {"position_code": True},
    "gate": lambda args: {"attn_gate_init": args.gate_init},
    "highnoise": lambda args: {"min_timestep": args.min_timestep},
    "supervised": lambda args: {"grounding_token_weight": 1.0},
    "supervised+position": lambda args: {"grounding_token_weight": 1.0, "position_code": True},
}


def position_context(pipe):
    """The fusers' position code on, for direct UNet calls, when the model was trained with it (its defaults say
    so)."""
    from layoutguide.methods.gligen import fuser_position_code

    if pipe.method_with_defaults("gligen").options.position_code:
        side = pipe.unet.config.sample_size
        return fuser_position_code(pipe.unet, (side, side))
    return contextlib.nullcontext()


def write(args, title: str, command: str, lines: list[str]) -> None:
    from layoutguide.layout import atomic_write_text

    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(args.out, f"# {title}\n\n`{command}`\n\n{text}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe", help="linear position probes and grounding attention on a GLIGEN model")
    p.add_argument(
        "--model", default=None, help="a GLIGEN (gated) model folder (default: the shipped shapes-gligen model)"
    )
    p.add_argument("--n", type=int, default=96, help="held-out scenes; a quarter test the probes")
    p.add_argument("--out", type=Path)
    e = sub.add_parser(
        "experiment", help="train GLIGEN's stage with and without a position code on the fusers' tokens"
    )
    e.add_argument("--base", default=None, help="base model folder (default: the shipped shapes model)")
    e.add_argument("--steps", type=int, default=400)
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--n", type=int, default=24, help="benchmark layouts per arm")
    e.add_argument(
        "--arms",
        default="plain,position",
        help="plain (GLIGEN as published), position (+ position code), gate (attention gates start at --gate-init), "
        "highnoise (timesteps >= --min-timestep), supervised (+ grounding-attention loss), supervised+position (both: "
        "the shipped recipe)",
    )
    e.add_argument("--gate-init", type=float, default=0.5)
    e.add_argument("--min-timestep", type=int, default=500, help="arm highnoise trains on timesteps from this one up")
    e.add_argument("--work", type=Path, default=Path("runs/gligen-position"))
    e.add_argument("--out", type=Path)
    args = parser.parse_args()
    {"probe": run_probe, "experiment": run_experiment}[args.command](args)


if __name__ == "__main__":
    main()
