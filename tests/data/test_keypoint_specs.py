import pytest

from kerapose.data.keypoint_specs import AIC_14
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.keypoint_specs import COCO_WHOLEBODY_BODY_17
from kerapose.data.keypoint_specs import CROWDPOSE_14
from kerapose.data.keypoint_specs import HUMANART_21
from kerapose.data.keypoint_specs import MPII_16
from kerapose.data.keypoint_specs import OCHUMAN_17
from kerapose.data.keypoint_specs import POSETRACK18_17
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.keypoint_specs import flip_pairs_from_names
from kerapose.data.keypoint_specs import get_keypoint_spec
from kerapose.data.keypoint_specs import match_keypoint_spec
from kerapose.data.keypoint_specs import spec_for_num_keypoints

SPECS = [
    COCO_17,
    MPII_16,
    CROWDPOSE_14,
    AIC_14,
    OCHUMAN_17,
    POSETRACK18_17,
    COCO_WHOLEBODY_BODY_17,
    HUMANART_21,
]


def _mirror(name):
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_flip_indices_is_an_involution(spec):
    flip = spec.flip_indices
    assert sorted(flip) == list(range(spec.num_keypoints))
    assert [flip[i] for i in flip] == list(range(spec.num_keypoints))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_flip_swaps_left_and_right_names(spec):
    names = spec.keypoint_names
    for i, j in enumerate(spec.flip_indices):
        assert names[j] == _mirror(names[i])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_lengths_and_lookup(spec):
    assert len(spec.sigmas) == spec.num_keypoints
    assert get_keypoint_spec(spec.name) is spec
    assert get_keypoint_spec(spec.name.upper()) is spec
    assert get_keypoint_spec(spec) is spec
    for i, j in spec.skeleton:
        assert 0 <= i < spec.num_keypoints and 0 <= j < spec.num_keypoints


def test_coco_17_matches_coco():
    assert COCO_17.num_keypoints == 17
    assert len(COCO_17.sigmas) == 17
    assert COCO_17.keypoint_names[0] == "nose"
    assert COCO_17.keypoint_names[16] == "right_ankle"
    assert COCO_17.sigmas[0] == pytest.approx(0.026)
    assert COCO_17.sigmas[11] == pytest.approx(0.107)
    assert len(COCO_17.skeleton) == 19
    assert (15, 13) in COCO_17.skeleton


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_flip_pairs_follow_from_the_names(spec):
    assert flip_pairs_from_names(spec.keypoint_names) == spec.flip_pairs


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_names_match_their_spec(spec):
    match = match_keypoint_spec(spec.keypoint_names)
    # OCHuman and the WholeBody body part share COCO's names and values.
    same_as_coco = spec.keypoint_names == COCO_17.keypoint_names
    assert match is (COCO_17 if same_as_coco else spec)
    assert match.sigmas == spec.sigmas and match.flip_pairs == spec.flip_pairs


def test_official_sigmas_and_oks_area_flags():
    assert AIC_14.sigmas[:3] == pytest.approx(
        (0.01388152, 0.01515228, 0.01057665)
    )
    assert AIC_14.sigmas[-2:] == pytest.approx((0.01291456, 0.01236173))
    assert POSETRACK18_17.sigmas == pytest.approx(COCO_17.sigmas)
    assert HUMANART_21.sigmas[17:] == pytest.approx((0.089,) * 4)
    assert [s.name for s in SPECS if not s.use_area] == [
        "crowdpose_14",
        "aic_14",
    ]


def test_posetrack_head_points_do_not_flip():
    names = POSETRACK18_17.keypoint_names
    assert names[1:3] == ("head_bottom", "head_top")
    assert POSETRACK18_17.flip_indices[1:3] == [1, 2]
    assert COCO_17.flip_indices[1:3] == [2, 1]  # the eyes, at those indices


def test_match_normalises_case_and_spaces_but_not_order():
    aic = [n.replace("_", " ").title() for n in AIC_14.keypoint_names]
    assert match_keypoint_spec(aic) is AIC_14
    swapped = list(AIC_14.keypoint_names)
    swapped[0], swapped[3] = swapped[3], swapped[0]
    assert match_keypoint_spec(swapped) is None


