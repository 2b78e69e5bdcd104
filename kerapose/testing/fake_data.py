"""Tiny synthetic COCO keypoint datasets for tests."""

from kerapose.data.synthetic import write_synthetic_coco

__all__ = ["write_fake_coco"]


def write_fake_coco(tmp_path, num_images=4, image_size=(96, 128), seed=0):
    """Writes a small synthetic COCO keypoint dataset for tests.

    Args:
        tmp_path: Output directory (e.g. pytest's ``tmp_path``).
        num_images: Number of images; image index 3 has no people.
        image_size: ``(height, width)`` of every image.
        seed: Random seed.

    Returns:
        The ``pathlib.Path`` of ``person_keypoints_train.json``; images are
        in ``tmp_path/images``.
    """
    return write_synthetic_coco(
        tmp_path, num_images=num_images, image_size=image_size, seed=seed
    )
