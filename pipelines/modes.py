"""The one config the incremental job gives the asset stages that can do less (`RunMode`): beside the assets, as they
do not import each other (tests/test_layers.py)."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset configs.

from dagster import Config


class RunMode(Config):
    """`incremental`: do only what the records not linked yet need, with the saved model: collect again only the
    sources whose records changed, link the records, rebuild the golden records of the citizens they touch, and
    update the served view for those citizens where it can."""

    incremental: bool = False
