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

MIGRATIONS.append(
    # 3: the reactor: what caused each job, every decision, every action, dead letters, state
    """
    ALTER TABLE jobs ADD COLUMN causation TEXT;
    ALTER TABLE jobs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_causation ON jobs (causation) WHERE causation IS NOT NULL;
    CREATE TABLE decisions (
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        fired INTEGER NOT NULL,
        reason TEXT,
        time REAL NOT NULL,
        replay TEXT
    );
    CREATE INDEX decisions_event ON decisions (event_id);
    CREATE TABLE actions (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        error TEXT,
        result TEXT,
        jid TEXT,
        params TEXT,
        replay TEXT
    );
    CREATE INDEX actions_event ON actions (event_id);
    CREATE TABLE deadletters (
        id TEXT PRIMARY KEY,
        action_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        params TEXT NOT NULL,
        timeout REAL NOT NULL,
        retry TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        updated REAL NOT NULL
    );
    CREATE TABLE state (
        source TEXT NOT NULL,
        tag TEXT NOT NULL,
        event_id TEXT NOT NULL,
        time REAL NOT NULL,
        received REAL NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (source, tag)
    );
    CREATE TABLE rule_state (
        rule TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (rule, key, kind)
    );
    """
)

MIGRATIONS.append(
    # 4: find the event before another of the same source and tag (explain, state --at)
    """
    CREATE INDEX events_source_tag ON events (source, tag, id);
    """
)

MIGRATIONS.append(
    # 5: events keyed by their (time-ordered) id, without a rowid; the reactor's decisions are
    # written on the event row in the same insert; (source, epoch, seq) is deduplicated before
    # it reaches the table
    """
    CREATE TABLE events_new (
        id TEXT PRIMARY KEY,
        tag TEXT NOT NULL,
        source TEXT NOT NULL,
        time REAL NOT NULL,
        received REAL NOT NULL,
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        causation TEXT,
        depth INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL,
        decisions BLOB
    ) WITHOUT ROWID;
    INSERT INTO events_new (id, tag, source, time, received, epoch, seq, causation, depth, data)
        SELECT id, tag, source, time, received, epoch, seq, causation, depth, data FROM events;
    DROP TABLE events;
    ALTER TABLE events_new RENAME TO events;
    CREATE INDEX events_received ON events (received);
    CREATE INDEX events_causation ON events (causation) WHERE causation IS NOT NULL;
    CREATE INDEX events_source_tag ON events (source, tag, id)
    """
)

MIGRATIONS.append(
    # 6: fewer indexes on the hot insert path: ids are made when events arrive, so time ranges
    # are id ranges; looking back for one source and tag (explain, state --at) scans by id
    """
    DROP INDEX IF EXISTS events_received;
    DROP INDEX IF EXISTS events_source_tag
    """
)

MIGRATIONS.append(
    # 7: the action outbox: an action row is written with the event that decided it and carries
    # its idempotency key; the event a `fire` action made and the jobs a `run` action started
    # name that action, so that an action resumed after a crash can tell whether it already ran
    # (the event is found through its causation, already indexed: no index on the hot insert)
    """
    ALTER TABLE actions ADD COLUMN key TEXT;
    CREATE INDEX actions_open ON actions (status) WHERE status IN ('pending', 'running', 'failed');
    ALTER TABLE events ADD COLUMN action TEXT;
    ALTER TABLE jobs ADD COLUMN action TEXT;
    CREATE INDEX jobs_action ON jobs (action) WHERE action IS NOT NULL
    """
)

MIGRATIONS.append(
    # 8: webhook deliveries already logged, by the dedupe key their sender gave (CloudEvents
    # id + source, GitHub delivery, Alertmanager fingerprint + status + startsAt): a retried
    # request is answered with the events of the first and logged once; and batched jobs: a
    # job's batch plan and, once it has ended, its summary (JSON)
    """
    CREATE TABLE webhook_deliveries (
        endpoint TEXT NOT NULL,
        key TEXT NOT NULL,
        ids TEXT NOT NULL,
        received REAL NOT NULL,
        PRIMARY KEY (endpoint, key)
    ) WITHOUT ROWID;
    CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received);
    ALTER TABLE jobs ADD COLUMN batch TEXT;
    ALTER TABLE jobs ADD COLUMN summary TEXT
    """
)

MIGRATIONS.append(
    # 9: cluster mode: how far this master has applied each of the engine's streams, written
    # in the transaction of what it applied (a restart follows on from the next sequence)
    """
    CREATE TABLE cluster_applied (
        stream TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID
    """
)

MIGRATIONS.append(
    # 10: API tokens (the HTTP API and dashboard): only a hash of each token is kept; a token
    # names its row by its public id, and is checked against the hash in constant time
    """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        hash TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL,
        revoked REAL,
        last_used REAL
    ) WITHOUT ROWID
    """
)

MIGRATIONS.append(
    # 11: what a rule over several events matched, by name, for its actions' ``events.NAME``
    # (JSON: name -> event id, or the whole event when it was made by the rule: a fleet's
    # summary); read again when the master resumes the action after a stop
    """
    ALTER TABLE actions ADD COLUMN context TEXT
    """
)
