"""Bottom-up inference: the whole image in, every person out.

The official HigherHRNet test (`tools/valid.py`): the image is resized
keeping its aspect so that its short side is `input_size` (times the test
scale) and its long side is rounded up to a multiple of `size_divisor`
(official: 64), centred; the network runs on it (and on its mirror image);
the outputs are aggregated and decoded (`AssociativeEmbeddingDecoder`),
grouped into people (`kerapose.inference.grouping`) and projected back to
image pixels. The person score is the mean keypoint score, as official.

Shapes: N people, K keypoints, (H, W) network input.
"""

import dataclasses
import math

import cv2
import numpy as np

from kerapose.codecs.associative_embedding import AssociativeEmbeddingDecoder
from kerapose.data.keypoint_specs import spec_for_num_keypoints
from kerapose.data.transforms import IMAGENET_MEAN
from kerapose.data.transforms import IMAGENET_STD
from kerapose.inference import grouping
from kerapose.inference.affine import apply_matrix
from kerapose.inference.affine import crop_matrix
from kerapose.inference.compiled import run_compiled
from kerapose.inference.image_io import read_image
from kerapose.inference.results import PoseResult

# The official test settings of each family (HigherHRNet COCO yamls and
# `HeatmapParser`; the AE code `test.py` and `utils/group.py`).
HIGHERHRNET_TEST_SETTINGS = {
    "nms_kernel": 5,
    "project_to_input": True,
    "max_heatmap_value": None,
    "detection_threshold": 0.1,
    "tag_threshold": 1.0,
    "use_detection_val": True,
    "ignore_too_much": False,
    "tag_distance": "l2",
}
AE_HOURGLASS_TEST_SETTINGS = {
    "nms_kernel": 3,
    "project_to_input": False,
    "max_heatmap_value": 1.0,
    "detection_threshold": 0.1,
    "tag_threshold": 1.0,
    "use_detection_val": True,
    "ignore_too_much": True,
    "tag_distance": "rms",
}
_DECODER_KEYS = ("nms_kernel", "max_heatmap_value")
_GROUPING_KEYS = (
    "detection_threshold",
    "tag_threshold",
    "use_detection_val",
    "ignore_too_much",
    "tag_distance",
    "joint_order",
    "use_adjust",
    "use_refine",
)
# The official resize rounds the long side up to a multiple of 64.
SIZE_DIVISOR = 64
INPUT_SIZE = 512


def _is_hourglass(model):
    backbone = getattr(model, "backbone", None)
    return "hourglass" in type(backbone).__name__.lower()


def official_test_settings(model):
    """The official test settings of the model's family (a new dict)."""
    if _is_hourglass(model):
        return dict(AE_HOURGLASS_TEST_SETTINGS)
    return dict(HIGHERHRNET_TEST_SETTINGS)


def official_normalization(model):
    """`"imagenet"` (HigherHRNet) or `"unit"` (AE hourglass: image / 255).

    A model that records its own (`input_normalization`) wins.
    """
    recorded = getattr(model, "input_normalization", None)
    if recorded:
        return recorded
    return "unit" if _is_hourglass(model) else "imagenet"


@dataclasses.dataclass(frozen=True)
class InputTransform:
    """Where one test scale puts the image in the network input.

    Attributes:
        size: `(H, W)` of the network input.
        center: `(x, y)` image point at the input centre.
        scale: `(w, h) / 200` of the image region the input covers (only
            `scale[0]` sets the zoom, as in the official code).
    """

    size: tuple
    center: tuple
    scale: tuple

    def matrix(self, output_size=None, inverse=False):
        """2x3 image -> map matrix for a map of `output_size` (H, W)."""
        return crop_matrix(
            self.center, self.scale, 0.0, output_size or self.size, inverse
        )

    def warp(self, image):
        """The image resized into the network input (zero padding)."""
        h, w = self.size
        return cv2.warpAffine(
            image, self.matrix(), (w, h), flags=cv2.INTER_LINEAR
        )

    def to_image(self, points, map_size):
        """(..., 2) map coordinates of a map of `map_size` -> image pixels."""
        return apply_matrix(points, self.matrix(map_size, inverse=True))


