"""The master database schema, as an ordered list of migrations (never edit a shipped one)."""

MIGRATIONS = [
    # 1: minion registry, jobs and returns
    """
    CREATE TABLE minions (
        id TEXT PRIMARY KEY,
        grains TEXT NOT NULL DEFAULT '{}',
        version TEXT NOT NULL DEFAULT '',
        functions TEXT NOT NULL DEFAULT '[]',
        presence TEXT NOT NULL DEFAULT 'down',
        last_seen REAL NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE jobs (
        jid TEXT PRIMARY KEY,
        fun TEXT NOT NULL,
        args TEXT NOT NULL,
        kwargs TEXT NOT NULL,
        target TEXT NOT NULL,
        target_type TEXT NOT NULL,
        minions TEXT NOT NULL,
        created REAL NOT NULL,
        timeout REAL NOT NULL,
        origin TEXT NOT NULL DEFAULT 'cli'
    );
    CREATE TABLE returns (
        jid TEXT NOT NULL,
        id TEXT NOT NULL,
        success INTEGER NOT NULL,
        retcode INTEGER NOT NULL,
        ret TEXT,
        error TEXT,
        started REAL NOT NULL DEFAULT 0,
        finished REAL NOT NULL DEFAULT 0,
        received REAL NOT NULL,
        PRIMARY KEY (jid, id)
    );
    """,
]

MIGRATIONS.append(
    # 2: the event log, and how far each (source, epoch) was delivered
    """
    CREATE TABLE events (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tag TEXT NOT NULL,
        source TEXT NOT NULL,
        time REAL NOT NULL,
        received REAL NOT NULL,
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        causation TEXT,
        depth INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL,
        UNIQUE (source, epoch, seq)
    );
    CREATE INDEX events_received ON events (received);
    CREATE INDEX events_causation ON events (causation) WHERE causation IS NOT NULL;
    CREATE TABLE delivery (
        source TEXT NOT NULL,
        epoch TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (source, epoch)
    );
    """
)
