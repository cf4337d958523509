package main_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // read messages.ciphertext directly
)

// tailLine is what `topic tail --json` and `topic history --json` print.
type tailLine struct {
	Seq       int64   `json:"seq"`
	ID        string  `json:"id"`
	Topic     string  `json:"topic"`
	From      string  `json:"from"`
	Text      *string `json:"text"`
	Plaintext bool    `json:"plaintext"`
	Pending   bool    `json:"pending"`
}

func decodeLines(t *testing.T, out string) []tailLine {
	t.Helper()
	var ls []tailLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var v tailLine
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		ls = append(ls, v)
	}
	return ls
}

// waitLine reads p's stdout until a JSON line satisfies ok, up to d.
func waitLine(t *testing.T, p *proc, d time.Duration, ok func(tailLine) bool) tailLine {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching line within %s; stderr:\n%s", d, p.stderr.String())
		}
		l, open := p.next(t, left)
		if !open {
			t.Fatalf("the process ended or timed out before a matching line; stderr:\n%s", p.stderr.String())
		}
		var v tailLine
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if ok(v) {
			return v
		}
	}
}

// TestTopicEndToEnd: A keys a topic by posting; B joins and sees the
// message as pending; A's running tail seals for B within a cycle; B then
// reads history and a live tail; the database never holds the plaintext.
func TestTopicEndToEnd(t *testing.T) {
	b := startBroker(t)
	inv := b.invites(2)
	a := newHome(t, "CLAUDEMESH_RESEAL_INTERVAL=300ms")
	bob := newHome(t)
	a.must("join", inv[0], "--server", b.url, "--name", "alice")
	bob.must("join", inv[1], "--server", b.url, "--name", "bob")

	secret := "launch code swordfish-" + randomWord()
	a.must("topic", "create", "ops")
	if out := a.must("topic", "post", "ops", secret); !strings.Contains(out, "posted to #ops") {
		t.Fatalf("post printed %q", out)
	}

	// B: not a member yet, then a member without a key.
	if _, errs, code := bob.run("topic", "post", "ops", "hi"); code != 2 || !strings.Contains(errs, "claudemesh topic join ops") {
		t.Fatalf("post before joining: exit %d, stderr %q", code, errs)
	}
	bob.must("topic", "join", "ops")
	hist := decodeLines(t, bob.must("topic", "history", "ops", "--json"))
	if len(hist) != 1 || !hist[0].Pending || hist[0].Text != nil {
		t.Fatalf("B's history before a seal: %+v", hist)
	}
	if _, errs, code := bob.run("topic", "post", "ops", "no plaintext fallback"); code != 2 || !strings.Contains(errs, "seal") {
		t.Fatalf("post without a seal: exit %d, stderr %q", code, errs)
	}

	// A's tail seals for B on its first cycle.
	tailA := a.start("topic", "tail", "ops", "--json")
	waitLine(t, tailA, time.Minute, func(v tailLine) bool { return v.Text != nil && *v.Text == secret })
	deadline := time.Now().Add(time.Minute)
	for {
		hist = decodeLines(t, bob.must("topic", "history", "ops", "--json"))
		if len(hist) == 1 && hist[0].Text != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never got a seal; A's tail stderr:\n%s", tailA.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if *hist[0].Text != secret || hist[0].From != "alice" || hist[0].Plaintext {
		t.Fatalf("B's history after the seal: %+v", hist[0])
	}

	// B's live tail shows A's next message. It prints the newest message
	// first (--backlog 1), so it is running before A posts.
	tailB := bob.start("topic", "tail", "ops", "--json", "--backlog", "1", "--no-reseal")
	waitLine(t, tailB, time.Minute, func(v tailLine) bool { return v.Text != nil && *v.Text == secret })
	second := "second " + randomWord()
	a.must("topic", "post", "ops", second)
	if v := waitLine(t, tailB, time.Minute, func(v tailLine) bool { return v.Text != nil }); *v.Text != second || v.From != "alice" {
		t.Fatalf("B's tail: %+v", v)
	}
	bob.must("topic", "post", "ops", "bob can write "+randomWord())

	// A new key epoch (as after a member's removal): A's next post claims
	// it with a fresh key; B's running tail shows it (pending until A's
	// tail seals the new key for B), and B's history then opens both
	// epochs, each row with its own epoch's key.
	b.rotate("ops")
	third := "after rotation " + randomWord()
	a.must("topic", "post", "ops", third)
	waitLine(t, tailB, time.Minute, func(v tailLine) bool { return v.From == "alice" && v.Seq > hist[0].Seq+2 })
	deadline = time.Now().Add(time.Minute)
	for {
		hist = decodeLines(t, bob.must("topic", "history", "ops", "--json"))
		opened := 0
		for _, h := range hist {
			if h.Text != nil {
				opened++
			}
		}
		if len(hist) == 4 && opened == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's history after the rotation: %+v; A's tail stderr:\n%s", hist, tailA.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if *hist[0].Text != secret || *hist[3].Text != third {
		t.Fatalf("B's history: first %q, last %q", *hist[0].Text, *hist[3].Text)
	}

	// The broker stored ciphertext only.
	db, err := sql.Open("pgx", b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), "SELECT ciphertext FROM messages")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var ct string
		if err := rows.Scan(&ct); err != nil {
			t.Fatal(err)
		}
		n++
		for _, p := range []string{secret, second, third, "swordfish", base64.StdEncoding.EncodeToString([]byte(secret)), base64.StdEncoding.EncodeToString([]byte(second))} {
			if strings.Contains(ct, p) {
				t.Fatalf("messages.ciphertext holds %q", p)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("%d stored messages, want 4", n)
	}
}

