"""The flow-matching transformer loop: SD3/SD3.5 and FLUX.1 with the methods, layouts, CLI and bench of the UNet loop.

:class:`LayoutDiTPipeline` is a sibling of :class:`~layoutguide.pipeline.LayoutPipeline` (a subclass, so
``from_pretrained``, ``layoutguide.json`` defaults, presets, seeds and input checks are the same code). Per step: if
the method plans guidance, a conditional-only transformer forward with grad while the joint attention's ``text``
and ``image`` parts are recorded (:mod:`layoutguide.joint_attention`), the gradient of the method's loss taken with
respect to the latent tokens and the latents moved, as in the UNet loop; then the velocity forward (with
classifier-free guidance on SD3, FLUX's distilled guidance embedding instead) and a flow-matching Euler step. Masks
of modulation methods (``regional``) act on every forward. Latents are kept unpacked, ``(B, C, h, w)``, so noise
drawn per (prompt, image) seed is the same tensor whatever the family; FLUX packs 2x2 patches inside its forward.

The two families differ only in hooks (:mod:`.dit_families`): text encoding, token maps, where the text sits in
the joint sequence, the forward's arguments and the timestep schedule. Flow matching has no alphas: methods whose
step sizes read ``alphas_cumprod`` get the variance-preserving equivalent of ``x_t = (1 - s) x_0 + s e``, signal
share ``(1 - s)^2 / ((1 - s)^2 + s^2)`` at ``t = 1000 s``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..attention import AttentionStore, check_image_sources, grid_maps, recording, returned_attention_request
from ..defaults import MODEL_DEFAULTS_FILE
from ..errors import InputError
from ..guidance import GuidanceBudget, guide_step
from ..inputs import check_call_inputs
from ..joint_attention import JointLayout, joint_attention_control
from ..layout import Layout
from ..methods import GuidanceContext, GuidanceMethod
from ..pipeline import RETURNED_ATTENTION, LayoutPipeline, LayoutPipelineOutput, frozen
from ..tokens import TokenMap

TRANSFORMER_FAMILIES = {"SD3Transformer2DModel": "sd3", "FluxTransformer2DModel": "flux"}


def dit_pipeline_class(index: dict[str, Any]) -> type[LayoutDiTPipeline] | None:
    """The DiT pipeline class for a ``model_index.json`` whose transformer is SD3's or FLUX's, else None."""
    entry = index.get("transformer")
    name = entry[1] if isinstance(entry, (list, tuple)) and len(entry) == 2 else None
    family = TRANSFORMER_FAMILIES.get(str(name))
    if family is None:
        return None
    from .dit_families import LayoutFluxPipeline, LayoutSD3Pipeline

    return LayoutSD3Pipeline if family == "sd3" else LayoutFluxPipeline


def flow_alphas_cumprod(num_train_timesteps: int = 1000) -> torch.Tensor:
    """The variance-preserving signal share of rectified flow at every integer timestep ``0..T`` (``T + 1`` entries:
    FLUX's first timestep is ``T`` itself)."""
    s = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
    return ((1 - s) ** 2 / ((1 - s) ** 2 + s**2)).float()


@dataclasses.dataclass
class JointContext(GuidanceContext):
    """A DiT call's context: also, per sample and region, the positions of the phrase in the joint text sequence
    (SD3: its CLIP tokens and its T5 tokens; FLUX: its T5 tokens), which region masks need."""

    text_regions: list[tuple[tuple[int, ...], ...]] = dataclasses.field(default_factory=list)
    text_length: int = 0
    # per sample, the positions of the prompt's own tokens (start token and words; not end/padding tokens, which a
    # text encoder fills with a summary of the whole prompt)
    text_words: list[tuple[int, ...]] = dataclasses.field(default_factory=list)


class LayoutDiTPipeline(LayoutPipeline):
    """The shared loop of :class:`~.dit_families.LayoutSD3Pipeline` and :class:`~.dit_families.LayoutFluxPipeline`."""

    backbone = "dit"
    default_steps = 28  # diffusers' StableDiffusion3Pipeline and FluxPipeline
    default_image_size = 1024
    uses_cfg = True  # SD3: classifier-free guidance; FLUX: a guidance embedding instead

    # ---------------------------------------------------------------- family hooks (backbones.dit_families)
    def text_layout(self) -> JointLayout:
        raise NotImplementedError

    def text_regions(self, token_map: TokenMap, phrases: Sequence[str]) -> tuple[tuple[int, ...], ...]:
        """Per region, the phrase's positions in the joint text sequence."""
        raise NotImplementedError

    def text_words(self, token_map: TokenMap) -> tuple[int, ...]:
        """The positions of the prompt's own tokens (start token and words) in the joint text sequence."""
        raise NotImplementedError

    def set_timesteps(self, num_steps: int, latent_hw: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    # ---------------------------------------------------------------- shared
    @property
    def denoiser(self) -> torch.nn.Module:
        return self.transformer

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def native_size(self) -> int:
        return int(self.model_defaults.get("image_size", self.default_image_size))

    def _input_scale(self, t) -> float:
        return 1.0  # flow matching: the transformer takes the latents as they are

    def latents_for_vae(self, latents: torch.Tensor) -> torch.Tensor:
        config = self.vae.config  # SD3's and FLUX's VAEs have a shift as well as a scale
        return latents / config.scaling_factor + (config.get("shift_factor") or 0.0)

    def _check_call(self, sampler, height, width) -> tuple[int, int]:
        if sampler not in (None, "model"):
            raise InputError(f"sampler {sampler!r}: a flow-matching transformer samples with its own scheduler")
        multiple = self.vae_scale_factor * 2  # 2x2 patches of latents
        height, width = height or self.native_size, width or self.native_size
        if height % multiple or width % multiple:
            raise InputError(f"height and width must be multiples of {multiple} on this model, got {height}x{width}")
        return height, width

    def __call__(  # the UNet loop's signature; ``sampler`` must be the model's
        self,
        prompt: str | list[str] | None = None,
        layout: Layout | list[Layout] | None = None,
        *,
        method: str | GuidanceMethod | None = None,
        method_options: dict[str, Any] | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        seed: int | list[int] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        output_type: str = "pil",
        return_attention: bool = False,
        attention_resolution: int | None = None,
        append_missing_phrases: bool = False,
        guidance_budget: GuidanceBudget | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True,
        preset: str | None = None,
        sampler: str | None = None,
    ) -> LayoutPipelineOutput:
        """As :meth:`LayoutPipeline.__call__`. ``guidance_scale``: SD3's classifier-free guidance (default 7.0) or
        FLUX's guidance embedding (3.5; ignored by a model without one, such as schnell). ``return_attention``: the
        joint attention's text part, averaged over heads and every block, on the image-token grid."""
        check_call_inputs(self, prompt=prompt, layout=layout, method_options=method_options, num_inference_steps=(
            num_inference_steps), guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
            height=height, width=width, seed=seed, attention_resolution=attention_resolution)  # fmt: skip
        height, width = self._check_call(sampler, height, width)
        preset, preset_settings = self.call_settings(method, preset)
        if preset_settings.get("sampler") not in (None, "model"):
            raise InputError(
                f"preset {preset!r} samples with {preset_settings['sampler']!r}, a UNet sampler; a flow-matching "
                "transformer samples with its own scheduler: use preset 'tuned'"
            )
        defaults = {**self.model_defaults, **preset_settings, **getattr(self, "explicit_sampling", {})}
        method = self.method_with_defaults(method, method_options, preset)
        budget = GuidanceBudget.checked(guidance_budget)
        steps, scale, interval = self._sampling_settings(
            defaults, num_inference_steps, guidance_scale, guidance_interval
        )
        prompts, layouts, negatives = self._sample_inputs(prompt, layout, negative_prompt, num_images_per_prompt)
        if method.needs_layout and not any(lay.regions for lay in layouts):
            raise InputError(f"method {method.name!r} needs a layout with regions; pass layout=Layout(...)")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise InputError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        n = num_images_per_prompt
        on_missing = "append" if append_missing_phrases else "error"
        token_maps = [self.token_map(lay.prompt, lay.phrases, on_missing=on_missing) for lay in layouts]
        sample_layouts = [lay for lay in layouts for _ in range(n)]
        sample_tokens = [m for m in token_maps for _ in range(n)]
        cond, cond_added = _repeated(self.encode_conditioning([m.prompt for m in token_maps], (height, width)), n)
        do_cfg = self.uses_cfg and scale > 1.0
        uncond, uncond_added = _repeated(self.encode_conditioning(negatives, (height, width)), n) if do_cfg else (
            cond, cond_added)  # fmt: skip
        cond_added = self.guidance_inputs(cond_added, scale)
        uncond_added = self.guidance_inputs(uncond_added, scale)
        cfg_added = {k: torch.cat([uncond_added[k], cond_added[k]]) for k in cond_added}

        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        timesteps = self.set_timesteps(steps, latent_hw)
        shape = (self.latent_channels, *latent_hw)
        if latents is None:
            latents = self._initial_latents(len(prompts), n, shape, seed, generator, torch.float32)
        elif latents.shape != (len(prompts) * n, *shape):
            raise InputError(f"latents: expected shape {(len(prompts) * n, *shape)}, got {tuple(latents.shape)}")
        device = self._execution_device
        latents = latents.to(device=device, dtype=torch.float32)
        ctx = JointContext(
            layouts=sample_layouts,
            token_maps=sample_tokens,
            num_steps=len(timesteps),
            latent_hw=latent_hw,
            device=device,
            alphas_cumprod=flow_alphas_cumprod(self.scheduler.config.num_train_timesteps).to(device),
            timesteps=timesteps,
            text_regions=[self.text_regions(m, lay.phrases) for m, lay in zip(sample_tokens, sample_layouts)],
            text_length=int(cond.shape[1]),
            text_words=[self.text_words(m) for m in sample_tokens],
        )
        view_request = returned_attention_request(attention_resolution)
        record = {**method.attention_requests(), RETURNED_ATTENTION: view_request} if return_attention else (
            method.attention_requests())  # fmt: skip
        store = AttentionStore()
        store.default_blocks = self.model_defaults.get("attention_blocks")  # the blocks methods read (None: all)
        store.default_image_sources = self.model_defaults.get("image_attention")  # None: joint attention only
        if store.default_image_sources is not None:
            check_image_sources(store.default_image_sources, f"{MODEL_DEFAULTS_FILE} image_attention")
        attention_out: list[torch.Tensor] = []
        guidance_log: list[dict[str, Any]] = []
        with (
            frozen(self.transformer),
            method.activate(self, ctx) as state,
            joint_attention_control(
                self.transformer, store, record, method.modulations(state), latent_hw=latent_hw,
                layout=self.text_layout(),
            ),
        ):  # fmt: skip
            cond = method.condition(state, cond, self.encode_prompt)
            for i, t in enumerate(self.progress_bar(timesteps) if progress else timesteps):
                plan = budget.limit(method.plan(state, i), t)
                step_cond = method.text_for_step(state, i, cond)  # regional's appended region prompts, or not
                log: dict[str, Any] = {}
                if plan is not None:
                    latents, log = guide_step(self, latents, t, i, plan, method, state, store, step_cond, None,
                                              budget, cond_added)  # fmt: skip
                guidance_log.append(log)
                guided = do_cfg and (interval is None or interval[0] <= t <= interval[1])
                with torch.no_grad(), recording(store, cfg=guided, step=i, on=return_attention):
                    model_in = torch.cat([latents, latents]) if guided else latents
                    velocity = self.denoise(
                        model_in,
                        t,
                        torch.cat([padded(uncond, step_cond.shape[1]), step_cond]) if guided else step_cond,
                        added=cfg_added if guided else cond_added,
                        extra=method.unet_kwargs(state, i, cfg=guided) or None,
                    ).float()
                    if return_attention:
                        attention_out.append(grid_maps(store.get(view_request), store.layers, latent_hw).cpu())
                if guided:
                    v_uncond, v_cond = velocity.chunk(2)
                    velocity = v_uncond + scale * (v_cond - v_uncond)
                latents = self.scheduler.step(velocity, t, latents).prev_sample
                if callback is not None:
                    callback({"step": i, "timestep": t, "latents": latents, "guidance": log})
        images = self.decode_latents(latents, output_type)
        self.maybe_free_model_hooks()
        return LayoutPipelineOutput(
            images=images,
            attention=attention_out if return_attention else None,
            guidance=guidance_log,
            layouts=sample_layouts,
        )

    def guidance_inputs(self, added: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
        """The forward's extra inputs with the guidance scale where the model takes it (FLUX's embedding)."""
        return added


def _repeated(
    conditioning: tuple[torch.Tensor, dict[str, torch.Tensor] | None], n: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    embeddings, added = conditioning
    return embeddings.repeat_interleave(n, 0), {k: v.repeat_interleave(n, 0) for k, v in (added or {}).items()}


def padded(embeddings: torch.Tensor, length: int) -> torch.Tensor:
    """Text embeddings zero-padded to ``length`` tokens, to batch with longer ones (the method that made those longer
    hides the padding from these samples' attention). Already that long: the tensor itself, no copy per step."""
    if embeddings.shape[1] == length:
        return embeddings
    return torch.nn.functional.pad(embeddings, (0, 0, 0, length - embeddings.shape[1]))


def sequence_positions(indices: Sequence[tuple[int, ...]], offset: int) -> tuple[tuple[int, ...], ...]:
    """Token positions moved by ``offset`` into the joint text sequence."""
    return tuple(tuple(p + offset for p in idx) for idx in indices)
