"""Arithmetic cost of a guidance iteration at Stable Diffusion 1.5 size, on the meta device (no weights, no compute).

    python benchmarks/cost_flops.py --size 512

Builds SD-1.5's UNet (random init on ``meta``: shapes only), then counts with ``torch.utils.flop_counter`` the
FLOPs of (a) one classifier-free-guidance forward (batch 2, no grad: what plain sampling runs per step) and (b) one
guidance iteration (batch 1: forward with the method's maps recorded, then the backward to the latents), the whole
UNet (before) and cut after the last layer the method reads (after). It also sums the bytes of the activations
autograd saves for the backward (``saved_tensors_hooks``: tensors that require grad, each tensor object once; views
of one another count separately, the same way for both). FLOP counts cover
matmuls and convolutions (``FlopCounterMode``'s ops); the elementwise work (norms, softmax, activations) is left out.
"""

from __future__ import annotations

import argparse

import torch
from diffusers import UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode

from layoutguide import testing
from layoutguide.attention import AttentionRequest, AttentionStore, ForwardCut, attention_control, recording

REQUESTS = {
    "refocus": {
        "cross": AttentionRequest("text", (16,), ("down", "up")),
        "self": AttentionRequest("image", (16,), ("down", "up")),
    },
    "boxdiff / attend-excite": {"cross": AttentionRequest("text", (16,), ("down", "mid", "up"))},
    "layout-guidance": {"cross": (AttentionRequest("text", (16,), ("up",)), AttentionRequest("text", None, ("mid",)))},
    "zestguide": {
        "segments": (AttentionRequest("text", (16,), ("down", "up")), AttentionRequest("text", (32,), ("up",)))
    },
    "zestguide[resolutions=[16]]": {"segments": (AttentionRequest("text", (16,), ("down", "up")),)},
}


def sd15_unet() -> UNet2DConditionModel:
    with torch.device("meta"):
        unet = testing.sd15_unet()
    return unet.requires_grad_(False)


def guidance_iteration(unet, requests, latent: int, cut: bool) -> tuple[int, int]:
    """FLOPs and saved bytes of one guidance iteration (forward with maps, backward to the latents)."""
    store = AttentionStore()
    saved: dict[int, torch.Tensor] = {}  # by identity, holding each tensor so that ids are not reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.requires_grad:  # activations on the path from the latents; frozen weights and text K/V are not
            saved.setdefault(id(t), t)
        return t

    x = torch.zeros(1, 4, latent, latent, device="meta", requires_grad=True)
    text = torch.zeros(1, 77, 768, device="meta")
    with attention_control(unet, store, requests, latent_hw=(latent, latent)), FlopCounterMode(display=False) as flops:
        cut_after = store.layer_names(requests) if cut else frozenset()
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            recording(store, cfg=False, step=0, cut_after=cut_after),
        ):
            try:
                unet(x, 500, encoder_hidden_states=text)
            except ForwardCut:
                pass
        loss = sum(m.float().sum() for m in store.maps.values())
        loss.backward()  # FlopCounterMode's module tracker does not support autograd.grad on a leaf
    return flops.get_total_flops(), sum(t.numel() * t.element_size() for t in saved.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (latents: size / 8)")
    args = parser.parse_args()
    unet = sd15_unet()
    latent = args.size // 8
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        unet(
            torch.zeros(2, 4, latent, latent, device="meta"),
            500,
            encoder_hidden_states=torch.zeros(2, 77, 768, device="meta"),
        )
    cfg = flops.get_total_flops()
    weights = sum(p.numel() * 4 for p in unet.parameters())
    print(
        f"SD-1.5 UNet at {args.size} px (latents {latent}x{latent}); weights {weights / 2**30:.2f} GiB fp32; one CFG "
        f"forward (batch 2) {cfg / 1e12:.3f} TFLOP.\n"
    )
    print(
        "| maps read (method) | guidance iteration, whole UNet: TFLOP (x CFG forward) | cut: TFLOP (x CFG forward) "
        "| FLOPs saved | saved for backward, whole UNet (GiB) | cut (GiB) |"
    )
    print("|---|---|---|---|---|---|")
    for name, requests in REQUESTS.items():
        full, full_saved = guidance_iteration(unet, requests, latent, cut=False)
        cut, cut_saved = guidance_iteration(unet, requests, latent, cut=True)
        print(
            f"| {name} | {full / 1e12:.3f} ({full / cfg:.2f}x) | {cut / 1e12:.3f} ({cut / cfg:.2f}x) | "
            f"{1 - cut / full:.0%} | {full_saved / 2**30:.2f} | {cut_saved / 2**30:.2f} |"
        )


if __name__ == "__main__":
    main()
