"""One training run of any pose estimator: `model.fit` with resume,
best / last weights, a CSV log and COCO AP. Used by `kerapose train` and
examples/train_top_down.py."""

import dataclasses
import json
from pathlib import Path

import keras

from kerapose.training.callbacks import BestCheckpoint
from kerapose.training.callbacks import EvalCallback
from kerapose.training.callbacks import FillMissingMetrics
from kerapose.training.callbacks import backup_epoch
from kerapose.training.callbacks import best_logged
from kerapose.training.callbacks import step_schedule
from kerapose.training.recipes import RECIPE_DEFAULTS
from kerapose.training.recipes import VAL_METRICS
from kerapose.training.recipes import evaluator
from kerapose.training.recipes import model_input_shape
from kerapose.training.recipes import square_side
from kerapose.training.recipes import task_of
from kerapose.training.recipes import training_dataset

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass
class TrainSettings:
    """One training run. `None` fields take the family recipe's value.

    Attributes:
        model: Zoo name (`"hrnet_w32"`, `"test_yolo_pose"`) or preset
            folder; its task picks the recipe (pipeline, loss, evaluator).
        train_ann: COCO keypoint JSON to train on. `None` with `synthetic`
            writes a synthetic set under `out/data`.
        train_images: Folder of the training images.
        val_ann: COCO keypoint JSON to evaluate on; `None` skips evaluation
            (unless the synthetic set provides one).
        val_images: Folder of the validation images.
        det_file: Top-down person detections for evaluation (COCO results
            JSON); `None` uses the ground-truth boxes.
        input_size: `(H, W)` of the network input; `None` the preset's
            (bottom-up: a square of its larger side).
        batch_size: Global batch size; `None` the recipe's.
        lr: Base learning rate; `None` the family's optimizer's.
        lr_steps: Epochs (0-based) from which the learning rate is
            multiplied by another `lr_factor`; `None` the recipe's.
        lr_factor: Decay factor at each of `lr_steps`.
        epochs: Total number of epochs; `None` the recipe's.
        flip_test: Flip test at evaluation (top-down and bottom-up).
        eval_every: Evaluate COCO AP every this many epochs; `0` only
            after training.
        out: Output folder (weights, log, backup).
        seed: Seed of Keras and of the data pipeline.
        synthetic: Synthetic training images to write when `train_ann` is
            `None`; the validation split gets a quarter (at least 4).
        steps_per_epoch: Batches per epoch; `None` one pass.
        verbose: `model.fit` verbosity: 1 progress bars, 2 one line per
            epoch, 0 silent (the evaluations and messages too).
        run_eagerly: No compiled train step (debugging, smoke runs).
        weights: Initial weights, anything `kerapose.zoo.load` takes;
            `None` random.
        optimizer: `"adam"` (the recipes') or `"sgd"` (momentum 0.9).
    """

    model: str = "hrnet_w32"
    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    det_file: str | None = None
    input_size: tuple | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_steps: tuple | None = None
    lr_factor: float = 0.1
    epochs: int | None = None
    flip_test: bool = True
    eval_every: int = 1
    out: str = "runs/train"
    seed: int = 0
    synthetic: int = 0
    steps_per_epoch: int | None = None
    verbose: int = 1
    run_eagerly: bool = False
    weights: str | None = None
    optimizer: str = "adam"


