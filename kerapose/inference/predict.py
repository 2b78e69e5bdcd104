"""One `predict_image` for every family: dispatches on the model's task."""

from kerapose.inference import top_down


def predict_image(model, image, boxes=None, box_scores=None, **kwargs):
    """Finds the people in one image with any kerapose estimator.

    Top-down models crop `boxes` (default: the whole image as one person);
    bottom-up and single-stage models find the people themselves and take
    no boxes.

    Args:
        model: a kerapose estimator.
        image: path or (H, W, 3) RGB array.
        boxes: (N, 4) person boxes `(x, y, w, h)`, top-down models only.
        box_scores: (N,) detector scores, top-down models only.
        **kwargs: passed to the family's function: `flip_test` and `spec`
            for every family; see `kerapose.inference.top_down`,
            `bottom_up` and `yolo_pose` for the others.

    Returns:
        `PoseResult` with keypoints in image pixels.

    Raises:
        ValueError: boxes given to a model that finds people itself.
    """
    task = getattr(model, "task", "top_down")
    if task == "top_down":
        return top_down.predict_image(
            model, image, boxes=boxes, box_scores=box_scores, **kwargs
        )
    if boxes is not None or box_scores is not None:
        raise ValueError(
            f"{type(model).__name__} is a {task.replace('_', '-')} model: it "
            "finds the people itself and takes no boxes. Drop `boxes` (and "
            "--boxes on the command line)."
        )
    if task == "bottom_up":
        from kerapose.inference.bottom_up import predict_image_bottom_up

        return predict_image_bottom_up(model, image, **kwargs)
    if task == "single_stage":
        from kerapose.inference.yolo_pose import predict_image_single_stage

        return predict_image_single_stage(model, image, **kwargs)
    raise ValueError(
        f"Unknown estimator task {task!r} of {type(model).__name__}."
    )
