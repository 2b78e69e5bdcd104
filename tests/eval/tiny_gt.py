"""In-memory COCO-format ground truth for protocol tests."""

import numpy as np


def person(num_keypoints, x0=100.0, y0=100.0, w=100.0, h=200.0, seed=0):
    """(K, 3) labelled keypoints spread over the box `[x0, y0, w, h]`."""
    rng = np.random.default_rng(seed)
    kpts = np.ones((num_keypoints, 3))
    kpts[:, 0] = x0 + rng.uniform(0.1, 0.9, num_keypoints) * w
    kpts[:, 1] = y0 + rng.uniform(0.1, 0.9, num_keypoints) * h
    kpts[:, 2] = 2.0
    return kpts


def dataset(people, crowd_index=None, area=None):
    """A COCO keypoint dict, one image per entry of `people`.

    Args:
        people: list of (K, 3) keypoints; person i is on image i + 1 and
            its box is the extent of its keypoints.
        crowd_index: optional list of per-image `crowdIndex` values.
        area: optional `area` for every annotation (None leaves it out).
    """
    k = len(people[0])
    images, anns = [], []
    for i, kpts in enumerate(people):
        image = {"id": i + 1, "file_name": f"{i + 1}.jpg"}
        image.update(width=640, height=480)
        if crowd_index is not None:
            image["crowdIndex"] = crowd_index[i]
        images.append(image)
        x0, y0 = kpts[:, :2].min(axis=0)
        x1, y1 = kpts[:, :2].max(axis=0)
        ann = {
            "id": i + 1,
            "image_id": i + 1,
            "category_id": 1,
            "iscrowd": 0,
            "num_keypoints": int(np.count_nonzero(kpts[:, 2] > 0)),
            "keypoints": [float(v) for v in kpts.reshape(-1)],
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        }
        if area is not None:
            ann["area"] = float(area)
        anns.append(ann)
    names = [f"kp{j}" for j in range(k)]
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": names}],
    }


def shifted(kpts, pixels, seed=1):
    """`kpts` with every joint moved `pixels` in a random direction."""
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(kpts))
    out = np.array(kpts, dtype=np.float64)
    out[:, 0] += pixels * np.cos(angle)
    out[:, 1] += pixels * np.sin(angle)
    return out