def resolve_data(settings, out):
    """Annotation files and image folders, writing synthetic ones if asked.

    Returns:
        `((train_ann, train_images), val)`, `val` an `(ann, images)` pair
        or `None`.
    """
    from kerapose.data.synthetic import write_synthetic_coco

    train = (settings.train_ann, settings.train_images)
    val = (settings.val_ann, settings.val_images)
    if settings.train_ann is None:
        if settings.synthetic <= 0:
            raise ValueError(
                "No training data: pass a COCO keypoint annotation file and "
                "its image folder, or --synthetic N to write a synthetic "
                "COCO-format set."
            )
        data = Path(out) / "data"
        # Deterministic in the seed, so a resumed run rewrites the same set.
        ann = write_synthetic_coco(
            data, num_images=settings.synthetic, seed=settings.seed
        )
        train = (str(ann), str(data / "images"))
        if settings.val_ann is None:
            ann = write_synthetic_coco(
                data,
                num_images=max(settings.synthetic // 4, 4),
                seed=settings.seed,
                split="val",
            )
            val = (str(ann), str(data / "images"))
    for name, (ann, images) in (("train", train), ("val", val)):
        if ann is not None and images is None:
            raise ValueError(
                f"The {name} annotation file {ann} needs its image folder."
            )
    return train, (val if val[0] is not None else None)


def _load_model(settings, task, num_keypoints=None):
    from kerapose import zoo

    shape = model_input_shape(task, settings.input_size)
    model = zoo.load(
        settings.model,
        weights=settings.weights,
        input_shape=shape,
        num_keypoints=num_keypoints,
        compile=False,
    )
    if task == "bottom_up" and shape is None:
        side = square_side(model)
        if tuple(model.input_shape[1:3]) != (side, side):
            model = zoo.load(
                settings.model,
                weights=settings.weights,
                input_shape=(side, side, 3),
                num_keypoints=num_keypoints,
                compile=False,
            )
    if task_of(model) == "bottom_up":
        h, w = model.input_shape[1:3]
        if h != w:
            # A preset directory fixes its input size.
            raise ValueError(
                f"{settings.model} takes {h}x{w} inputs; bottom-up training "
                "needs a square input: save the preset at a square size."
            )
    return model


def _optimizer(settings, model):
    if settings.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {settings.optimizer!r}; use one of "
            f"{', '.join(OPTIMIZERS)}."
        )
    default = model.default_optimizer()
    lr = settings.lr
    if lr is None:
        lr = float(keras.ops.convert_to_numpy(default.learning_rate))
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9), lr
    # A float learning rate is an optimizer variable that the scheduler
    # sets each epoch (see `step_schedule` for why not a schedule object).
    return keras.optimizers.Adam(lr), lr


def build_callbacks(
    settings, out, task, evaluate, val, lr, lr_steps, resume_epoch, loggers
):
    """The callbacks of `fit`, in the order they must run.

    Evaluation comes first so that the checkpoints, the loggers and the CSV
    log see val_AP in the epoch's logs; the backup comes last so that an
    epoch is recorded as done only after everything else has finished it.
    """
    resuming = resume_epoch is not None
    verbose = 1 if settings.verbose else 0
    evaluating = val is not None and settings.eval_every > 0
    callbacks = []
    if evaluating:
        callbacks.append(
            EvalCallback(
                lambda model: evaluate(model, val[0], val[1]),
                every_n_epochs=settings.eval_every,
                verbose=verbose,
            )
        )
    callbacks.append(
        keras.callbacks.LearningRateScheduler(
            step_schedule(lr, lr_steps, settings.lr_factor)
        )
    )
    callbacks += list(loggers)
    if evaluating:
        # ModelCheckpoint's best is not part of the backup: take it from
        # the log so a resumed run does not overwrite a better checkpoint.
        best = (
            best_logged(out / "log.csv", "val_AP", resume_epoch)
            if resuming
            else None
        )
        callbacks += [
            BestCheckpoint(
                str(out / "best.weights.h5"), "val_AP", best, verbose
            ),
            FillMissingMetrics([f"val_{m}" for m in VAL_METRICS[task]]),
        ]
    # The latest epoch, in case the backup is lost too.
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(out / "last.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=resuming),
        keras.callbacks.BackupAndRestore(str(out / "backup")),
    ]
    return callbacks


