"""Plain `torch.nn` versions of the published pose networks.

The native PyTorch baselines of `bench/native_speed.py`: each module builds
one architecture from its configuration, with the official state-dict key
layout, so that a converted checkpoint runs on both sides of a comparison.
The reference fixtures prove each one loads and reproduces the official
outputs (`tests/bench/test_native_baselines.py`).
"""
