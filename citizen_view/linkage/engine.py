"""Where Splink runs: its own in-memory DuckDB (the default) or Spark, behind one small interface.

The warehouse stays DuckDB either way. The linkage input is computed by the warehouse's DuckDB and crosses as
Parquet in the scratch folder (for training on DuckDB, as Arrow: see `register_query`); the scored pairs come back
as Parquet, read once into `match_edges`. On Spark, the session is created once per process from
`linkage.spark` (master and settings) with Splink's similarity jar, or an existing session (a
cluster's, Databricks') is used as it is.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from splink import DuckDBAPI

from citizen_view.contract import Backend, LinkageConfig, SparkConfig
from citizen_view.layout import spark_folder

if TYPE_CHECKING:
    from splink import SplinkDataFrame
    from splink.internals.database_api import DatabaseAPISubClass

log = logging.getLogger(__name__)
# Splink's own DuckDB gets a bounded share of the machine; the rest spills to disk.
SPLINK_MEMORY_LIMIT = os.environ.get("CITIZEN_VIEW_SPLINK_MEMORY", "6GB")
# Settings that make a local Spark session quiet and quick on small data; a sources.yaml's spark.conf wins.
SPARK_DEFAULTS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
}

# In local mode the driver JVM is also the executor: Spark's 1g default cannot hold the tables Spark decides to
# broadcast while blocking a few hundred thousand records ("Not enough memory to build and broadcast the table").
SPARK_LOCAL_DEFAULTS = {"spark.driver.memory": "4g"}

_spark_lock = threading.Lock()
_spark_session: Any = None


@dataclass
class Engine:
    """Splink's backend for one step, with a scratch folder for the Parquet that crosses to and from it."""

    backend: Backend
    scratch: Path
    spark: SparkConfig | None = None

    @classmethod
    def of(cls, linkage: LinkageConfig | None, scratch: Path) -> Engine:
        linkage = linkage or LinkageConfig()
        return cls(linkage.effective_backend(), scratch, linkage.spark)

    @property
    def dialect(self) -> str:
        return self.backend.value

    def db_api(self) -> DatabaseAPISubClass:
        """A fresh Splink database API on this backend."""
        if self.backend == Backend.DUCKDB:
            con = duckdb.connect(":memory:")
            self.scratch.mkdir(parents=True, exist_ok=True)
            con.execute(f"SET temp_directory = '{self.scratch}'")
            con.execute(f"SET memory_limit = '{SPLINK_MEMORY_LIMIT}'")
            con.execute("SET preserve_insertion_order = false")
            return DuckDBAPI(connection=con)
        from splink import SparkAPI

        return SparkAPI(spark_session=self.spark_session(), break_lineage_method="parquet")

    def spark_session(self):
        """The process's Spark session; a new local one keeps its folders in the warehouse's scratch folder."""
        return spark_session(self.spark or SparkConfig(), work=spark_folder(self.scratch.parent))

    def register(self, db_api: DatabaseAPISubClass, parquet: Path | list[Path], name: str) -> SplinkDataFrame:
        """A Parquet file (or files) as an input table of Splink's database."""
        paths = [str(p) for p in (parquet if isinstance(parquet, list) else [parquet])]
        if self.backend == Backend.DUCKDB:
            return db_api.register(db_api.duckdb_con.read_parquet(paths), dataset_display_name=name)
        frame = self.spark_session().read.parquet(*paths)
        # table names live as long as the Spark session: each registration gets its own
        return db_api.register(frame, dataset_display_name=f"{name}_{uuid.uuid4().hex[:8]}")

    def register_query(
        self,
        db_api: DatabaseAPISubClass,
        con: duckdb.DuckDBPyConnection,
        sql: str,
        name: str,
        *,
        in_memory: bool = False,
        params: list[Any] | None = None,
    ) -> SplinkDataFrame:
        """The rows of a query on the warehouse connection `con` (with bound `params`, if any) as an input table of
        Splink's database.

        `in_memory` (DuckDB only): streamed across as Arrow into a table of Splink's own database. Writing them as
        Parquet cost the warehouse more CPU than the query itself (1.0 against 0.4 s at 200k persons), but the table
        stays in memory while Splink works: training's peak allows it (3.7 GB at 1M persons), scoring's does not
        (its peak rose from 6.9 to 7.8 GB). Otherwise they cross as Parquet in the scratch folder.
        """
        if in_memory and self.backend == Backend.DUCKDB:
            table = f"{name}_rows"  # a plain identifier: Splink looks its columns up by this name
            splink_con = db_api.duckdb_con
            splink_con.register("_warehouse_rows", con.sql(sql, params=params).arrow())
            try:
                splink_con.execute(f"CREATE TABLE {table} AS SELECT * FROM _warehouse_rows")
            finally:
                splink_con.unregister("_warehouse_rows")
            return db_api.register(table, dataset_display_name=name)
        self.scratch.mkdir(parents=True, exist_ok=True)
        path = self.scratch / f"{name}.parquet"
        if params:
            con.sql(sql, params=params).write_parquet(str(path))
        else:
            con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
        return self.register(db_api, path, name)

    def copy_into(
        self,
        scored: SplinkDataFrame,
        columns: list[str],
        con: duckdb.DuckDBPyConnection,
        table: str,
        out: Path,
        *,
        computed: list[str] | None = None,
    ) -> None:
        """Create (or replace) the warehouse table `table` from `columns` of a Splink table, written as Parquet under
        `out` by Splink's engine and read once by the warehouse (with the select items `computed` over them added by
        the warehouse). Not as Arrow: DuckDB hands the whole result over at once, which held every scored pair in
        memory twice (+1 GB at the peak of scoring at 1M persons)."""
        select = ", ".join(f'"{c}"' for c in columns)
        if self.backend == Backend.DUCKDB:
            scored.db_api.duckdb_con.execute(
                f"COPY (SELECT {select} FROM {scored.physical_name}) TO '{out}' (FORMAT parquet)"
            )
            files = str(out)
        else:
            scored.as_spark_dataframe().select(*columns).write.mode("overwrite").parquet(str(out))
            files = str(out / "*.parquet")
        extra = "".join(f", {item}" for item in computed or [])
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT *{extra} FROM read_parquet(?)", [files])


