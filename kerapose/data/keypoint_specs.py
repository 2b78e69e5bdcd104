"""Keypoint layouts of the supported datasets.

A :class:`KeypointSpec` names the keypoints of a dataset and carries what
training and evaluation need besides the coordinates: which keypoints swap
under a horizontal flip, the per-keypoint OKS sigmas and the skeleton used
for drawing.
"""

import dataclasses

__all__ = [
    "COCO_17",
    "CROWDPOSE_14",
    "MPII_16",
    "KeypointSpec",
    "get_keypoint_spec",
]


@dataclasses.dataclass(frozen=True)
class KeypointSpec:
    """Keypoint layout of a dataset.

    Attributes:
        name: Short identifier, e.g. ``"coco_17"``.
        keypoint_names: Keypoint names in dataset order.
        flip_pairs: Pairs ``(i, j)`` of keypoints that swap under a
            horizontal flip (left/right counterparts).
        sigmas: Per-keypoint OKS sigmas, one per keypoint.
        skeleton: 0-based pairs ``(i, j)`` of keypoints joined by a limb.
    """

    name: str
    keypoint_names: tuple
    flip_pairs: tuple
    sigmas: tuple
    skeleton: tuple

    def __post_init__(self):
        # Normalise to tuples so specs stay hashable and immutable even when
        # built from lists.
        names = tuple(str(n) for n in self.keypoint_names)
        pairs = tuple(tuple(int(i) for i in p) for p in self.flip_pairs)
        sigmas = tuple(float(s) for s in self.sigmas)
        skeleton = tuple(tuple(int(i) for i in p) for p in self.skeleton)
        object.__setattr__(self, "keypoint_names", names)
        object.__setattr__(self, "flip_pairs", pairs)
        object.__setattr__(self, "sigmas", sigmas)
        object.__setattr__(self, "skeleton", skeleton)
        self._validate()

    def _validate(self):
        n = len(self.keypoint_names)
        where = f"KeypointSpec {self.name!r}"
        if n == 0:
            raise ValueError(f"{where}: keypoint_names is empty.")
        if len(set(self.keypoint_names)) != n:
            raise ValueError(f"{where}: keypoint_names has duplicates.")
        if len(self.sigmas) != n:
            raise ValueError(
                f"{where}: got {len(self.sigmas)} sigmas for {n} keypoints."
            )
        if any(not s > 0 for s in self.sigmas):
            raise ValueError(f"{where}: sigmas must be positive.")
        seen = set()
        for pair in self.flip_pairs:
            _check_pair(where, "flip_pairs", pair, n)
            if pair[0] in seen or pair[1] in seen:
                raise ValueError(
                    f"{where}: flip_pairs uses an index twice at {pair}."
                )
            seen.update(pair)
        for pair in self.skeleton:
            _check_pair(where, "skeleton", pair, n)

    @property
    def num_keypoints(self):
        """Number of keypoints."""
        return len(self.keypoint_names)

    @property
    def flip_indices(self):
        """List mapping each keypoint index to its mirrored index."""
        indices = list(range(self.num_keypoints))
        for i, j in self.flip_pairs:
            indices[i], indices[j] = j, i
        return indices


def _check_pair(where, field, pair, n):
    if len(pair) != 2:
        raise ValueError(f"{where}: {field} entry {pair} is not a pair.")
    i, j = pair
    if not (0 <= i < n and 0 <= j < n):
        raise ValueError(
            f"{where}: {field} entry {pair} is out of range for {n} keypoints."
        )
    if i == j:
        raise ValueError(
            f"{where}: {field} entry {pair} joins a keypoint to itself."
        )


# fmt: off
COCO_17 = KeypointSpec(
    name="coco_17",
    keypoint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=(
        (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
    ),
    sigmas=tuple(s / 10.0 for s in (
        0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
        0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
    )),
    # The COCO annotation skeleton, converted from 1-based to 0-based.
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12),
        (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2),
        (1, 3), (2, 4), (3, 5), (4, 6),
    ),
)

MPII_16 = KeypointSpec(
    name="mpii_16",
    keypoint_names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee",
        "left_ankle", "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
        "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    # MPII defines no OKS sigmas; these are the COCO-derived values MMPose
    # uses for MPII (pelvis, thorax, neck and head top get 0.026).
    sigmas=(
        0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026,
        0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062,
    ),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8),
        (8, 9), (8, 12), (12, 11), (11, 10), (8, 13), (13, 14), (14, 15),
    ),
)

CROWDPOSE_14 = KeypointSpec(
    name="crowdpose_14",
    keypoint_names=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle", "head", "neck",
    ),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    sigmas=tuple(s / 10.0 for s in (
        0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07,
        1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79,
    )),
    skeleton=(
        (10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1),
        (0, 2), (1, 3), (2, 4), (3, 5), (12, 13), (13, 0), (13, 1),
    ),
)
# fmt: on

_SPECS = {spec.name: spec for spec in (COCO_17, MPII_16, CROWDPOSE_14)}


def get_keypoint_spec(name_or_spec):
    """Returns a built-in keypoint spec by name, or a spec unchanged.

    Args:
        name_or_spec: A :class:`KeypointSpec`, or the name of a built-in one
            (``"coco_17"``, ``"mpii_16"``, ``"crowdpose_14"``; case
            insensitive).

    Returns:
        The matching :class:`KeypointSpec`.

    Raises:
        ValueError: If the name is not a known spec.
        TypeError: If the argument is neither a string nor a spec.
    """
    if isinstance(name_or_spec, KeypointSpec):
        return name_or_spec
    if not isinstance(name_or_spec, str):
        raise TypeError(
            "Expected a KeypointSpec or a spec name, got "
            f"{type(name_or_spec).__name__}."
        )
    spec = _SPECS.get(name_or_spec.lower())
    if spec is None:
        known = ", ".join(sorted(_SPECS))
        raise ValueError(
            f"Unknown keypoint spec {name_or_spec!r}; known specs: {known}."
        )
    return spec


def spec_for_num_keypoints(num_keypoints):
    """The built-in spec with `num_keypoints` keypoints, or `None`."""
    for spec in _SPECS.values():
        if spec.num_keypoints == num_keypoints:
            return spec
    return None
