"""Pose results for one image: people, keypoints, scores, drawing, COCO."""

import dataclasses
import json

import numpy as np

from kerapose.inference.draw import draw_poses


def _number(value, digits=None):
    """A JSON float; adding 0.0 turns -0.0 (e.g. -0.0001 rounded) into 0.0."""
    value = float(value)
    if digits is not None:
        value = round(value, digits)
    return value + 0.0


@dataclasses.dataclass
class PoseResult:
    """The people found in one image.

    Shapes: N people, K keypoints.

    Attributes:
        keypoints: (N, K, 2) float, (x, y) in image pixels.
        keypoint_scores: (N, K) float.
        boxes: (N, 4) float, (x, y, w, h) person boxes used or found.
        scores: (N,) float, person scores.
        image_shape: (H, W) of the image.
        skeleton: pairs of 0-based keypoint indices, for drawing.
        track_ids: (N,) int identities across video frames, set by
            `PoseTracker.update`; None for a single image.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    image_shape: tuple
    skeleton: tuple = ()
    track_ids: np.ndarray | None = None

    def __len__(self):
        return len(self.keypoints)

    @property
    def xyn(self):
        """Keypoints normalised by the image width and height."""
        h, w = self.image_shape
        return self.keypoints / np.array([w, h], np.float32)

    def plot(self, image, threshold=0.3):
        """Returns the RGB image with the skeletons drawn."""
        return draw_poses(
            image,
            self.keypoints,
            self.keypoint_scores,
            self.skeleton,
            boxes=self.boxes,
            threshold=threshold,
            track_ids=self.track_ids,
        )

    def to_coco(self, image_id, category_id=1):
        """COCO keypoint results (list of dicts) for this image.

        Each dict carries `track_id` as well when `track_ids` is set.
        """
        out = []
        for n, (kpts, kscores, score) in enumerate(
            zip(self.keypoints, self.keypoint_scores, self.scores)
        ):
            flat = np.concatenate([kpts, kscores[:, None]], axis=1)
            entry = {
                "image_id": image_id,
                "category_id": category_id,
                "keypoints": [_number(v, 3) for v in flat.ravel()],
                "score": _number(score),
            }
            if self.track_ids is not None:
                entry["track_id"] = int(self.track_ids[n])
            out.append(entry)
        return out

    def to_json(self, image_id=0):
        return json.dumps(self.to_coco(image_id))
