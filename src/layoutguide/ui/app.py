"""The page: layout editor (boxes or brushed masks), planner, method picker with each method's option form,
generation with progress and cancel, compare, look inside, files. Wiring only: ``handlers.py`` does the work.

Every generating event shares one queue slot per device (``concurrency_id="device"``, limit 1), so jobs run one
after another and Gradio shows each waiting page its queue position (in the progress box: ``show_progress_on``).
Per-session values live in the browser and in ``gr.State``, so a second tab never sees the first one's layout.

What the page costs a job (docs/ui.md, "Time from click to image") is kept small here: Gradio's spinner overlay is
off ("minimal": the queue position and a timer as text; a spinning overlay over every output kept headless Chromium
busy for about 0.2 of a core all job long), the "Look inside" tab works only while it is shown, and the queue polls
less often (:func:`launch`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio_image_annotation import image_annotator

from .. import layout_files
from ..errors import LayoutguideError
from ..loading import load_pipeline
from .handlers import Server
from .limits import Limits
from .options import OptionField, option_fields
from .streams import compare_stream, generation_stream
from .worker import InProcessRunner, ProcessRunner

CSS = ".lg-error { color: #c00000; } #lg-check-list { margin: 0; padding-left: 1em; }"
DEVICE: dict[str, Any] = {"concurrency_id": "device", "concurrency_limit": 1, "show_progress": "minimal"}
# s between the Gradio queue's looks for new events (Gradio's own: 0.001). Its loop runs in the process that runs the
# job, and at 1000 wake-ups a second an idle page made a `generate` call in the same process use about 26% more CPU
# time; at 0.01 about 7% (docs/ui.md). New events wait at most this long.
QUEUE_POLL_S = 0.01
PROGRESS_POLL_S = 0.1  # gr.Progress updates (the page sends its own progress as outputs; Gradio's own: 0.01)


def _control(field: OptionField):
    label = f"{field.key}"
    info = field.description[:160] or None
    if field.kind == "bool":
        return gr.Checkbox(value=bool(field.default), label=label, info=info)
    if field.kind == "choice":
        return gr.Dropdown(choices=list(field.choices), value=field.default, label=label, info=info)
    if field.kind in ("int", "float"):
        return gr.Number(
            value=field.default,
            label=label,
            info=info,
            minimum=field.minimum,
            maximum=field.maximum,
            precision=0 if field.kind == "int" else None,
        )
    return gr.Textbox(value="" if field.default is None else str(field.default), label=label, info=info)


def build_app(server: Server) -> gr.Blocks:
    """The Gradio app for ``server``'s model (not launched)."""
    choices = server.info.methods
    with gr.Blocks(title="layoutguide") as demo:
        result_state = gr.State(None)
        option_values = gr.State({})
        gr.Markdown(
            f"## layoutguide: draw a layout, generate\nModel: `{server.model or 'shipped shapes model'}`, "
            f"canvas {server.width}x{server.height} px. Drag on the canvas to draw a box, then type its phrase "
            "(words of the prompt) and press Enter; drag a box to move it, its corners to resize, select it and "
            "press Delete to remove it."
        )
        inside_shown = gr.State(False)
        with gr.Tab("Layout and generate") as generate_tab:
            with gr.Row():
                with gr.Column(scale=3):
                    prompt = gr.Textbox(
                        label="Prompt", elem_id="lg-prompt", placeholder="a red circle and a blue square"
                    )
                    mode = gr.Radio(["boxes", "masks"], value="boxes", label="Layout from", elem_id="lg-mode")
                    with gr.Tabs():
                        with gr.Tab("Boxes"):
                            boxes = image_annotator(
                                server.blank(),
                                label_list=[],
                                sources=None,
                                image_type="numpy",
                                show_clear_button=False,
                                show_download_button=False,
                                elem_id="lg-boxes",
                                label="Boxes",
                            )
                        with gr.Tab("Masks"):
                            mask_phrases = gr.Textbox(
                                label="Mask phrases, one per line (one brush layer each)", lines=3
                            )
                            masks = gr.ImageEditor(
                                value={"background": server.blank()["image"], "layers": [], "composite": None},
                                layers=gr.LayerOptions(allow_additional_layers=False, layers=["phrase 0"]),
                                brush=gr.Brush(colors=["#e6194b"], color_mode="fixed"),
                                image_mode="RGBA",
                                type="numpy",
                                elem_id="lg-masks",
                                label="Masks",
                            )
                    with gr.Row():
                        new_button = gr.Button("New canvas", elem_id="lg-new")
                        plan_button = gr.Button("Plan from prompt", elem_id="lg-plan")
                    with gr.Accordion("Planner", open=False):
                        planner = gr.Radio(["rule", "openai"], value="rule", label="Planner")
                        planner_url = gr.Textbox(
                            label="OpenAI-compatible server URL", placeholder="http://127.0.0.1:8000/v1"
                        )
                        planner_model = gr.Textbox(label="Model name")
                        planner_key = gr.Textbox(label="API key (sent only to that URL)", type="password")
                    message = gr.Markdown(elem_id="lg-message")
                    with gr.Accordion("Files", open=False):
                        upload = gr.File(label="Load a layout", elem_id="lg-upload", type="filepath")
                        save_format = gr.Dropdown(list(layout_files.FORMATS), value="json", label="Save as")
                        save_button = gr.Button("Save layout", elem_id="lg-save")
                        saved = gr.File(label="Layout file", elem_id="lg-saved", interactive=False)
                with gr.Column(scale=2):
                    check_list = gr.HTML(elem_id="lg-check")
                    check_image = gr.Image(label="Check", elem_id="lg-check-image", interactive=False, height=260)
                    method = gr.Dropdown(
                        choices, value="refocus", label="Method", allow_custom_value=True, elem_id="lg-method"
                    )

                    @gr.render(inputs=[method], triggers=[method.change, demo.load])
                    def option_form(name: str) -> None:
                        try:
                            fields = option_fields(name or "none", server.info.model_defaults, server.info.family)
                        except LayoutguideError as e:
                            gr.Markdown(f"**Error:** {e}")
                            return
                        with gr.Accordion(f"Options of {name}", open=False):
                            for field in fields:
                                control = _control(field)
                                control.change(
                                    lambda v, cur, key=field.key: {**cur, key: v},
                                    [control, option_values],
                                    option_values,
                                )

                    with gr.Row():
                        seed = gr.Number(0, label="Seed", precision=0, elem_id="lg-seed")
                        steps = gr.Slider(
                            1, server.max_steps, value=server.steps, step=1, label="Steps", elem_id="lg-steps"
                        )
                    with gr.Row():
                        scale = gr.Number(server.guidance_scale, label="Guidance scale", minimum=0)
                        images = gr.Slider(1, server.limits.max_images, value=1, step=1, label="Images per prompt")
                    with gr.Row():
                        attention = gr.Checkbox(True, label="Record attention (Look inside)")
                        overlay = gr.Checkbox(False, label="Show layout overlay", elem_id="lg-overlay")
                    with gr.Row():
                        generate_button = gr.Button("Generate", variant="primary", elem_id="lg-generate")
                        cancel_button = gr.Button("Cancel", elem_id="lg-cancel")
                    progress = gr.HTML(elem_id="lg-progress-box")
                    gallery = gr.Gallery(
                        label="Images", elem_id="lg-gallery", columns=2, height=300, object_fit="contain"
                    )
                    download = gr.File(label="Images + run file", elem_id="lg-download", interactive=False)
        with gr.Tab("Compare") as compare_tab:
            compare_methods = gr.Textbox(
                "none,refocus", label="Methods or variants, comma-separated", elem_id="lg-compare-methods"
            )
            compare_button = gr.Button("Compare on this layout", elem_id="lg-compare")
            compare_progress = gr.HTML(elem_id="lg-compare-progress")
            compare_gallery = gr.Gallery(
                label="Methods", elem_id="lg-compare-gallery", columns=4, height=300, object_fit="contain"
            )
            compare_grid = gr.Image(label="Grid", elem_id="lg-compare-grid", interactive=False)
        with gr.Tab("Look inside", elem_id="lg-inside-tab") as inside_tab:
            with gr.Row():
                image_index = gr.Slider(0, server.limits.max_images - 1, value=0, step=1, label="Image")
                step = gr.Slider(
                    -1,
                    server.steps - 1,
                    value=-1,
                    step=1,
                    label="Step (-1: mean over steps)",
                    elem_id="lg-step-slider",
                )
            heatmaps = gr.Gallery(
                label="Cross-attention per phrase", elem_id="lg-heatmaps", columns=4, height=280, object_fit="contain"
            )
            verdict_summary = gr.Markdown(elem_id="lg-verdict-summary")
            verdict = gr.Dataframe(
                headers=["region", "phrase", "found", "in box", "IoU"], elem_id="lg-verdict", interactive=False
            )

        editor = [prompt, mode, boxes, masks, mask_phrases]
        for trigger in (prompt.input, boxes.change, mode.change, mask_phrases.input, masks.change):
            trigger(
                server.check, editor, [check_list, check_image], show_progress="hidden", trigger_mode="always_last"
            )
        demo.load(server.check, editor, [check_list, check_image])
        new_button.click(server.blank, None, boxes)
        mask_phrases.change(
            lambda text: gr.update(
                layers=gr.LayerOptions(
                    allow_additional_layers=False,
                    layers=[p.strip() for p in text.splitlines() if p.strip()] or ["phrase 0"],
                )
            ),
            mask_phrases,
            masks,
        )
        plan_button.click(server.plan, [prompt, planner, planner_url, planner_model, planner_key], [boxes, message])
        upload.upload(server.load, [upload, prompt], [boxes, prompt, message])
        save_button.click(server.save, [*editor, save_format], [saved, message])
        method.change(lambda: {}, None, option_values)

        generate = generation_stream(server)

        gen_inputs = [*editor, method, option_values, seed, steps, scale, images, attention, overlay]
        gen_outputs = [result_state, progress, gallery, download, message]
        generate_button.click(generate, gen_inputs, gen_outputs, show_progress_on=progress, **DEVICE)

        def cancel(request: gr.Request) -> str:
            return server.cancel(request.session_hash or "")

        # the job stops itself at its next step and its generator ends normally, freeing the device slot. Gradio's own
        # cancels= (the event task torn down mid-step) left the slot taken when Generate followed Cancel at once
        cancel_button.click(cancel, None, message, queue=False)
        overlay.change(server.shown, [result_state, overlay], gallery)

        compare = compare_stream(server)

        compare_button.click(
            compare,
            [*editor, compare_methods, seed, steps, scale, images],
            [compare_progress, compare_gallery, compare_grid],
            show_progress_on=compare_progress,
            **DEVICE,
        )

        def look_inside(result, index, step_, shown: bool):
            if not shown:  # a result nobody looks at yet: worked out when the tab is opened
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            maps, rows, summary, last_image, last_step = server.inside(result, index, step_)
            # a slider's maximum must exceed its minimum: one image leaves the image slider at 0..1, locked
            image_slider = gr.update(maximum=max(last_image, 1), interactive=last_image > 0)
            return maps, rows, summary, image_slider, gr.update(maximum=last_step)

        inside_args = ([result_state, image_index, step, inside_shown], [heatmaps, verdict, verdict_summary])
        inside_outputs = [*inside_args[1], image_index, step]
        inside_tab.select(lambda: True, None, inside_shown).then(look_inside, inside_args[0], inside_outputs)
        for tab in (generate_tab, compare_tab):
            tab.select(lambda: False, None, inside_shown)
        result_state.change(look_inside, inside_args[0], inside_outputs, show_progress="hidden")
        for slider in (image_index, step):  # input: the person's moves only, not the bounds set above
            slider.input(
                look_inside, inside_args[0], inside_outputs, show_progress="hidden", trigger_mode="always_last"
            )
    return demo


