"""``LayoutPipeline``: Stable Diffusion components, one explicit denoising loop, any layout method.

Per step: if the method plans guidance, run a conditional-only UNet forward with grad while recording the
attention maps it asked for, take the gradient of its loss with respect to the latents, update them, and
repeat for the planned iterations while any sample still needs it; then the usual classifier-free-guidance
forward (no grad) and scheduler step. Guidance is applied in the UNet's input space
(``scheduler.scale_model_input``), so step sizes mean the same for DDIM/PNDM/DPM-Solver (scale 1) and
Euler-type schedulers (scale 1/sqrt(sigma^2 + 1)).

Seeds are per (prompt, image): image ``j`` of prompt ``i`` starts from noise drawn with
``seed_for(seed, i, j)``, on the CPU, so results do not depend on the batch size, the device or the order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, StableDiffusionMixin
from diffusers.schedulers import DDIMScheduler, KarrasDiffusionSchedulers, LMSDiscreteScheduler, PNDMScheduler
from diffusers.utils import BaseOutput
from transformers import CLIPTextModel, CLIPTokenizer

from .attention import AttentionStore, attention_control, grid_maps, recording, returned_attention_request
from .defaults import MODEL_DEFAULTS_FILE, check_guidance_interval, model_defaults
from .errors import InputError
from .guidance import GuidanceBudget, guide_step
from .inputs import check_call_inputs
from .layout import Layout, atomic_write_text
from .methods import GuidanceContext, GuidanceMethod, MethodOptionError, get_method
from .presets import options_for, preset_sampling, spec_preset
from .spec import MethodSpec, check_preset
from .text_mask import text_attention_mask
from .tokens import TokenMap, map_phrases

RETURNED_ATTENTION = "pipeline.return_attention"  # the request name of ``return_attention``'s maps
# the samplers a preset may name (the official codes' PLMS is diffusers' PNDM without its Runge-Kutta warm-up)
SAMPLERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "ddim": (DDIMScheduler, {}),
    "lms": (LMSDiscreteScheduler, {}),
}


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``module`` with every parameter's ``requires_grad`` off for the block, each restored after: guidance needs
    gradients of the latents only, and a library call leaves the caller's model as it found it."""
    before = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in before:
            p.requires_grad_(flag)


def seed_for(seed: int, prompt_index: int, image_index: int) -> int:
    """The seed of image ``image_index`` of prompt ``prompt_index``: independent of batching and process."""
    return (int(seed) * 1_000_003 + prompt_index * 10_007 + image_index) % (2**63 - 1)


def _with_sampler(call: Callable) -> Callable:
    """Run ``LayoutPipeline.__call__`` with the call's sampler (its ``sampler`` argument, else its preset's)."""

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        sampler = kwargs.get("sampler") or self.call_settings(kwargs.get("method"), kwargs.get("preset"))[1].get(
            "sampler"
        )
        with self._sampler(sampler):
            return call(self, *args, **kwargs)

    return wrapper


