package models

// DefaultMaxMessageBytes is MAX_MESSAGE_BYTES' default: the largest decoded
// ciphertext the broker stores. Every package takes it from here.
const DefaultMaxMessageBytes = 65536

// RequestBytesFor is how large a request body or WebSocket frame must be
// allowed to grow to carry the largest message: its ciphertext in base64
// (4/3 of the bytes) plus 16 KiB for the JSON around it (ids, nonce,
// mentions, a broadcast's envelope list).
func RequestBytesFor(maxMessageBytes int) int64 {
	return int64(maxMessageBytes)*4/3 + 16<<10
}