def launch(demo: gr.Blocks, limits: Limits, **kwargs: Any) -> None:
    """Queue and launch ``demo`` (``kwargs``: Gradio's ``launch`` options), then make the queue poll every
    :data:`QUEUE_POLL_S` s instead of Gradio's 1 ms. The poll interval is an attribute of Gradio's queue that its
    API does not expose; a Gradio without it is launched as it comes (tests/ui checks that it is set)."""
    demo.queue(default_concurrency_limit=1)
    demo.launch(max_file_size=limits.upload_bytes, css=CSS, show_error=False, **kwargs)
    queue: Any = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free") and hasattr(queue, "progress_update_sleep_when_free"):
        queue.sleep_when_free = QUEUE_POLL_S
        queue.progress_update_sleep_when_free = PROGRESS_POLL_S


def serve(
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    device: str | None = None,
    limits=None,
    block: bool = True,
    in_process: bool = False,
):
    """Load the model once, build the page and serve it (binds 127.0.0.1 unless ``host`` says otherwise). The model
    lives in a worker process (:class:`~layoutguide.ui.worker.ProcessRunner`) unless ``in_process``."""
    runner = InProcessRunner(load_pipeline(model, device=device)) if in_process else ProcessRunner(model, device)
    server = Server(runner=runner, model=model, limits=limits)
    demo = build_app(server)
    launch(demo, server.limits, server_name=host, server_port=port, share=share, prevent_thread_lock=not block)
    return demo
