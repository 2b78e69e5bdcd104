"""A short training run must clearly learn.

The learning benchmark (`bench/learn_synthetic.py`) measures generalisation
over minutes; this short version checks, in about a minute, that the model
memorises a small synthetic set through the real pipeline, loss and
evaluation. A broken loss, codec, initialisation or crop geometry leaves AP
near 0 (as the Glorot-initialised head did: stuck at the all-zero heatmap).
"""

import keras
import numpy as np

from kerapose import zoo
from kerapose.data.pipelines import build_top_down_dataset
from kerapose.data.synthetic import write_synthetic_coco
from kerapose.data.transforms import AugmentConfig
from kerapose.eval.top_down import evaluate_top_down

NO_AUGMENTATION = AugmentConfig(
    scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0, half_body_prob=0.0
)


def test_test_hrnet_memorises_synthetic_keypoints(tmp_path):
    keras.utils.set_random_seed(0)
    ann = write_synthetic_coco(
        tmp_path, 12, image_size=(128, 128), seed=0, split="train"
    )
    model = zoo.load("test_hrnet", compile=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    dataset = build_top_down_dataset(
        ann,
        tmp_path / "images",
        model.codec,
        batch_size=8,
        seed=0,
        augment_config=NO_AUGMENTATION,
        verbose=False,
    )
    history = model.fit(dataset, epochs=40, verbose=0, shuffle=False)
    losses = history.history["loss"]
    metrics = evaluate_top_down(
        model, ann, tmp_path / "images", flip_test=False
    )
    print(f"losses {np.round(losses[::5], 4)}; AP {metrics['AP']:.3f}")
    assert losses[-1] < 0.5 * losses[1]
    assert metrics["AP"] > 0.3
