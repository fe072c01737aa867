"""Synthetic citizens and messy extracts of them, with ground truth, for testing linkage: five NL/NO systems
(the default profile), a dense GB-style register, or seven US agencies."""

from __future__ import annotations

from citizen_view_synth.noise import NoiseConfig
from citizen_view_synth.run import PROFILE_COUNTRY, PROFILES, GenerateReport, generate

__all__ = ["PROFILES", "PROFILE_COUNTRY", "GenerateReport", "NoiseConfig", "generate"]
