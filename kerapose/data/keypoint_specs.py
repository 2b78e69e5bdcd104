"""Keypoint layouts of the supported datasets.

A :class:`KeypointSpec` names the keypoints of a dataset and carries what
training and evaluation need besides the coordinates: which keypoints swap
under a horizontal flip, the per-keypoint OKS sigmas and the skeleton used
for drawing.

The COCO reader picks a built-in spec by the keypoint names in the file
(:func:`match_keypoint_spec`), never by the keypoint count alone: AIC and
CrowdPose both have 14 keypoints, COCO and PoseTrack18 both 17, with
different names, flip pairs and sigmas.
"""

import dataclasses
import re

__all__ = [
    "AIC_14",
    "COCO_17",
    "COCO_WHOLEBODY_BODY_17",
    "CROWDPOSE_14",
    "HUMANART_21",
    "MPII_16",
    "OCHUMAN_17",
    "POSETRACK18_17",
    "KeypointSpec",
    "flip_pairs_from_names",
    "get_keypoint_spec",
    "match_keypoint_spec",
]


@dataclasses.dataclass(frozen=True)
class KeypointSpec:
    """Keypoint layout of a dataset.

    Attributes:
        name: Short identifier, e.g. ``"coco_17"``.
        keypoint_names: Keypoint names in dataset order.
        flip_pairs: Pairs ``(i, j)`` of keypoints that swap under a
            horizontal flip (left/right counterparts).
        sigmas: Per-keypoint OKS sigmas, one per keypoint, or None for a
            layout without known sigmas (a spec built from a file's
            keypoint names): training works, OKS needs
            :meth:`require_sigmas` and raises.
        skeleton: 0-based pairs ``(i, j)`` of keypoints joined by a limb.
        use_area: The OKS scale of the official protocol, in the sense
            of `COCOEvaluator(use_area=...)`: True scores with the
            annotation ``area`` (COCO), False with ``0.53 * w * h`` of
            the ground-truth box (CrowdPose, AIC).
    """

    name: str
    keypoint_names: tuple
    flip_pairs: tuple
    sigmas: tuple | None
    skeleton: tuple
    use_area: bool = True

    def __post_init__(self):
        # Normalise to tuples so specs stay hashable and immutable even when
        # built from lists.
        names = tuple(str(n) for n in self.keypoint_names)
        pairs = tuple(tuple(int(i) for i in p) for p in self.flip_pairs)
        sigmas = self.sigmas
        if sigmas is not None:
            sigmas = tuple(float(s) for s in sigmas)
        skeleton = tuple(tuple(int(i) for i in p) for p in self.skeleton)
        object.__setattr__(self, "keypoint_names", names)
        object.__setattr__(self, "flip_pairs", pairs)
        object.__setattr__(self, "sigmas", sigmas)
        object.__setattr__(self, "skeleton", skeleton)
        object.__setattr__(self, "use_area", bool(self.use_area))
        self._validate()

    def _validate(self):
        n = len(self.keypoint_names)
        where = f"KeypointSpec {self.name!r}"
        if n == 0:
            raise ValueError(f"{where}: keypoint_names is empty.")
        if len(set(self.keypoint_names)) != n:
            raise ValueError(f"{where}: keypoint_names has duplicates.")
        if self.sigmas is not None:
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

    def require_sigmas(self, purpose="OKS"):
        """The OKS sigmas, or a clear error when the spec has none.

        Args:
            purpose: What needs them, for the message.

        Returns:
            The sigmas, a tuple of floats.

        Raises:
            ValueError: If ``sigmas`` is None.
        """
        if self.sigmas is None:
            raise ValueError(
                f"{purpose} needs per-keypoint OKS sigmas, and keypoint "
                f"spec {self.name!r} has none (its keypoint names match no "
                "built-in spec). Pass the dataset's sigmas, one per "
                f"keypoint ({self.num_keypoints}), as `sigmas=` to "
                "load_coco_instances / build_top_down_dataset, or a "
                "KeypointSpec with sigmas as `spec=`."
            )
        return self.sigmas


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
_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_COCO_FLIP_PAIRS = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
)
_COCO_SIGMAS = tuple(s / 10.0 for s in (
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
    0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
))
# The COCO annotation skeleton, converted from 1-based to 0-based.
_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12),
    (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2),
    (1, 3), (2, 4), (3, 5), (4, 6),
)

COCO_17 = KeypointSpec(
    name="coco_17",
    keypoint_names=_COCO_NAMES,
    flip_pairs=_COCO_FLIP_PAIRS,
    sigmas=_COCO_SIGMAS,
    skeleton=_COCO_SKELETON,
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
    # MPII defines no OKS sigmas (its metric is PCKh); these are COCO-derived
    # values (pelvis, thorax, neck and head top get 0.026).
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
    use_area=False,
)

# AI Challenger (COCO-format conversion; its files spell the names
# "Right Shoulder", ..., "Head top", "Neck", which match after
# normalisation). The official evaluation's constants are 2 * these sigmas.
AIC_14 = KeypointSpec(
    name="aic_14",
    keypoint_names=(
        "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle", "head_top", "neck",
    ),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 9), (7, 10), (8, 11)),
    sigmas=(
        0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891,
        0.01402144, 0.03909642, 0.03686941, 0.01981803, 0.03843971,
        0.03412318, 0.02415081, 0.01291456, 0.01236173,
    ),
    skeleton=(
        (2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6),
        (6, 9), (9, 10), (10, 11), (12, 13), (0, 6), (3, 9),
    ),
    use_area=False,
)

