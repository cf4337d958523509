package models_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// TestSeqHasNoGapsUnderConcurrency: 8 writers × 500 posts into one mesh get
// seqs exactly 1..4000, each message once, each writer's order kept; and a
// clientMessageId retried concurrently yields one row.
func TestSeqHasNoGapsUnderConcurrency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		// The contract's figure (8 × 500) on PostgreSQL; SQLite, which
		// serialises every transaction anyway, runs a fifth of it to keep
		// the race-detector run short.
		const writers = 8
		perWriter := 500
		if s.Dialect() == models.SQLite {
			perWriter = 100
		}
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		peers := make([]peer, writers)
		for i := range peers {
			peers[i] = joinPeer(t, s, cm, fmt.Sprintf("w%d", i))
		}
		seqs := make([][]int64, writers)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					in := v1(fmt.Sprintf("w%d m%d", w, i))
					in.ClientMessageID = fmt.Sprintf("w%d-%d", w, i)
					out, err := s.PostMessage(ctx, peers[w].P, in)
					if err != nil {
						errs <- err
						return
					}
					seqs[w] = append(seqs[w], out.Row.Seq)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var all []int64
		for w, ss := range seqs {
			if !sort.SliceIsSorted(ss, func(i, j int) bool { return ss[i] < ss[j] }) {
				t.Errorf("writer %d: seqs out of post order", w)
			}
			all = append(all, ss...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		for i, seq := range all {
			if seq != int64(i+1) {
				t.Fatalf("seq[%d] = %d: gap or duplicate", i, seq)
			}
		}
		db, _ := s.SQLDB()
		var n, maxSeq int64
		if err := db.QueryRow("SELECT count(*), max(seq) FROM messages WHERE mesh_id = $1", cm.Mesh.ID).Scan(&n, &maxSeq); err != nil {
			t.Fatal(err)
		}
		if n != int64(writers*perWriter) || maxSeq != int64(writers*perWriter) {
			t.Errorf("messages = %d, max seq = %d; want %d", n, maxSeq, writers*perWriter)
		}

		// The same clientMessageId from 20 concurrent retries: one row.
		var (
			mu  sync.Mutex
			ids = map[string]int{}
		)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := v1("retried")
				in.ClientMessageID = "retry-me"
				out, err := s.PostMessage(ctx, peers[0].P, in)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[out.Row.ID]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(ids) != 1 {
			t.Errorf("concurrent retries produced %d distinct messages", len(ids))
		}
		if err := db.QueryRow("SELECT count(*) FROM messages WHERE client_message_id = 'retry-me'").Scan(&n); err != nil || n != 1 {
			t.Errorf("rows for retry-me = %d, %v", n, err)
		}
		// Every batch extended the audit chain without a fork or a hole.
		breaks, checked, err := s.VerifyAudit(ctx)
		if err != nil || len(breaks) != 0 || checked < int64(writers*perWriter) {
			t.Errorf("audit verify: %d checked, breaks %+v, %v", checked, breaks, err)
		}
	})
}

// TestClientIDRaceAcrossNodes: two brokers (two stores on one database)
// posting the same clientMessageId at once still make one message; the
// loser's batch retries and answers with the winner's row.
func TestClientIDRaceAcrossNodes(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			nodes := twoNodes(t, d)
			cm, owner := newMesh(t, nodes[0])
			_ = cm
			for round := range 20 {
				var (
					wg  sync.WaitGroup
					ids [2]string
				)
				for i, s := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						in := v1("race")
						in.ClientMessageID = fmt.Sprintf("race-%d", round)
						out, err := s.PostMessage(ctx, owner, in)
						if err != nil {
							t.Error(err)
							return
						}
						ids[i] = out.Row.ID
					}()
				}
				wg.Wait()
				if ids[0] != ids[1] {
					t.Fatalf("round %d: two nodes made two messages %v", round, ids)
				}
			}
			if n := count(t, nodes[0], "messages"); n != 20 {
				t.Errorf("messages = %d, want 20", n)
			}
		})
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, owner := newMesh(t, s)
		for range 5 {
			mustPost(t, s, owner, v1("x"))
		}
		if breaks, _, err := s.VerifyAudit(ctx); err != nil || len(breaks) != 0 {
			t.Fatalf("clean chain: %+v %v", breaks, err)
		}
		db, _ := s.SQLDB()
		// Truncating the tail is caught by the mesh's event counter.
		if _, err := db.Exec("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)"); err != nil {
			t.Fatal(err)
		}
		if breaks, _, _ := s.VerifyAudit(ctx); len(breaks) != 1 || !strings.Contains(breaks[0].Reason, "chain ends") {
			t.Errorf("truncated tail: %+v", breaks)
		}
		if _, err := db.Exec("UPDATE audit_events SET metadata = '{}' WHERE seq = 3"); err != nil {
			t.Fatal(err)
		}
		breaks, _, _ := s.VerifyAudit(ctx)
		if len(breaks) != 1 || breaks[0].Seq != 3 {
			t.Errorf("edited row: %+v", breaks)
		}
		if _, err := db.Exec("DELETE FROM audit_events WHERE seq = 3"); err != nil {
			t.Fatal(err)
		}
		breaks, _, _ = s.VerifyAudit(ctx)
		if len(breaks) != 1 || breaks[0].Seq != 3 {
			t.Errorf("deleted row: %+v", breaks)
		}
	})
}

func TestPostIsAllOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		cm, owner := newMesh(t, s)
		bob := joinPeer(t, s, cm, "bob")
		before := count(t, s, "audit_events")
		boom := errors.New("injected failure")
		s.SetHooks(models.Hooks{AfterStep: func(step string) error {
			if step == "batch_commit" {
				return boom
			}
			return nil
		}})
		if _, err := s.PostMessage(context.Background(), owner, v1("hi @bob")); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want injected failure", err)
		}
		if count(t, s, "messages") != 0 || count(t, s, "notifications") != 0 || count(t, s, "audit_events") != before {
			t.Error("a failed post left rows behind")
		}
		s.SetHooks(models.Hooks{})
		out := mustPost(t, s, owner, v1("hi @bob"))
		if out.Row.Seq != 1 || out.Notified != 1 {
			t.Errorf("after a failed post: seq %d, notified %d; want 1 and 1 (no seq consumed)", out.Row.Seq, out.Notified)
		}
		_ = bob
	})
}

func TestMentionsNotifyTopicMembersOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, bob, carol := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "bob"), joinPeer(t, s, cm, "carol")
		if _, err := s.CreateTopic(ctx, alice.P, models.CreateTopicInput{Name: "#ops", Visibility: models.VisibilityPrivate}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddTopicMember(ctx, alice.P, "ops", bob.P.MemberID, ""); err != nil {
			t.Fatal(err)
		}
		in := v1("@bob @carol @alice @nobody ping")
		in.Topic = "ops"
		out := mustPost(t, s, alice.P, in)
		if out.Notified != 1 {
			t.Errorf("notified %d, want 1 (bob only: carol is not in #ops, alice is the sender)", out.Notified)
		}
		page, err := s.ListNotifications(ctx, carol.P, models.NotificationQuery{})
		if err != nil || len(page.Items) != 0 {
			t.Errorf("carol got %d notifications, %v", len(page.Items), err)
		}
		page, err = s.ListNotifications(ctx, bob.P, models.NotificationQuery{UnreadOnly: true})
		if err != nil || len(page.Items) != 1 || page.Items[0].BodyVersion != 1 || page.Items[0].TopicName != "ops" {
			t.Fatalf("bob's notifications = %+v, %v", page.Items, err)
		}
		// Read counts only rows that changed.
		n, err := s.MarkNotificationsRead(ctx, bob.P, []string{page.Items[0].ID}, "")
		if err != nil || n != 1 {
			t.Errorf("first read = %d, %v", n, err)
		}
		n, err = s.MarkNotificationsRead(ctx, bob.P, []string{page.Items[0].ID}, "")
		if err != nil || n != 0 {
			t.Errorf("second read = %d, %v; want 0", n, err)
		}
		n, err = s.MarkNotificationsRead(ctx, carol.P, []string{page.Items[0].ID}, "")
		if err != nil || n != 0 {
			t.Errorf("carol marking bob's notification = %d, %v; want 0", n, err)
		}
		// v2 bodies are never scanned: only explicit mentions count.
		v2 := models.PostInput{Topic: "general", BodyVersion: 2, Ciphertext: base64.StdEncoding.EncodeToString([]byte("@bob looks like text")),
			Nonce: base64.StdEncoding.EncodeToString(make([]byte, 24))}
		if out := mustPost(t, s, alice.P, v2); out.Notified != 0 {
			t.Errorf("v2 body scanned for mentions: notified %d", out.Notified)
		}
		v2.Mentions = []string{"@Carol"}
		if out := mustPost(t, s, alice.P, v2); out.Notified != 1 {
			t.Errorf("explicit v2 mention: notified %d, want 1", out.Notified)
		}
	})
}

func TestExtractMentions(t *testing.T) {
	cases := map[string][]string{
		"hi @Bob and @bob":            {"bob"},
		"mail me@example.com":         nil,
		"(@ann) @b_c-d!":              {"ann", "b_c-d"},
		"@" + strings.Repeat("x", 65): nil,
		"@" + strings.Repeat("x", 64): {strings.Repeat("x", 64)},
		"@a @b @c @d @e @f @g @h @i @j @k @l @m @n @o @p @q @r": {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"},
	}
	for in, want := range cases {
		got := models.ExtractMentions(in)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ExtractMentions(%.30q) = %v, want %v", in, got, want)
		}
	}
}

func TestPostRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, owner := newMesh(t, s)
		bob := joinPeer(t, s, cm, "bob")
		if _, err := s.CreateTopic(ctx, owner, models.CreateTopicInput{Name: "other"}); err != nil {
			t.Fatal(err)
		}
		other := mustPost(t, s, owner, models.PostInput{Topic: "other", Ciphertext: "aGk=", BodyVersion: 1})
		nonce := base64.StdEncoding.EncodeToString(make([]byte, 24))
		cases := []struct {
			name string
			p    *models.Principal
			in   models.PostInput
			code string
		}{
			{"reply to another topic", owner, models.PostInput{Topic: "general", Ciphertext: "aGk=", BodyVersion: 1, ReplyToID: other.Row.ID}, "validation_failed"},
			{"not base64", owner, models.PostInput{Topic: "general", Ciphertext: "!!", BodyVersion: 1}, "validation_failed"},
			{"short nonce", owner, models.PostInput{Topic: "general", Ciphertext: "aGk=", BodyVersion: 2, Nonce: "AAAA"}, "validation_failed"},
			{"bad version", owner, models.PostInput{Topic: "general", Ciphertext: "aGk=", BodyVersion: 3, Nonce: nonce}, "validation_failed"},
			{"too large", owner, models.PostInput{Topic: "general", Ciphertext: base64.StdEncoding.EncodeToString(make([]byte, 65537)), BodyVersion: 1}, "message_too_large"},
			{"not a member", bob.P, models.PostInput{Topic: "other", Ciphertext: "aGk=", BodyVersion: 1}, "not_topic_member"},
			{"unknown topic", owner, models.PostInput{Topic: "nope", Ciphertext: "aGk=", BodyVersion: 1}, "topic_not_found"},
			{"17 mentions", owner, models.PostInput{Topic: "general", Ciphertext: "aGk=", BodyVersion: 1, Mentions: strings.Split("a b c d e f g h i j k l m n o p q", " ")}, "validation_failed"},
		}
		for _, c := range cases {
			if _, err := s.PostMessage(ctx, c.p, c.in); !isCode(err, c.code) {
				t.Errorf("%s: err = %v, want %s", c.name, err, c.code)
			}
		}
		// Refusals never consumed a seq.
		if out := mustPost(t, s, owner, v1("next")); out.Row.Seq != 2 {
			t.Errorf("seq after refusals = %d, want 2", out.Row.Seq)
		}
	})
}

// TestHistoryCursorsStayInTopic: a before/after cursor taken from another
// topic never returns that topic's rows (upstream leaked across topics).
func TestHistoryCursorsStayInTopic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, owner := newMesh(t, s)
		if _, err := s.CreateTopic(ctx, owner, models.CreateTopicInput{Name: "b"}); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			in := v1(fmt.Sprint(i))
			if i%2 == 1 {
				in.Topic = "b"
			}
			mustPost(t, s, owner, in)
		}
		page, err := s.History(ctx, owner, "general", models.HistoryQuery{Before: 10, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 2 || page.Items[0].Seq != 9 || page.Items[1].Seq != 7 || !page.HasMore || page.NextCursor != "7" {
			t.Fatalf("page = %+v", page)
		}
		for _, m := range page.Items {
			if m.TopicName != "general" || m.BodyVersion != 1 || m.SenderDisplayName == "" {
				t.Errorf("row %+v", m)
			}
		}
		all, _ := s.History(ctx, owner, "general", models.HistoryQuery{After: 2})
		if len(all.Items) != 4 || all.Items[0].Seq != 3 || all.HasMore {
			t.Errorf("after=2: %d rows, first %d", len(all.Items), all.Items[0].Seq)
		}
		if _, err := s.History(ctx, owner, "general", models.HistoryQuery{Before: 3, After: 1}); !isCode(err, "invalid_query") {
			t.Errorf("before+after: %v", err)
		}
	})
}

// A full batch of posts that each mention as many members as allowed must
// commit: its notification rows (256 × 16 × 9 columns) exceed SQLite's
// 32,766 bind parameters in one INSERT.
func TestAFullBatchOfMentionsCommits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, owner := newMesh(t, s)
		var names []string
		for i := 0; i < models.MaxMentions; i++ {
			name := fmt.Sprintf("m%d", i)
			names = append(names, "@"+name)
			joinPeer(t, s, cm, name)
		}
		// Hold the first batch open so the others queue behind it and
		// commit as one batch.
		release := make(chan struct{})
		var first sync.Once
		s.SetHooks(models.Hooks{AfterStep: func(step string) error {
			if step == "batch_commit" {
				first.Do(func() { <-release })
			}
			return nil
		}})
		defer s.SetHooks(models.Hooks{})
		const posts = 257
		var wg sync.WaitGroup
		errs := make(chan error, posts)
		for i := 0; i < posts; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := s.PostMessage(ctx, owner, v1(strings.Join(names, " ")))
				if err == nil && out.Notified != models.MaxMentions {
					err = fmt.Errorf("notified %d, want %d", out.Notified, models.MaxMentions)
				}
				errs <- err
			}()
		}
		time.Sleep(500 * time.Millisecond) // let the posts queue; not a timing assertion
		close(release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, s, "notifications"); n != posts*models.MaxMentions {
			t.Errorf("%d notifications, want %d", n, posts*models.MaxMentions)
		}
	})
}
