-- +goose Up
-- Peer delivery (ws/): what the direct-message queue and presence need
-- beyond the initial schema.

-- A queued row remembers the sender's pubkey at send time (the box was made
-- with it), its decoded size (limits and audit without re-decoding), which
-- connection claimed it (a claim by a connection that is no longer live is
-- void, so the row is delivered again) and when it expired.
ALTER TABLE message_queue ADD COLUMN sender_pubkey text NOT NULL DEFAULT '';
ALTER TABLE message_queue ADD COLUMN bytes integer NOT NULL DEFAULT 0;
ALTER TABLE message_queue ADD COLUMN claim_conn text;
ALTER TABLE message_queue ADD COLUMN expired_at timestamptz;
CREATE INDEX message_queue_inbox_idx ON message_queue (recipient_member_id, id) WHERE acked_at IS NULL AND expired_at IS NULL;
CREATE INDEX message_queue_outbox_idx ON message_queue (sender_member_id) WHERE acked_at IS NULL AND expired_at IS NULL;
CREATE INDEX message_queue_expiry_idx ON message_queue (expires_at) WHERE acked_at IS NULL AND expired_at IS NULL;

-- The connection currently serving a session; claims are tied to it.
ALTER TABLE presence ADD COLUMN conn_id text NOT NULL DEFAULT '';
CREATE INDEX presence_conn_idx ON presence (conn_id);
-- The sweeper's three questions, each answered from a small partial index:
-- who is stuck in working, whose broker stopped heartbeating, what to forget.
CREATE INDEX presence_working_idx ON presence (status_at) WHERE status = 'working' AND disconnected_at IS NULL;
CREATE INDEX presence_seen_idx ON presence (last_seen_at) WHERE disconnected_at IS NULL;
CREATE INDEX presence_gone_idx ON presence (disconnected_at) WHERE disconnected_at IS NOT NULL;

-- Hook signals that arrived before their session said hello, kept briefly
-- in the database so the hello may land on any broker.
CREATE TABLE status_signals (
    id          text PRIMARY KEY,
    mesh_id     text NOT NULL REFERENCES meshes (id),
    member_id   text NOT NULL REFERENCES members (id),
    pid         integer NOT NULL,
    cwd         text NOT NULL,
    status      text NOT NULL CHECK (status IN ('idle', 'working', 'dnd')),
    summary     text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL
);
CREATE INDEX status_signals_member_idx ON status_signals (member_id, cwd);
CREATE INDEX status_signals_received_idx ON status_signals (received_at);

-- +goose Down
DROP TABLE status_signals;
DROP INDEX presence_gone_idx;
DROP INDEX presence_seen_idx;
DROP INDEX presence_working_idx;
DROP INDEX presence_conn_idx;
ALTER TABLE presence DROP COLUMN conn_id;
DROP INDEX message_queue_expiry_idx;
DROP INDEX message_queue_outbox_idx;
DROP INDEX message_queue_inbox_idx;
ALTER TABLE message_queue DROP COLUMN expired_at;
ALTER TABLE message_queue DROP COLUMN claim_conn;
ALTER TABLE message_queue DROP COLUMN bytes;
ALTER TABLE message_queue DROP COLUMN sender_pubkey;
