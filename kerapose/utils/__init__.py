"""Model statistics and small helpers."""

from kerapose.utils.model_stats import count_macs as count_macs
from kerapose.utils.model_stats import count_params as count_params

__all__ = ["count_macs", "count_params"]
