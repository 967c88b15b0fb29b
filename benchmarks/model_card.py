"""Write the shipped models' cards from measured files only: OUT/shapes.md from the model's training.json (recipe),
docs/results/competence.txt and docs/results/calibration/calibration.md, and OUT/shapes-gligen.md from its
training.json and docs/results/gligen/ (methods table, position probe). Reads the shipped models, never writes
into the package.

    python benchmarks/model_card.py                 # OUT = docs/models
    python benchmarks/model_card.py --out cards/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from layoutguide.bench import write_text as atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "src/layoutguide/weights/shapes"
GLIGEN_MODEL = ROOT / "src/layoutguide/weights/shapes-gligen"
RESULTS = ROOT / "docs/results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "models", help="folder for the cards")
    out = parser.parse_args().out
    base_card(out)
    gligen_card(out)


def base_card(out: Path) -> None:
    recipe = json.loads((MODEL / "training.json").read_text())
    comp = json.loads((RESULTS / "competence.txt").read_text())
    calibration = (
        (RESULTS / "calibration" / "calibration.md").read_text()
        if (RESULTS / "calibration" / "calibration.md").exists()
        else "(not run)"
    )
    defaults = json.loads((MODEL / "layoutguide.json").read_text())
    sizes = {p.parent.name: p.stat().st_size / 2**20 for p in MODEL.rglob("*.safetensors")}
    cfg = recipe["config"]
    # (first step, last step, config) per training stage: earlier stages from the recipe's history, then the last
    ends = [(st["until_unet_step"], st["config"]) for st in recipe.get("stages", [])] + [(recipe["unet_step"], cfg)]
    stages = [(ends[i - 1][0] if i else 0, end, c) for i, (end, c) in enumerate(ends)]
    lines = [
        "# layoutguide shapes model",
        "",
        "A small Stable-Diffusion-shaped diffusers pipeline trained from scratch on the synthetic shapes world "
        "(`layoutguide.shapes.world`): 64x64 images, 16x16x4 latents. Default model of every layoutguide command. "
        "Load with `LayoutPipeline.from_pretrained(path)`. Details: `docs/shapes.md`.",
        "",
        "## Recipe (from training.json)",
        "",
        f"- autoencoder: {recipe['vae_step']} steps, batch {cfg['vae_batch']}, lr {cfg['vae_lr']}, KL weight "
        f"{cfg['kl_weight']}; latent scaling factor {recipe['scaling_factor']:.4f}",
        f"- text encoder + UNet: {recipe['unet_step']:,} steps in {len(stages)} stage(s), batch {cfg['batch']}, "
        f"AdamW with warm-up {cfg['warmup']} "
        f"and cosine decay to 10% restarted at each stage, grad clip {cfg['grad_clip']}, EMA {cfg['ema_decay']}, "
        f"{int(cfg['p_uncond'] * 100)}% empty captions, "
        "cosine noise schedule, epsilon prediction; cross-attention mask on end/padding tokens (`text_mask`, from "
        "step 4,250 of the first stage: docs/shapes.md)",
        "",
        "| stage | UNet steps | lr | TokenCompose L_token weight | L_pixel weight |",
        "|---|---|---|---|---|",
        *[
            f"| {i + 1} | {start:,}-{end:,} | {c['lr']:g} | {c.get('attn_token_weight') or 0:g} | "
            f"{c.get('attn_pixel_weight') or 0:g} |"
            for i, (start, end, c) in enumerate(stages)
        ],
        "",
        "- hardware: 2 CPU cores, about 145 minutes in all (0.65-0.75 s per step); `layoutguide shapes train` "
        "resumes from checkpoints, "
        "`layoutguide shapes init-run` starts a new stage from these weights",
        "- weights (safetensors, MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(sizes.items())),
        f"- sampling defaults (layoutguide.json): {defaults.get('num_inference_steps')} DDIM steps, CFG "
        f"{defaults.get('guidance_scale')}"
        + (
            f" at timesteps {defaults['guidance_interval'][0]}-{defaults['guidance_interval'][1]} only (the "
            "conditional prediction alone above: "
            'docs/shapes.md, item 3 of "What limits")'
            if defaults.get("guidance_interval")
            else ""
        ),
        "",
        f"## Competence, unguided, {comp['n']} held-out prompts each (`layoutguide shapes competence --n "
        f"{comp['n']}`)",
        "",
        "| prompts | all objects right colour and shape | all colours present | exact counts | tinted background |",
        "|---|---|---|---|---|",
        f"| single object | {comp['1obj_all_found']:.3f} | {comp['1obj_all_colours']:.3f} | "
        f"{comp['1obj_count_ok']:.3f} | {comp['1obj_background_tint']:.3f} |",
        f"| two objects | {comp['2obj_all_found']:.3f} | {comp['2obj_all_colours']:.3f} | "
        f"{comp['2obj_count_ok']:.3f} | {comp['2obj_background_tint']:.3f} |",
        "",
        "## Calibrated step sizes and token-map temperatures, with CFG at every step (`python "
        "benchmarks/calibrate.py --n 24 --seed 1 --write --guidance-interval all`)",
        "",
        calibration,
    ]
    atomic_write_text(out / "shapes.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'shapes.md'}")


def gligen_card(out: Path) -> None:
    from layoutguide.bench import results_table

    recipe = json.loads((GLIGEN_MODEL / "training.json").read_text())
    g = recipe.get("gligen_config", {})
    methods = json.loads((RESULTS / "gligen" / "methods" / "results.json").read_text())
    probe = RESULTS / "gligen" / "position-probe.md"
    first_line = (
        next((line for line in probe.read_text().splitlines() if line.startswith("Denoising loss")), "")
        if probe.exists()
        else ""
    )
    # (first step, last step, config) per GLIGEN stage, as for the base model's stages
    ends = [(st["until_gligen_step"], st["config"]) for st in recipe.get("gligen_stages", [])] + [
        (recipe["gligen_step"], g)
    ]
    stages = [(ends[i - 1][0] if i else 0, end, c) for i, (end, c) in enumerate(ends)]
    grounding = {
        "head": 'head nouns ("circle", "circles"; colours come from the caption)',
        "phrase": 'whole phrases ("red circle")',
    }
    lines = [
        "# layoutguide shapes GLIGEN model",
        "",
        f"The shapes model (`../shapes`, UNet step {recipe['unet_step']:,}) with GLIGEN's gated self-attention "
        "layers and position net "
        f"added and trained for {recipe['gligen_step']:,} steps with the base UNet and text encoder frozen "
        "(`layoutguide shapes train "
        "--gligen-steps N`, the GLIGEN stage in `docs/shapes.md`). Grounding tokens embed "
        + "; then ".join(f"{grounding[c.get('grounding_text', 'head')]} for steps {a:,}-{b:,}" for a, b, c in stages)
        + ". `layoutguide.json` makes `gligen` and `reground` feed the same "
        + f"(`grounding_text: {g.get('grounding_text', 'head')}`)"
        + (" and switch on the fusers' position code (`position_code: true`)" if g.get("position_code") else "")
        + ". Use with `--model src/layoutguide/weights/shapes-gligen "
        + "--method gligen|reground|gligen+refocus|gligen+pww+refocus|reground+refocus`.",
        "",
        "## Recipe (from training.json)",
        "",
        f"- AdamW {g.get('lr', 5e-4):g} (gates x{g.get('gate_lr_scale', 20):g}), batch {g.get('batch', 32)}, "
        f"{int(100 * g.get('p_drop', 0.1))}% null grounding, "
        f"EMA {g.get('ema_decay', 0.995)}; attention gates start at {g.get('attn_gate_init', 0.0):g}; timesteps from "
        f"{g.get('min_timestep', 0)}",
        f"- grounding-attention supervision (not in GLIGEN): L_token weight {g.get('grounding_token_weight', 0):g}, "
        f"L_pixel weight {g.get('grounding_pixel_weight', 0):g}",
        "- fixed 2D sinusoidal position code on the fusers' visual tokens (not in GLIGEN): "
        f"{'on' if g.get('position_code') else 'off'}",
        "",
        "## Measured (`python benchmarks/gligen_sweep.py --model src/layoutguide/weights/shapes-gligen`, "
        f"{methods['config'].get('n', '?')} layouts)",
        "",
        results_table(methods),
        "",
        first_line,
        "",
        "Details and the beta sweep for both wirings: `docs/results/gligen/report.md`.",
        *relation_lines(),
    ]
    atomic_write_text(out / "shapes-gligen.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'shapes-gligen.md'}")


def relation_lines() -> list[str]:
    """Relation accuracy per method, mean over the seeds of docs/results/gligen/relations* it was run on, for the
    card."""
    runs = [
        json.loads(path.read_text())
        for path in sorted((RESULTS / "gligen").glob("relations*/results.json"))
        if "ablations" not in str(path)
    ]
    if not runs:
        return []
    labels = list(dict.fromkeys(label for r in runs for label in r["rows"]))
    lines = [
        "",
        f"## Relation benchmark (`layoutguide bench relations`, rule planner, {runs[0]['config']['n']} prompts per "
        "seed; docs/planner.md)",
        "",
        "| method | relation acc (prompts) | " + " | ".join(f"seed {r['config']['seed']}" for r in runs) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for label in labels:
        accs = [r["rows"][label]["relation_acc"] for r in runs if label in r["rows"]]
        cells = " | ".join(f"{r['rows'][label]['relation_acc']:.3f}" if label in r["rows"] else "-" for r in runs)
        prompts = sum(r["config"]["n"] for r in runs if label in r["rows"])
        lines.append(f"| {label.split(' + ', 1)[1]} | {sum(accs) / len(accs):.3f} ({prompts}) | {cells} |")
    lines += [
        "",
        "`[refocus.tokens=last]`: CAR on each phrase's head noun (`--set refocus.tokens=last`); this model's "
        "defaults keep every token.",
    ]
    return lines


if __name__ == "__main__":
    main()
