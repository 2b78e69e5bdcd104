"""Associative Embedding grouping on the host: candidates -> people.

NumPy and SciPy, one image at a time, as the official HigherHRNet
`HeatmapParser` (`match_by_tag`, `adjust`, `refine`):

1. `match_by_tag`: joint by joint in a fixed order, the candidates above
   `detection_threshold` are matched to the people found so far by the
   Hungarian algorithm on the distance between the candidate's tag and the
   person's mean tag (rounded, times 100, minus the heatmap value); a
   match farther than `tag_threshold` starts a new person.
2. `adjust`: each found joint moves a quarter pixel towards its higher
   neighbour, plus half a pixel (map pixel centres).
3. The person score is the mean heatmap value over all K joints (missing
   joints count 0), taken before refinement.
4. `refine`: each missing joint is filled with the location that
   maximises heatmap - round(tag distance to the person's mean tag).

Coordinates are `(x, y)` in map pixels of the maps the candidates come
from. Shapes: K keypoints, k candidates per joint, L tag values, N people,
(h, w) map.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

# The official matching order of the 17 COCO joints (1-based in the
# official code): face, shoulders, hips, then arms and legs.
COCO_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)

# Official test constants (HigherHRNet COCO configs and `Params`).
DETECTION_THRESHOLD = 0.1
TAG_THRESHOLD = 1.0
MAX_PEOPLE = 30

_REFINE_BLOCK = 16
_REFINE_PIXELS = 4096


def default_joint_order(num_keypoints):
    """The official order, cut to K joints when that is a permutation.

    The official code applies the COCO order to every dataset; its first 14
    entries are a permutation of 0..13, which is the order it uses for
    CrowdPose. Other keypoint counts are matched in index order.
    """
    order = COCO_JOINT_ORDER[:num_keypoints]
    if sorted(order) == list(range(num_keypoints)):
        return order
    return tuple(range(num_keypoints))


def _check_candidates(values, tags, locations):
    values = np.asarray(values, np.float32)
    tags = np.asarray(tags, np.float32)
    locations = np.asarray(locations)
    if values.ndim != 2:
        raise ValueError(
            "`values` must be (K, k): the heatmap values of k candidates per "
            f"joint. Received shape {values.shape}."
        )
    if tags.ndim == 2:
        tags = tags[..., None]
    if tags.shape[:2] != values.shape or tags.ndim != 3:
        raise ValueError(
            f"`tags` must be (K, k, L) with (K, k) = {values.shape}. "
            f"Received shape {tags.shape}."
        )
    if locations.shape != values.shape + (2,):
        raise ValueError(
            f"`locations` must be (K, k, 2) (x, y) with (K, k) = "
            f"{values.shape}. Received shape {locations.shape}."
        )
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(tags))):
        raise ValueError(
            "`values` and `tags` must be finite; the network output has NaN "
            "or infinite values."
        )
    return values, tags, locations.astype(np.float32)


def match_by_tag(
    values,
    tags,
    locations,
    detection_threshold=DETECTION_THRESHOLD,
    tag_threshold=TAG_THRESHOLD,
    use_detection_val=True,
    ignore_too_much=False,
    max_people=MAX_PEOPLE,
    joint_order=None,
    tag_distance="l2",
):
    """Groups the candidates of one image into people.

    Args:
        values: (K, k) heatmap values of the candidates.
        tags: (K, k, L) (or (K, k)) their tags.
        locations: (K, k, 2) their `(x, y)` map pixels.
        detection_threshold: candidates with a value at or below it are
            dropped. Defaults to `0.1` (HigherHRNet and AE COCO tests).
        tag_threshold: a candidate joins a person only if its tag is
            closer than this to the person's mean tag. Defaults to `1.0`.
        use_detection_val: match on `round(distance) * 100 - value` (the
            official choice) instead of the distance. Defaults to `True`.
        ignore_too_much: skip a joint once `max_people` people exist (the
            AE code does). Defaults to `False` (HigherHRNet).
        max_people: only the first `max_people` people are matched
            against. Defaults to `30`.
        joint_order: order in which joints are matched; defaults to
            `default_joint_order(K)`.
        tag_distance: `"l2"` (HigherHRNet: Euclidean norm over the L tag
            values) or `"rms"` (the AE code: root mean square).

    Returns:
        (N, K, 3 + L) float32: per person and joint `x, y, value, tags`;
        zeros for joints not found. (0, K, 3 + L) when no candidate passes
        the threshold.
    """
    values, tags, locations = _check_candidates(values, tags, locations)
    if tag_distance not in ("l2", "rms"):
        raise ValueError(
            f"`tag_distance` must be 'l2' or 'rms'. Received: {tag_distance!r}"
        )
    num_joints, num_candidates = values.shape
    num_tags = tags.shape[2]
    order = (
        default_joint_order(num_joints)
        if joint_order is None
        else [int(j) for j in joint_order]
    )
    if sorted(order) != list(range(num_joints)):
        raise ValueError(
            f"`joint_order` must be a permutation of 0..{num_joints - 1}. "
            f"Received: {joint_order!r}"
        )
    # Every candidate may start a person: this bounds the people count.
    capacity = num_joints * num_candidates
    people = np.zeros((capacity, num_joints, 3 + num_tags), np.float32)
    tag_sum = np.zeros((capacity, num_tags), np.float64)
    tag_count = np.zeros(capacity, np.int64)
    count = 0
    for joint in order:
        keep = values[joint] > detection_threshold
        if not keep.any():
            continue
        found = np.concatenate(
            [
                locations[joint][keep],
                values[joint][keep, None],
                tags[joint][keep],
            ],
            axis=1,
        )
        found_tags = tags[joint][keep].astype(np.float64)
        num_grouped = min(count, max_people)
        if num_grouped and ignore_too_much and num_grouped == max_people:
            continue
        assigned = np.full(len(found), -1)
        if num_grouped:
            mean_tags = tag_sum[:num_grouped] / tag_count[:num_grouped, None]
            diff = found_tags[:, None, :] - mean_tags[None, :, :]
            if tag_distance == "l2":
                distance = np.sqrt((diff**2).sum(axis=2))
            else:
                distance = np.sqrt((diff**2).mean(axis=2))
            cost = distance
            if use_detection_val:
                cost = np.round(distance) * 100 - found[:, 2:3]
            rows, cols = linear_sum_assignment(cost)
            close = distance[rows, cols] < tag_threshold
            assigned[rows[close]] = cols[close]
        for row, person in enumerate(assigned):
            if person < 0:
                person = count
                count += 1
            people[person, joint] = found[row]
            tag_sum[person] += found_tags[row]
            tag_count[person] += 1
    return people[:count]


def _quarter_shift(heatmaps, x, y, joint):
    """The official +-0.25 step of each axis towards the higher neighbour.

    heatmaps: (h, w, K); x, y, joint: (n,) ints. Ties step down, as
    official.
    """
    h, w = heatmaps.shape[:2]
    right = heatmaps[y, np.minimum(x + 1, w - 1), joint]
    left = heatmaps[y, np.maximum(x - 1, 0), joint]
    down = heatmaps[np.minimum(y + 1, h - 1), x, joint]
    up = heatmaps[np.maximum(y - 1, 0), x, joint]
    dx = np.where(right > left, 0.25, -0.25)
    dy = np.where(down > up, 0.25, -0.25)
    return dx, dy


def _check_maps(heatmaps, num_joints):
    heatmaps = np.asarray(heatmaps, np.float32)
    if heatmaps.ndim != 3 or heatmaps.shape[2] != num_joints:
        raise ValueError(
            f"`heatmaps` must be (h, w, K) with K = {num_joints}. "
            f"Received shape {heatmaps.shape}."
        )
    return heatmaps


def adjust(people, heatmaps):
    """Quarter-pixel refinement of the found joints, plus half a pixel.

    Args:
        people: (N, K, >= 3) from `match_by_tag` (x, y, value, ...).
        heatmaps: (h, w, K) aggregated heatmaps (before NMS).

    Returns:
        A copy of `people` whose found joints (value > 0) are at
        `x + 0.5 +- 0.25, y + 0.5 +- 0.25`.
    """
    people = np.array(people, np.float32, copy=True)
    if people.size == 0:
        return people
    heatmaps = _check_maps(heatmaps, people.shape[1])
    h, w = heatmaps.shape[:2]
    person, joint = np.nonzero(people[..., 2] > 0)
    x = np.clip(people[person, joint, 0].astype(np.int64), 0, w - 1)
    y = np.clip(people[person, joint, 1].astype(np.int64), 0, h - 1)
    dx, dy = _quarter_shift(heatmaps, x, y, joint)
    people[person, joint, 0] = x + 0.5 + dx
    people[person, joint, 1] = y + 0.5 + dy
    return people


def refine(people, heatmaps, tag_maps):
    """Fills the missing joints of each person from its mean tag.

    For a missing joint of a person the location maximising
    `heatmap - round(|tag - mean tag|)` is taken (with the quarter shift
    and half pixel of `adjust`) if its heatmap value is positive; the
    value becomes the joint's score (HigherHRNet). The mean tag is read
    from the tag maps at the person's found joints.

    Args:
        people: (N, K, >= 3) adjusted people.
        heatmaps: (h, w, K) aggregated heatmaps.
        tag_maps: (h, w, K, L) (or (h, w, K)) aggregated tags.

    Returns:
        A copy of `people` with the filled joints.
    """
    people = np.array(people, np.float32, copy=True)
    if people.size == 0:
        return people
    num_joints = people.shape[1]
    heatmaps = _check_maps(heatmaps, num_joints)
    tag_maps = np.asarray(tag_maps, np.float32)
    if tag_maps.ndim == 3:
        tag_maps = tag_maps[..., None]
    if tag_maps.shape[:3] != heatmaps.shape:
        raise ValueError(
            f"`tag_maps` must be (h, w, K, L) with (h, w, K) = "
            f"{heatmaps.shape}. Received shape {tag_maps.shape}."
        )
    h, w = heatmaps.shape[:2]
    found = people[..., 2] > 0
    # Mean tag of each person at its found joints' pixels.
    person, joint = np.nonzero(found)
    x = np.clip(people[person, joint, 0].astype(np.int64), 0, w - 1)
    y = np.clip(people[person, joint, 1].astype(np.int64), 0, h - 1)
    tag_sum = np.zeros((len(people), tag_maps.shape[3]), np.float64)
    np.add.at(tag_sum, person, tag_maps[y, x, joint])
    counts = np.maximum(found.sum(axis=1), 1)[:, None]
    mean_tags = (tag_sum / counts).astype(np.float32)
    flat_maps = heatmaps.reshape(h * w, num_joints)
    flat_tags = tag_maps.reshape(h * w, num_joints, -1)
    for j in range(num_joints):
        missing = np.flatnonzero(~found[:, j])
        if missing.size:
            _fill_joint(
                people,
                j,
                missing,
                flat_maps[:, j],
                flat_tags[:, j],
                mean_tags,
                w,
            )
    return people


def _best_pixels(heatmap, tags, mean_tags):
    """First argmax of heatmap - round(|tags - mean tag|) per mean tag.

    heatmap (n,), tags (n, L), mean_tags (m, L) -> (m,) pixel indices.
    Blocks of people keep the memory at block x n.
    """
    best = np.empty(len(mean_tags), np.int64)
    for start in range(0, len(mean_tags), _REFINE_BLOCK):
        block = mean_tags[start : start + _REFINE_BLOCK]
        distance = np.sqrt(((tags[None] - block[:, None]) ** 2).sum(-1))
        score = heatmap[None] - np.round(distance)
        best[start : start + len(block)] = score.argmax(axis=1)
    return best


def _fill_joint(people, j, missing, heatmap, tags, mean_tags, w):
    """`refine` for joint j of the people `missing`, in place."""
    n = heatmap.size
    means = mean_tags[missing]
    if n > 2 * _REFINE_PIXELS:
        # Exact shortcut: search the brightest pixels first. The rounded
        # distance is >= 0, so a pixel outside them scores at most their
        # threshold; a best score above it is the best over the map, and
        # the first such pixel in index order is the official argmax.
        part = np.argpartition(-heatmap, _REFINE_PIXELS)
        bright = np.sort(part[:_REFINE_PIXELS])
        threshold = heatmap[part[_REFINE_PIXELS]]
        best = bright[_best_pixels(heatmap[bright], tags[bright], means)]
        distance = np.sqrt(((tags[best] - means) ** 2).sum(-1))
        unsure = heatmap[best] - np.round(distance) <= threshold
        if unsure.any():
            best[unsure] = _best_pixels(heatmap, tags, means[unsure])
    else:
        best = _best_pixels(heatmap, tags, means)
    by, bx = np.divmod(best, w)
    value = heatmap[best]
    dx, dy = _quarter_shift(heatmap.reshape(n // w, w, 1), bx, by, 0)
    fill = value > 0
    rows = missing[fill]
    people[rows, j, 0] = (bx + 0.5 + dx)[fill]
    people[rows, j, 1] = (by + 0.5 + dy)[fill]
    people[rows, j, 2] = value[fill]


def group_people(
    values,
    tags,
    locations,
    heatmaps,
    tag_maps,
    use_adjust=True,
    use_refine=True,
    **match_kwargs,
):
    """Candidates of one image -> people and person scores.

    Args:
        values, tags, locations: one image's candidates (see
            `match_by_tag`).
        heatmaps: (h, w, K) aggregated heatmaps (for adjust and refine).
        tag_maps: (h, w, K, L) aggregated tags (for refine).
        use_adjust: the quarter-pixel adjustment. Defaults to `True`.
        use_refine: fill missing joints. Defaults to `True`.
        **match_kwargs: passed to `match_by_tag`.

    Returns:
        `(people, scores)`: (N, K, 3) float32 `x, y, score` in map pixels,
        and (N,) float32 person scores (mean joint score over all K joints
        before refinement, as official).
    """
    people = match_by_tag(values, tags, locations, **match_kwargs)
    num_joints = np.shape(values)[0]
    if len(people) == 0:
        return (
            np.zeros((0, num_joints, 3), np.float32),
            np.zeros(0, np.float32),
        )
    if use_adjust:
        people = adjust(people, heatmaps)
    scores = people[..., 2].mean(axis=1)
    if use_refine:
        people = refine(people, heatmaps, tag_maps)
    return people[..., :3].astype(np.float32), scores.astype(np.float32)
