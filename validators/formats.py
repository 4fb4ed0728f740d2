"""Defects that format readers find while parsing label maps, panoptic PNGs, YOLO lines and LabelMe shapes.

Only a reader can see them (a palette index without a class, a PNG whose
size differs from its image, a YOLO line with an odd coordinate count), so
the reader flags them and keeps the record; this check reports them under
``validate``'s codes and severities, so that nothing a reader found is lost.
"""

from __future__ import annotations

from collections.abc import Iterable

from segdata.model import Dataset, Finding
from segdata.validators._registry import Context, reader_findings, register

_ERRORS = ("cityscapes-label-mismatch", "class-map-missing", "image-unreadable", "instance-class-missing",
           "instance-map-missing", "instance-map-size-mismatch", "instance-value-unlisted", "label-colour-unknown",
           "label-map-size-mismatch", "label-map-unreadable", "label-size-mismatch", "label-value-unknown",
           "panoptic-id-unlisted", "panoptic-png-missing", "panoptic-size-mismatch", "polygons-size-mismatch",
           "yolo-line-invalid", "yolo-odd-coordinates", "yolo-yaml-missing")
_WARNINGS = ("cityscapes-no-labels", "cityscapes-stuff-instance", "class-pixels-without-instance",
             "instance-class-mixed", "label-map-missing", "label-without-image", "shape-background",
             "shape-not-a-region", "shape-type-unknown", "split-source-missing", "yolo-box-line", "yolo-nc-mismatch")
_INFO = ("cityscapes-deleted-objects", "shape-ignore-as-void")
CODES = {**dict.fromkeys(_ERRORS, "error"), **dict.fromkeys(_WARNINGS, "warning"), **dict.fromkeys(_INFO, "info")}


@register(CODES)
def check_format(dataset: Dataset, context: Context) -> Iterable[Finding]:
    """The format-specific findings the reader made, with the registry's severity."""
    return reader_findings(dataset, [code for code in CODES if code in context.codes])
