"""The pipeline's assets, one module per stage, and the one config the incremental job gives the stages that can do
less (`RunMode`)."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import Config


class RunMode(Config):
    """`incremental`: do only what the records not linked yet need, with the saved model: link them, rebuild the
    golden records of the citizens they touch, and update the served view for those citizens where it can."""

    incremental: bool = False
