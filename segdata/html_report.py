"""The HTML page of ``segdata report``: one self-contained file, readable on a laptop and a phone.

Everything the page shows is inside it: thumbnails (JPEG) and plots (PNG)
are ``data:`` URIs, the CSS is inline, links are in-page fragments, so the
file can be mailed, attached to a CI run or opened offline, and it never
asks the network for anything.  Thumbnails are drawn on a downscaled image
(a reduced-size JPEG decode where possible) with the offending annotation
outlined as annotated (polygon rings as drawn, other masks by their
contours), so a page for a large dataset stays small: at most
:data:`THUMBS_PER_CODE` thumbnails per finding code and :data:`PAIRS_SHOWN`
leaked pairs.

The output is deterministic: the same report gives the same bytes (no
timestamp; plots are rendered without date metadata).
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from segdata.model import Annotation, Dataset, ImageRecord

#: Longest side of a thumbnail, in pixels.
THUMB_SIDE = 320
#: Thumbnails per finding code (the rest are listed as text).
THUMBS_PER_CODE = 12
#: Messages listed per finding code.
ROWS_PER_CODE = 50
#: Leaked pairs shown side by side.
PAIRS_SHOWN = 24
#: Class alerts listed open (more are folded).
ALERTS_OPEN = 10
#: Plots wider than this (pixels; many classes) keep their size and scroll sideways.
WIDE_PLOT = 1400
#: Outline colours (RGB): the annotation a finding is about, the other one of a pair, a stored box.
_RED, _YELLOW, _CYAN = (230, 30, 30), (255, 210, 0), (0, 200, 255)
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

_CSS = """
:root { --fg: #1d2330; --muted: #5b6472; --line: #d9dee6; --bg: #f6f7f9; --err: #b3261e; --warn: #a15c00;
        --info: #245e9e; --ok: #1e7a3c; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
main { max-width: 1120px; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: 0.2rem 0; } h2 { margin-top: 2rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
nav { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; margin: 0.8rem 0; }
nav a { color: var(--info); }
.verdict { font-size: 1.15rem; font-weight: 600; padding: 0.8rem 1rem; border-radius: 8px; color: #fff; }
.verdict.clean { background: var(--ok); } .verdict.dirty { background: var(--err); }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; background: #fff; margin: 0.4rem 0; font-size: 0.92rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
.sev-error { color: var(--err); font-weight: 600; } .sev-warning { color: var(--warn); font-weight: 600; }
.sev-info { color: var(--info); }
.grid { display: flex; flex-wrap: wrap; gap: 0.8rem; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 0.4rem;
         flex: 0 1 240px; max-width: 100%; }
figure img { display: block; width: 100%; height: auto; }
figcaption { font-size: 0.8rem; color: var(--muted); overflow-wrap: anywhere; }
.pair { display: flex; gap: 0.4rem; flex: 1 1 460px; max-width: 100%; background: #fff;
        border: 1px solid var(--line); border-radius: 6px; padding: 0.4rem; flex-wrap: wrap; }
.pair figure { border: 0; padding: 0; flex: 1 1 200px; }
.pair p { flex-basis: 100%; margin: 0; font-size: 0.85rem; }
.plot { max-width: 100%; height: auto; background: #fff; border: 1px solid var(--line); }
.plot.wide { max-width: none; }
ul.messages { font-size: 0.85rem; padding-left: 1.2rem; overflow-wrap: anywhere; }
details > summary { cursor: pointer; font-weight: 600; }
footer { margin-top: 2.5rem; font-size: 0.85rem; color: var(--muted); }
@media (max-width: 600px) {
  body { font-size: 15px; } main { padding: 0.6rem; } h1 { font-size: 1.3rem; }
  figure { flex-basis: calc(50% - 0.4rem); } .pair { flex-basis: 100%; }
}
"""

#: Sets a marker on <body> once it has run, so a headless browser test can tell the page's script ran clean.
_SCRIPT = """document.body.setAttribute("data-rendered", "yes");"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# --------------------------------------------------------------------------------------------
# thumbnails


def _load_small(image: ImageRecord) -> np.ndarray | None:
    """The image downscaled to at most :data:`THUMB_SIDE` (RGB uint8), or ``None`` when unreadable."""
    if image.path is None:
        return None
    try:
        with Image.open(image.path) as opened:
            opened.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at reduced scale
            small = ImageOps.exif_transpose(opened).convert("RGB")
            small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
            return np.array(small)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _placeholder(image: ImageRecord, why: str) -> np.ndarray:
    scale = THUMB_SIDE / max(image.width, image.height, 1)
    canvas = np.full((max(1, round(image.height * scale)), max(1, round(image.width * scale)), 3), 200, np.uint8)
    cv2.putText(canvas, why, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (60, 60, 60), 1, cv2.LINE_AA)
    return canvas


def _outline(canvas: np.ndarray, ann: Annotation, scale_xy: tuple[float, float], color: tuple[int, int, int],
             with_box: bool) -> None:
    """Draw one annotation's outline (polygon rings as annotated, else mask contours) on ``canvas``."""
    sx, sy = scale_xy
    if ann.mask is not None and ann.defect is None:
        rings = ann.mask.source_polygons
        if rings is not None:
            curves = [np.round(np.asarray(r, np.float64).reshape(-1, 2) * (sx, sy)).astype(np.int32)
                      for r in rings if len(r) >= 4]
        else:
            try:
                x0, y0, crop = ann.mask.to_crop()
            except (ValueError, ArithmeticError):  # a mask the checks report as undecodable
                crop = np.zeros((0, 0), bool)
            curves = []
            if crop.size:
                found, _ = cv2.findContours(crop.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                curves = [np.round((c.reshape(-1, 2) + (x0, y0)) * (sx, sy)).astype(np.int32) for c in found]
        if curves:
            cv2.polylines(canvas, curves, True, color, 3, cv2.LINE_AA)
    bbox = ann.attributes.get("bbox")
    if with_box and isinstance(bbox, (list, tuple)) and len(bbox) == 4:
        x, y, w, h = (float(v) for v in bbox)
        cv2.rectangle(canvas, (round(x * sx), round(y * sy)), (round((x + w) * sx), round((y + h) * sy)),
                      _CYAN, 2, cv2.LINE_AA)


def thumbnail(image: ImageRecord, outlined: list[tuple[Annotation, tuple[int, int, int]]],
              with_box: bool = False) -> str:
    """A JPEG ``data:`` URI of the downscaled image with the given annotations outlined.

    Parameters
    ----------
    image : ImageRecord
    outlined : list of (Annotation, (r, g, b))
        Annotations to draw, with their colour.
    with_box : bool
        Also draw each annotation's stored ``bbox`` (cyan), for box and area findings.

    Returns
    -------
    str
        A missing or unreadable file gives a grey placeholder of the declared size, with the outlines.
    """
    canvas = _load_small(image)
    if canvas is None:
        canvas = _placeholder(image, "image file missing" if image.path is None or not Path(image.path).is_file()
                              else "image unreadable")
    canvas = np.ascontiguousarray(canvas)
    scale = (canvas.shape[1] / max(image.width, 1), canvas.shape[0] / max(image.height, 1))
    for ann, color in outlined:
        _outline(canvas, ann, scale, color, with_box)
    _ok, data = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return _data_uri(data.tobytes(), "image/jpeg")


# --------------------------------------------------------------------------------------------
# plots


def _png(figure: Any) -> str:
    buffer = BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    return _data_uri(buffer.getvalue(), "image/png")


def _plots(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """``(caption, data URI)`` of the class-frequency, size and weight plots (sizes per split)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from segdata.report import write_stats_plots

    plots = []
    with tempfile.TemporaryDirectory() as folder:  # the stats command's own plots, embedded as they are
        for path in write_stats_plots(stats, folder):
            plots.append((path.stem.replace("_", " "), _data_uri(path.read_bytes(), "image/png")))
    plots = [p for p in plots if p[0] != "sizes"]
    splits = stats["splits"]
    classes = [row for row in stats["classes"] if not row["is_background"]]
    if classes and splits:
        x = np.arange(len(classes))
        figure = Figure(figsize=(max(6, 0.7 * len(classes) + 2), 2.6 * len(splits) + 0.6))
        axes_list = np.atleast_1d(figure.subplots(len(splits), 1, squeeze=False)[:, 0])
        for axes, (split, entry) in zip(axes_list, splits.items()):
            rows = {row["id"]: row for row in entry["classes"]}
            bottom = np.zeros(len(classes))
            for size in ("small", "medium", "large"):
                values = np.array([rows[c["id"]][size] for c in classes], float)
                axes.bar(x, values, 0.6, bottom=bottom, label=size)
                bottom += values
            axes.set_xticks(x, [c["name"] for c in classes], rotation=45, ha="right")
            axes.set_ylabel(f"{split or '(none)'}: instances")
            axes.legend(fontsize="small")
        figure.suptitle("instance sizes per split (COCO: small < 32², medium < 96², large)")
        plots.insert(1, ("instance sizes per split", _png(figure)))
    return plots


# --------------------------------------------------------------------------------------------
# sections


def _table(header: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    head = "".join(f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="text">{c}</td>' if i < text_columns else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(uri: str, caption: str) -> str:
    return (f'<figure><img src="{uri}" alt="{_e(caption)}" loading="lazy">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _finding_thumbs(group: list[dict[str, Any]], code: str, images: dict, annotations: dict) -> list[str]:
    """Up to :data:`THUMBS_PER_CODE` thumbnails, one per image, the findings' annotations outlined."""
    thumbs, by_image = [], defaultdict(list)
    for f in group:
        by_image[(f["split"], f["image_id"])].append(f)
    for key, marked in by_image.items():
        image = images.get(key)
        if image is None:
            continue
        outlined = []
        for f in marked:
            if (ann := annotations.get((f["split"], f["annotation_id"]))) is not None:
                outlined.append((ann, _RED))
            if (ann := annotations.get((f["split"], (f["details"] or {}).get("other_annotation_id")))) is not None:
                outlined.append((ann, _YELLOW))
        uri = thumbnail(image, outlined, with_box=code in ("bbox-mismatch", "area-mismatch"))
        thumbs.append(_figure(uri, f"{image.split} image {image.id} · {image.file_name}"))
        if len(thumbs) == THUMBS_PER_CODE:
            break
    return thumbs


def _findings_section(findings: Iterable[dict[str, Any]], dataset: Dataset) -> str:
    images = {(i.split, i.id): i for i in dataset.images}
    annotations = {(a.split, a.id): a for a in dataset.annotations}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        groups[(finding["code"], finding["severity"])].append(finding)
    order = sorted(groups, key=lambda key: (_SEVERITY_ORDER[key[1]], key[0]))
    if not order:
        return '<section id="validation"><h2>Validation and leak findings</h2><p>No findings.</p></section>'
    rows = [[f'<a href="#code-{_e(code)}-{severity}">{_e(code)}</a>', f'<span class="sev-{severity}">{severity}</span>',
             f"{len(groups[(code, severity)]):,}",
             f"{len({(f['split'], f['image_id']) for f in groups[(code, severity)]}):,}"]
            for code, severity in order]
    parts = ['<section id="validation"><h2>Validation and leak findings</h2>',
             _table(["code", "severity", "findings", "images"], rows, 2)]
    for code, severity in order:
        group = groups[(code, severity)]
        thumbs = [] if severity == "info" else _finding_thumbs(group, code, images, annotations)
        messages = "".join(f"<li>{_e(f['message'])}</li>" for f in group[:ROWS_PER_CODE])
        more = f"<li>… {len(group) - ROWS_PER_CODE:,} more (see --json)</li>" if len(group) > ROWS_PER_CODE else ""
        opened = "" if severity == "info" else " open"
        parts.append(f'<details id="code-{_e(code)}-{severity}"{opened}><summary><span class="sev-{severity}">'
                     f"{severity}</span> {_e(code)} — {len(group):,}</summary>"
                     + (f'<div class="grid">{"".join(thumbs)}</div>' if thumbs else "")
                     + f'<ul class="messages">{messages}{more}</ul></details>')
    parts.append("</section>")
    return "".join(parts)


def _leakage_section(leakage: dict[str, Any], dataset: Dataset) -> str:
    summary = leakage["summary"]
    by_name = {(i.split, i.file_name): i for i in dataset.images}
    parts = ['<section id="leakage"><h2>Leakage between splits</h2>',
             (f"<p>{summary['images']:,} images fingerprinted ({summary['unreadable']:,} unreadable, left out); "
              f"{summary['leak_pairs']:,} pairs link two splits.</p>")]
    if summary["evaluation"]:
        parts.append(_table(["evaluation split", "images", "leaking", "share"],
                            [[_e(s), f"{e['images']:,}", f"{e['leaking']:,}", f"{e['share']:.1%}"]
                             for s, e in summary["evaluation"].items()]))
    cross = [p for p in leakage["pairs"] if p["split_a"] != p["split_b"]]
    if cross:
        parts.append('<h3>Leaked pairs</h3><div class="grid">')
        for pair in cross[:PAIRS_SHOWN]:
            figures = []
            for side in ("a", "b"):
                image = by_name.get((pair[f"split_{side}"], pair[f"image_{side}"]))
                caption = f"{pair[f'split_{side}']} · {pair[f'image_{side}']}"
                if image is not None:
                    figures.append(_figure(thumbnail(image, []), caption))
            distance = "" if pair["distance"] is None else f", pHash distance {pair['distance']}"
            parts.append(f'<div class="pair">{"".join(figures)}<p><b>{_e(pair["kind"])}</b>{_e(distance)}</p></div>')
        parts.append("</div>")
        if len(cross) > PAIRS_SHOWN:
            parts.append(f"<p>… {len(cross) - PAIRS_SHOWN:,} more pairs (see --json).</p>")
    else:
        parts.append("<p>No image is shared between splits.</p>")
    if summary["within_split"]:
        counts = ", ".join(f"{n:,} {kind}" for kind, n in summary["within_split"].items())
        parts.append(f"<p>Duplicates within a split (info): {_e(counts)}.</p>")
    parts.append("</section>")
    return "".join(parts)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _stats_section(stats: dict[str, Any]) -> str:
    rows = []
    for row in stats["classes"]:
        share = row["pixel_share_all"]
        rows.append([_e(row["name"]), str(row["id"]), f"{row['pixels']:,}",
                     "—" if share is None else f"{share:.2%}", f"{row['images']:,}", f"{row['instances']:,}",
                     f"{row['small']:,}/{row['medium']:,}/{row['large']:,}",
                     *(_number(row["weights"][k]) for k in ("inverse_frequency", "median_frequency", "enet",
                                                            "effective_number"))])
    parts = ['<section id="statistics"><h2>Class statistics</h2>',
             (f"<p>Pixels are counted on each image's composed class map (overlap "
              f"{_e(stats['settings']['overlap'])}, crowd void); images and instances (crowd apart) per class.</p>"),
             '<h3 id="weights">Suggested loss weights</h3>',
             _table(["class", "id", "pixels", "share of pixels", "images", "instances", "S/M/L",
                     "inverse freq.", "median freq.", "ENet", "effective number"], rows)]
    if stats["alerts"]:
        alerts = "".join(f"<li><b>{_e(a['code'])}</b> {_e(a['message'])}</li>" for a in stats["alerts"])
        opened = " open" if len(stats["alerts"]) <= ALERTS_OPEN else ""
        parts.append(f"<details{opened}><summary>{len(stats['alerts']):,} class alert(s)</summary>"
                     f'<ul class="messages">{alerts}</ul></details>')
    for caption, uri in _plots(stats):
        with Image.open(BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as plot:
            wide = plot.width > WIDE_PLOT  # many classes: shown at full size, scrolled sideways, not shrunk
        parts.append(f'<h3>{_e(caption)}</h3><div class="scroll"><img class="plot{" wide" if wide else ""}" '
                     f'src="{uri}" alt="{_e(caption)}"></div>')
    parts.append("</section>")
    return "".join(parts)


def render_html(report: dict[str, Any], findings: Iterable[dict[str, Any]], dataset: Dataset, *, title: str,
                command: str, version: str, next_steps: list[str]) -> str:
    """The self-contained HTML page of a health report.

    Parameters
    ----------
    report : dict
        :meth:`segdata.health.HealthReport.to_dict`.
    findings : iterable of dict
        Every finding once (:meth:`segdata.health.HealthReport.findings`), as dicts.
    dataset : Dataset
        The dataset checked: image files and masks for the thumbnails.
    title : str
        What was checked (the dataset path).
    command, version : str
        The exact command line and segdata version, shown at the bottom.
    next_steps : list of str
        Where to look next, one line each.

    Returns
    -------
    str
        The page; the same inputs give the same text.
    """
    verdict = report["verdict"]
    state = "clean" if verdict["clean"] else "dirty"
    steps = "".join(f"<li><code>{_e(step)}</code></li>" if step.startswith("segdata ") else f"<li>{_e(step)}</li>"
                    for step in next_steps)
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>segdata report: {_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f'<header><h1>segdata report</h1><p><code>{_e(title)}</code></p>',
        f'<p id="verdict" class="verdict {state}">{_e(verdict["line"])}</p></header>',
        ('<nav><a href="#validation">Validation</a><a href="#leakage">Leakage</a>'
         '<a href="#statistics">Class statistics</a><a href="#weights">Weights</a><a href="#next">Next</a></nav>'),
        _findings_section(findings, dataset),
        _leakage_section(report["leakage"], dataset),
        _stats_section(report["stats"]),
        f'<section id="next"><h2>Where to look next</h2><ul>{steps}</ul></section>',
        f'<footer id="provenance"><p>Made by <code>{_e(command)}</code> with segdata {_e(version)}.</p></footer>',
        f"</main><script>{_SCRIPT}</script></body></html>\n",
    ])
