package models

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
)

// NewID returns a UUIDv7 (time-ordered, random bits from crypto/rand).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// uuid.NewV7 only fails when crypto/rand fails, which the runtime
		// treats as fatal anyway.
		panic(fmt.Sprintf("uuidv7: %v", err))
	}
	return id.String()
}

// randomToken returns prefix + base64url(32 random bytes).
func randomToken(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// hashSecret is how secrets rest in the database: hex SHA-256. The secrets
// are 256-bit random, so a fast hash is enough; passwords use argon2id.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ValidID reports whether s looks like one of our ids, so malformed path
// parameters are 404s without a query.
func ValidID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}
