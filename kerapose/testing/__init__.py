"""Helpers for tests: small fake datasets and fixtures."""
