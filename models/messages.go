package models

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// Message priorities (SPEC §8 delivery gating).
const (
	PriorityNow  = "now"
	PriorityNext = "next"
	PriorityLow  = "low"
)

// Message bounds.
const (
	NonceBytes             = 24
	MaxMentions            = 16
	MaxNotificationsPerMsg = 32
	maxClientIDLen         = 128
)

// Message is one row of topic history. seq is mesh-wide: it comes from
// meshes.last_seq under the mesh row lock, so commit order is seq order.
type Message struct {
	ID              string `gorm:"primaryKey"`
	MeshID          string
	TopicID         string
	Seq             int64
	SenderMemberID  string
	SenderPubkey    string
	Nonce           string
	Ciphertext      string
	BodyVersion     int
	KeyEpoch        int // the topic key epoch that encrypted a v2 body; 0 for none
	Priority        string
	ReplyToID       *string
	ClientMessageID *string
	CreatedAt       time.Time
}

// MessageRow is a message with the names a reader needs.
type MessageRow struct {
	Message
	TopicName         string
	SenderDisplayName string
}

// PostInput is a message as a client submits it.
type PostInput struct {
	Topic           string
	Ciphertext      string
	Nonce           string
	BodyVersion     int
	KeyEpoch        int // the epoch of the key a v2 body was encrypted with; 0 = 1 (clients older than epochs)
	Priority        string
	Mentions        []string // explicit; nil means "extract from a v1 body"
	ReplyToID       string
	ClientMessageID string
}

// Posted is the outcome of a post.
type Posted struct {
	Row      MessageRow
	Replayed bool // the clientMessageId was seen before; Row is the original
	Notified int  // notifications created
}

