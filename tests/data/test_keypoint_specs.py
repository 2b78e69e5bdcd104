import pytest

from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.keypoint_specs import CROWDPOSE_14
from kerapose.data.keypoint_specs import MPII_16
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.keypoint_specs import get_keypoint_spec

SPECS = [COCO_17, MPII_16, CROWDPOSE_14]


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
    for name in ("coco_17", "mpii_16", "crowdpose_14"):
        assert name in message


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