// TestTailSurvivesBrokerRestart posts 200 messages, stopping the broker
// (SIGTERM) after 100 and starting a new one on the same database and
// port; the running tail prints each exactly once, in seq order.
func TestTailSurvivesBrokerRestart(t *testing.T) {
	b := startBroker(t)
	inv := b.invites(1)
	a := newHome(t)
	a.must("join", inv[0], "--server", b.url, "--name", "alice")
	a.must("topic", "create", "load")
	a.must("topic", "post", "load", "key it")
	tail := a.start("topic", "tail", "load", "--json", "--backlog", "1", "--no-reseal")
	waitLine(t, tail, time.Minute, func(v tailLine) bool { return v.Text != nil && *v.Text == "key it" })

	const total = 200
	collected := make(chan []tailLine, 1)
	go func() {
		var ls []tailLine
		deadline := time.Now().Add(5 * time.Minute)
		for len(ls) < total && time.Now().Before(deadline) {
			l, open := tail.next(t, time.Until(deadline))
			if !open {
				break
			}
			var v tailLine
			if err := json.Unmarshal([]byte(l), &v); err == nil {
				ls = append(ls, v)
			}
		}
		collected <- ls
	}()
	// Four posters at a time: the order of the texts is the broker's, and
	// the tail must follow its seqs.
	post := func(from, to int) {
		each(t, from, to, func(i int) string {
			if out, errOut, code := a.run("topic", "post", "load", fmt.Sprintf("m-%03d", i)); code != 0 {
				return fmt.Sprintf("post m-%03d: exit %d: %s %s", i, code, out, errOut)
			}
			return ""
		})
	}
	post(0, total/2)
	b.stop()
	b.start()
	post(total/2, total)
	ls := <-collected
	// Nothing more may arrive: a duplicate would show up right behind.
	if extra, ok := tail.next(t, 2*time.Second); ok {
		t.Fatalf("a line after the 200th: %s", extra)
	}
	if len(ls) != total {
		t.Fatalf("tail printed %d messages, want %d; stderr:\n%s", len(ls), total, tail.stderr.String())
	}
	texts := map[string]bool{}
	for i, v := range ls {
		if v.Text == nil || !strings.HasPrefix(*v.Text, "m-") || texts[*v.Text] {
			t.Fatalf("line %d: %+v (a duplicate or not ours)", i, v)
		}
		texts[*v.Text] = true
		if i > 0 && v.Seq <= ls[i-1].Seq {
			t.Fatalf("seq %d after %d", v.Seq, ls[i-1].Seq)
		}
	}
	if !strings.Contains(tail.stderr.String(), "reconnect") {
		t.Errorf("the tail never noticed the restart; stderr:\n%s", tail.stderr.String())
	}
}

// directLine is what `inbox --json` prints.
type directLine struct {
	ID   string  `json:"id"`
	From string  `json:"from"`
	Text *string `json:"text"`
}

