"""Which text channel carries a DiT's content: the joint-attention text tokens or the pooled projection?

Regional attention masks joint attention only; the pooled text projection reaches every image token through each
block's adaptive norm, unmasked. If a model draws the prompt's objects from the pooled projection alone, masks on the
tokens cannot confine them to their regions. This runs unguided competence (``layoutguide shapes competence``'s suite
and scores) three ways: as trained; with the pooled projection of the empty prompt (content from the tokens only);
with the tokens of the empty prompt (content from the pooled projection only).

    OMP_NUM_THREADS=1 python benchmarks/text_channels.py --model checkpoints/shapes-mmdit/model --n 24
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path


@contextlib.contextmanager
def empty_channel(pipe, channel: str | None):
    """``encode_conditioning`` with one channel (``"pooled"`` or ``"tokens"``) taken from the empty prompt."""
    original = pipe.encode_conditioning
    if channel is None:
        yield
        return

    def swapped(prompts, size):
        embeddings, added = original(prompts, size)
        empty_embeddings, empty_added = original([""] * len(prompts), size)
        if channel == "pooled":
            return embeddings, {**added, "pooled": empty_added["pooled"]}
        return empty_embeddings, added

    pipe.encode_conditioning = swapped
    try:
        yield
    finally:
        pipe.encode_conditioning = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the table here (markdown) and a .json beside")
    args = parser.parse_args()

    from layoutguide.bench.competence import run_competence
    from layoutguide.loading import load_pipeline

    pipe = load_pipeline(args.model)
    rows = {}
    for label, channel in (("as trained", None), ("tokens only (empty pooled)", "pooled"),
                           ("pooled only (empty tokens)", "tokens")):  # fmt: skip
        with empty_channel(pipe, channel):
            rows[label] = run_competence(pipe, n=args.n, seed=args.seed, progress=True, report=lambda *_: None)
    keys = ("1obj_all_found", "1obj_all_colours", "2obj_all_found", "2obj_all_colours")
    lines = ["| text reaching the model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += [f"| {label} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |" for label, r in rows.items()]
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"`python benchmarks/text_channels.py --model {args.model} --n {args.n}`\n\n{table}\n")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