var (
	clientIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// mentionRe is SPEC §6's regex without its lookahead: the name group is
	// greedy over the same class, so a match ends where the lookahead would
	// require, except for runs over 64 characters, which are dropped below.
	mentionRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])@([A-Za-z0-9_-]+)`)
)

// ExtractMentions applies SPEC §6's v1 mention rule to plaintext: at most
// MaxMentions unique, lower-cased names in order of appearance.
func ExtractMentions(text string) []string {
	var out []string
	for _, m := range mentionRe.FindAllStringSubmatch(text, -1) {
		name := strings.ToLower(m[1])
		if len(name) > 64 || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
		if len(out) == MaxMentions {
			break
		}
	}
	return out
}

// normalise validates a post without touching the database and resolves
// the mention list.
func (in *PostInput) normalise(maxBytes int) error {
	in.Topic = NormaliseTopicName(strings.TrimSpace(in.Topic))
	if in.Priority == "" {
		in.Priority = PriorityNext
	}
	var fe []FieldError
	if !topicNameRe.MatchString(in.Topic) {
		fe = append(fe, FieldError{"topic", "must be a topic name"})
	}
	if in.BodyVersion != 1 && in.BodyVersion != 2 {
		fe = append(fe, FieldError{"bodyVersion", "must be 1 or 2"})
	}
	var body []byte
	switch {
	case in.Ciphertext == "":
		fe = append(fe, FieldError{"ciphertext", "is required"})
	case base64.StdEncoding.DecodedLen(len(in.Ciphertext)) > maxBytes+3:
		return &Error{Kind: KindTooLarge, Code: "message_too_large", Detail: fmt.Sprintf("the ciphertext is over %d bytes", maxBytes)}
	default:
		var err error
		body, err = meshcrypto.DecodeBase64(in.Ciphertext)
		switch {
		case err != nil:
			fe = append(fe, FieldError{"ciphertext", "must be canonical standard base64"})
		case len(body) > maxBytes:
			return &Error{Kind: KindTooLarge, Code: "message_too_large", Detail: fmt.Sprintf("the ciphertext is over %d bytes", maxBytes)}
		}
	}
	if in.BodyVersion == 2 || in.Nonce != "" {
		if n, err := meshcrypto.DecodeBase64(in.Nonce); err != nil || len(n) != NonceBytes {
			fe = append(fe, FieldError{"nonce", "must be canonical standard base64 of exactly 24 bytes"})
		}
	}
	if in.KeyEpoch < 0 {
		fe = append(fe, FieldError{"keyEpoch", "must be zero or more"})
	}
	if in.Priority != PriorityNow && in.Priority != PriorityNext && in.Priority != PriorityLow {
		fe = append(fe, FieldError{"priority", "must be now, next or low"})
	}
	if in.ClientMessageID != "" && !clientIDRe.MatchString(in.ClientMessageID) {
		fe = append(fe, FieldError{"clientMessageId", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -"})
	}
	if in.ReplyToID != "" && !ValidID(in.ReplyToID) {
		fe = append(fe, FieldError{"replyToId", "must be a message id"})
	}
	if in.Mentions != nil {
		if len(in.Mentions) > MaxMentions {
			fe = append(fe, FieldError{"mentions", fmt.Sprintf("at most %d names", MaxMentions)})
		}
		var names []string
		for _, m := range in.Mentions {
			n := strings.ToLower(strings.TrimPrefix(m, "@"))
			if !displayNameRe.MatchString(n) {
				fe = append(fe, FieldError{"mentions", fmt.Sprintf("%q is not a display name", m)})
				continue
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		in.Mentions = names
	} else if in.BodyVersion == 1 && body != nil {
		// The server can read a v1 body (base64 of UTF-8); never a v2 one.
		in.Mentions = ExtractMentions(string(body))
	}
	if fe != nil {
		return Invalid(fe...)
	}
	return nil
}

// PostMessage validates a post and hands it to the mesh's group committer,
// which commits it together with whatever else is queued for the mesh.
func (s *Store) PostMessage(ctx context.Context, p *Principal, in PostInput) (*Posted, error) {
	if !p.Can(CapSend) {
		return nil, E(KindForbidden, "capability_required", "posting needs the \"send\" capability")
	}
	if err := in.normalise(s.maxMessageBytes); err != nil {
		return nil, err
	}
	req := &postReq{p: p, in: in, done: make(chan struct{})}
	s.commits.submit(p.MeshID, req)
	select {
	case <-req.done:
		return req.out, req.err
	case <-ctx.Done():
		// The post may still commit; a retry with the same clientMessageId
		// returns it instead of posting twice.
		return nil, ctx.Err()
	}
}

// errClientIDRace marks a clientMessageId inserted concurrently by another
// transaction (another node); the batch is retried and then finds the
// winner as a replay.
var errClientIDRace = errors.New("client message id raced")

// messageRows selects messages with their topic and sender names.
func messageRows(db *gorm.DB) *gorm.DB {
	return db.Table("messages AS msg").
		Select("msg.*, t.name AS topic_name, mem.display_name AS sender_display_name").
		Joins("JOIN topics t ON t.id = msg.topic_id").
		Joins("JOIN members mem ON mem.id = msg.sender_member_id")
}

// HistoryQuery pages a topic by seq: Before pages back from a seq (newest
// first), After pages forward from one (oldest first); neither means the
// newest page.
type HistoryQuery struct {
	Before, After int64
	Limit         int
}

// History pages a visible topic's messages by seq. Every query is bounded
// to the topic, so a cursor from another topic can never leak its rows.
func (s *Store) History(ctx context.Context, p *Principal, topic string, q HistoryQuery) (Page[MessageRow], error) {
	if !p.Can(CapRead) {
		return Page[MessageRow]{}, E(KindForbidden, "capability_required", "reading needs the \"read\" capability")
	}
	if q.Before != 0 && q.After != 0 {
		return Page[MessageRow]{}, E(KindBadRequest, "invalid_query", "use before or after, not both")
	}
	if q.Before < 0 || q.After < 0 {
		return Page[MessageRow]{}, E(KindBadRequest, "invalid_query", "before and after must be positive seqs")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	db := s.db.WithContext(ctx)
	ta, err := s.topicFor(db, p, topic)
	if err != nil {
		return Page[MessageRow]{}, err
	}
	qq := messageRows(db).Where("msg.topic_id = ?", ta.Topic.ID)
	switch {
	case q.After > 0:
		qq = qq.Where("msg.seq > ?", q.After).Order("msg.seq ASC")
	case q.Before > 0:
		qq = qq.Where("msg.seq < ?", q.Before).Order("msg.seq DESC")
	default:
		qq = qq.Order("msg.seq DESC")
	}
	var rows []MessageRow
	if err := qq.Limit(limit + 1).Scan(&rows).Error; err != nil {
		return Page[MessageRow]{}, fmt.Errorf("history of %s: %w", ta.Topic.Name, err)
	}
	out := Page[MessageRow]{Items: rows}
	if len(rows) > limit {
		out.Items, out.HasMore = rows[:limit], true
		out.NextCursor = fmt.Sprint(rows[limit-1].Seq)
	}
	if out.Items == nil {
		out.Items = []MessageRow{}
	}
	return out, nil
}

// MessagesAfter returns up to limit messages of the given topics with seq
// above after, in seq order (stream replay and gap fill).
func (s *Store) MessagesAfter(ctx context.Context, meshID string, topicIDs []string, after int64, limit int) ([]MessageRow, error) {
	var rows []MessageRow
	if len(topicIDs) == 0 {
		return rows, nil
	}
	err := messageRows(s.db.WithContext(ctx)).
		Where("msg.mesh_id = ? AND msg.topic_id IN ? AND msg.seq > ?", meshID, topicIDs, after).
		Order("msg.seq ASC").Limit(limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("messages after %d: %w", after, err)
	}
	return rows, nil
}

// MeshMessagesBetween returns a mesh's messages with after < seq ≤ upTo in
// seq order, at most limit (the hub's gap fill).
func (s *Store) MeshMessagesBetween(ctx context.Context, meshID string, after, upTo int64, limit int) ([]MessageRow, error) {
	var rows []MessageRow
	err := messageRows(s.db.WithContext(ctx)).
		Where("msg.mesh_id = ? AND msg.seq > ? AND msg.seq <= ?", meshID, after, upTo).
		Order("msg.seq ASC").Limit(limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("mesh messages (%d, %d]: %w", after, upTo, err)
	}
	return rows, nil
}

// MeshLastSeqs reads meshes' last_seq in one query.
func (s *Store) MeshLastSeqs(ctx context.Context, meshIDs []string) (map[string]int64, error) {
	var rows []struct {
		ID      string
		LastSeq int64
	}
	if err := s.db.WithContext(ctx).Model(&Mesh{}).Select("id, last_seq").Where("id IN ?", meshIDs).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read last seqs: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.ID] = r.LastSeq
	}
	return out, nil
}
