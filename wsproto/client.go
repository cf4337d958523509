package wsproto

// Frames a client sends. Each has its own struct (clients encode with
// these); the broker decodes every one into ClientFrame, and a test keeps
// the two in step field by field.

// Request is a client frame that can be answered: the caller gives it a
// ref and waits for the frame quoting it.
type Request interface {
	GetRef() string
	SetRef(ref string)
}

// Hello proves the peer holds the member's identity key; it answers the
// challenge. MeshID … TS are signed (HelloBytes); Sig, Pid and Cwd are not.
type Hello struct {
	Type        string  `json:"type"`
	MeshID      string  `json:"meshId"`
	MemberID    string  `json:"memberId"`
	Pubkey      string  `json:"pubkey"` // the member's ed25519 key, 64 lowercase hex
	SessionID   string  `json:"sessionId"`
	DisplayName string  `json:"displayName,omitempty"` // optional; "" when absent
	TS          int64   `json:"ts"`                    // unix milliseconds
	Sig         string  `json:"sig"`
	Pid         *int    `json:"pid,omitempty"`
	Cwd         *string `json:"cwd,omitempty"`
}

// Send is a direct message (To a member id, pubkey or @name), a broadcast
// (To "*", one Envelope per peer) or a topic post (To "#name").
type Send struct {
	Type            string     `json:"type"`
	Ref             string     `json:"ref,omitempty"`
	To              string     `json:"to"`
	Priority        string     `json:"priority,omitempty"`
	Nonce           string     `json:"nonce,omitempty"`
	Ciphertext      string     `json:"ciphertext,omitempty"`
	ClientMessageID string     `json:"clientMessageId,omitempty"`
	BodyVersion     int        `json:"bodyVersion,omitempty"`
	KeyEpoch        int        `json:"keyEpoch,omitempty"`
	Mentions        []string   `json:"mentions,omitempty"`
	ReplyToID       string     `json:"replyToId,omitempty"`
	Envelopes       []Envelope `json:"envelopes,omitempty"`
}

// Envelope is one recipient's copy in a broadcast send.
type Envelope struct {
	To         string `json:"to"`
	Nonce      string `json:"nonce"`
	Ciphertext string `json:"ciphertext"`
}

// AckPushes acknowledges pushed direct messages by id (type "ack"); with a
// ref the broker answers with an Ack saying how many it recorded.
type AckPushes struct {
	Type string   `json:"type"`
	Ref  string   `json:"ref,omitempty"`
	IDs  []string `json:"ids"`
}

// SetStatus reports the session's status (and optionally its summary).
type SetStatus struct {
	Type    string  `json:"type"`
	Ref     string  `json:"ref,omitempty"`
	Status  string  `json:"status"`
	Summary *string `json:"summary,omitempty"`
	Source  string  `json:"source,omitempty"` // manual (default) or jsonl
}

// ListPeers asks for the mesh's connected sessions; the answer is Peers.
type ListPeers struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
}

// MessageStatusQuery asks where the sender's direct messages stand; the
// answer is MessageStatus.
type MessageStatusQuery struct {
	Type string   `json:"type"`
	Ref  string   `json:"ref,omitempty"`
	IDs  []string `json:"ids"`
}

// Subscribe starts the topic feed (every visible topic when Topics is
// empty), replaying from Since when given; the answer is Subscribed.
type Subscribe struct {
	Type   string   `json:"type"`
	Ref    string   `json:"ref,omitempty"`
	Topics []string `json:"topics,omitempty"`
	Since  *int64   `json:"since,omitempty"`
}

// Unsubscribe stops the topic feed; the answer is an Ack.
type Unsubscribe struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
}

func (f *Send) GetRef() string               { return f.Ref }
func (f *Send) SetRef(r string)              { f.Ref = r }
func (f *AckPushes) GetRef() string          { return f.Ref }
func (f *AckPushes) SetRef(r string)         { f.Ref = r }
func (f *SetStatus) GetRef() string          { return f.Ref }
func (f *SetStatus) SetRef(r string)         { f.Ref = r }
func (f *ListPeers) GetRef() string          { return f.Ref }
func (f *ListPeers) SetRef(r string)         { f.Ref = r }
func (f *MessageStatusQuery) GetRef() string { return f.Ref }
func (f *MessageStatusQuery) SetRef(r string) {
	f.Ref = r
}
func (f *Subscribe) GetRef() string    { return f.Ref }
func (f *Subscribe) SetRef(r string)   { f.Ref = r }
func (f *Unsubscribe) GetRef() string  { return f.Ref }
func (f *Unsubscribe) SetRef(r string) { f.Ref = r }

// ClientFrame is what the broker decodes any client frame into (it reads
// the type from the same bytes); Type says which fields apply. Every field
// of the structs above is here under the same JSON name and type, and
// nothing else (TestClientFrameCoversEveryClientFrame).
type ClientFrame struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`

	// hello
	MeshID      string  `json:"meshId,omitempty"`
	MemberID    string  `json:"memberId,omitempty"`
	Pubkey      string  `json:"pubkey,omitempty"`
	SessionID   string  `json:"sessionId,omitempty"`
	DisplayName string  `json:"displayName,omitempty"`
	TS          int64   `json:"ts,omitempty"`
	Sig         string  `json:"sig,omitempty"`
	Pid         *int    `json:"pid,omitempty"`
	Cwd         *string `json:"cwd,omitempty"`

	// send
	To              string     `json:"to,omitempty"`
	Priority        string     `json:"priority,omitempty"`
	Nonce           string     `json:"nonce,omitempty"`
	Ciphertext      string     `json:"ciphertext,omitempty"`
	ClientMessageID string     `json:"clientMessageId,omitempty"`
	BodyVersion     int        `json:"bodyVersion,omitempty"`
	KeyEpoch        int        `json:"keyEpoch,omitempty"`
	Mentions        []string   `json:"mentions,omitempty"`
	ReplyToID       string     `json:"replyToId,omitempty"`
	Envelopes       []Envelope `json:"envelopes,omitempty"`

	// ack, message_status
	IDs []string `json:"ids,omitempty"`

	// set_status
	Status  string  `json:"status,omitempty"`
	Summary *string `json:"summary,omitempty"`
	Source  string  `json:"source,omitempty"`

	// subscribe
	Topics []string `json:"topics,omitempty"`
	Since  *int64   `json:"since,omitempty"`
}

// Hello returns the hello fields of a decoded hello frame.
func (f *ClientFrame) Hello() Hello {
	return Hello{Type: f.Type, MeshID: f.MeshID, MemberID: f.MemberID, Pubkey: f.Pubkey, SessionID: f.SessionID,
		DisplayName: f.DisplayName, TS: f.TS, Sig: f.Sig, Pid: f.Pid, Cwd: f.Cwd}
}
