"""The nightly history: one SQLite file in the results directory, and change points over it.

Layout (schema version 2, kept in table `schema_version`):
- `nights`: one row per night (id, start/finish time, host, labels, QEMU versions of
  both builds, threshold/test/correction, exit code);
- `results`: one row per night x configuration x metric: both means, n, spread (CV as a
  fraction), ratio and its 95% CI, corrected p, verdict, QEMU versions, host, timestamp.
Re-recording a night replaces its rows (a re-run of the same night is not a new night).

Version 1 (the first layout) kept only the candidate's mean/n/spread/verdict per night x
config; it is migrated in place (inside one transaction, after a backup copy
`history.sqlite.v1.bak`). A file with a newer version, or an SQLite file that is not a
perfsuite history, is refused with a message saying so: never guessed at, never rewritten.

Change points: perfsuite.nightly.changepoints (steps, or the first night of a slow creep).
"""

from __future__ import annotations

from perfsuite.errors import PerfsuiteError

import math
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA_VERSION = 2
FILENAME = "history.sqlite"

_NIGHTS_DDL = """CREATE TABLE nights (
    night TEXT PRIMARY KEY, started TEXT, finished TEXT, host TEXT,
    baseline_label TEXT, candidate_label TEXT,
    baseline_qemu_version TEXT, candidate_qemu_version TEXT,
    threshold REAL, test TEXT, correction TEXT, exit_code INTEGER)"""
_RESULTS_DDL = """CREATE TABLE results (
    night TEXT NOT NULL, config TEXT NOT NULL, metric TEXT NOT NULL,
    base_mean REAL, base_n INTEGER, base_spread REAL,
    cand_mean REAL, cand_n INTEGER, cand_spread REAL,
    ratio REAL, ci_low REAL, ci_high REAL, p_adj REAL, verdict TEXT,
    base_qemu_version TEXT, cand_qemu_version TEXT, host TEXT, timestamp TEXT,
    PRIMARY KEY (night, config, metric))"""
# Version 1, kept to recognise and migrate old files (and to test that migration).
V1_DDL = ("CREATE TABLE schema_version (version INTEGER NOT NULL)",
          "CREATE TABLE results (night TEXT, config TEXT, mean REAL, n INTEGER, spread REAL, "
          "verdict TEXT, qemu_version TEXT, host TEXT, timestamp TEXT, PRIMARY KEY (night, config))")


class HistoryError(PerfsuiteError):
    """The history file cannot be used; the message says why and what to do."""


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE results RENAME TO results_v1")
    db.execute(_NIGHTS_DDL)
    db.execute(_RESULTS_DDL)
    db.execute("""INSERT INTO results (night, config, metric, cand_mean, cand_n, cand_spread,
                  verdict, cand_qemu_version, host, timestamp)
                  SELECT night, config, 'iops', mean, n, spread, verdict, qemu_version, host,
                  timestamp FROM results_v1""")
    db.execute("""INSERT OR IGNORE INTO nights (night, finished, host, candidate_qemu_version)
                  SELECT night, MAX(timestamp), MAX(host), MAX(qemu_version) FROM results_v1
                  GROUP BY night""")
    db.execute("DROP TABLE results_v1")


MIGRATIONS = {1: _migrate_1_to_2}  # from version -> step to version + 1


