"""What differs between the three training recipes: defaults, the input
pipeline and the evaluator, by the model's `task`."""

import functools

TASKS = ("top_down", "bottom_up", "single_stage")

# Per task: the official recipe's epochs, learning-rate steps (0-based
# epochs, x0.1 each) and images per batch (per GPU in the official runs).
# Top-down: HRNet `w32_256x192_adam_lr1e-3`; bottom-up: HigherHRNet
# `w32_512_adam_lr1e-3`; single-stage: 300 epochs of YOLO-Pose, whose
# SGD with one-cycle decay is replaced by Adam at a constant rate.
RECIPE_DEFAULTS = {
    "top_down": {"epochs": 210, "lr_steps": (170, 200), "batch_size": 32},
    "bottom_up": {"epochs": 300, "lr_steps": (200, 260), "batch_size": 12},
    "single_stage": {"epochs": 300, "lr_steps": (), "batch_size": 16},
}
# Metrics every evaluator returns (CSV columns fixed at the first epoch).
VAL_METRICS = {
    "top_down": ("AP", "AP50", "AP75", "APM", "APL", "AR"),
    "bottom_up": ("AP", "AP50", "AP75", "APM", "APL", "AR"),
    "single_stage": ("AP", "AP50", "AP75", "APM", "APL", "AR", "bbox_AP"),
}
_TASK_OF_CLASS = {
    "BottomUpPoseEstimator": "bottom_up",
    "YOLOPoseEstimator": "single_stage",
}


def task_of_class(class_name):
    """The task of a zoo preset's `class_name` (`"kerapose>RSN..."`)."""
    return _TASK_OF_CLASS.get(str(class_name).split(">")[-1], "top_down")


def task_of(model):
    """`"top_down"`, `"bottom_up"` or `"single_stage"`."""
    task = getattr(model, "task", "top_down")
    if task not in TASKS:
        raise ValueError(f"No training recipe for models of task {task!r}.")
    return task


def model_input_shape(task, input_size):
    """`input_shape` for `zoo.load`, or `None` for the preset's.

    Bottom-up pipelines take square inputs; they are checked here so that
    the error comes before the model builds.

    Args:
        task: str. The model's task.
        input_size: `(H, W)` or `None`.
    """
    if input_size is None:
        return None
    h, w = (int(s) for s in input_size)
    if task == "bottom_up" and h != w:
        raise ValueError(
            f"Bottom-up models train on square inputs; got --input-size {h} "
            f"{w}. Pass one side twice, e.g. --input-size {max(h, w)} "
            f"{max(h, w)}."
        )
    return (h, w, 3)


def square_side(model):
    """Bottom-up input side: the model's larger input side."""
    h, w = model.input_shape[1:3]
    return max(int(h), int(w))


def training_dataset(model, ann_file, image_dir, batch_size, seed):
    """The training pipeline of the model's task.

    Args:
        model: a kerapose pose estimator, built at its training input size
            (square for bottom-up).
        ann_file: COCO keypoint annotation JSON.
        image_dir: folder of its images.
        batch_size: int.
        seed: int. Shuffling and augmentation seed.

    Returns:
        `(dataset, report)`: the `tf.data.Dataset` and the reader's
        `LoadReport` (its `spec` gives the file's keypoint count).
    """
    task = task_of(model)
    if task == "top_down":
        from kerapose.data.pipelines import build_top_down_dataset

        return build_top_down_dataset(
            ann_file,
            image_dir,
            model.codec,
            batch_size=batch_size,
            training=True,
            seed=seed,
            verbose=False,
            return_report=True,
        )
    if task == "bottom_up":
        from kerapose.data.bottom_up import make_bottom_up_dataset
        from kerapose.data.transforms import IMAGENET_MEAN
        from kerapose.data.transforms import IMAGENET_STD

        side = square_side(model)
        # One target resolution per distinct `output_resolution_index`.
        sizes = {}
        for index, stride in zip(
            model.output_resolution_index, model.output_strides
        ):
            sizes.setdefault(index, side // stride)
        unit = model.input_normalization == "unit"
        return make_bottom_up_dataset(
            ann_file,
            image_dir,
            input_size=side,
            output_sizes=tuple(sizes[i] for i in sorted(sizes)),
            batch_size=batch_size,
            training=True,
            seed=seed,
            mean=(0.0, 0.0, 0.0) if unit else IMAGENET_MEAN,
            std=(1.0, 1.0, 1.0) if unit else IMAGENET_STD,
        )
    from kerapose.data.single_stage import make_single_stage_dataset

    h, w = model.input_shape[1:3]
    return make_single_stage_dataset(
        ann_file,
        image_dir,
        input_size=(int(h), int(w)),
        batch_size=batch_size,
        training=True,
        seed=seed,
    )


def evaluator(model, flip_test=True, det_file=None, verbose=1):
    """`evaluate(model, ann_file, image_dir) -> metrics` of the task.

    Args:
        model: the estimator (its task picks the evaluator).
        flip_test: bool. Flip test (top-down and bottom-up).
        det_file: top-down person detections; `None` uses the
            ground-truth boxes. Refused for the other tasks.
        verbose: int. The evaluator's verbosity.
    """
    task = task_of(model)
    if det_file is not None and task != "top_down":
        raise ValueError(
            "Person detections are for top-down models; "
            f"{task.replace('_', '-')} models find the people themselves."
        )
    if task == "top_down":
        from kerapose.eval.top_down import evaluate_top_down

        return functools.partial(
            evaluate_top_down,
            det_file=det_file,
            flip_test=flip_test,
            verbose=verbose,
        )
    if task == "bottom_up":
        from kerapose.eval.bottom_up import evaluate_bottom_up

        return functools.partial(
            evaluate_bottom_up, flip=flip_test, verbose=verbose
        )
    from kerapose.eval.single_stage import evaluate_single_stage

    return functools.partial(evaluate_single_stage, verbose=verbose)