// TestDirectSendInbox: 100 direct messages A→B, half while B's inbox
// follows, half while B is offline; every one arrives once, decrypted.
func TestDirectSendInbox(t *testing.T) {
	b := startBroker(t)
	inv := b.invites(2)
	a := newHome(t)
	bob := newHome(t)
	a.must("join", inv[0], "--server", b.url, "--name", "alice")
	bob.must("join", inv[1], "--server", b.url, "--name", "bob")

	const total = 100
	seen := map[string]int{}
	record := func(l string) {
		var v directLine
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if v.Text == nil || v.From != "alice" {
			t.Fatalf("undecrypted or misattributed: %s", l)
		}
		seen[*v.Text]++
	}

	follow := bob.start("inbox", "--follow", "--json")
	// Wait until B's session is online, so the first half is live.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(a.must("peers", "--json"), `"displayName":"bob"`) {
		if time.Now().After(deadline) {
			t.Fatal("B's inbox never came online")
		}
		time.Sleep(100 * time.Millisecond)
	}
	send := func(from, to int, extra ...string) {
		each(t, from, to, func(i int) string {
			args := append([]string{"send", "@bob", fmt.Sprintf("dm-%03d", i)}, extra...)
			if out, errOut, code := a.run(args...); code != 0 {
				return fmt.Sprintf("send dm-%03d: exit %d: %s %s", i, code, out, errOut)
			}
			return ""
		})
	}
	send(0, total/2)
	for len(seen) < total/2 {
		l, ok := follow.next(t, time.Minute)
		if !ok {
			t.Fatalf("inbox --follow got %d of %d; stderr:\n%s", len(seen), total/2, follow.stderr.String())
		}
		record(l)
	}
	follow.stop()
	for l := range follow.lines {
		record(l)
	}

	send(total/2, total, "--priority", "low")
	deadline = time.Now().Add(2 * time.Minute)
	for len(seen) < total && time.Now().Before(deadline) {
		out := bob.must("inbox", "--json")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" {
				record(l)
			}
		}
	}
	for i := range total {
		if n := seen[fmt.Sprintf("dm-%03d", i)]; n != 1 {
			t.Errorf("dm-%03d arrived %d times", i, n)
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct messages, want %d", len(seen), total)
	}
	// Drained: another inbox finds nothing.
	if out := bob.must("inbox", "--json"); strings.TrimSpace(out) != "" {
		t.Errorf("a drained inbox printed %q", out)
	}
}

// TestRevokedMemberTailAndInboxExitTwo: a running tail and inbox --follow
// of a member who is revoked end with exit 2 (the broker refused), not a
// reconnect loop.
func TestRevokedMemberTailAndInboxExitTwo(t *testing.T) {
	b := startBroker(t)
	inv := b.invites(2)
	a := newHome(t)
	bob := newHome(t)
	a.must("join", inv[0], "--server", b.url, "--name", "alice")
	out := bob.must("join", inv[1], "--server", b.url, "--name", "bob", "--json")
	var joined struct {
		MemberID string `json:"memberId"`
	}
	if err := json.Unmarshal([]byte(out), &joined); err != nil || joined.MemberID == "" {
		t.Fatalf("join --json: %q %v", out, err)
	}
	a.must("topic", "post", "general", "hello")
	tail := bob.start("topic", "tail", "general", "--json", "--no-reseal")
	waitLine(t, tail, time.Minute, func(v tailLine) bool { return v.Seq > 0 })
	inbox := bob.start("inbox", "--follow")
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(a.must("peers", "--json"), `"displayName":"bob"`) {
		if time.Now().After(deadline) {
			t.Fatal("B's inbox never came online")
		}
		time.Sleep(100 * time.Millisecond)
	}

	b.revoke(joined.MemberID)
	for name, p := range map[string]*proc{"tail": tail, "inbox": inbox} {
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			t.Fatalf("%s still runs a minute after the revocation; stderr:\n%s", name, p.stderr.String())
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%s exit %d, want 2; stderr:\n%s", name, code, p.stderr.String())
		}
	}
	if _, errs, code := bob.run("topic", "list"); code != 2 || !strings.Contains(errs, "join again") {
		t.Errorf("topic list after revocation: exit %d, stderr %q", code, errs)
	}
}
