"""Images in, people out, for every family: `PosePipeline`.

Top-down models get person boxes from a detector (a YOLO-Pose model, any
callable, or a COCO detection-results file); bottom-up and single-stage
models find the people themselves. Unreadable images are skipped, counted
and named in `report`, never dropped silently.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from kerapose.inference.image_io import read_image
from kerapose.inference.sources import list_sources


@dataclasses.dataclass
class PipelineReport:
    """What the last call read.

    Attributes:
        images_total: images listed in the source.
        images_done: images with a result.
        skipped: `(name, reason)` of every image that could not be read.
    """

    images_total: int = 0
    images_done: int = 0
    skipped: list = dataclasses.field(default_factory=list)

    def summary(self):
        text = f"{self.images_done} of {self.images_total} images done"
        if self.skipped:
            names = "; ".join(f"{n}: {r}" for n, r in self.skipped)
            text += f", {len(self.skipped)} skipped ({names})"
        return text


def _load(model, what):
    if isinstance(model, str):
        from kerapose import zoo

        return zoo.load(model, compile=False)
    if not hasattr(model, "task") and not callable(model):
        raise ValueError(
            f"`{what}` must be a kerapose model, a zoo name or a callable. "
            f"Received a {type(model).__name__}."
        )
    return model


class DetectionsFile:
    """Person boxes from a COCO detection-results file, by image.

    Images are matched by COCO id: the number an image file is named by
    (`000000000785.jpg` is id 785), or an explicit `{file name: id}`
    mapping. Only `category_id` 1 (person) is used.

    Args:
        path: JSON list of `{"image_id", "category_id", "bbox": [x, y, w,
            h], "score"}` dicts.
        image_ids: optional dict from file name (or stem) to image id.
    """

    def __init__(self, path, image_ids=None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Detections file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        if not isinstance(data, list):
            raise ValueError(
                f"{path} must hold a COCO detection-results list of "
                "{'image_id', 'bbox', 'score'} dicts."
            )
        self.path = path
        self.boxes = {}
        for i, entry in enumerate(data):
            try:
                image_id = entry["image_id"]
                box = [float(v) for v in entry["bbox"]]
                score = float(entry.get("score", 1.0))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(
                    f"Entry {i} of {path} needs 'image_id', 'bbox' [x, y, "
                    f"w, h] and a numeric 'score'. Received: {entry!r:.200}"
                ) from err
            if entry.get("category_id", 1) != 1 or len(box) != 4:
                continue
            self.boxes.setdefault(image_id, []).append(box + [score])
        self.image_ids = dict(image_ids or {})

    def image_id(self, name):
        stem = Path(name).stem
        for key in (name, Path(name).name, stem):
            if key in self.image_ids:
                return self.image_ids[key]
        if stem.isdigit():
            return int(stem)
        raise ValueError(
            f"Cannot tell the COCO image id of {name}: name the files by "
            "their id (000000000785.jpg) or pass `image_ids={file name: "
            "id}`."
        )

    def __call__(self, image, name):
        rows = np.asarray(
            self.boxes.get(self.image_id(name), []), np.float32
        ).reshape(-1, 5)
        return rows[:, :4], rows[:, 4]


class PosePipeline:
    """People and keypoints on images, for any kerapose estimator.

    Args:
        pose: a kerapose estimator or a zoo name.
        detector: for top-down models: a YOLO-Pose estimator or zoo name
            (its person boxes and scores are used), a callable
            `(image RGB uint8, name) -> (boxes (N, 4) [x, y, w, h],
            scores (N,))`, or the path of a COCO detection-results file.
            `None`: the whole image is one person. Not allowed for bottom-up
            and single-stage models, which find people themselves.
        detector_kwargs: dict passed to the YOLO-Pose detector's predict
            (`score_threshold`, `iou_threshold`, `max_detections`).
        min_box_score: float. Detector boxes below it are dropped before
            the pose model. Defaults to `0.0` (the official HRNet test).
        flip_test: bool. Defaults to `False`.
        bgr: array inputs are BGR (OpenCV); paths are always read as RGB.
        batch_size: int. Images per step; top-down crops of all of them
            go through the network together. Defaults to `8`.
        spec: keypoint spec (flip pairs, skeleton). Defaults to the
            built-in spec with the model's keypoint count.
        **pose_kwargs: passed to the family's predict function (e.g.
            `score_threshold` for YOLO-Pose, grouping options bottom-up).

    Call it with a source (see `kerapose.inference.sources.list_sources`)
    to get a list of `PoseResult`, one per image read; `report` says what
    was skipped and why. `names` holds the image names of the results.
    """

    def __init__(
        self,
        pose,
        detector=None,
        detector_kwargs=None,
        min_box_score=0.0,
        flip_test=False,
        bgr=False,
        batch_size=8,
        spec=None,
        **pose_kwargs,
    ):
        self.pose = _load(pose, "pose")
        self.task = getattr(self.pose, "task", "top_down")
        if self.task != "top_down" and detector is not None:
            raise ValueError(
                f"The pose model is {self.task.replace('_', '-')}: it finds "
                "the people itself; drop `detector`."
            )
        if isinstance(detector, (str, Path)) and str(detector).endswith(
            ".json"
        ):
            detector = DetectionsFile(detector)
        elif detector is not None:
            detector = _load(detector, "detector")
            if getattr(detector, "task", None) not in (None, "single_stage"):
                raise ValueError(
                    "A detector model must be single-stage (YOLO-Pose): "
                    f"{type(detector).__name__} is "
                    f"{detector.task.replace('_', '-')}."
                )
        if self.task == "top_down" and pose_kwargs:
            raise ValueError(
                "Top-down models take no options besides `flip_test` and "
                f"`spec`. Received: {sorted(pose_kwargs)}"
            )
        if self.task == "single_stage" and flip_test:
            raise ValueError(
                "flip_test is not available for single-stage (YOLO-Pose) "
                "models; call without it."
            )
        self.detector = detector
        self.detector_kwargs = dict(detector_kwargs or {})
        self.min_box_score = float(min_box_score)
        self.flip_test = bool(flip_test)
        self.bgr = bool(bgr)
        if int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        self.batch_size = int(batch_size)
        self.spec = spec
        self.pose_kwargs = pose_kwargs
        self.report = PipelineReport()
        self.names = []

    # ------------------------------------------------------------ boxes

    def _boxes(self, images, names):
        """Per image: boxes (N, 4) and scores (N,), or `None` entries."""
        if self.detector is None:
            return None, None
        if getattr(self.detector, "task", None) == "single_stage":
            from kerapose.inference.yolo_pose import predict_images_single_stage

            found = predict_images_single_stage(
                self.detector, images, **self.detector_kwargs
            )
            pairs = [(r.boxes, r.scores) for r in found]
        else:
            pairs = [self.detector(im, n) for im, n in zip(images, names)]
        boxes, scores = [], []
        for name, (b, s) in zip(names, pairs):
            b = np.asarray(b, np.float32).reshape(-1, 4)
            s = (
                np.ones(len(b), np.float32)
                if s is None
                else np.asarray(s, np.float32).reshape(-1)
            )
            if len(s) != len(b):
                raise ValueError(
                    f"The detector gave {len(b)} boxes and {len(s)} scores "
                    f"for {name}."
                )
            keep = s >= self.min_box_score
            boxes.append(b[keep])
            scores.append(s[keep])
        return boxes, scores

    # ------------------------------------------------------------ run

    def predict(self, images, names=None):
        """Results of decoded RGB images (a list), in order; `names` are
        handed to a callable or file detector."""
        if names is None:
            names = [f"array_{i}" for i in range(len(images))]
        if self.task == "top_down":
            from kerapose.inference.top_down import predict_images

            boxes, scores = self._boxes(images, names)
            return predict_images(
                self.pose,
                images,
                boxes,
                scores,
                flip_test=self.flip_test,
                spec=self.spec,
            )
        if self.task == "single_stage":
            from kerapose.inference.yolo_pose import predict_images_single_stage

            return predict_images_single_stage(
                self.pose, images, spec=self.spec, **self.pose_kwargs
            )
        from kerapose.inference.predict import predict_image

        return [
            predict_image(
                self.pose,
                im,
                flip_test=self.flip_test,
                spec=self.spec,
                **self.pose_kwargs,
            )
            for im in images
        ]

    def __call__(self, source):
        """Results for every readable image of `source`, in order."""
        entries = list_sources(source, bgr=self.bgr)
        self.report = PipelineReport(images_total=len(entries))
        self.names, results = [], []
        for start in range(0, len(entries), self.batch_size):
            images, names = [], []
            for name, item in entries[start : start + self.batch_size]:
                try:
                    images.append(read_image(item))
                except (OSError, ValueError) as err:
                    self.report.skipped.append((name, str(err)))
                    continue
                names.append(name)
            if not images:
                continue
            results += self.predict(images, names)
            self.names += names
        self.report.images_done = len(results)
        return results
