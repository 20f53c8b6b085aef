"""The Gradio Blocks app: upload or pick an image, draw boxes, ask, and read the grounded caption.

Layout (top: what the model was trained on; left: input; right: one result block per box)::

    [ warning banner when the checkpoint is SynthRS-only or has no model card ]
    [ model card: data, steps, test metrics ]
    [ image file (PNG/JPEG/GeoTIFF) ]       status line
    [ box annotator (draw boxes)   ]        Box 1 (its colour): caption (phrase chips) | legend | overlay | downloads
    [ question (only if trained with questions) ] [Clear boxes] [Run]      Box 2: ...
    [ examples ]

Boxes are numbered in drawing order and keep a colour (:func:`clvnet.demo.service.assign_box_colors`) used by the
annotator, the result heading and the overlay outline. The annotator's rotation is passed through: boxes drawn on
a rotated view are mapped back to the image (:func:`clvnet.demo.service.unrotate_box`).

Endpoints: the UI's ``run`` streams the caption while it is generated; ``predict_api(image, boxes_json,
query)`` is the documented endpoint for API clients (``gradio_client``). Both go through
:class:`clvnet.demo.service.DemoService`, which calls the Predictor.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_image_annotation import image_annotator

from clvnet.demo.render import (
    README_SECTION,
    REAL_IMAGERY_ANCHOR,
    box_swatch,
    card_banner,
    card_details,
    readme_section,
)
from clvnet.demo.service import (
    MAX_PIXELS,
    BoxResult,
    DemoInputError,
    DemoService,
    LoadedImage,
    assign_box_colors,
    parse_boxes,
    parse_request,
    scrub_paths,
    unrotate_box,
)

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "assets"
SYNTH_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("synthrs_scene1.png", "SynthRS: river with boats, road with cars"),
    ("synthrs_scene2.png", "SynthRS: houses and pools at a roundabout"),
)
REAL_EXAMPLE = "aerial_residential.jpg"
REAL_LABEL = "Real aerial photo (residential, pools, cars)"
REAL_LABEL_OOD = "Real photo: out of domain for this model"
CSS = """
.clv-caption { font-size: 1.05rem; line-height: 1.7; min-height: 2.5em; }
.clv-streaming::after { content: "\u258c"; opacity: 0.6; }
.clv-head { padding: 6px 12px 0 12px; }
.clv-phrase { padding: 0 3px; border-radius: 3px; font-weight: 600; white-space: nowrap; }
.clv-chip { display: inline-block; width: 0.7em; height: 0.7em; margin-right: 3px; border-radius: 2px;
            vertical-align: baseline; border: 1px solid rgba(0, 0, 0, 0.45); }
.clv-flagged { text-decoration: line-through; text-decoration-thickness: 2px; }
.clv-legend { list-style: none; padding-left: 0; margin: 4px 0; }
.clv-legend li { margin: 2px 0; }
#clv-banner { border: 2px solid #b45309; background: #fef3c7; color: #1f1300; border-radius: 6px; padding: 4px 12px; }
#clv-banner a { color: #1e3a8a; }
"""
INTRO = """# CLV-Net: grounded captions for aerial images
1. Upload an image (PNG, JPEG or GeoTIFF) or pick an example.
2. Drag one or more boxes on the image around the regions to describe (Delete removes the last box drawn;
   **Clear boxes** removes all).
