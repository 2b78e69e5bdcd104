"""Ground truth for the evaluators that see whole images (bottom-up and
single-stage): every image of the file, and its COCO evaluator."""

from kerapose.eval.coco_evaluator import COCOEvaluator


def whole_image_ground_truth(
    model, ann_file, image_dir, spec, use_area, keypoint_field, verbose
):
    """Reads every image of `ann_file` and builds its `COCOEvaluator`.

    The evaluator is built before the model runs, so a file pycocotools
    cannot use fails at once.

    Returns:
        `(records, spec, evaluator)`: `load_coco_images` records (empty
        images kept), the file's keypoint spec, the evaluator.

    Raises:
        ValueError: the file and the model have different keypoint counts.
    """
    from kerapose.data.coco_images import load_coco_images

    records, report = load_coco_images(
        ann_file,
        image_dir,
        spec=spec,
        keep_empty=True,
        keypoint_field=keypoint_field,
    )
    spec = report.spec
    if spec.num_keypoints != int(model.num_keypoints):
        raise ValueError(
            f"{ann_file} has {spec.num_keypoints} keypoints, the model "
            f"{model.num_keypoints}."
        )
    evaluator = COCOEvaluator.from_spec(
        ann_file,
        spec,
        use_area,
        keypoint_field=keypoint_field,
        verbose=verbose,
    )
    return records, spec, evaluator
