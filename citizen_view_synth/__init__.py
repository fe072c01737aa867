"""Synthetic citizens and five messy legacy extracts of them, with ground truth, for testing linkage."""

from __future__ import annotations

from citizen_view_synth.noise import NoiseConfig
from citizen_view_synth.run import GenerateReport, generate

__all__ = ["GenerateReport", "NoiseConfig", "generate"]
