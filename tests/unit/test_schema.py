"""common/schema.py and the three stores' migrations: files of the first, unversioned schema
(tests/fixtures/schema0, made by the release before versions) open and migrate; a file of a
newer schema, or another store's file, is refused with one line and left as it was."""

import shutil
import sqlite3
from pathlib import Path

import pytest

from common import schema
from common.schema import Schema, SchemaError
from services.executor.schema import EXECUTOR
from services.executor.store import ExecutionStore
from services.raft import fsm as fsm_module
from services.raft.fsm import StateMachine
from services.raft.log_schema import RAFT_LOG
from services.raft.snapshots import StateFiles
from services.raft.state_schema import STATE
from services.raft.store import LogStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "schema0"


def fixture(tmp_path, name, as_name=None):
    """A copy of a committed fixture: the copy migrates, the fixture never changes."""
    dest = tmp_path / (as_name or name)
    shutil.copyfile(FIXTURES / name, dest)
    return str(dest)


def header(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0], conn.execute("PRAGMA application_id").fetchone()[0]
    finally:
        conn.close()


def set_version(path, version):
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


# -- the runner ---------------------------------------------------------------------------


def test_a_new_file_gets_every_migration_in_order_and_logs_each(tmp_path, caplog):
    ran = []
    steps = (lambda db: ran.append(1), lambda db: ran.append(2))
    conn = sqlite3.connect(str(tmp_path / "x.db"), isolation_level=None)
    caplog.set_level("INFO", logger="common.schema")
    assert schema.migrate(conn, "x.db", Schema("test", 0x7465, steps)) == 0
    assert ran == [1, 2]
    assert [r.getMessage().split(" step=")[0] for r in caplog.records] == [
        "migrated file=x.db store=test version=1", "migrated file=x.db store=test version=2"]
    assert schema.migrate(conn, "x.db", Schema("test", 0x7465, steps)) == 2  # nothing left to run
    assert ran == [1, 2]


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path):
    path = str(tmp_path / "x.db")
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path, Schema("test", 0x7465, (lambda db: db.execute("CREATE TABLE t (a)"),)))
    conn.execute("INSERT INTO t VALUES (1)")

    def broken(db):
        db.execute("ALTER TABLE t ADD COLUMN b")
        raise RuntimeError("half way")

    with pytest.raises(RuntimeError):
        schema.migrate(conn, path, Schema("test", 0x7465, (lambda db: None, broken)))
    assert header(path) == (1, 0x7465)
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["a"]


# -- today's files, from the release before versions --------------------------------------


def test_state_db_of_the_first_schema_migrates_with_its_data(tmp_path):
    path = fixture(tmp_path, "state.db")
    sm = StateMachine(path)
    try:
        assert header(path) == (STATE.version, STATE.application_id)
        assert sorted(j["name"] for j in sm.jobs()) == ["child", "failing", "parent"]
        assert sm.job("child")["parent_job"] == "parent" and sm.job("parent")["dependent_jobs"] == ["child"]
        assert sm.settings()["default_timezone"] == "UTC"
        assert len(sm.executions("parent")) > 5 and sm.applied > 40
        assert sm.server_protocols() == {"s1": [1, 1]}  # registered before versions: protocol 1 only
        applied = sm.applied
        result = sm.apply([(applied + 1, 9, {"op": "server.register", "args": {
            "name": "s1", "addrs": {"raft": "tcp://127.0.0.1:1"}, "store": "x", "protocol": [1, 2]}})])
        assert result == [{"name": "s1"}] and sm.server_protocols() == {"s1": [1, 2]}
    finally:
        sm.close()
    again = StateMachine(path)  # a second open has nothing to run
    try:
        assert again.server_protocols() == {"s1": [1, 2]}
    finally:
        again.close()


def test_raft_log_of_the_first_schema_migrates_with_its_entries(tmp_path):
    path = fixture(tmp_path, "raft-log.db")
    before = sqlite3.connect(path).execute("SELECT store_id FROM store").fetchone()[0]
    store = LogStore(path)
    try:
        assert header(path) == (RAFT_LOG.version, RAFT_LOG.application_id)
        hard_state, snapshot, entries = store.load()
        assert snapshot.index == 40 and entries[0].index == 41 and len(entries) >= 30
        assert hard_state[0] >= 1 and hard_state[2] >= entries[-1].index - 1
        assert store.store_id == before  # the same Raft storage: the leader must not think it wiped
    finally:
        store.close()


def test_executor_db_of_the_first_schema_migrates_with_its_runs(tmp_path):
    path = fixture(tmp_path, "executor.db")
    store = ExecutionStore(path)
    try:
        assert header(path) == (EXECUTOR.version, EXECUTOR.application_id)
        assert len(store.started_ids()) == 32
        some = next(iter(store.started_ids()))
        assert store.record(some)["id"] == some and store.output(some) is not None
    finally:
        store.close()


def test_a_snapshot_of_the_first_schema_installs_and_migrates(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    files = StateFiles(str(data))
    incoming = fixture(tmp_path, "snapshot-state-40.db", "incoming.db")
    assert schema.check_file(incoming, STATE) == 0
    files.install(incoming, 40, close_state=lambda: None)
    sm = StateMachine(files.state_path)
    try:
        assert sm.applied == 40 and header(files.state_path)[0] == STATE.version
        assert sorted(j["name"] for j in sm.jobs()) == ["child", "failing", "parent"]
    finally:
        sm.close()


def test_a_fresh_state_db_has_the_columns_of_the_models(tmp_path):
    """The migrations and the peewee models describe one schema: a column added to a model
    without its migration (or the reverse) fails here, not on a replica."""
    sm = StateMachine(str(tmp_path / "state.db"))
    try:
        for model in fsm_module.MODELS:
            table = model._meta.table_name
            columns = {r[1] for r in sm.db.execute_sql(f'PRAGMA table_info("{table}")')}
            assert columns == {f.column_name for f in model._meta.sorted_fields}, table
    finally:
        sm.close()


# -- files this code must not open --------------------------------------------------------


@pytest.mark.parametrize("name, opener, store", [
    ("state.db", StateMachine, STATE), ("raft-log.db", LogStore, RAFT_LOG), ("executor.db", ExecutionStore, EXECUTOR)])
def test_a_file_of_a_newer_schema_is_refused_with_one_line_and_kept(tmp_path, name, opener, store):
    path = fixture(tmp_path, name)
    opener(path).close()
    set_version(path, store.version + 1)
    size = Path(path).stat().st_size
    with pytest.raises(SchemaError) as err:
        opener(path)
    message = str(err.value)
    assert "\n" not in message and path in message
    assert f"schema version {store.version + 1} is newer than this pykron's {store.version}" in message
    assert header(path) == (store.version + 1, store.application_id) and Path(path).stat().st_size == size


def test_another_stores_file_is_refused(tmp_path):
    path = fixture(tmp_path, "executor.db")
    ExecutionStore(path).close()
    with pytest.raises(SchemaError) as err:
        StateMachine(path)
    assert "not a pykron state file" in str(err.value)


def test_a_snapshot_of_a_newer_schema_is_refused_before_it_is_installed(tmp_path):
    path = fixture(tmp_path, "snapshot-state-40.db", "incoming.db")
    set_version(path, STATE.version + 1)
    with pytest.raises(SchemaError, match="newer than this pykron"):
        schema.check_file(path, STATE)
    (tmp_path / "garbage.db").write_bytes(b"not sqlite" * 20)
    with pytest.raises(SchemaError, match="not an SQLite file"):
        schema.check_file(str(tmp_path / "garbage.db"), STATE)
