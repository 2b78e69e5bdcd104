"""Model cards in zoo/ must agree with what the code measures."""

from pathlib import Path

import pytest

from kerapose import zoo
from kerapose.utils import count_macs
from kerapose.utils import count_params

CARDS = Path(__file__).resolve().parents[2] / "zoo"
FAMILIES = ("hrnet", "omnipose", "rsn", "yolo_pose", "higherhrnet", "hourglass")
# An AP cell with this means: no published figure recorded for the row.
NO_FIGURE = "-"


def card_rows(family):
    text = (CARDS / family / "README.md").read_text()
    table = text.split("<!-- model-table -->")[1].split(
        "<!-- /model-table -->"
    )[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(
            {
                "name": cells[0].strip("`"),
                "input": cells[1],
                "params": int(cells[2].replace(",", "")),
                "gmacs": float(cells[3]),
                "ap": None if cells[4] == NO_FIGURE else float(cells[4]),
            }
        )
    return rows


def test_card_parser_reads_rows():
    rows = card_rows("hrnet")
    assert [r["name"] for r in rows][:1] == ["hrnet_w32.coco_256x192"]
    assert len(rows) == 5


def test_omnipose_card_lists_both_variants():
    names = [r["name"] for r in card_rows("omnipose")]
    assert names == [
        "omnipose.coco_256x192",
        "omnipose.coco_384x288",
        "omnipose_lite.coco_256x192",
    ]


def test_rsn_card_lists_every_preset():
    names = [r["name"].split(".")[0] for r in card_rows("rsn")]
    assert sorted(set(names)) == sorted(n for n in zoo.list_models("rsn_*"))


@pytest.mark.parametrize(
    "family, pattern",
    [
        ("yolo_pose", "yolo_pose_*"),
        ("higherhrnet", "higherhrnet_*"),
        ("hourglass", "hourglass_*"),
    ],
)
def test_card_lists_every_preset(family, pattern):
    names = {r["name"].split(".")[0] for r in card_rows(family)}
    assert names == set(zoo.list_models(pattern))


@pytest.mark.large
@pytest.mark.parametrize(
    "row",
    [row for family in FAMILIES for row in card_rows(family)],
    ids=lambda r: r["name"],
)
def test_card_matches_code(row):
    model = zoo.load(row["name"], compile=False)
    h, w = model.input_shape[1:3]
    assert row["input"] == f"{h}x{w}"
    assert count_params(model) == row["params"]
    assert round(count_macs(model) / 1e9, 3) == row["gmacs"]
    name, _, tag = row["name"].partition(".")
    if not tag:  # an architecture without published weights
        assert row["ap"] is None and not zoo.describe(name)["tags"]
        return
    metrics = zoo.describe(name)["tags"][tag]
    if row["ap"] is None:
        assert "coco/AP" not in metrics["metrics"]
    else:
        assert round(metrics["metrics"]["coco/AP"] * 100, 1) == row["ap"]
