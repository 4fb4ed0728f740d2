"""``segdata evaluate``: score predictions against ground truth (semantic, instance, panoptic)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import Json, Workers
from segdata.io import read_json
from segdata.parallel import prepare
from segdata.report import render_evaluation, write_json


class Task(str, Enum):
    semantic = "semantic"
    instance = "instance"
    panoptic = "panoptic"


class AbsentClasses(str, Enum):
    zero = "zero"
    exclude = "exclude"


def evaluate(
    gt: Annotated[Path, typer.Argument(metavar="GT", help="semantic: folder of PNG label maps; instance: COCO "
                                       "JSON; panoptic: COCO panoptic JSON (PNGs in the folder of the same name).")],
    pred: Annotated[Path, typer.Argument(metavar="PRED", help="semantic: folder of PNG label maps (matched by "
                                         "file stem); instance: COCO results JSON (RLE); panoptic: JSON.")],
    task: Annotated[Task, typer.Option("--task", help="What kind of segmentation to score.")],
    json: Json = False,
    per_class: Annotated[bool, typer.Option("--per-class", help="Also print one row per class.")] = False,
    ignore_index: Annotated[Optional[int], typer.Option(
        "--ignore-index", help="semantic: GT value left out of every count (default: 255).")] = None,
    score_threshold: Annotated[Optional[float], typer.Option(
        "--score-threshold", help="instance: detections at or above it count in the TP/FP/FN table "
                                  "(default: 0.5).")] = None,
    absent_classes: Annotated[AbsentClasses, typer.Option(
        "--absent-classes", help="semantic: a class predicted but absent from GT scores IoU 0 and counts in mIoU "
                                 "(zero: mmsegmentation, Cityscapes) or is left out (exclude: detectron2).")
    ] = AbsentClasses.zero,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when an input triggers a quirk of the reference implementation (GT id 0, bbox "
                         "in segm results, stored area ≠ mask area, ignore overwritten by iscrowd, values "
                         "out of range).")] = False,
    workers: Workers = None,
) -> None:
    """Score predictions: mIoU and friends, COCO mask AP/AR (as pycocotools), or PQ (as panopticapi).

    Instance AP equals pycocotools COCOeval(iouType="segm") stats, -1 where
    it has no GT to average over; an empty results list scores 0.  Semantic
    metrics come from one dataset-level confusion matrix (GT --ignore-index
    pixels left out).  Panoptic Stuff/Things show n/a when a subset has no class.

    Example: $ segdata evaluate instances_val.json results.json --task instance --per-class
    """
    from segdata.metrics import evaluate_instances, evaluate_panoptic, evaluate_semantic  # see segdata.cli

    prepare(workers)  # helpers forked now, before the inputs are read
    if task is Task.instance:
        options = {} if score_threshold is None else {"score_threshold": score_threshold}
        result = evaluate_instances(converters.read(gt, "coco"), read_json(pred), results_path=pred,
                                    workers=workers, **options)
    elif task is Task.semantic:
        options = {} if ignore_index is None else {"ignore_index": ignore_index}
        result = evaluate_semantic(gt, pred, absent_classes=absent_classes.value, **options)
    else:
        result = evaluate_panoptic(gt, pred, workers=workers)
    output = result.to_dict()
    output["quirks"] = result.quirks
    if json:
        write_json(output)
    else:
        render_evaluation(output, Console(), per_class=per_class)
    if strict and result.quirks:
        raise typer.Exit(1)