@dataclasses.dataclass
class LayoutPipelineOutput(BaseOutput):
    """``images``: PIL images (or an array/latents, per ``output_type``), prompt-major.

    ``attention``: when requested, per denoising step a ``(B, h, w, 77)`` float tensor of the conditional
    cross-attention averaged over heads and the chosen layers (CPU). ``guidance``: per step, a dict with the
    method's plan and the iterations and losses it ran (empty dict when the step was not guided).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    attention: list[torch.Tensor] | None = None
    guidance: list[dict[str, Any]] | None = None
    layouts: list[Layout] | None = None


class LayoutPipeline(DiffusionPipeline, StableDiffusionMixin):
    r"""Layout-grounded text-to-image generation on Stable Diffusion 1.x/2.x components (and the shapes model).

    Build it with ``LayoutPipeline.from_pretrained(hub_id_or_folder)`` or ``LayoutPipeline.from_pipe(sd_pipe)``.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"  # type: ignore[assignment]  # diffusers declares it None
    _optional_components: list[str] = []
    default_guidance_scale = 7.5  # without a layoutguide.json; SDXL's pipeline (backbones.sdxl) sets its own
    default_steps = 50  # without a layoutguide.json; the DiT pipelines take diffusers' 28
    backbone = "unet"  # what methods may refuse (GuidanceMethod.unsupported_on); "dit" in backbones.dit

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
    ):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.model_defaults: dict[str, Any] = {}

    @property
    def denoiser(self) -> torch.nn.Module:
        """The network the loop and guidance run (the UNet; a DiT pipeline's transformer)."""
        return self.unet

    @property
    def native_size(self) -> int:
        """The model's native image side in pixels."""
        return self.unet.config.sample_size * self.vae_scale_factor

    def denoise(self, x, t, embeddings, mask=None, added=None, extra=None) -> torch.Tensor:
        """One denoiser forward on model-input latents ``x`` (what :func:`~layoutguide.guidance.guide_step` runs)."""
        return self.unet(
            x.to(self.unet.dtype),
            t,
            encoder_hidden_states=embeddings,
            encoder_attention_mask=mask,
            cross_attention_kwargs=extra,
            added_cond_kwargs=added,
        ).sample

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """``DiffusionPipeline.from_pretrained``, plus the model's own defaults (``layoutguide.json``) if present.
        An SDXL folder (a second text encoder) gives a :class:`~layoutguide.backbones.sdxl.LayoutXLPipeline`, an SD3
        or FLUX folder (a transformer) a :mod:`layoutguide.backbones.dit` pipeline."""
        if cls is LayoutPipeline:
            from .backbones.dit import dit_pipeline_class
            from .backbones.sdxl import LayoutXLPipeline, is_sdxl_index, read_model_index

            index = read_model_index(pretrained_model_name_or_path)
            dit = dit_pipeline_class(index)
            if dit is not None:
                return dit.from_pretrained(pretrained_model_name_or_path, **kwargs)
            if is_sdxl_index(index):
                return LayoutXLPipeline.from_pretrained(pretrained_model_name_or_path, **kwargs)
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        pipe.model_defaults = (
            model_defaults(pretrained_model_name_or_path) if Path(str(pretrained_model_name_or_path)).is_dir() else {}
        )
        return pipe

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        """``DiffusionPipeline.from_pipe``; an SDXL pipeline gives a
        :class:`~layoutguide.backbones.sdxl.LayoutXLPipeline`."""
        if cls is LayoutPipeline and getattr(pipeline, "transformer", None) is not None:
            from .backbones.dit import dit_pipeline_class

            dit = dit_pipeline_class({"transformer": [None, type(pipeline.transformer).__name__]})
            if dit is not None:
                return dit.from_pipe(pipeline, **kwargs)
        if cls is LayoutPipeline and getattr(pipeline, "text_encoder_2", None) is not None:
            from .backbones.sdxl import LayoutXLPipeline

            return LayoutXLPipeline.from_pipe(pipeline, **kwargs)
        return super().from_pipe(pipeline, **kwargs)

    def save_pretrained(self, save_directory, **kwargs):  # type: ignore[override]  # passes every option on
        super().save_pretrained(save_directory, **kwargs)
        if self.model_defaults:
            atomic_write_text(
                Path(save_directory) / MODEL_DEFAULTS_FILE, json.dumps(self.model_defaults, indent=2) + "\n"
            )

    def method_with_defaults(
        self, method, options: dict[str, Any] | None = None, preset: str | None = None
    ) -> GuidanceMethod:
        """The method (an instance, or a spec in :mod:`layoutguide.spec`'s grammar, e.g.
        ``"gligen+pww+refocus[refocus.tokens=last]"``), with, under the caller's ``options`` and the spec's own
        brackets: the ``preset`` (the spec's ``[preset=...]`` wins), this model's calibrated defaults
        (``layoutguide.json``) and, for a model without that file, its backbone family's published step sizes
        (:mod:`layoutguide.presets` explains every layer)."""
        if isinstance(method, GuidanceMethod):
            return get_method(method, **(options or {}))
        text = (method or "none").strip() or "none"
        merged = options_for(self, text, spec_preset(text, preset), options)
        chosen = get_method(MethodSpec.parse(text, merged))
        reason = chosen.unsupported_on.get(self.backbone)
        if reason:
            backbone = {"unet": "UNet", "dit": "DiT"}.get(self.backbone, self.backbone)
            raise MethodOptionError(f"method {chosen.name!r} cannot run on a {backbone}: {reason}")
        return chosen

    @contextlib.contextmanager
    def _sampler(self, name: str | None) -> Iterator[None]:
        """The call's scheduler: the model's, or a preset's (``pndm``, ``ddim``, ``lms``) built from the model's
        noise schedule for the call and the model's put back after it."""
        if name in (None, "model"):
            yield
            return
        if name not in SAMPLERS:
            raise InputError(f"sampler {name!r} is unknown; use model, {', '.join(SAMPLERS)}")
        cls, extra = SAMPLERS[name]
        pipe: Any = self  # diffusers registers the scheduler at run time: mypy cannot type the attribute here
        own = pipe.scheduler
        pipe.scheduler = cls.from_config(own.config, **extra)
        try:
            yield
        finally:
            pipe.scheduler = own

    # ------------------------------------------------------------------------------------------- helpers
    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP text embeddings ``(B, 77, D)`` of ``prompts``, padded to the tokenizer's max length."""
        ids = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0]

    def encode_conditioning(
        self, prompts: Sequence[str], size: tuple[int, int]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """The backbone's conditioning of ``prompts`` for an image of ``size``: text embeddings and the UNet's
        ``added_cond_kwargs`` (None here; SDXL's pooled text and size/crop time ids in backbones.sdxl)."""
        return self.encode_prompt(prompts), None

    def token_map(self, prompt: str, phrases: Sequence[str], *, on_missing: str = "error") -> TokenMap:
        """Positions of each phrase's tokens in ``prompt`` (:func:`~layoutguide.tokens.map_phrases`)."""
        return map_phrases(self.tokenizer, prompt, phrases, on_missing=on_missing)  # type: ignore[arg-type]

    def text_attention_mask(self, prompts: Sequence[str]) -> torch.Tensor | None:
        """The UNet's ``encoder_attention_mask`` for models trained with one (``"text_mask": "words"`` in
        ``layoutguide.json``: start token and words only); None for Stable Diffusion and the like."""
        mask = text_attention_mask(self.model_defaults.get("text_mask", "none"), self.tokenizer, prompts)
        return None if mask is None else mask.to(self._execution_device)

    def _sample_inputs(self, prompt, layout, negative_prompt, num_images_per_prompt):
        """Normalise the prompt/layout arguments to per-prompt lists, with clear errors."""
        if layout is not None:
            layouts = [layout] if isinstance(layout, Layout) else list(layout)
            if not all(isinstance(layout, Layout) for layout in layouts):
                raise InputError("layout: expected a Layout or a list of Layouts (see layoutguide.layout.Layout)")
            if prompt is None:
                prompts = [layout.prompt for layout in layouts]
            else:
                prompts = [prompt] if isinstance(prompt, str) else list(prompt)
                if len(prompts) != len(layouts):
                    raise InputError(
                        f"prompt: {len(prompts)} prompts but {len(layouts)} layouts; give one layout per prompt"
                    )
                layouts = [
                    layout if layout.prompt == p else layout.replace(prompt=p) for layout, p in zip(layouts, prompts)
                ]
        else:
            if prompt is None:
                raise InputError("prompt: give a prompt (or a layout, which carries its prompt)")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            layouts = [Layout(prompt=p) for p in prompts]
        if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise InputError("prompt: every prompt must be a non-empty string")
        if negative_prompt is None:
            negatives = [layout.negative_prompt or "" for layout in layouts]
        else:
            negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negatives) != len(prompts):
                raise InputError(f"negative_prompt: {len(negatives)} given for {len(prompts)} prompts")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise InputError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        return prompts, layouts, negatives

    def _initial_latents(self, n_prompts, n_images, shape, seed, generator, dtype):
        if generator is not None:
            generators = generator if isinstance(generator, list) else [generator]
            if isinstance(generator, list) and len(generators) != n_prompts * n_images:
                raise InputError(f"generator: got {len(generators)} generators for {n_prompts * n_images} images")
            if len(generators) == 1:
                return torch.randn(
                    (n_prompts * n_images, *shape),
                    generator=generators[0],
                    device=generators[0].device,
                    dtype=torch.float32,
                )
            return torch.stack(
                [torch.randn(shape, generator=g, device=g.device, dtype=torch.float32) for g in generators]
            )
        seeds = [0 if seed is None else seed] * n_prompts if not isinstance(seed, (list, tuple)) else list(seed)
        if len(seeds) != n_prompts:
            raise InputError(f"seed: got {len(seeds)} seeds for {n_prompts} prompts; give one int, or one per prompt")
        noise = []
        for i in range(n_prompts):
            for j in range(n_images):
                # an int seed numbers prompts within the call; a list gives each prompt its own base seed
                value = seed_for(seeds[i], i, j) if not isinstance(seed, (list, tuple)) else seed_for(seeds[i], 0, j)
                g = torch.Generator("cpu").manual_seed(value)
                noise.append(torch.randn(shape, generator=g, dtype=torch.float32))
        return torch.stack(noise)

    def _input_scale(self, t) -> float:
        """``scale_model_input``'s factor at ``t`` (1 for DDIM/PNDM/DPM-Solver, 1/sqrt(sigma^2+1) for Euler)."""
        return float(self.scheduler.scale_model_input(torch.ones(1), t).item())

    def call_settings(self, method: Any, preset: str | None) -> tuple[str | None, dict[str, Any]]:
        """The preset that applies to ``method`` (its brackets' ``[preset=...]``, else ``preset``) and that preset's
        sampling settings (:func:`layoutguide.presets.preset_sampling`; {} for none, ``tuned`` or an instance)."""
        if not isinstance(method, str):
            return check_preset(preset), {}
        chosen = spec_preset(method, preset)
        return chosen, preset_sampling(chosen, MethodSpec.parse(method).members)

    def _sampling_settings(
        self,
        defaults: dict[str, Any],
        num_inference_steps: int | None,
        guidance_scale: float | None,
        guidance_interval: tuple[float, float] | None,
    ) -> tuple[int, float, tuple[float, float] | None]:
        """Steps, guidance scale and guidance interval: the caller's, else ``defaults`` (preset over
        ``layoutguide.json``), else the backbone's."""
        steps = num_inference_steps or defaults.get("num_inference_steps", self.default_steps)
        scale = (
            defaults.get("guidance_scale", self.default_guidance_scale) if guidance_scale is None else guidance_scale
        )
        interval = defaults.get("guidance_interval") if guidance_interval is None else guidance_interval
        if interval is not None:
            check_guidance_interval(interval)
        return steps, scale, interval

    # ------------------------------------------------------------------------------------------- call
    @_with_sampler
    def __call__(
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
        r"""Generate images whose objects follow ``layout``.

        Args:
            prompt: text prompt(s); may be omitted when ``layout`` is given (its ``prompt`` is used).
            layout: a :class:`~layoutguide.layout.Layout` or one per prompt; required by layout methods.
            method: a registered method name (``"refocus"``), a method instance, or None for plain sampling.
            method_options: hyperparameters of the method by name (validated); unset ones take the model's
                calibrated defaults (``layoutguide.json`` beside the weights), then the method's own.
            num_inference_steps, guidance_scale: default to the model's ``layoutguide.json``, else 50 and
                ``default_guidance_scale`` (7.5; 5.0 on SDXL).
            guidance_interval: ``(t_low, t_high)``: classifier-free guidance only at timesteps t_low <= t <= t_high,
                the conditional prediction alone elsewhere (Kynkaanniemi et al., NeurIPS 2024, arXiv 2404.07724:
                guidance at high noise drives samples to the mode; here, to a blank canvas). Steps outside the
                interval skip the unconditional forward. Default: the model's ``layoutguide.json``, else every step;
                ``(0, math.inf)`` forces every step.
            seed: base seed; image ``j`` of prompt ``i`` uses ``seed_for(seed, i, j)``. Default 0. A list gives
                each prompt its own base seed (``seed_for(seed[i], 0, j)``), independent of its place in the batch.
            generator: diffusers-style alternative to ``seed`` (one, or one per image).
            return_attention: also return per-step cross-attention maps of the down/up layers at the absolute grid
                side ``attention_resolution``, by default of the UNet level the methods read (2: a quarter of the
                latent, SD's 16x16 at 512 px; the model's ``layoutguide.json`` may set ``attention_level``).
            append_missing_phrases: append region phrases missing from the prompt instead of raising.
            guidance_budget: what the guidance pass may skip (:class:`~layoutguide.guidance.GuidanceBudget`); the
                default is exact: the guidance forward ends after the last layer the method's loss reads.
            callback: called after every step with ``{"step", "timestep", "latents", "guidance"}``.
            preset: ``tuned`` (default), ``official`` or ``paper`` (:mod:`layoutguide.presets`): the method's
                published configuration, options and sampling (steps, guidance scale, negative prompt, sampler,
                guidance interval); a ``[preset=...]`` in the method's brackets wins; explicit arguments and
                ``method_options`` win over the preset.
            sampler: ``pndm``, ``ddim`` or ``lms`` for this call instead of the model's scheduler (``model``);
                default: the preset's, else the model's.
        """
        # 1. Check inputs
        check_call_inputs(
            self,
            prompt=prompt,
            layout=layout,
            method_options=method_options,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            num_images_per_prompt=num_images_per_prompt,
            height=height,
            width=width,
            seed=seed,
            attention_resolution=attention_resolution,
        )
        preset, preset_settings = self.call_settings(method, preset)
        # explicit arguments > a load-time flag (--guidance-interval) > preset > layoutguide.json
        defaults = {**self.model_defaults, **preset_settings, **getattr(self, "explicit_sampling", {})}
        method = self.method_with_defaults(method, method_options, preset)
        budget = GuidanceBudget.checked(guidance_budget)
        num_inference_steps, guidance_scale, guidance_interval = self._sampling_settings(
            defaults, num_inference_steps, guidance_scale, guidance_interval
        )
        prompts, layouts, negatives = self._sample_inputs(prompt, layout, negative_prompt, num_images_per_prompt)
        if negative_prompt is None and "negative_prompt" in preset_settings:  # a layout's own negative prompt wins
            negatives = [
                preset_settings["negative_prompt"] if lay.negative_prompt is None else lay.negative_prompt
                for lay in layouts
            ]
        if method.needs_layout and not any(layout.regions for layout in layouts):
            raise InputError(f"method {method.name!r} needs a layout with regions; pass layout=Layout(...)")
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise InputError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")
        if num_inference_steps < 1:
            raise InputError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise InputError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        device, dtype = self._execution_device, self.unet.dtype
        n_images = num_images_per_prompt

        # 2. Prompts, token positions, embeddings (sample order: prompt-major)
        token_maps = [
            self.token_map(layout.prompt, layout.phrases, on_missing="append" if append_missing_phrases else "error")
            for layout in layouts
        ]
        sample_layouts = [layout for layout in layouts for _ in range(n_images)]
        sample_tokens = [m for m in token_maps for _ in range(n_images)]
        cond, cond_added = _repeated(
            self.encode_conditioning([m.prompt for m in token_maps], (height, width)), n_images
        )
        uncond, uncond_added = _repeated(self.encode_conditioning(negatives, (height, width)), n_images)
        do_cfg = guidance_scale > 1.0
        cfg_added = None if cond_added is None or uncond_added is None else _joined(uncond_added, cond_added)
        cond_mask = self.text_attention_mask([m.prompt for m in token_maps])
        uncond_mask = self.text_attention_mask(negatives)
        cfg_mask = None  # the mask of the [uncond, cond] batch (or of cond alone without CFG)
        if cond_mask is not None and uncond_mask is not None:
            cond_mask = cond_mask.repeat_interleave(n_images, 0)
            cfg_mask = torch.cat([uncond_mask.repeat_interleave(n_images, 0), cond_mask]) if do_cfg else cond_mask

        # 3. Timesteps and initial noise
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latent_hw = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        shape = (self.unet.config.in_channels, *latent_hw)
        if latents is None:
            latents = self._initial_latents(len(prompts), n_images, shape, seed, generator, dtype)
        elif latents.shape != (len(prompts) * n_images, *shape):
            raise InputError(
                f"latents: expected shape {(len(prompts) * n_images, *shape)}, got {tuple(latents.shape)}"
            )
        latents = latents.to(device=device, dtype=torch.float32) * self.scheduler.init_noise_sigma
        step_kwargs = {"eta": 0.0} if "eta" in inspect.signature(self.scheduler.step).parameters else {}

        # 4. Method context and attention hooks
        ctx = GuidanceContext(
            layouts=sample_layouts,
            token_maps=sample_tokens,
            num_steps=len(timesteps),
            latent_hw=latent_hw,
            device=device,
            alphas_cumprod=self.scheduler.alphas_cumprod.to(device),
            timesteps=timesteps,
        )
        requests = method.attention_requests()
        view_request = returned_attention_request(attention_resolution, self.model_defaults.get("attention_level", 2))
        record = {**requests, RETURNED_ATTENTION: view_request} if return_attention else requests
        store = AttentionStore()
        store.sdpa_outside_windows = budget.sdpa_outside_windows
        attention_out: list[torch.Tensor] = []
        guidance_log: list[dict[str, Any]] = []

        # 5. Denoising loop
        with (
            frozen(self.unet),
            method.activate(self, ctx) as state,
            attention_control(self.unet, store, record, method.modulations(state), latent_hw=latent_hw),
        ):
            cond = method.condition(state, cond, self.encode_prompt)
            for i, t in enumerate(self.progress_bar(timesteps) if progress else timesteps):
                plan = budget.limit(method.plan(state, i), t)
                log: dict[str, Any] = {}
                if plan is not None:
                    latents, log = guide_step(
                        self, latents, t, i, plan, method, state, store, cond, cond_mask, budget, cond_added
                    )
                guidance_log.append(log)
                with torch.no_grad():
                    guided = do_cfg and (
                        guidance_interval is None or guidance_interval[0] <= t <= guidance_interval[1]
                    )
                    model_in = torch.cat([latents, latents]) if guided else latents
                    model_in = self.scheduler.scale_model_input(model_in, t).to(dtype)
                    embeddings = torch.cat([uncond, cond]) if guided else cond
                    with recording(store, cfg=guided, step=i, on=return_attention):
                        extra = method.unet_kwargs(state, i, cfg=guided) or None
                        mask = cfg_mask if guided else cond_mask
                        noise = self.unet(
                            model_in,
                            t,
                            encoder_hidden_states=embeddings,
                            encoder_attention_mask=mask,
                            cross_attention_kwargs=extra,
                            added_cond_kwargs=cfg_added if guided else cond_added,
                        ).sample.float()
                        if return_attention:
                            attention_out.append(grid_maps(store.get(view_request), store.layers, latent_hw).cpu())
                    if guided:
                        noise_uncond, noise_cond = noise.chunk(2)
                        noise = noise_uncond + guidance_scale * (noise_cond - noise_uncond)
                    latents = self.scheduler.step(noise, t, latents, **step_kwargs).prev_sample
                if callback is not None:
                    callback({"step": i, "timestep": t, "latents": latents, "guidance": log})

        # 6. Decode
        images = self.decode_latents(latents, output_type)
        self.maybe_free_model_hooks()
        return LayoutPipelineOutput(
            images=images,
            attention=attention_out if return_attention else None,
            guidance=guidance_log,
            layouts=sample_layouts,
        )

    def latents_for_vae(self, latents: torch.Tensor) -> torch.Tensor:
        """What the VAE decodes: the denoiser's latents unscaled (the DiT pipelines also add the VAE's shift)."""
        return latents / self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, output_type: str = "pil"):
        if output_type == "latent":
            return latents
        images = self.vae.decode(self.latents_for_vae(latents.to(self.vae.dtype))).sample
        images = (images.float() / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            return images
        arrays = images.permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return arrays
        return [PIL.Image.fromarray((a * 255).round().astype(np.uint8)) for a in arrays]


Conditioning = tuple[torch.Tensor, dict[str, torch.Tensor] | None]


def _repeated(conditioning: Conditioning, n: int) -> Conditioning:
    """Embeddings and added conditioning per prompt -> per image (prompt-major)."""
    embeddings, added = conditioning
    return embeddings.repeat_interleave(n, 0), None if added is None else {
        k: v.repeat_interleave(n, 0) for k, v in added.items()
    }


def _joined(uncond: dict[str, torch.Tensor], cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The added conditioning of the ``[uncond, cond]`` batch."""
    return {k: torch.cat([uncond[k], cond[k]]) for k in cond}
