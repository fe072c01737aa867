"""The application: the `citizen-view` command line and the in-process runner of the Dagster job."""