3. Press **Run**. Each phrase in the caption carries a chip in its mask's colour; each box keeps its colour.
"""
# Delete / Backspace outside a text field removes the newest box (the annotator's own key handler acts only on
# a box selected with its drag tool, so right after drawing it did nothing); the hidden button does the work.
DELETE_JS = """
() => {
  if (window.clvDeleteHook) return;
  window.clvDeleteHook = true;
  window.addEventListener("keydown", (ev) => {
    if (ev.key !== "Delete" && ev.key !== "Backspace") return;
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    const btn = document.querySelector("#clv-remove-last");
    if (!btn) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    btn.click();
  }, true);
}
"""
# On a narrow screen the results column sits below the examples: bring it into view when Run is pressed.
SCROLL_JS = """
() => {
  if (window.innerWidth < 900) {
    const el = document.querySelector("#clv-status");
    if (el) el.scrollIntoView({behavior: "instant", block: "start"});
  }
}
"""


def _user_error(exc: Exception, *, page: bool = True) -> gr.Error:
    """A readable message for any failure; tracebacks stay in the server log.

    Gradio renders an error's text as HTML in the page, so for the page (``page=True``) ``<``, ``>`` and ``&``
    are escaped; API clients get the plain text (escaping it there showed ``&#x27;`` for every quote).
    """
    text = _message(exc)
    return gr.Error(_html(text) if page else text, title="Error", print_exception=False)


def _html(text: str) -> str:
    """Plain text made safe for HTML body text (quotes need no escaping there)."""
    return html.escape(text, quote=False)


def _message(exc: Exception) -> str:
    """The plain text shown for a failure: the user's mistake as is, anything else as a short model failure;
    never a server path (:func:`clvnet.demo.service.scrub_paths`)."""
    if isinstance(exc, DemoInputError):
        return scrub_paths(str(exc))
    log.error("demo request failed", exc_info=exc)
    return scrub_paths(f"The model failed on this request ({type(exc).__name__}: {exc}).")


def _examples(card: Any) -> tuple[list[str], list[str]]:
    """Example paths and labels: the SynthRS scenes first; the real photo last, labelled out of domain unless the
    model was trained on more than synthetic scenes."""
    honest = card is not None and not card.synthetic_only
    items = [*SYNTH_EXAMPLES, (REAL_EXAMPLE, REAL_LABEL if honest else REAL_LABEL_OOD)]
    items = [(name, label) for name, label in items if (ASSETS / name).is_file()]
    return [str(ASSETS / name) for name, _ in items], [label for _, label in items]


def _timing_text(results: list[BoxResult]) -> str:
    parts = []
    for r in results:
        t = r.timings
        total = t.get("total", sum(t.values()))
        n = len(r.record.get("phrases", []))
        parts.append(f"box {r.index + 1}: {n} phrase{'s' if n != 1 else ''}, {total:.2f} s")
    return "Done. " + "; ".join(parts) + "."


def build_app(predictor: Any, *, max_boxes: int = 4, workdir: str | Path | None = None,
              title: str = "CLV-Net demo", max_pixels: int = MAX_PIXELS, card: Any = None) -> gr.Blocks:
    """Build the demo's Blocks app around a loaded predictor.

    Args:
        predictor: a :class:`clvnet.inference.predictor.Predictor` (any object with its ``predict``).
        max_boxes: most boxes per request (one result block each).
        workdir: where previews and downloads are written (a temporary folder when None).
        title: browser tab title.
        max_pixels: largest image (height x width) accepted.
        card: the checkpoint's :class:`clvnet.models.card.ModelCard`, None when it has none (the page then
            says so, hides the question box and labels the real photo as out of domain).

    Returns:
        The (not yet launched) ``gr.Blocks``; launch it with :func:`launch_app`.
    """
    service = DemoService(predictor, workdir=workdir, max_boxes=max_boxes, max_pixels=max_pixels, card=card)
    banner = card_banner(card)
    section = readme_section()

    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        demo.clvnet_service = service  # type: ignore[attr-defined]  # for tests and launch_app
        loaded = gr.State(None)
        gr.Markdown(INTRO)
        if banner:
            gr.Markdown(banner, elem_id="clv-banner")
        gr.Markdown(card_details(card), elem_id="clv-card")
        with gr.Row():
            with gr.Column(scale=5):
                upload = gr.File(label="Image file (PNG, JPEG or GeoTIFF)", file_count="single",
                                 file_types=["image", ".tif", ".tiff"], elem_id="clv-upload")
                annot = image_annotator(label="Draw boxes here", image_type="filepath", sources=[],
                                        disable_edit_boxes=True, box_min_size=4, show_clear_button=False,
                                        show_remove_button=True, elem_id="clv-annotator", height=560)
                # A model trained without questions cannot read one (it loops on its opening words): no box then.
                question = gr.Textbox(label="Question (optional)", placeholder="e.g. Describe the vehicles.",
                                      max_lines=2, elem_id="clv-query", visible=service.accepts_questions)
                with gr.Row():
                    clear_btn = gr.Button("Clear boxes", elem_id="clv-clear")
                    run_btn = gr.Button("Run", variant="primary", elem_id="clv-run")
                remove_btn = gr.Button("remove last box", elem_id="clv-remove-last", elem_classes=["clv-hidden"],
                                       visible="hidden")
                examples, labels = _examples(card)
                if examples:
                    gr.Examples(examples=[[p] for p in examples], inputs=[upload], example_labels=labels,
                                label="Examples", elem_id="clv-examples")
            with gr.Column(scale=6):
                status = gr.Markdown("Upload an image or pick an example.", elem_id="clv-status")
                slots: list[dict[str, Any]] = []
                for i in range(max_boxes):
                    with gr.Group(visible=False, elem_id=f"clv-result-{i}") as group:
                        head = gr.Markdown(f"### Box {i + 1}", elem_id=f"clv-head-{i}", elem_classes=["clv-head"])
                        caption = gr.HTML(elem_id=f"clv-caption-{i}", elem_classes=["clv-caption"])
                        legend = gr.HTML(elem_id=f"clv-legend-{i}")
                        overlay = gr.Image(label="Overlay", type="filepath", interactive=False,
                                           elem_id=f"clv-overlay-{i}", format="png")
                        files = gr.File(label="Downloads", file_count="multiple", interactive=False,
                                        elem_id=f"clv-files-{i}")
                    slots.append({"group": group, "head": head, "caption": caption, "legend": legend,
                                  "overlay": overlay, "files": files})
        if banner:
            with gr.Accordion(f'Training a model for real imagery (README: "{README_SECTION}")', open=True,
                              elem_id=REAL_IMAGERY_ANCHOR):
                gr.Markdown(section or "See the README section of that name in the clvnet repository.")
        # The documented API endpoint: plain inputs, so any client can call it.
        with gr.Column(visible=False):
            api_image = gr.File(label="image")
            api_boxes = gr.Textbox(label="boxes_json")
            api_query = gr.Textbox(label="query")
            api_btn = gr.Button("predict_api")
            api_records = gr.JSON(label="records")
            api_overlays = gr.File(label="overlays", file_count="multiple")

        slot_outputs = [c for s in slots for c in s.values()]

        def hide_all() -> dict[Any, Any]:
            return {s["group"]: gr.update(visible=False) for s in slots}

        def on_upload(path: str | None) -> Iterator[dict[Any, Any]]:
            # a new image (or none) makes every result on the page stale
            if not path:
                yield {annot: None, loaded: None, status: "Upload an image or pick an example.", **hide_all()}
                return
            try:
                img = service.load(path)
            except Exception as exc:
                yield {annot: None, loaded: None, status: f"**Error:** {_html(_message(exc))}", **hide_all()}
                raise _user_error(exc) from None
            note = f"**{_html(img.name)}**: {img.width}x{img.height} px"
            if img.scale > 1.0:
                note += f" (shown at 1/{img.scale:.2f}; boxes are mapped back to full resolution)"
            if img.georeferenced:
                note += ", georeferenced (GeoJSON download available)"
            note += ". Now drag a box on the image and press Run."
            if img.color_note:
                note += f"  \n\u26a0 This image: {_html(img.color_note)}."
            yield {annot: {"image": img.preview_path, "boxes": []}, loaded: img.to_dict(), status: note,
                   **hide_all()}

        def show_result(r: BoxResult) -> dict[Any, Any]:
            s = slots[r.index]
            x0, y0, x1, y1 = r.box
            return {s["group"]: gr.update(visible=True),
                    s["head"]: f"### Box {r.index + 1} {box_swatch(r.box_color)}: "
                               f"[{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}]",
                    s["caption"]: gr.update(value=r.caption_html, elem_classes=["clv-caption"]),
                    s["legend"]: r.legend_html, s["overlay"]: r.overlay_path, s["files"]: r.files}

        def recoloured(img: LoadedImage, order: list[dict[str, Any]], colors: list[Any],
                       orientation: int) -> dict[str, Any]:
            """The annotator's value with the boxes in their demo colours (newest first, as the annotator
            keeps them), unrotated (the view returns upright: the boxes are where they were on the image)."""
            w, h = img.preview_width, img.preview_height
            boxes = []
            for b, c in zip(order, colors):
                x0, y0, x1, y1 = unrotate_box(_xyxy(b), orientation, w, h)
                boxes.append({"xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "label": b.get("label") or "",
                              "color": tuple(c)})
            return {"image": img.preview_path, "boxes": boxes[::-1]}

        def on_run(state: dict[str, Any] | None, annotation: dict[str, Any] | None,
                   question_text: str) -> Iterator[dict[Any, Any]]:
            try:
                if state is None or annotation is None:
                    raise DemoInputError("No image: upload an image or pick an example first.")
                img = LoadedImage.from_dict(state)
                order = list(reversed(annotation.get("boxes") or []))  # the annotator keeps the newest first
                orientation = int(annotation.get("orientation") or 0)
                drawn = parse_boxes(order, service.max_boxes)
                upright = [unrotate_box(b, orientation, img.preview_width, img.preview_height) for b in drawn]
                boxes = service.boxes_from_preview(img, upright)
                colors = assign_box_colors([b.get("color") for b in order])
                query = question_text if service.accepts_questions else ""
                service.check_query(query)
            except Exception as exc:
                yield {status: f"**Error:** {_html(_message(exc))}", **hide_all()}
                raise _user_error(exc) from None
            yield {status: f"Running on {len(boxes)} box{'es' if len(boxes) > 1 else ''}…",
                   annot: recoloured(img, order, colors, orientation), **hide_all()}
            results: list[BoxResult] = []
            try:
                for ev in service.stream(img, boxes, query, colors=colors):
                    s = slots[ev.index]
                    if ev.result is None:
                        partial = f'<span class="clv-streaming">{html.escape(_plain(ev.text))}</span>'
                        yield {s["group"]: gr.update(visible=True),
                               s["head"]: f"### Box {ev.index + 1} {box_swatch(colors[ev.index])}",
                               s["caption"]: partial, s["legend"]: ""}
                    else:
                        results.append(ev.result)
                        yield show_result(ev.result)
            except Exception as exc:
                yield {status: f"**Error:** {_html(_message(exc))}"}
                raise _user_error(exc) from None
            yield {status: _timing_text(results)}

        def on_clear(state: dict[str, Any] | None) -> dict[Any, Any]:
            if state is None:
                return {status: "Upload an image or pick an example.", **hide_all()}
            img = LoadedImage.from_dict(state)
            return {annot: {"image": img.preview_path, "boxes": []}, status: "Boxes cleared: drag a new box.",
                    **hide_all()}

        def on_remove_last(state: dict[str, Any] | None, annotation: dict[str, Any] | None) -> dict[Any, Any]:
            if state is None or not annotation or not annotation.get("boxes"):
                return {}
            img = LoadedImage.from_dict(state)
            order = list(reversed(annotation["boxes"]))[:-1]
            colors = [b.get("color") for b in order]
            return {annot: recoloured(img, order, colors, int(annotation.get("orientation") or 0)),
                    status: f"Removed the last box; {len(order)} left."}

        def predict_api(image: str | None, boxes_json: str, query: str) -> tuple[list[dict[str, Any]], list[str]]:
            """Grounded captions for boxes on an image.

            Args:
                image: the image file (PNG, JPEG, TIFF or GeoTIFF).
                boxes_json: JSON list of boxes in full-resolution pixels, each ``[x0, y0, x1, y1]`` or
                    ``{"xmin", "ymin", "xmax", "ymax"}``; or, for a georeferenced image,
                    ``{"boxes": [[xmin, ymin, xmax, ymax], ...], "crs": "EPSG:4326"}`` in map coordinates.
                query: optional question ("" for none; refused when the model was trained without questions).

            Returns:
                One record per box (the GCG record plus ``colors``, ``box``, ``box_color``, ``flags`` and
                ``timings``) and one overlay PNG per box.
            """
            try:
                if not image:
                    raise DemoInputError("No image given.")
                img = service.load(image)
                boxes, crs = parse_request(boxes_json, service.max_boxes)
                results = service.run(img, boxes, query, box_crs=crs)
            except Exception as exc:
                raise _user_error(exc, page=False) from None
            records = [{**r.record, "colors": [list(c) for c in r.colors], "box": list(r.box),
                        "box_color": list(r.box_color), "flags": r.flags, "timings": r.timings} for r in results]
            return records, [r.overlay_path for r in results]

        upload.change(on_upload, [upload], [annot, loaded, status, *slot_outputs], api_visibility="private",
                      show_progress_on=[annot])
        clear_btn.click(on_clear, [loaded], [annot, status, *slot_outputs], api_visibility="private",
                        queue=False, show_progress="hidden")
        remove_btn.click(on_remove_last, [loaded, annot], [annot, status], api_visibility="private",
                         queue=False, show_progress="hidden")
        # The status line says "waiting" at once (no queue); the run itself then reports in the status line,
        # so Gradio's own progress/error badge (which would cover the message) is hidden.
        run_btn.click(lambda: "Waiting for the model (requests run one at a time)…", None, status, queue=False,
                      api_visibility="private", show_progress="hidden", js=SCROLL_JS).then(
            on_run, [loaded, annot, question], [status, annot, *slot_outputs], api_visibility="private",
            concurrency_id="model", show_progress="hidden")
        api_btn.click(predict_api, [api_image, api_boxes, api_query], [api_records, api_overlays],
                      api_name="predict_api", concurrency_id="model",
                      api_description="Grounded captions for boxes on an image: image file, boxes_json "
                                      "([[x0, y0, x1, y1], ...] in full-resolution pixels, or {\"boxes\": [...], \"crs\": "
                                      "\"EPSG:4326\"} in map coordinates for a GeoTIFF), optional query. "
                                      "Returns one GCG record (with phrase colours) and one overlay PNG per box.")
    return demo


def _xyxy(b: dict[str, Any]) -> tuple[float, float, float, float]:
    return float(b["xmin"]), float(b["ymin"]), float(b["xmax"]), float(b["ymax"])


def _plain(text: str) -> str:
    """Streamed text without the model's phrase tags."""
    from clvnet.data.record import strip_tags

    return strip_tags(text)


def launch_app(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
               max_upload_mb: float = 50.0, max_queue: int = 32, block: bool = True) -> Any:
    """Queue and launch the app: one request at a time on the model, capped uploads, no tracebacks.

    Args:
        demo: the app from :func:`build_app`.
        host: interface to bind (loopback by default).
        port: TCP port (None = first free port from 7860).
        share: create a public Gradio link.
        max_upload_mb: largest accepted upload in MB.
        max_queue: most requests waiting in the queue.
        block: block the calling thread (False in tests).

    Returns:
        What ``gr.Blocks.launch`` returns (app, local URL, share URL).
    """
    if max_upload_mb <= 0:
        raise ValueError(f"--max-upload-mb must be > 0, got {max_upload_mb}")
    demo.queue(default_concurrency_limit=1, max_size=max_queue)
    service: DemoService = demo.clvnet_service  # type: ignore[attr-defined]
    return demo.launch(server_name=host, server_port=port, share=share, max_file_size=int(max_upload_mb * 1024 * 1024),
                       show_error=False, prevent_thread_lock=not block, quiet=not block, css=CSS, js=DELETE_JS,
                       allowed_paths=[str(ASSETS), str(service.workdir)])
