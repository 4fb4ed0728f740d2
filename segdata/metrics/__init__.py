"""Evaluation of predictions: semantic (confusion matrix), instance (COCO mask AP), panoptic (PQ).

Each task lives in its own module and matches a reference implementation:
``instance`` is pycocotools' COCOeval ``segm``, ``semantic`` is
mmsegmentation's IoUMetric (plus detectron2's fwIoU and absent-class option),
``panoptic`` is panopticapi's ``pq_compute``.
"""

from segdata.metrics.instance import InstanceResult, evaluate_instances
from segdata.metrics.panoptic import PanopticResult, evaluate_panoptic
from segdata.metrics.semantic import SemanticResult, evaluate_semantic

__all__ = ["InstanceResult", "PanopticResult", "SemanticResult", "evaluate_instances", "evaluate_panoptic",
           "evaluate_semantic"]