def input_transform(
    image_shape,
    input_size=INPUT_SIZE,
    scale=1.0,
    min_scale=1.0,
    size_divisor=SIZE_DIVISOR,
    fixed_size=None,
):
    """The official `get_multi_scale_size` for one test scale.

    The short side becomes `input_size * scale`; the long side keeps the
    aspect and is rounded up to a multiple of `size_divisor` at the
    smallest scale `min_scale`, then scaled. The image centre (rounded to a
    pixel) goes to the input centre.

    Args:
        image_shape: `(height, width)` of the image.
        input_size: int. Short side at scale 1. Defaults to `512`.
        scale: float. This test scale.
        min_scale: float. The smallest test scale.
        size_divisor: int. Defaults to `64` (official).
        fixed_size: `(H, W)` of a model with a fixed input size: the image
            is fitted into it keeping its aspect, centred, instead.

    Returns:
        `InputTransform`.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"The image is empty: shape {image_shape}.")
    center = (float(int(w / 2.0 + 0.5)), float(int(h / 2.0 + 0.5)))
    if fixed_size is not None:
        out_h, out_w = (int(s) for s in fixed_size)
        zoom = min(out_w / w, out_h / h)
        return InputTransform(
            (out_h, out_w), center, (out_w / zoom / 200, out_h / zoom / 200)
        )
    d = int(size_divisor)
    min_input = int((min_scale * input_size + d - 1) // d * d)
    ratio = scale / min_scale
    if w < h:
        w_out = int(min_input * ratio)
        h_out = int(int((min_input / w * h + d - 1) // d * d) * ratio)
        scale_wh = (w / 200.0, h_out / w_out * w / 200.0)
    else:
        h_out = int(min_input * ratio)
        w_out = int(int((min_input / h * w + d - 1) // d * d) * ratio)
        scale_wh = (w_out / h_out * h / 200.0, h / 200.0)
    return InputTransform((h_out, w_out), center, scale_wh)


def normalize_images(images, normalization):
    """uint8 RGB -> the network's float input.

    Args:
        images: (..., 3) uint8 or float 0-255 RGB.
        normalization: `"imagenet"` (0-1, then ImageNet mean / std),
            `"unit"` (0-1) or a callable.
    """
    if callable(normalization):
        return normalization(images)
    x = np.asarray(images, np.float32) / 255.0
    if normalization == "imagenet":
        return (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(
            IMAGENET_STD, np.float32
        )
    if normalization == "unit":
        return x
    raise ValueError(
        "`normalization` must be 'imagenet', 'unit' or a callable. "
        f"Received: {normalization!r}"
    )


def _flag_indices(flags, name, num_outputs):
    flags = list(flags)
    if flags and all(isinstance(f, (bool, np.bool_)) for f in flags):
        if len(flags) != num_outputs:
            raise ValueError(
                f"`{name}` has {len(flags)} flags for {num_outputs} outputs."
            )
        return [i for i, f in enumerate(flags) if f]
    return [int(i) for i in flags]


def decoder_for_model(model, flip=True, spec=None, max_people=None, **kw):
    """An `AssociativeEmbeddingDecoder` set up for a bottom-up estimator.

    Reads `num_keypoints`, `output_strides`, `heatmap_outputs_for_test`,
    `tag_outputs_for_test` and `tag_dim` from the model (without
    `tag_outputs_for_test`: the outputs with `tag_outputs` among those
    whose heatmaps are used): the last stack of the hourglass, both
    outputs of HigherHRNet with tags from the 1/4 one.

    Args:
        model: a bottom-up estimator.
        flip: set up the flip test (needs the spec's `flip_indices`).
        spec: keypoint spec; defaults to the built-in one with the model's
            keypoint count.
        max_people: candidates per joint; defaults to `30` (official).
        **kw: `nms_kernel`, `max_heatmap_value`; default to the family's
            official settings.
    """
    k = int(model.num_keypoints)
    strides = list(getattr(model, "output_strides", [4]))
    tag_flags = list(getattr(model, "tag_outputs", [True] * len(strides)))
    test = getattr(model, "heatmap_outputs_for_test", None)
    n = len(strides)
    heatmap_outputs = (
        _flag_indices(test, "heatmap_outputs_for_test", n)
        if test is not None
        else list(range(len(strides)))
    )
    tag_test = getattr(model, "tag_outputs_for_test", None)
    if tag_test is not None:
        tag_outputs = _flag_indices(tag_test, "tag_outputs_for_test", n)
    else:
        tag_all = [i for i, f in enumerate(tag_flags) if f]
        tag_outputs = [i for i in tag_all if i in heatmap_outputs] or tag_all
    flip_indices = None
    if flip:
        spec = spec or spec_for_num_keypoints(k)
        if spec is None:
            raise ValueError(
                f"No built-in keypoint spec has {k} keypoints: pass `spec` "
                "(for the flip pairs) or flip=False."
            )
        if spec.num_keypoints != k:
            raise ValueError(
                f"The spec {spec.name!r} has {spec.num_keypoints} keypoints, "
                f"the model {k}."
            )
        flip_indices = spec.flip_indices
    settings = official_test_settings(model)
    settings.update(kw)
    return AssociativeEmbeddingDecoder(
        num_keypoints=k,
        heatmap_outputs=heatmap_outputs,
        tag_outputs=tag_outputs,
        tag_dim=int(getattr(model, "tag_dim", 1)),
        flip_indices=flip_indices,
        max_people=grouping.MAX_PEOPLE if max_people is None else max_people,
        nms_kernel=settings["nms_kernel"],
        max_heatmap_value=settings["max_heatmap_value"],
    )


def _check_scales(scales):
    try:
        scales = [float(s) for s in scales]
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`scales` must be a list of positive numbers. Received: {scales!r}"
        ) from err
    if not scales or min(scales) <= 0 or not all(map(math.isfinite, scales)):
        raise ValueError(
            f"`scales` must be a list of positive numbers. Received: {scales!r}"
        )
    if len(scales) > 1 and 1.0 not in scales:
        raise ValueError(
            "Multi-scale testing takes the tags at scale 1, as the official "
            f"test does: add 1 to `scales`. Received: {scales}"
        )
    # The official loop runs the largest scale first.
    return sorted(set(scales), reverse=True)


def _empty_result(num_keypoints, image_shape, spec):
    return PoseResult(
        np.zeros((0, num_keypoints, 2), np.float32),
        np.zeros((0, num_keypoints), np.float32),
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        tuple(image_shape),
        spec.skeleton if spec else (),
    )


def _keypoint_boxes(keypoints, scores):
    """(N, 4) `x, y, w, h` around each person's scored keypoints."""
    found = (scores > 0)[..., None]
    big = np.float32(np.inf)
    low = np.where(found, keypoints, big).min(axis=1)
    high = np.where(found, keypoints, -big).max(axis=1)
    boxes = np.concatenate([low, high - low], axis=1)
    return np.where(np.isfinite(boxes), boxes, 0.0).astype(np.float32)


def decode_bottom_up_outputs(
    outputs,
    image_shape,
    decoder,
    scales=(1,),
    flip=True,
    input_size=INPUT_SIZE,
    size_divisor=SIZE_DIVISOR,
    fixed_size=None,
    project_to_input=True,
    spec=None,
    **grouping_kwargs,
):
    """Network outputs of one image -> people in image pixels.

    The part of `predict_image_bottom_up` after the network, for outputs
    computed elsewhere (or made by hand).

    Args:
        outputs: one entry per test scale, in the order of `scales`: the
            list of output maps (each (B, h_i, w_i, C_i)) of the batch
            `[image]`, or `[image, mirrored image]` with `flip`, resized
            as `input_transform(image_shape, input_size, scale,
            min(scales), size_divisor, fixed_size)` says. The mirrored
            image's outputs are as the network returns them.
        image_shape: `(height, width)` of the image.
        decoder: `AssociativeEmbeddingDecoder` (see `decoder_for_model`).
        scales: test scales. Defaults to `(1,)`.
        flip: the outputs hold the mirrored image as well.
        input_size, size_divisor, fixed_size: see `input_transform`.
        project_to_input: group on maps resized to the network input at
            scale 1 (HigherHRNet's `PROJECT2IMAGE`) instead of the last
            output's resolution (the AE code).
        spec: keypoint spec, for the skeleton of the result.
        **grouping_kwargs: `kerapose.inference.grouping.group_people`
            options (`detection_threshold`, `tag_threshold`,
            `use_detection_val`, `ignore_too_much`, `tag_distance`,
            `joint_order`, `use_adjust`, `use_refine`).

    Returns:
        `PoseResult`: keypoints (N, K, 2) in image pixels, keypoint scores
        (N, K) (heatmap values; 0 for joints neither found nor refined),
        boxes around the scored keypoints, person scores (N,).
    """
    unknown = set(grouping_kwargs) - set(_GROUPING_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown grouping options {sorted(unknown)}; expected some of "
            f"{list(_GROUPING_KEYS)}."
        )
    order = _check_scales(scales)
    given = [float(s) for s in scales]
    if len(outputs) != len(given):
        raise ValueError(
            f"`outputs` has {len(outputs)} entries for {len(given)} scales "
            f"{given}: one list of output maps per scale."
        )
    by_scale = dict(zip(given, outputs))
    min_scale = min(order)
    base = input_transform(
        image_shape, input_size, 1.0, min_scale, size_divisor, fixed_size
    )
    per_scale = []
    for s in order:
        maps = by_scale[s]
        if not isinstance(maps, (list, tuple)):
            maps = [maps]
        batch = int(maps[0].shape[0])
        if batch != (2 if flip else 1):
            raise ValueError(
                f"The outputs at scale {s} have batch {batch}; expected "
                f"{2 if flip else 1} (the image"
                + (" and its mirror image" if flip else "")
                + ")."
            )
        per_scale.append(tuple(maps))
    project = tuple(base.size) if project_to_input else None
    num_keypoints = decoder.num_keypoints

    def decode(maps):
        return decoder.candidates(maps, order, flip, project)

    config = repr(sorted(decoder.get_config().items()))
    candidates = run_compiled(
        ("bottom_up", config, tuple(order), bool(flip), project),
        decode,
        tuple(per_scale),
    )
    heatmaps = candidates["heatmaps"][0]
    tags = candidates["tag_maps"][0]
    people, scores = grouping.group_people(
        candidates["values"][0],
        candidates["tags"][0],
        candidates["locations"][0],
        heatmaps,
        tags,
        max_people=decoder.max_people,
        **grouping_kwargs,
    )
    if len(people) == 0:
        return _empty_result(num_keypoints, image_shape, spec)
    # The official projection: the last scale's centre and scale (all
    # scales share them), the final maps' size.
    last = input_transform(
        image_shape, input_size, min_scale, min_scale, size_divisor, fixed_size
    )
    keypoints = last.to_image(people[..., :2], heatmaps.shape[:2])
    keypoints = keypoints.astype(np.float32)
    keypoint_scores = people[..., 2]
    return PoseResult(
        keypoints=keypoints,
        keypoint_scores=keypoint_scores,
        boxes=_keypoint_boxes(keypoints, keypoint_scores),
        scores=scores,
        image_shape=tuple(int(s) for s in image_shape[:2]),
        skeleton=spec.skeleton if spec else (),
    )


def _model_outputs(model, batch):
    # `predict` compiles the whole network once per input shape (JAX, TF):
    # far faster than eager calls over a dataset with a few image shapes.
    outputs = model.predict(batch, verbose=0)
    if isinstance(outputs, dict):
        raise ValueError(
            f"{type(model).__name__} returned a dict; a bottom-up estimator "
            "returns the list of its output maps."
        )
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return list(outputs)


def _size_divisor(model, size_divisor):
    if size_divisor is not None:
        return int(size_divisor)
    divisor = int(getattr(getattr(model, "backbone", None), "input_divisor", 1))
    return math.lcm(SIZE_DIVISOR, max(divisor, 1))


def predict_image_bottom_up(
    model,
    image,
    scales=(1,),
    flip=True,
    input_size=None,
    spec=None,
    normalization=None,
    size_divisor=None,
    max_people=None,
    flip_test=None,
    **settings,
) -> PoseResult:
    """Finds the people in one image with a bottom-up estimator.

    Args:
        model: bottom-up estimator (`call` returns the list of its output
            maps; see `decoder_for_model` for the attributes read).
        image: path or (H, W, 3) RGB array (see `read_image`).
        scales: test scales (official: `(1,)`; multi-scale needs 1).
        flip: average with the mirrored image (official: True).
        input_size: short side of the input at scale 1; defaults to the
            model's fixed input height, else `512`.
        spec: keypoint spec (flip pairs, skeleton); defaults to the
            built-in one with the model's keypoint count.
        normalization: `"imagenet"`, `"unit"` (image / 255) or a
            callable; defaults to `official_normalization(model)`.
        size_divisor: the input's long side is a multiple of it; defaults
            to 64 (official) or the lcm of 64 and the backbone's
            `input_divisor`.
        max_people: candidates per joint and people matched against;
            defaults to `30` (official).
        flip_test: same as `flip` (the name `predict_image` passes).
        **settings: override `official_test_settings(model)`: `nms_kernel`,
            `project_to_input`, `max_heatmap_value` and the grouping
            options of `decode_bottom_up_outputs`.

    Returns:
        `PoseResult` with keypoints in image pixels; empty when no joint
        passes the detection threshold.
    """
    if flip_test is not None:
        flip = bool(flip_test)
    image = read_image(image)
    height, width = image.shape[:2]
    if spec is None:
        spec = spec_for_num_keypoints(int(model.num_keypoints))
    options = official_test_settings(model)
    unknown = set(settings) - set(options) - set(_GROUPING_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown options {sorted(unknown)}; expected some of "
            f"{sorted(set(options) | set(_GROUPING_KEYS))}."
        )
    options.update(settings)
    decoder = decoder_for_model(
        model,
        flip=flip,
        spec=spec,
        max_people=max_people,
        **{k: options.pop(k) for k in _DECODER_KEYS},
    )
    project = options.pop("project_to_input")
    fixed = tuple(model.input_shape[1:3])
    fixed = None if None in fixed else fixed
    if input_size is None:
        input_size = fixed[0] if fixed else INPUT_SIZE
    divisor = _size_divisor(model, size_divisor)
    if normalization is None:
        normalization = official_normalization(model)
    order = _check_scales(scales)
    if fixed and order != [1.0]:
        raise ValueError(
            f"{type(model).__name__} has a fixed input size {fixed}: "
            "multi-scale testing needs a model built with input_shape "
            "(None, None, 3)."
        )
    outputs = []
    for s in order:
        plan = input_transform(
            (height, width), input_size, s, min(order), divisor, fixed
        )
        x = normalize_images(plan.warp(image), normalization)[None]
        if flip:
            x = np.concatenate([x, x[:, :, ::-1]], axis=0)
        outputs.append(_model_outputs(model, np.ascontiguousarray(x)))
    return decode_bottom_up_outputs(
        outputs,
        (height, width),
        decoder,
        scales=order,
        flip=flip,
        input_size=input_size,
        size_divisor=divisor,
        fixed_size=fixed,
        project_to_input=project,
        spec=spec,
        **options,
    )
