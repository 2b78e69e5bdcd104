"""Worker: latency of an Ultralytics pose model built from its yaml.

Runs in a Python environment that has `ultralytics` (it needs torchvision,
which the kerapose test environment does not install); no weights are
downloaded. Prints one JSON line per model.

    python bench/peer_ultralytics.py --models yolo11n-pose yolo11s-pose \
        --size 640 --runs 10
"""

import argparse
import json
import statistics
import time

import torch


def count_macs(model, size):
    """Conv2d multiply-adds: out elements x Cin/groups x kh x kw."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels // module.groups * kh * kw

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def median_time(model, x, runs):
    with torch.no_grad():
        model(x)
        model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["yolo11n-pose"])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from ultralytics import YOLO

    for name in args.models:
        net = YOLO(f"{name}.yaml").model.eval()
        params = sum(p.numel() for p in net.parameters())
        x = torch.zeros(1, 3, args.size, args.size)
        unfused = median_time(net, x, args.runs)
        macs = count_macs(net, args.size)
        fused = median_time(net.fuse(verbose=False), x, args.runs)
        print(
            json.dumps(
                {
                    "model": name,
                    "size": args.size,
                    "params": params,
                    "macs": macs,
                    "seconds_unfused": unfused,
                    "seconds_fused": fused,
                    "torch": torch.__version__,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
