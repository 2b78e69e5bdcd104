"""Runs an exported kerapose .tflite model on an image and draws skeletons.

What a mobile app does, in Python: no Keras, no TensorFlow, no kerapose
import; only NumPy, OpenCV and the LiteRT interpreter (ai-edge-litert). The
pre- and post-processing come from `kerapose/export/numpy_reference.py`,
loaded as a lone file (an app would port or copy it).

    python examples/tflite_infer.py model.tflite people.jpg \
        [--box X Y W H ...] [--out drawn.jpg] [--json keypoints.json]

Without `--box` the whole image is one person box; boxes partly outside
the image are clipped to it. Works with both output layouts: heatmaps
(1, h, w, K), or in-graph decoded (1, K, 3).
"""

import argparse
import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter


def load_reference():
    """kerapose/export/numpy_reference.py, without importing kerapose."""
    spec = importlib.util.find_spec("kerapose")  # locates, does not run it
    if spec is not None and spec.submodule_search_locations:
        folder = Path(spec.submodule_search_locations[0])
    else:
        folder = Path(__file__).resolve().parents[1] / "kerapose"
    path = folder / "export" / "numpy_reference.py"
    module_spec = importlib.util.spec_from_file_location("reference", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="exported .tflite file")
    parser.add_argument("image", help="image file")
    parser.add_argument(
        "--box",
        type=float,
        nargs=4,
        action="append",
        metavar=("X", "Y", "W", "H"),
        help="person box in image pixels (repeat for several people)",
    )
    parser.add_argument(
        "--out",
        help="where to write the drawn image (.jpg, .png, ...); its folder "
        "is created",
    )
    parser.add_argument("--json", help="where to write the keypoints (.json)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.3,
        help="draw and count keypoints scored above this",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="LiteRT interpreter threads"
    )
    return parser.parse_args(argv)


def check_output(path, suffixes, option):
    """Fails before any work unless `path` can be written: a known file
    type, in a folder that exists (created here) and is writable."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise SystemExit(
            f"{option} {path}: the name must end in one of {suffixes}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"{option} {path}: cannot create its folder: {e}")
    if not os.access(path.parent, os.W_OK):
        raise SystemExit(f"{option} {path}: the folder is not writable.")
    return path


def check_boxes(boxes, width, height):
    """Clips `(x, y, w, h)` boxes to the image; exits naming a box that has
    no pixels in it (NaN, a size of zero or less, or wholly outside), for
    which the model would still return keypoints. As kerapose's
    `validate_boxes`, which this script does not import."""
    clipped = []
    for i, (x, y, w, h) in enumerate(boxes):
        name = f"--box {i} ({x:g} {y:g} {w:g} {h:g})"
        if not np.all(np.isfinite([x, y, w, h])):
            raise SystemExit(f"{name} has a NaN or infinite value.")
        if w <= 0 or h <= 0:
            raise SystemExit(
                f"{name}: width and height must be positive (X Y W H)."
            )
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, float(width)), min(y + h, float(height))
        if x2 <= x1 or y2 <= y1:
            raise SystemExit(
                f"{name} lies wholly outside the {width}x{height} image."
            )
        clipped.append([x1, y1, x2 - x1, y2 - y1])
    return clipped


def draw(image_bgr, keypoints, skeleton, threshold):
    canvas = image_bgr.copy()
    for person in keypoints:
        for a, b in skeleton:
            if min(person[a, 2], person[b, 2]) > threshold:
                pa = tuple(int(round(v)) for v in person[a, :2])
                pb = tuple(int(round(v)) for v in person[b, :2])
                cv2.line(canvas, pa, pb, (0, 200, 255), 2, cv2.LINE_AA)
        for x, y, score in person:
            if score > threshold:
                center = (int(round(x)), int(round(y)))
                cv2.circle(canvas, center, 3, (255, 0, 0), -1, cv2.LINE_AA)
    return canvas


def main(argv=None):
    args = parse_args(argv)
    if args.out:
        images = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
        check_output(args.out, images, "--out")
    if args.json:
        check_output(args.json, (".json",), "--json")
    ref = load_reference()
    interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    input_size = tuple(int(s) for s in inp["shape"][1:3])

    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"Cannot read image {args.image}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    boxes = check_boxes(
        args.box or [[0.0, 0.0, float(width), float(height)]], width, height
    )

    people = []
    for box in boxes:
        crop, inverse = ref.preprocess(rgb, box, input_size)
        interpreter.set_tensor(inp["index"], crop)
        interpreter.invoke()
        output = interpreter.get_tensor(out["index"])
        people.append(ref.postprocess(output, input_size, inverse))
    people = np.stack(people)
    for i, person in enumerate(people):
        confident = int((person[:, 2] > args.threshold).sum())
        print(
            f"person {i}: {confident}/{len(person)} keypoints above "
            f"{args.threshold}"
        )
    if args.out:
        skeleton = ref.COCO_SKELETON if people.shape[1] == 17 else ()
        drawn = draw(bgr, people, skeleton, args.threshold)
        if not cv2.imwrite(args.out, drawn) or not Path(args.out).is_file():
            raise SystemExit(f"Writing {args.out} failed.")
        print(f"Wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(people.tolist()))
        print(f"Wrote {args.json}")
    return people


if __name__ == "__main__":
    main()
