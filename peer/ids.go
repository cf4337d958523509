package peer

import (
	"crypto/rand"
	"encoding/hex"
)

// NewClientID is the idempotency key of one post or send: prefix (which
// front end made it) and 96 random bits.
func NewClientID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// NewSessionID makes a random /ws session id with a readable prefix.
func NewSessionID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
