"""Converters from official checkpoints to kerapose weights."""