def open_history(path: str | os.PathLike) -> sqlite3.Connection:
    """Open (creating, or migrating an older version of) the history at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    try:
        db = sqlite3.connect(path)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise HistoryError(f"{path}: not an SQLite database ({exc}); move it aside") from None
    if new or not tables:
        with db:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            db.execute(_NIGHTS_DDL)
            db.execute(_RESULTS_DDL)
        return db
    if "schema_version" not in tables:
        db.close()
        raise HistoryError(f"{path}: an SQLite file without perfsuite's schema_version table "
                           "(not a perfsuite history?); refusing to touch it")
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    version = row[0] if row else None
    if not isinstance(version, int):
        db.close()
        raise HistoryError(f"{path}: schema_version is empty or not a number; refusing to touch it")
    if version > SCHEMA_VERSION:
        db.close()
        raise HistoryError(f"{path}: history schema version {version} is newer than this perfsuite "
                           f"understands ({SCHEMA_VERSION}); upgrade perfsuite or use another "
                           "--results-dir")
    if version < SCHEMA_VERSION:
        db.close()
        shutil.copy2(path, f"{path}.v{version}.bak")  # migration never loses the old file
        db = sqlite3.connect(path)
        try:
            with db:
                for v in range(version, SCHEMA_VERSION):
                    if v not in MIGRATIONS:
                        raise HistoryError(f"{path}: no migration from schema version {v}")
                    MIGRATIONS[v](db)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            db.close()
            raise HistoryError(f"{path}: migration from version {version} failed ({exc}); "
                               f"the original is kept as {path}.v{version}.bak") from None
    return db


def _num(v):
    v = None if v is None else float(v)
    return v if v is not None and math.isfinite(v) else None


def record_night(db: sqlite3.Connection, night: str, comparison, info: dict) -> None:
    """Store one night's comparison (a perfsuite.analysis.comparison.Comparison); replaces that night."""
    p = comparison.params
    metric = p.get("metric", "iops")
    stamp = info.get("finished")
    with db:
        db.execute("DELETE FROM results WHERE night = ? AND metric = ?", (night, metric))
        db.execute("INSERT OR REPLACE INTO nights VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            night, info.get("started"), stamp, info.get("host"), info.get("baseline_label"),
            info.get("candidate_label"), info.get("baseline_qemu_version"),
            info.get("candidate_qemu_version"), p.get("threshold"), p.get("test"),
            p.get("correction"), comparison.exit_code))
        db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [
            (night, r.config, metric, _num(r.mean_base), int(r.n_base), _num(r.cv_base),
             _num(r.mean_cand), int(r.n_cand), _num(r.cv_cand), _num(r.ratio),
             *((None, None) if getattr(r, "ci_rays", False) else (_num(r.ci_low), _num(r.ci_high))), _num(r.p_adj), r.verdict, info.get("baseline_qemu_version"),
             info.get("candidate_qemu_version"), info.get("host"), stamp)
            for r in comparison.rows.itertuples()])


def nights(db: sqlite3.Connection) -> pd.DataFrame:
    """One row per night, oldest first, with its verdict counts."""
    return pd.read_sql_query("""
        SELECT n.night, n.finished, n.host, n.baseline_label, n.candidate_label,
               n.candidate_qemu_version, n.exit_code,
               SUM(r.verdict = 'regression') AS regressions,
               SUM(r.verdict = 'improvement') AS improvements,
               SUM(r.verdict = 'no change') AS no_change,
               SUM(r.verdict = 'inconclusive') AS inconclusive
        FROM nights n LEFT JOIN results r ON r.night = n.night
        GROUP BY n.night ORDER BY n.night""", db)


def results(db: sqlite3.Connection, metric: str = "iops") -> pd.DataFrame:
    return pd.read_sql_query("SELECT * FROM results WHERE metric = ? ORDER BY config, night",
                             db, params=(metric,))


def variance_prior(db: sqlite3.Connection, metric: str = "iops") -> tuple[float, float] | None:
    """(d0, s0^2) of the moderated t from the stored nights: every night x configuration's
    pooled relative variance (CV^2 of both sides) on nA + nB - 2 degrees of freedom. None
    with fewer than 3 usable rows. The CV of a mean is close to the SD of its log, the
    scale the moderated t works on."""
    from perfsuite.analysis.moderated import prior

    r = results(db, metric)
    r = r[r["base_spread"].notna() & r["cand_spread"].notna() & (r["base_n"] >= 2) & (r["cand_n"] >= 2)]
    if len(r) < 3:
        return None
    nb, nc = r["base_n"].to_numpy(float), r["cand_n"].to_numpy(float)
    df = nb + nc - 2
    var = ((nb - 1) * r["base_spread"].to_numpy(float) ** 2 + (nc - 1) * r["cand_spread"].to_numpy(float) ** 2) / df
    d0, s02 = prior(var, df)
    return (d0, s02) if d0 > 0 and np.isfinite(s02) else None


# ---------------------------------------------------------------- change points
# perfsuite.nightly.changepoints (several per series, AR(1)-robust, BH over configurations).
from perfsuite.nightly.changepoints import change_point, detect, new_changes  # noqa: E402,F401
