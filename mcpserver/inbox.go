package mcpserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh-go/peer"
)

// Message is a received direct message, decrypted.
type Message struct {
	ID              string    `json:"id"`
	FromID          string    `json:"fromId"`
	FromName        string    `json:"fromName"`
	FromPubkey      string    `json:"fromPubkey"`
	Priority        string    `json:"priority"`
	ClientMessageID string    `json:"clientMessageId,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
	Text            string    `json:"text"`
	Undecryptable   bool      `json:"undecryptable,omitempty"`
}

// doneKept bounds the ids remembered as reported: enough to recognise the
// re-pushes of a lost ack, which come on the next connection.
const doneKept = 1000

// inbox holds the direct messages received but not yet reported to the
// session, in a spool file (0600) so that a restart of the MCP server
// loses nothing: the broker's row is acked only once a message has been
// reported (check_messages returned it, or its channel notification was
// written). Ids reported are remembered so a re-push is acked, not shown
// twice.
type inbox struct {
	path string

	mu           sync.Mutex
	pending      []Message
	done         []string
	doneSet      map[string]bool
	lastTopicSeq int64 // the last topic message pushed by channel
}

type spoolFile struct {
	Pending  []Message `json:"pending"`
	Done     []string  `json:"done"`
	TopicSeq int64     `json:"topicSeq,omitempty"`
}

// openInbox loads the spool at path (missing: empty).
func openInbox(path string) (*inbox, error) {
	ib := &inbox{path: path, doneSet: map[string]bool{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ib, nil
	}
	if err != nil {
		return nil, err
	}
	var sf spoolFile
	if err := json.Unmarshal(b, &sf); err != nil {
		// A damaged spool holds nothing acked: the broker re-pushes those rows.
		return ib, nil //nolint:nilerr // starting empty is the recovery

	}
	ib.pending, ib.lastTopicSeq = sf.Pending, sf.TopicSeq
	for _, id := range sf.Done {
		ib.markDone(id)
	}
	return ib, nil
}

// add decrypts a push and keeps it. fresh is false for a message already
// pending (not to be reported twice) or already reported (done: ack it
// again, the earlier ack was lost).
func (ib *inbox) add(d peer.Direct) (m Message, fresh, done bool, err error) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if ib.doneSet[d.ID] {
		return m, false, true, nil
	}
	for _, p := range ib.pending {
		if p.ID == d.ID {
			return p, false, false, nil
		}
	}
	m = Message{ID: d.ID, Priority: d.Priority, CreatedAt: d.CreatedAt, FromID: d.From.ID, FromName: d.From.DisplayName,
		FromPubkey: d.From.Pubkey, Text: d.Text, Undecryptable: d.Undecryptable}
	if d.ClientMessageID != nil {
		m.ClientMessageID = *d.ClientMessageID
	}
	ib.pending = append(ib.pending, m)
	if err := ib.save(); err != nil {
		ib.pending = ib.pending[:len(ib.pending)-1]
		return m, false, false, err
	}
	return m, true, false, nil
}

// take removes every pending message (or only those with the given ids,
// when ids is not nil), records them as reported, and returns them. The
// caller acks them after this returns: the spool says they were reported.
func (ib *inbox) take(ids map[string]bool) ([]Message, error) {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	var out, keep []Message
	for _, m := range ib.pending {
		if ids == nil || ids[m.ID] {
			out = append(out, m)
		} else {
			keep = append(keep, m)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	oldPending, oldDone := ib.pending, ib.done
	ib.pending = keep
	for _, m := range out {
		ib.markDone(m.ID)
	}
	if err := ib.save(); err != nil {
		ib.pending, ib.done = oldPending, oldDone
		ib.doneSet = map[string]bool{}
		for _, id := range oldDone {
			ib.doneSet[id] = true
		}
		return nil, err
	}
	return out, nil
}

// peek returns the pending messages without taking them.
func (ib *inbox) peek() []Message {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return append([]Message(nil), ib.pending...)
}

// reported lists the remembered reported ids (to ack again on connect: an
// ack sent just before a restart may never have reached the broker).
func (ib *inbox) reported() []string {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return append([]string(nil), ib.done...)
}

// topicSeq is the seq the topic feed resumes after.
func (ib *inbox) topicSeq() int64 {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return ib.lastTopicSeq
}

// setTopicSeq records a topic message as pushed (seqs only grow).
func (ib *inbox) setTopicSeq(seq int64) error {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if seq <= ib.lastTopicSeq {
		return nil
	}
	ib.lastTopicSeq = seq
	return ib.save()
}

func (ib *inbox) markDone(id string) {
	if ib.doneSet[id] {
		return
	}
	ib.done = append(ib.done, id)
	ib.doneSet[id] = true
	if len(ib.done) > doneKept {
		delete(ib.doneSet, ib.done[0])
		ib.done = ib.done[1:]
	}
}

// save writes the spool atomically, 0600 (it holds plaintext).
func (ib *inbox) save() error {
	b, err := json.Marshal(spoolFile{Pending: ib.pending, Done: ib.done, TopicSeq: ib.lastTopicSeq})
	if err != nil {
		return err
	}
	dir := filepath.Dir(ib.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := peer.WriteFileAtomic(ib.path, b); err != nil {
		return fmt.Errorf("write the message spool: %w", err)
	}
	return nil
}

// pruneSpools removes other sessions' spool files untouched for longer
// than the broker keeps unacked messages (7 days): what they still hold
// was never acked, so the broker re-delivered or expired it.
func pruneSpools(dir string, now time.Time) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && now.Sub(fi.ModTime()) > 8*24*time.Hour {
			_ = os.Remove(f)
		}
	}
}

// spoolPath is the spool of one session of one mesh in the config dir.
func spoolPath(h peer.Home, meshID, sessionID string) string {
	return filepath.Join(h.Dir, "spool", meshID+"-"+sessionID+".json")
}
