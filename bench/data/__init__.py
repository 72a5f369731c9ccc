"""Datasets of the benchmark: the embedded synthetic default, validation and contact sheets."""