def train(settings, callbacks=(), loggers=(), prepare_model=None):
    """Runs one training, resuming an interrupted run in `settings.out`.

    Writes `config.json` (the settings), `log.csv` (one row per epoch),
    `last.weights.h5` (each epoch), `best.weights.h5` (best val_AP, when
    evaluating), `backup/` (BackupAndRestore state, deleted after a full
    run) and `final_metrics.json` under `settings.out`.

    Args:
        settings: `TrainSettings`.
        callbacks: extra Keras callbacks, run after the backup.
        loggers: Keras callbacks that must see the epoch's val_* metrics
            (e.g. TensorBoard); run after the evaluation.
        prepare_model: optional `prepare_model(model)`, called on the
            built model before `compile` (e.g. to synchronise BatchNorm).

    Returns:
        dict: the final COCO metrics (none without a validation set),
        `best_AP`, `epochs_run` (epochs trained by this call),
        `first_epoch` (0-based epoch this call started at), `history`
        (`model.fit`'s history), `files` (the paths written) and the
        trained `model`.
    """
    from kerapose.training.recipes import task_of_class
    from kerapose.zoo import registry

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    say = print if settings.verbose else (lambda *a, **k: None)
    (train_ann, train_images), val = resolve_data(settings, out)
    resume_epoch = backup_epoch(out)
    keras.utils.set_random_seed(settings.seed)

    task = None
    if not (Path(settings.model).is_dir() or "/" in str(settings.model)):
        preset = registry.resolve(settings.model)[2]
        task = task_of_class(preset["config"]["class_name"])
        model_input_shape(task, settings.input_size)  # fails before a build
    model = _load_model(settings, task or "top_down")
    task = task_of(model)
    recipe = RECIPE_DEFAULTS[task]
    epochs = settings.epochs or recipe["epochs"]
    batch_size = settings.batch_size or recipe["batch_size"]
    lr_steps = recipe["lr_steps"]
    if settings.lr_steps is not None:
        lr_steps = settings.lr_steps
    (out / "config.json").write_text(
        json.dumps(
            {
                **dataclasses.asdict(settings),
                "task": task,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr_steps": list(lr_steps),
            },
            indent=2,
        )
    )
    if resume_epoch is not None:
        say(
            f"Resuming from the backup in {out / 'backup'} at epoch "
            f"{resume_epoch + 1} of {epochs}."
        )
    evaluate = evaluator(
        model, settings.flip_test, settings.det_file, verbose=settings.verbose
    )
    dataset, report = training_dataset(
        model,
        train_ann,
        train_images,
        batch_size,
        # A resumed run must not replay the first epochs' shuffles and
        # augmentations.
        settings.seed + (resume_epoch or 0),
    )
    if report.spec.num_keypoints != model.num_keypoints:
        # The pipelines depend on the input size only, so `dataset` stays
        # valid.
        model = _load_model(settings, task, report.spec.num_keypoints)
        if task == "single_stage" and report.spec.sigmas is not None:
            model.sigmas = [float(s) for s in report.spec.sigmas]
    if int(dataset.cardinality()) == 0:
        raise ValueError(
            f"{train_ann} gives no full batch of {batch_size}: lower "
            "--batch-size or add images."
        )
    if prepare_model is not None:
        prepare_model(model)
    if settings.steps_per_epoch:
        dataset = dataset.repeat()
    optimizer, lr = _optimizer(settings, model)
    model.compile(optimizer=optimizer, run_eagerly=settings.run_eagerly)

    fit_callbacks = build_callbacks(
        settings, out, task, evaluate, val, lr, lr_steps, resume_epoch, loggers
    )
    history = model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=settings.steps_per_epoch,
        callbacks=fit_callbacks + list(callbacks),
        verbose=settings.verbose,
        shuffle=False,  # the pipeline shuffles
    )
    model.save_weights(out / "last.weights.h5")
    first_epoch = resume_epoch or 0
    result = {
        "epochs_run": len(history.epoch),
        "first_epoch": first_epoch,
        "history": history.history,
        "model": model,
    }
    metrics = {}
    # Best val_AP of the training evaluations (of best.weights.h5), this
    # call's and an interrupted one's alike.
    best = best_logged(out / "log.csv", "val_AP", epochs)
    if val is not None:
        done = [
            e
            for c in fit_callbacks
            if isinstance(c, EvalCallback)
            for e in c.history
        ]
        if done and done[-1][0] == epochs - 1:
            metrics = dict(done[-1][1])  # the last epoch was evaluated
        else:
            metrics = evaluate(model, val[0], val[1])
        say(
            f"Final COCO keypoint AP {metrics['AP']:.4f} (AP50 "
            f"{metrics['AP50']:.4f}, AP75 {metrics['AP75']:.4f}, AR "
            f"{metrics['AR']:.4f})"
            + ("" if best is None else f"; best val_AP {best:.4f}")
        )
    else:
        say("No validation set: no COCO AP.")
    summary = {
        **{k: float(v) for k, v in metrics.items()},
        "best_AP": best,
        "backend": keras.backend.backend(),
        "epochs": epochs,
    }
    (out / "final_metrics.json").write_text(json.dumps(summary, indent=2))
    names = (
        "last.weights.h5",
        "best.weights.h5",
        "log.csv",
        "final_metrics.json",
        "config.json",
    )
    result.update(metrics)
    result["best_AP"] = best
    result["files"] = [out / n for n in names if (out / n).is_file()]
    return result
