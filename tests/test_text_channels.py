"""benchmarks/text_channels.py: one text channel swapped for the empty prompt's, the other kept, and restored after."""

from __future__ import annotations

import torch

from layoutguide.testing_dit import tiny_sd3_pipeline


def test_each_channel_is_taken_from_the_empty_prompt_and_restored(load_benchmark):
    bench = load_benchmark("text_channels")
    pipe = tiny_sd3_pipeline()
    size = (128, 128)
    tokens, added = pipe.encode_conditioning(["a red circle"], size)
    empty_tokens, empty_added = pipe.encode_conditioning([""], size)
    assert not torch.allclose(added["pooled"], empty_added["pooled"]) and not torch.allclose(tokens, empty_tokens)
    with bench.empty_channel(pipe, "pooled"):
        got_tokens, got_added = pipe.encode_conditioning(["a red circle"], size)
    assert torch.equal(got_tokens, tokens) and torch.equal(got_added["pooled"], empty_added["pooled"])
    with bench.empty_channel(pipe, "tokens"):
        got_tokens, got_added = pipe.encode_conditioning(["a red circle"], size)
    assert torch.equal(got_tokens, empty_tokens) and torch.equal(got_added["pooled"], added["pooled"])
    restored_tokens, restored_added = pipe.encode_conditioning(["a red circle"], size)
    assert torch.equal(restored_tokens, tokens) and torch.equal(restored_added["pooled"], added["pooled"])