@pytest.mark.parametrize(
    "names, pairs",
    [
        (["l_knee", "r_knee", "neck"], ((0, 1),)),
        (["Left Hand", "Right Hand"], ((0, 1),)),
        (["LShoulder", "RShoulder", "Nose"], ((0, 1),)),
        (["knee.L", "knee.R"], ((0, 1),)),
        (["kneeRight", "kneeLeft"], ((0, 1),)),
        (["HAND_LEFT", "HAND_RIGHT"], ((0, 1),)),
        (["left_eye", "nose", "shoulder", "right_eye"], ((0, 3),)),
        # No mirror among the names, or a side letter inside a word.
        (["left_ear", "right_eye", "liver", "river"], ()),
    ],
)
def test_flip_pairs_from_name_patterns(names, pairs):
    assert flip_pairs_from_names(names) == pairs


def test_spec_without_sigmas_trains_but_refuses_oks():
    spec = KeypointSpec(
        name="custom",
        keypoint_names=("left_a", "right_a"),
        flip_pairs=((0, 1),),
        sigmas=None,
        skeleton=(),
    )
    assert spec.flip_indices == [1, 0]
    with pytest.raises(ValueError, match="sigmas=") as info:
        spec.require_sigmas("OKS NMS")
    assert "OKS NMS" in str(info.value) and "'custom'" in str(info.value)
    assert COCO_17.require_sigmas() == COCO_17.sigmas


def test_count_default_is_still_the_first_registered_spec():
    assert spec_for_num_keypoints(17) is COCO_17
    assert spec_for_num_keypoints(14) is CROWDPOSE_14
    assert spec_for_num_keypoints(5) is None


def test_other_specs_sizes():
    assert MPII_16.num_keypoints == 16
    assert MPII_16.keypoint_names[0] == "right_ankle"
    assert MPII_16.keypoint_names[15] == "left_wrist"
    assert CROWDPOSE_14.num_keypoints == 14
    assert CROWDPOSE_14.keypoint_names[-2:] == ("head", "neck")


def test_unknown_name_lists_known_specs():
    with pytest.raises(ValueError) as err:
        get_keypoint_spec("h36m_17")
    message = str(err.value)
    assert "h36m_17" in message
    for spec in SPECS:
        assert spec.name in message


def test_non_string_lookup_is_a_type_error():
    with pytest.raises(TypeError):
        get_keypoint_spec(17)


def _spec(**overrides):
    fields = dict(
        name="tiny",
        keypoint_names=("left_a", "right_a", "b"),
        flip_pairs=((0, 1),),
        sigmas=(0.1, 0.1, 0.2),
        skeleton=((0, 2), (1, 2)),
    )
    fields.update(overrides)
    return KeypointSpec(**fields)


def test_valid_custom_spec_normalises_to_tuples():
    spec = _spec(flip_pairs=[[0, 1]], sigmas=[0.1, 0.1, 0.2])
    assert spec.flip_pairs == ((0, 1),)
    assert spec.flip_indices == [1, 0, 2]
    hash(spec)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(sigmas=(0.1, 0.1)), "2 sigmas for 3 keypoints"),
        (dict(sigmas=(0.1, 0.0, 0.2)), "positive"),
        (dict(flip_pairs=((0, 3),)), "out of range"),
        (dict(flip_pairs=((0, 1), (1, 2))), "twice"),
        (dict(flip_pairs=((1, 1),)), "itself"),
        (dict(skeleton=((0, 5),)), "out of range"),
        (dict(skeleton=((0, 1, 2),)), "not a pair"),
        (dict(keypoint_names=("a", "a", "b")), "duplicates"),
        (
            dict(keypoint_names=(), sigmas=(), flip_pairs=(), skeleton=()),
            "empty",
        ),
    ],
)
def test_invalid_spec_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        _spec(**overrides)


def test_spec_is_frozen():
    with pytest.raises(AttributeError):
        COCO_17.name = "other"
