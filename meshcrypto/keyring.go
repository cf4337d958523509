package meshcrypto

import (
	"errors"
	"fmt"
	"sync"
)

// ErrNoEpochKey is returned by KeyRing.Decrypt for a message whose key
// epoch the ring holds no key of: a member removed from a topic keeps the
// keys of the epochs it was in, and only those.
var ErrNoEpochKey = errors.New("meshcrypto: no topic key for this key epoch")

// KeyRing holds one topic's keys by key epoch. The broker starts a new
// epoch (with a fresh key, claimed by a remaining member) whenever someone
// leaves a keyed topic, and every message names the epoch that encrypted
// it, so a client keeps every key it has opened and picks by epoch: old
// history still opens, and a removed member's ring never gains the keys of
// epochs after its removal. Safe for concurrent use.
type KeyRing struct {
	mu   sync.RWMutex
	keys map[int][TopicKeySize]byte
}

// NewKeyRing returns an empty ring.
func NewKeyRing() *KeyRing { return &KeyRing{keys: map[int][TopicKeySize]byte{}} }

// Add stores the key of an epoch (epochs start at 1).
func (r *KeyRing) Add(epoch int, key [TopicKeySize]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[epoch] = key
}

// AddSealed opens a sealed topic key (GET /v1/topics/{name}/key, whose
// answer carries keyEpoch) with the member's identity and stores it.
func (r *KeyRing) AddSealed(epoch int, encryptedKeyB64, nonceB64 string, recipient Identity) error {
	key, err := OpenTopicKey(encryptedKeyB64, nonceB64, recipient)
	if err != nil {
		return fmt.Errorf("open the key of epoch %d: %w", epoch, err)
	}
	r.Add(epoch, key)
	return nil
}

// Key returns the key of an epoch, if the ring holds it.
func (r *KeyRing) Key(epoch int) ([TopicKeySize]byte, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.keys[epoch]
	return k, ok
}

// Epochs reports how many epochs the ring holds keys of.
func (r *KeyRing) Epochs() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.keys)
}

// Encrypt encrypts a v2 body with the key of an epoch; the post must name
// that epoch as keyEpoch.
func (r *KeyRing) Encrypt(epoch int, plaintext []byte) (ciphertextB64, nonceB64 string, err error) {
	k, ok := r.Key(epoch)
	if !ok {
		return "", "", fmt.Errorf("%w (epoch %d)", ErrNoEpochKey, epoch)
	}
	return EncryptV2(k, plaintext)
}

// Decrypt opens a v2 message row with the key of the epoch it names.
func (r *KeyRing) Decrypt(epoch int, ciphertextB64, nonceB64 string) ([]byte, error) {
	k, ok := r.Key(epoch)
	if !ok {
		return nil, fmt.Errorf("%w (epoch %d)", ErrNoEpochKey, epoch)
	}
	return DecryptV2(k, ciphertextB64, nonceB64)
}
