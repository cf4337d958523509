-- +goose Up
-- Mesh administration (issue #12): topic key epochs.

-- A topic's key epoch: 0 = never keyed; claim-key starts epoch 1; removing
-- or revoking a member of a keyed topic (or an admin's rotate-key) moves to
-- the next epoch, whose key is unclaimed (encrypted_key_pubkey NULL) until a
-- remaining member claims it.
ALTER TABLE topics ADD COLUMN key_epoch integer NOT NULL DEFAULT 0;
UPDATE topics SET key_epoch = 1 WHERE encrypted_key_pubkey IS NOT NULL;

-- Every message names the epoch whose key encrypted it (0 = no topic key).
ALTER TABLE messages ADD COLUMN key_epoch integer NOT NULL DEFAULT 0;
UPDATE messages SET key_epoch = 1
 WHERE body_version = 2 AND topic_id IN (SELECT id FROM topics WHERE key_epoch = 1);

-- Seals are per epoch: one valid seal per (topic, member, epoch, pubkey).
ALTER TABLE topic_member_keys ADD COLUMN epoch integer NOT NULL DEFAULT 1;
DROP INDEX topic_member_keys_seal_key;
CREATE UNIQUE INDEX topic_member_keys_seal_key ON topic_member_keys (topic_id, member_id, epoch, sealed_for_pubkey);

-- Invites keep the token's first characters so admins can tell them apart
-- in a list; the token itself is still stored only as its SHA-256.
ALTER TABLE invites ADD COLUMN token_prefix text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE invites DROP COLUMN token_prefix;
DROP INDEX topic_member_keys_seal_key;
CREATE UNIQUE INDEX topic_member_keys_seal_key ON topic_member_keys (topic_id, member_id, sealed_for_pubkey);
ALTER TABLE topic_member_keys DROP COLUMN epoch;
ALTER TABLE messages DROP COLUMN key_epoch;
ALTER TABLE topics DROP COLUMN key_epoch;
