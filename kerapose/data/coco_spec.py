"""Picks the keypoint spec of a COCO-format keypoint file.

The keypoint names of the file's person category decide, never the count
alone (AIC and CrowdPose both have 14 keypoints, COCO and PoseTrack18 both
17):

1. Names equal to a built-in spec's (in order, after
   :func:`~kerapose.data.keypoint_specs.normalize_keypoint_name`): that spec.
2. Other names: a spec built from the category: its names, its skeleton
   (1-based in files) and flip pairs found from left/right names. Its sigmas
   are the caller's ``sigmas=``, or None: training works, OKS raises and
   asks for them (:meth:`~kerapose.data.keypoint_specs.KeypointSpec.
   require_sigmas`).
3. No names: the built-in spec with the annotations' keypoint count, with a
   warning, when exactly one has that count; otherwise an error asking for
   ``spec=``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.keypoint_specs import flip_pairs_from_names
from kerapose.data.keypoint_specs import get_keypoint_spec
from kerapose.data.keypoint_specs import match_keypoint_spec
from kerapose.data.keypoint_specs import normalize_keypoint_name
from kerapose.data.keypoint_specs import specs_with_num_keypoints

__all__ = ["person_category", "resolve_coco_spec"]


def person_category(data: dict, ann_file: str) -> dict | None:
    """The category the keypoints belong to, or None if there is none.

    The first ``person`` category that lists keypoint names, else any
    category that does, else the only ``person`` category.
    """
    cats = data.get("categories")
    if not cats:
        return None
    if not isinstance(cats, list):
        raise ValueError(f"{ann_file}: 'categories' must be a list.")
    cats = [c for c in cats if isinstance(c, dict)]
    with_names = [c for c in cats if c.get("keypoints")]
    people = [c for c in with_names if c.get("name") == "person"]
    if people or with_names:
        return (people or with_names)[0]
    people = [c for c in cats if c.get("name") == "person"]
    return people[0] if len(people) == 1 else None


def resolve_coco_spec(
    data: dict,
    category: dict | None,
    ann_file: str,
    spec: KeypointSpec | str | None = None,
    sigmas: Any = None,
    keypoint_field: str = "keypoints",
) -> KeypointSpec:
    """The keypoint spec of a COCO keypoint file (see the module doc).

    Args:
        data: The parsed file.
        category: Its person category (:func:`person_category`).
        ann_file: The file's path, for messages.
        spec: A spec or built-in name chosen by the caller; then only
            checked against the file.
        sigmas: OKS sigmas for a spec built from the file's names.
        keypoint_field: The annotation field holding the keypoints; its
            names are the category's entry of the same name.

    Returns:
        The :class:`~kerapose.data.keypoint_specs.KeypointSpec`.

    Raises:
        ValueError: If ``spec`` and ``sigmas`` are both given, ``spec`` has
            another keypoint count than the file, ``sigmas`` disagree with
            the built-in spec the names match, or no spec can be told.
    """
    names = _category_names(category, keypoint_field, ann_file)
    if spec is not None:
        if sigmas is not None:
            raise ValueError(
                "Pass the sigmas inside the KeypointSpec given as `spec=`, "
                "not as `sigmas=` too (e.g. dataclasses.replace(spec, "
                "sigmas=...))."
            )
        return _check_given_spec(get_keypoint_spec(spec), names, ann_file)
    if names is not None:
        builtin = match_keypoint_spec(names)
        if builtin is not None:
            return _check_sigmas(builtin, sigmas, ann_file)
        return _spec_from_names(
            category, names, sigmas, keypoint_field, ann_file
        )
    count = _count_from_annotations(data, category, keypoint_field, ann_file)
    candidates = specs_with_num_keypoints(count)
    where = (
        f"{ann_file}: the category lists no keypoint names for "
        f"'{keypoint_field}'"
    )
    if len(candidates) != 1:
        known = ", ".join(s.name for s in candidates) or "none"
        raise ValueError(
            f"{where} and {count} keypoints do not identify a layout "
            f"(built-in specs with {count}: {known}). Pass `spec=`: a "
            "built-in name or a KeypointSpec."
        )
    picked = candidates[0]
    warnings.warn(
        f"{where}; using built-in spec {picked.name!r}, the only one with "
        f"{count} keypoints. Pass `spec=` to choose another.",
        stacklevel=3,
    )
    return _check_sigmas(picked, sigmas, ann_file)


def _category_names(category, field, ann_file):
    if category is None or not category.get(field):
        return None
    names = category[field]
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n.strip() for n in names
    ):
        raise ValueError(
            f"{ann_file}: category {category.get('id')!r} '{field}' must be "
            "a list of keypoint names (non-empty strings)."
        )
    return names


def _check_given_spec(spec, names, ann_file):
    if names is None:
        return spec
    if len(names) != spec.num_keypoints:
        raise ValueError(
            f"{ann_file}: the category has {len(names)} keypoints but spec "
            f"{spec.name!r} has {spec.num_keypoints}."
        )
    normalized = tuple(normalize_keypoint_name(n) for n in names)
    if normalized != spec.keypoint_names:
        differ = [
            f"{i}: {a!r} vs {b!r}"
            for i, (a, b) in enumerate(zip(names, spec.keypoint_names))
            if normalize_keypoint_name(a) != b
        ]
        warnings.warn(
            f"{ann_file}: the file's keypoint names differ from spec "
            f"{spec.name!r}'s ({'; '.join(differ[:4])}); its flip pairs and "
            "sigmas are used as given. Leave `spec=None` to use the file's.",
            stacklevel=4,
        )
    return spec


def _check_sigmas(builtin, sigmas, ann_file):
    if sigmas is None:
        return builtin
    given = np.asarray(sigmas, np.float64).ravel()
    if given.shape == (builtin.num_keypoints,) and np.allclose(
        given, builtin.sigmas
    ):
        return builtin
    raise ValueError(
        f"{ann_file} matches built-in spec {builtin.name!r}, whose OKS sigmas "
        "differ from `sigmas=`. To use other sigmas pass "
        f"spec=dataclasses.replace(get_keypoint_spec({builtin.name!r}), "
        "sigmas=...)."
    )


def _spec_from_names(category, names, sigmas, field, ann_file):
    k = len(names)
    skeleton = ()
    if field == "keypoints":  # the category skeleton is for this field
        skeleton = _skeleton(category.get("skeleton"), k, ann_file)
    name = f"{category.get('name') or 'custom'}_{k}_from_file"
    try:
        return KeypointSpec(
            name=name,
            keypoint_names=names,
            flip_pairs=flip_pairs_from_names(names),
            sigmas=sigmas,
            skeleton=skeleton,
        )
    except ValueError as err:
        raise ValueError(
            f"{ann_file}: category {category.get('id')!r}: {err} "
            f"(keypoints {names})"
        ) from None


def _skeleton(raw, k, ann_file):
    """The 0-based skeleton of a file's (1-based) one; () when unusable."""
    if not raw:
        return ()
    ok = isinstance(raw, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and all(type(i) is int and 1 <= i <= k for i in p)
        and p[0] != p[1]
        for p in raw
    )
    if not ok:
        warnings.warn(
            f"{ann_file}: the category's 'skeleton' is not 1-based pairs of "
            f"its {k} "
            "keypoints; it is left out (it is only used for drawing).",
            stacklevel=5,
        )
        return ()
    return tuple((i - 1, j - 1) for i, j in raw)


def _count_from_annotations(data, category, field, ann_file):
    cat_id = None if category is None else category.get("id")
    anns = data.get("annotations")
    for i, ann in enumerate(anns if isinstance(anns, list) else ()):
        if not isinstance(ann, dict) or not isinstance(ann.get(field), list):
            continue
        if cat_id is not None and ann.get("category_id", cat_id) != cat_id:
            continue
        values = sum(len(v) if isinstance(v, list) else 1 for v in ann[field])
        if values % 3:
            raise ValueError(
                f"{ann_file}: annotation id {ann.get('id')!r} "
                f"(annotations[{i}]): '{field}' has {values} values, not "
                "(x, y, v) triples."
            )
        return values // 3
    raise ValueError(
        f"{ann_file}: no category lists keypoint names for '{field}' and no "
        f"annotation has '{field}'; pass `spec=` (a built-in name or a "
        "KeypointSpec)."
    )
