"""Keypoint evaluation: COCO-style AP/AR, OKS utilities and MPII PCKh.

NumPy and pycocotools only, so it runs with any Keras backend.
"""

from kerapose.eval.bottom_up import evaluate_bottom_up as evaluate_bottom_up
from kerapose.eval.bottom_up import (
    score_bottom_up_predictions as score_bottom_up_predictions,
)
from kerapose.eval.coco_evaluator import METRIC_NAMES as METRIC_NAMES
from kerapose.eval.coco_evaluator import COCOEvaluator as COCOEvaluator
from kerapose.eval.functional import COCO_SIGMAS as COCO_SIGMAS
from kerapose.eval.functional import CROWDPOSE_SIGMAS as CROWDPOSE_SIGMAS
from kerapose.eval.functional import MPII_JOINT_NAMES as MPII_JOINT_NAMES
from kerapose.eval.functional import compute_oks as compute_oks
from kerapose.eval.functional import (
    head_size_from_keypoints as head_size_from_keypoints,
)
from kerapose.eval.functional import oks_nms as oks_nms
from kerapose.eval.functional import pckh as pckh
from kerapose.eval.functional import rescore as rescore
from kerapose.eval.protocol import CROWD_INDEX_SPLITS as CROWD_INDEX_SPLITS
from kerapose.eval.protocol import CROWD_METRIC_NAMES as CROWD_METRIC_NAMES
from kerapose.eval.protocol import resolve_use_area as resolve_use_area
from kerapose.eval.single_stage import (
    evaluate_single_stage as evaluate_single_stage,
)
from kerapose.eval.single_stage import (
    score_single_stage_predictions as score_single_stage_predictions,
)
from kerapose.eval.top_down import COCOEvalCallback as COCOEvalCallback
from kerapose.eval.top_down import evaluate_top_down as evaluate_top_down
from kerapose.eval.top_down import score_predictions as score_predictions

__all__ = [
    "COCOEvalCallback",
    "COCOEvaluator",
    "COCO_SIGMAS",
    "CROWDPOSE_SIGMAS",
    "CROWD_INDEX_SPLITS",
    "CROWD_METRIC_NAMES",
    "METRIC_NAMES",
    "MPII_JOINT_NAMES",
    "compute_oks",
    "evaluate_bottom_up",
    "evaluate_single_stage",
    "evaluate_top_down",
    "head_size_from_keypoints",
    "oks_nms",
    "pckh",
    "rescore",
    "resolve_use_area",
    "score_bottom_up_predictions",
    "score_predictions",
    "score_single_stage_predictions",
]