# OCHuman is annotated in the COCO layout and scored with COCO's sigmas.
OCHUMAN_17 = dataclasses.replace(COCO_17, name="ochuman_17")

# COCO-WholeBody's first 17 keypoints (the `keypoints` field of its files):
# the COCO body, with the same sigmas.
COCO_WHOLEBODY_BODY_17 = dataclasses.replace(
    COCO_17, name="coco_wholebody_body_17"
)

# PoseTrack18: COCO's order, but the eyes are replaced by head bottom and
# head top, which do not swap under a flip.
POSETRACK18_17 = KeypointSpec(
    name="posetrack18_17",
    keypoint_names=(
        "nose", "head_bottom", "head_top", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=_COCO_SIGMAS,
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12),
        (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (0, 1), (0, 2), (1, 5),
        (1, 6),
    ),
)

# Human-Art's 21-keypoint field (`keypoints_21`): COCO plus fingers and
# toes; the four new keypoints reuse the ankle's sigma.
HUMANART_21 = KeypointSpec(
    name="humanart_21",
    keypoint_names=_COCO_NAMES + (
        "left_finger", "right_finger", "left_toe", "right_toe",
    ),
    flip_pairs=_COCO_FLIP_PAIRS + ((17, 18), (19, 20)),
    sigmas=_COCO_SIGMAS + (0.089,) * 4,
    skeleton=_COCO_SKELETON + ((15, 19), (16, 20), (9, 17), (10, 18)),
)
# fmt: on

# Order matters where names coincide: a file with COCO's names matches
# `coco_17` (OCHuman and the WholeBody body part are the same layout).
_SPECS = {
    spec.name: spec
    for spec in (
        COCO_17,
        MPII_16,
        CROWDPOSE_14,
        AIC_14,
        OCHUMAN_17,
        POSETRACK18_17,
        COCO_WHOLEBODY_BODY_17,
        HUMANART_21,
    )
}


def get_keypoint_spec(name_or_spec):
    """Returns a built-in keypoint spec by name, or a spec unchanged.

    Args:
        name_or_spec: A :class:`KeypointSpec`, or the name of a built-in one
            (``"coco_17"``, ``"mpii_16"``, ``"crowdpose_14"``, ``"aic_14"``,
            ``"ochuman_17"``, ``"posetrack18_17"``,
            ``"coco_wholebody_body_17"``, ``"humanart_21"``; case
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
    """The first built-in spec with `num_keypoints` keypoints, or `None`.

    A count does not identify a layout (COCO and PoseTrack18 both have 17):
    readers use :func:`match_keypoint_spec`; this is the default for
    drawing a model's output when no spec is given.
    """
    specs = specs_with_num_keypoints(num_keypoints)
    return specs[0] if specs else None


def specs_with_num_keypoints(num_keypoints):
    """All built-in specs with `num_keypoints` keypoints, in registry order."""
    return [s for s in _SPECS.values() if s.num_keypoints == num_keypoints]


def normalize_keypoint_name(name):
    """Lower case, with spaces and hyphens as underscores ("Head top")."""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


def match_keypoint_spec(keypoint_names):
    """The built-in spec with these keypoint names in this order, or None.

    Names are compared after :func:`normalize_keypoint_name`, so an AIC file's
    "Right Shoulder" matches ``right_shoulder``; the order must be the same.
    """
    wanted = tuple(normalize_keypoint_name(n) for n in keypoint_names)
    for spec in _SPECS.values():
        if spec.keypoint_names == wanted:
            return spec
    return None


# Whole words that name a side, and their mirror (same case style).
_SIDE_WORDS = {}
for _a, _b in (
    ("left", "right"),
    ("Left", "Right"),
    ("LEFT", "RIGHT"),
    ("l", "r"),
    ("L", "R"),
):
    _SIDE_WORDS[_a], _SIDE_WORDS[_b] = _b, _a
# Words: an upper-case run not followed by lower case ("L" in "LShoulder"),
# a capitalised or lower-case word, digits, or separators.
_TOKENS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^A-Za-z\d]+")


def flip_pairs_from_names(keypoint_names):
    """Left/right pairs found from the names alone.

    A name's mirror swaps its side words ("left"/"right" in any case, or a
    lone "l"/"r"/"L"/"R"): ``left_knee``/``right_knee``, ``Left Knee``,
    ``l_knee``, ``knee_L``, ``LKnee``, ``kneeLeft``. A name pairs with its
    mirror when the mirror is also a name; others are unpaired.

    Args:
        keypoint_names: Names in dataset order.

    Returns:
        A tuple of 0-based pairs ``(i, j)`` with ``i < j``.
    """
    names = [str(n) for n in keypoint_names]
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        tokens = _TOKENS.findall(name)  # they cover the whole name
        mirror = "".join(_SIDE_WORDS.get(t, t) for t in tokens)
        j = index.get(mirror)
        if mirror != name and j is not None and i < j:
            pairs.append((i, j))
    return tuple(pairs)