def spark_session(config: SparkConfig, *, work: Path | None = None):
    """The process's Spark session: an existing one as it is, or a new one from `config` with Splink's jar.

    `work` holds a new session's local folders (shuffle and spill files), SQL warehouse and checkpoints:
    the warehouse's scratch folder, so the linkage input Spark copies there never lands in the system's
    temp folder; it is removed when the process ends, or by the next run's start when the process was killed.
    """
    global _spark_session
    with _spark_lock:
        if _spark_session is not None:
            return _spark_session
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise RuntimeError(
                "linkage.backend is spark but pyspark is not installed: pip install 'citizen-view[spark]'"
            ) from exc
        from splink.backends.spark import similarity_jar_location

        active = SparkSession.getActiveSession()
        if active is None:
            if config.master.startswith("local"):
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            work = work or Path(tempfile.mkdtemp(prefix="citizen-view-spark-"))
            work.mkdir(parents=True, exist_ok=True)
            atexit.register(shutil.rmtree, work, True)
            builder = SparkSession.builder.master(config.master).appName("citizen-view-linkage")
            settings = {
                **SPARK_DEFAULTS,
                "spark.local.dir": str(work / "local"),
                "spark.sql.warehouse.dir": str(work / "warehouse"),
            }
            if config.master.startswith("local"):
                settings.update(SPARK_LOCAL_DEFAULTS)
            settings.update(config.conf)
            jars = [similarity_jar_location(), *filter(None, settings.pop("spark.jars", "").split(","))]
            builder = builder.config("spark.jars", ",".join(jars))
            for key, value in settings.items():
                builder = builder.config(key, value)
            active = builder.getOrCreate()
            active.sparkContext.setLogLevel("ERROR")
            _set_checkpoint_dir(active, config.checkpoint_dir or str(work / "checkpoints"))
        elif config.checkpoint_dir or not active.sparkContext.getCheckpointDir():
            checkpoints = config.checkpoint_dir or str(
                (work / "checkpoints") if work else Path(tempfile.mkdtemp(prefix="citizen-view-spark-checkpoints-"))
            )
            _set_checkpoint_dir(active, checkpoints)
        for noisy in ("py4j", "pyspark", "SQLQueryContextLogger"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
        _spark_session = active
        return active


def _set_checkpoint_dir(session, folder: str) -> None:
    """Splink's intermediate tables go to `folder` (Spark adds a folder of its own under it, removed when the process
    ends; a folder in the warehouse's scratch goes with the session's folder)."""
    context = session.sparkContext
    context.setCheckpointDir(folder)
    atexit.register(_remove_hadoop_path, session, context.getCheckpointDir())


def _remove_hadoop_path(session, path: str) -> None:
    """Remove a folder through Spark's own Hadoop file system (a local folder, HDFS, S3, ...); best effort at exit."""
    try:
        jvm = session.sparkContext._jvm
        target = jvm.org.apache.hadoop.fs.Path(path)
        target.getFileSystem(session.sparkContext._jsc.hadoopConfiguration()).delete(target, True)
    except Exception as exc:  # the JVM may already be gone at exit
        log.debug("could not remove Spark checkpoint folder %s: %s", path, exc)
