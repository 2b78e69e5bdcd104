"""Bottom-up decode + grouping time per image as the people count grows.

Synthetic stride-4 outputs of a 512x512 input (128x128 maps, 17 joints,
heatmaps and one tag per joint, flip test), N people with distinct tags.
Two protocols: grouping on the 1/4 maps (AE hourglass) and on maps
projected to the 512x512 input (HigherHRNet `PROJECT2IMAGE`, with a 1/2
heatmap output too). Times are medians of `--repeats` runs after a warm-up,
decode (keras.ops, compiled by Keras' predict loop, eager on torch)
and grouping (NumPy/SciPy) separately.
`bench/bottom_up_latency.py` runs `measure` on every backend.

    KERAS_BACKEND=jax python bench/bottom_up_grouping.py
"""

import argparse
import time

import keras
import numpy as np

from kerapose.codecs import AssociativeEmbeddingDecoder
from kerapose.data.keypoint_specs import COCO_17
from kerapose.inference import grouping
from kerapose.inference.compiled import run_compiled

K = 17


def synthetic_outputs(num_people, size=128, seed=0):
    """[(2, 128, 128, 2K), (2, 256, 256, K)] for [image, mirror image]."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    hm = rng.uniform(0, 0.02, (size, size, K)).astype(np.float32)
    tags = np.zeros((size, size, K), np.float32)
    side = int(np.ceil(np.sqrt(num_people)))
    cell = size / side
    for p in range(num_people):
        cx, cy = (p % side + 0.5) * cell, (p // side + 0.5) * cell
        joints = rng.uniform(-0.35, 0.35, (K, 2)) * cell + (cx, cy)
        for k, (x, y) in enumerate(joints):
            g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0)
            tags[..., k] = np.where(g > hm[..., k], 2.0 * p, tags[..., k])
            hm[..., k] = np.maximum(hm[..., k], g)
    out0 = np.concatenate([hm, tags], -1)
    flip = COCO_17.flip_indices
    mirror0 = out0[:, ::-1][..., flip + [K + i for i in flip]]
    up = np.repeat(np.repeat(hm, 2, 0), 2, 1)
    out1 = np.stack([up, up[:, ::-1][..., flip]])
    return [np.stack([out0, mirror0]), out1]


def run(outputs, project, max_people):
    dec = AssociativeEmbeddingDecoder(
        num_keypoints=K,
        heatmap_outputs=[0, 1] if project else [0],
        tag_outputs=[0],
        flip_indices=COCO_17.flip_indices,
        max_people=max_people,
    )
    maps = outputs if project else outputs[:1]
    t0 = time.perf_counter()
    # As `decode_bottom_up_outputs` runs it: one compiled function.
    arrays = run_compiled(
        ("bench", project, max_people),
        lambda m: dec.candidates(
            m, (1,), True, (512, 512) if project else None
        ),
        (tuple(maps),),
    )
    arrays = {k: v[0] for k, v in arrays.items()}
    t1 = time.perf_counter()
    people, _ = grouping.group_people(
        arrays["values"],
        arrays["tags"],
        arrays["locations"],
        arrays["heatmaps"],
        arrays["tag_maps"],
        max_people=max_people,
    )
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(people)


def measure(people=(1, 5, 20, 50), repeats=3):
    """One row per (protocol, people): decode and grouping seconds."""
    rows = []
    for project in (False, True):
        name = "HigherHRNet (512x512 maps)" if project else "AE (128x128 maps)"
        for n in people:
            outputs = synthetic_outputs(n)
            # Official top k is 30: more people need a larger one.
            top_k = 30 if n <= 30 else 64
            run(outputs, project, top_k)  # warm-up (and JAX compiles)
            times = [run(outputs, project, top_k) for _ in range(repeats)]
            decode, group, found = (
                float(np.median([t[i] for t in times])) for i in range(3)
            )
            rows.append(
                {
                    "protocol": name,
                    "project": project,
                    "people": n,
                    "top_k": top_k,
                    "found": int(found),
                    "decode_s": decode,
                    "group_s": group,
                }
            )
    return rows


def table(rows):
    lines = [
        "| backend | protocol | people | top k | found | decode ms "
        "| grouping ms | total ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        backend = r.get("backend", keras.backend.backend())
        lines.append(
            f"| {backend} | {r['protocol']} | {r['people']} | {r['top_k']} "
            f"| {r['found']} | {r['decode_s'] * 1e3:.1f} "
            f"| {r['group_s'] * 1e3:.1f} "
            f"| {(r['decode_s'] + r['group_s']) * 1e3:.1f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 20, 50])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(table(measure(args.people, args.repeats)))


if __name__ == "__main__":
    main()
