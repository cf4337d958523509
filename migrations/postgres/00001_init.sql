-- +goose Up
-- The whole schema of SPEC.md §4. ids are UUIDv7 text made by the broker;
-- times are timestamptz in UTC, written by the broker at microsecond precision.

CREATE TABLE broker_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            text PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE refresh_tokens (
    id             text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES users (id),
    family_id      text NOT NULL,
    token_hash     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    revoked_at     timestamptz,
    replaced_by_id text
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE meshes (
    id             text PRIMARY KEY,
    slug           text NOT NULL,
    name           text NOT NULL,
    owner_user_id  text NOT NULL REFERENCES users (id),
    last_seq       bigint NOT NULL DEFAULT 0,
    last_audit_seq bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    archived_at    timestamptz
);
CREATE UNIQUE INDEX meshes_owner_slug_key ON meshes (owner_user_id, slug);

CREATE TABLE members (
    id                text PRIMARY KEY,
    mesh_id           text NOT NULL REFERENCES meshes (id),
    peer_pubkey       text NOT NULL CHECK (peer_pubkey ~ '^[0-9a-f]{64}$'),
    display_name      text NOT NULL,
    role              text NOT NULL CHECK (role IN ('admin', 'member')),
    user_id           text REFERENCES users (id),
    dashboard_user_id text REFERENCES users (id),
    joined_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);
-- Names and keys are unique among the live members of a mesh; a revoked
-- member's name and key may be taken again.
CREATE UNIQUE INDEX members_mesh_name_key ON members (mesh_id, display_name) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX members_mesh_pubkey_key ON members (mesh_id, peer_pubkey) WHERE revoked_at IS NULL;
CREATE INDEX members_dashboard_user_idx ON members (dashboard_user_id) WHERE dashboard_user_id IS NOT NULL;
CREATE INDEX members_user_idx ON members (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE invites (
    id                   text PRIMARY KEY,
    mesh_id              text NOT NULL REFERENCES meshes (id),
    token_hash           text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('admin', 'member')),
    max_uses             integer NOT NULL CHECK (max_uses > 0),
    uses                 integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    expires_at           timestamptz NOT NULL,
    created_by_member_id text REFERENCES members (id),
    created_by_user_id   text REFERENCES users (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    revoked_at           timestamptz
);
CREATE UNIQUE INDEX invites_token_hash_key ON invites (token_hash);
CREATE INDEX invites_mesh_idx ON invites (mesh_id);

CREATE TABLE api_keys (
    id                  text PRIMARY KEY,
    mesh_id             text NOT NULL REFERENCES meshes (id),
    issued_by_member_id text NOT NULL REFERENCES members (id),
    name                text NOT NULL DEFAULT '',
    prefix              text NOT NULL,
    key_hash            text NOT NULL,
    capabilities        text NOT NULL,
    topic_scopes        text,
    expires_at          timestamptz,
    revoked_at          timestamptz,
    last_used_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_prefix_idx ON api_keys (prefix);
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_member_idx ON api_keys (issued_by_member_id);

CREATE TABLE topics (
    id                   text PRIMARY KEY,
    mesh_id              text NOT NULL REFERENCES meshes (id),
    name                 text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,49}$'),
    description          text NOT NULL DEFAULT '',
    visibility           text NOT NULL CHECK (visibility IN ('public', 'private', 'dm')),
    encrypted_key_pubkey text,
    created_by_member_id text REFERENCES members (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    archived_at          timestamptz
);
CREATE UNIQUE INDEX topics_mesh_name_key ON topics (mesh_id, name);

CREATE TABLE topic_members (
    topic_id      text NOT NULL REFERENCES topics (id),
    member_id     text NOT NULL REFERENCES members (id),
    role          text NOT NULL CHECK (role IN ('lead', 'member', 'observer')),
    joined_at     timestamptz NOT NULL DEFAULT now(),
    last_read_seq bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, member_id)
);
CREATE INDEX topic_members_member_idx ON topic_members (member_id);

CREATE TABLE topic_member_keys (
    id                  text PRIMARY KEY,
    topic_id            text NOT NULL REFERENCES topics (id),
    member_id           text NOT NULL REFERENCES members (id),
    encrypted_key       text NOT NULL,
    nonce               text NOT NULL,
    sealed_for_pubkey   text NOT NULL,
    sealed_by_member_id text NOT NULL REFERENCES members (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    rotated_at          timestamptz
);
CREATE UNIQUE INDEX topic_member_keys_seal_key ON topic_member_keys (topic_id, member_id, sealed_for_pubkey);

CREATE TABLE messages (
    id                text PRIMARY KEY,
    mesh_id           text NOT NULL REFERENCES meshes (id),
    topic_id          text NOT NULL REFERENCES topics (id),
    seq               bigint NOT NULL,
    sender_member_id  text NOT NULL REFERENCES members (id),
    sender_pubkey     text NOT NULL,
    nonce             text NOT NULL,
    ciphertext        text NOT NULL,
    body_version      smallint NOT NULL CHECK (body_version IN (1, 2)),
    priority          text NOT NULL DEFAULT 'next' CHECK (priority IN ('now', 'next', 'low')),
    reply_to_id       text REFERENCES messages (id),
    client_message_id text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX messages_mesh_seq_key ON messages (mesh_id, seq);
CREATE INDEX messages_topic_seq_idx ON messages (topic_id, seq);
CREATE UNIQUE INDEX messages_sender_client_id_key ON messages (sender_member_id, client_message_id) WHERE client_message_id IS NOT NULL;

CREATE TABLE message_queue (
    id                  text PRIMARY KEY,
    mesh_id             text NOT NULL REFERENCES meshes (id),
    sender_member_id    text NOT NULL REFERENCES members (id),
    recipient_member_id text NOT NULL REFERENCES members (id),
    priority            text NOT NULL CHECK (priority IN ('now', 'next', 'low')),
    nonce               text NOT NULL,
    ciphertext          text NOT NULL,
    client_message_id   text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz,
    acked_at            timestamptz,
    expires_at          timestamptz NOT NULL,
    attempts            integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX message_queue_client_id_key ON message_queue (sender_member_id, recipient_member_id, client_message_id) WHERE client_message_id IS NOT NULL;
CREATE INDEX message_queue_pending_idx ON message_queue (recipient_member_id, created_at) WHERE acked_at IS NULL;

CREATE TABLE notifications (
    id                  text PRIMARY KEY,
    mesh_id             text NOT NULL REFERENCES meshes (id),
    topic_id            text NOT NULL REFERENCES topics (id),
    message_id          text NOT NULL REFERENCES messages (id),
    recipient_member_id text NOT NULL REFERENCES members (id),
    sender_member_id    text NOT NULL REFERENCES members (id),
    kind                text NOT NULL CHECK (kind IN ('mention')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    read_at             timestamptz
);
CREATE UNIQUE INDEX notifications_message_recipient_key ON notifications (message_id, recipient_member_id);
CREATE INDEX notifications_recipient_idx ON notifications (recipient_member_id, id);

CREATE TABLE presence (
    id              text PRIMARY KEY,
    mesh_id         text NOT NULL REFERENCES meshes (id),
    member_id       text NOT NULL REFERENCES members (id),
    session_id      text NOT NULL,
    node_id         text NOT NULL,
    pid             integer,
    cwd             text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('idle', 'working', 'dnd')),
    status_source   text NOT NULL CHECK (status_source IN ('hook', 'jsonl', 'manual')),
    status_at       timestamptz NOT NULL,
    summary         text NOT NULL DEFAULT '',
    connected_at    timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    disconnected_at timestamptz
);
CREATE UNIQUE INDEX presence_member_session_key ON presence (member_id, session_id);
CREATE INDEX presence_mesh_idx ON presence (mesh_id) WHERE disconnected_at IS NULL;

CREATE TABLE audit_events (
    id              text PRIMARY KEY,
    mesh_id         text NOT NULL REFERENCES meshes (id),
    seq             bigint NOT NULL,
    kind            text NOT NULL,
    actor_member_id text,
    target          text NOT NULL DEFAULT '',
    metadata        text NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    prev_hash       text NOT NULL,
    hash            text NOT NULL
);
CREATE UNIQUE INDEX audit_events_mesh_seq_key ON audit_events (mesh_id, seq);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE presence;
DROP TABLE notifications;
DROP TABLE message_queue;
DROP TABLE messages;
DROP TABLE topic_member_keys;
DROP TABLE topic_members;
DROP TABLE topics;
DROP TABLE api_keys;
DROP TABLE invites;
DROP TABLE members;
DROP TABLE meshes;
DROP TABLE refresh_tokens;
DROP TABLE users;
DROP TABLE broker_settings;
