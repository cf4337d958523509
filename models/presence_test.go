package models_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const fresh = 30 * time.Second

func st(status, source string, ago time.Duration) models.StatusState {
	return models.StatusState{Status: status, Source: source, At: t0.Add(-ago)}
}

// TestDecideStatus is the status-source table of SPEC §8, at a fixed time.
func TestDecideStatus(t *testing.T) {
	const (
		idle, working, dnd   = models.StatusIdle, models.StatusWorking, models.StatusDND
		hook, manual, jsonl  = models.SourceHook, models.SourceManual, models.SourceJSONL
		inWindow, pastWindow = 10 * time.Second, 31 * time.Second
	)
	cases := []struct {
		name  string
		cur   models.StatusState
		sig   models.StatusSignal
		apply bool
	}{
		{"changed status from a lower source applies", st(working, hook, inWindow), models.StatusSignal{idle, jsonl}, true},
		{"changed status from a higher source applies", st(working, jsonl, inWindow), models.StatusSignal{idle, hook}, true},
		{"same status, higher source takes over", st(working, jsonl, inWindow), models.StatusSignal{working, hook}, true},
		{"same status, same source refreshes", st(working, manual, inWindow), models.StatusSignal{working, manual}, true},
		{"same status, lower source inside the window is ignored", st(working, hook, inWindow), models.StatusSignal{working, jsonl}, false},
		{"manual under a fresh hook is ignored", st(working, hook, inWindow), models.StatusSignal{working, manual}, false},
		{"same status, lower source after the window takes over", st(working, hook, pastWindow), models.StatusSignal{working, jsonl}, true},
		{"exactly at the window edge is still fresh", st(working, hook, fresh), models.StatusSignal{working, jsonl}, false},
		{"a hook never clears dnd", st(dnd, manual, time.Hour), models.StatusSignal{idle, hook}, false},
		{"a hook never clears dnd (working)", st(dnd, hook, time.Hour), models.StatusSignal{working, hook}, false},
		{"jsonl inference never clears dnd", st(dnd, manual, time.Hour), models.StatusSignal{idle, jsonl}, false},
		{"a person clears dnd", st(dnd, hook, 0), models.StatusSignal{idle, manual}, true},
		{"a hook may set dnd", st(working, jsonl, 0), models.StatusSignal{dnd, hook}, true},
		{"dnd refreshed by a hook", st(dnd, manual, pastWindow), models.StatusSignal{dnd, hook}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := models.DecideStatus(tc.cur, tc.sig, t0, fresh)
			if ok != tc.apply {
				t.Fatalf("applied = %v, want %v", ok, tc.apply)
			}
			want := tc.cur
			if tc.apply {
				want = models.StatusState{Status: tc.sig.Status, Source: tc.sig.Source, At: t0}
			}
			if got != want {
				t.Fatalf("state = %+v, want %+v", got, want)
			}
		})
	}
}

func TestExpireWorkingAndGating(t *testing.T) {
	ttl := 60 * time.Second
	for _, tc := range []struct {
		cur  models.StatusState
		flip bool
	}{
		{st(models.StatusWorking, models.SourceHook, 61*time.Second), true},
		{st(models.StatusWorking, models.SourceHook, 60*time.Second), false},
		{st(models.StatusDND, models.SourceManual, time.Hour), false},
		{st(models.StatusIdle, models.SourceJSONL, time.Hour), false},
	} {
		got, ok := models.ExpireWorking(tc.cur, t0, ttl)
		if ok != tc.flip || (ok && got != (models.StatusState{Status: models.StatusIdle, Source: models.SourceJSONL, At: t0})) {
			t.Errorf("ExpireWorking(%+v) = %+v, %v", tc.cur, got, ok)
		}
	}
	for _, tc := range []struct {
		status, priority string
		ok               bool
	}{
		{"idle", "now", true}, {"idle", "next", true}, {"idle", "low", true},
		{"working", "now", true}, {"working", "next", false}, {"working", "low", false},
		{"dnd", "now", true}, {"dnd", "next", false}, {"dnd", "low", false},
	} {
		if got := models.Deliverable(tc.status, tc.priority); got != tc.ok {
			t.Errorf("Deliverable(%s, %s) = %v", tc.status, tc.priority, got)
		}
	}
	if !models.StashFresh(t0.Add(-10*time.Second), t0) || models.StashFresh(t0.Add(-10*time.Second-time.Millisecond), t0) {
		t.Error("the hook stash lasts exactly 10 s")
	}
}

func TestMatchHookSession(t *testing.T) {
	pid := func(n int) *int { return &n }
	gone := t0
	sessions := []models.Presence{
		{ID: "old-same-cwd", Cwd: "/a", Pid: pid(1), ConnectedAt: t0.Add(-time.Hour)},
		{ID: "new-same-cwd", Cwd: "/a", Pid: pid(2), ConnectedAt: t0.Add(-time.Minute)},
		{ID: "exact", Cwd: "/a", Pid: pid(3), ConnectedAt: t0.Add(-2 * time.Hour)},
		{ID: "disconnected", Cwd: "/a", Pid: pid(4), ConnectedAt: t0, DisconnectedAt: &gone},
		{ID: "elsewhere", Cwd: "/b", Pid: pid(3), ConnectedAt: t0},
	}
	for _, tc := range []struct {
		pid  int
		cwd  string
		want string
	}{{3, "/a", "exact"}, {9, "/a", "new-same-cwd"}, {4, "/a", "new-same-cwd"}, {3, "/b", "elsewhere"}, {3, "/c", ""}} {
		got := models.MatchHookSession(sessions, tc.pid, tc.cwd)
		if (got == nil && tc.want != "") || (got != nil && got.ID != tc.want) {
			t.Errorf("match(%d, %s) = %v, want %s", tc.pid, tc.cwd, got, tc.want)
		}
	}
}

// fakeClock drives a store's clock in the store tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// eachClocked runs fn per dialect with a store on an injected clock.
func eachClocked(t *testing.T, fn func(t *testing.T, s *models.Store, clk *fakeClock)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			clk := &fakeClock{t: t0}
			opt := storetest.Options(t, d)
			opt.Now = clk.Now
			s, err := models.Open(context.Background(), opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if _, err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			fn(t, s, clk)
		})
	}
}

// TestHookStatusInTheStore: the rules applied to real rows, only ever to
// the caller's own sessions, and the sweeper flip.
func TestHookStatusInTheStore(t *testing.T) {
	eachClocked(t, func(t *testing.T, s *models.Store, clk *fakeClock) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		bob, eve := joinPeer(t, s, cm, "bob"), joinPeer(t, s, cm, "eve")
		pid := 42
		row, err := s.ConnectSession(ctx, models.ConnectInput{MeshID: cm.Mesh.ID, MemberID: bob.P.MemberID, SessionID: "s1", NodeID: "n1",
			ConnID: "c1", Pid: &pid, Cwd: "/src", FreshWindow: fresh})
		if err != nil || row.Status != models.StatusIdle {
			t.Fatalf("connect = %+v, %v", row, err)
		}
		hook := func(p *models.Principal, status string) *models.HookResult {
			t.Helper()
			res, err := s.HookStatus(ctx, p, models.HookInput{Status: status, Pid: pid, Cwd: "/src"}, fresh)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := hook(eve.P, models.StatusDND); !res.Stashed || res.Session != nil {
			t.Fatalf("eve's hook reached bob's session: %+v", res)
		}
		if res := hook(bob.P, models.StatusWorking); !res.Changed || res.Session.StatusSource != models.SourceHook {
			t.Fatalf("bob's hook = %+v", res)
		}
		set := func(status, source string) bool {
			t.Helper()
			_, changed, err := s.SetSessionStatus(ctx, row.ID, models.StatusSignal{Status: status, Source: source}, nil, fresh)
			if err != nil {
				t.Fatal(err)
			}
			return changed
		}
		clk.Advance(10 * time.Second)
		if set(models.StatusWorking, models.SourceJSONL) {
			t.Error("jsonl took over a fresh hook status")
		}
		clk.Advance(25 * time.Second)
		if !set(models.StatusWorking, models.SourceJSONL) {
			t.Error("jsonl did not take over a hook status older than the window")
		}
		if !set(models.StatusDND, models.SourceManual) || hook(bob.P, models.StatusIdle).Applied {
			t.Error("a hook cleared dnd")
		}
		if !set(models.StatusWorking, models.SourceManual) {
			t.Error("a person could not lift dnd")
		}
		clk.Advance(61 * time.Second)
		swept, err := s.SweepPresence(ctx, models.SweepInput{StatusTTL: time.Minute, StaleAfter: 90 * time.Second, Node: "n1"})
		if err != nil || len(swept) != 1 || swept[0].Status != models.StatusIdle || swept[0].StatusSource != models.SourceJSONL {
			t.Fatalf("sweep = %+v, %v", swept, err)
		}
		// A session of a broker that stopped heartbeating is disconnected
		// by another broker's sweep, never by its own.
		clk.Advance(2 * time.Minute)
		if swept, _ := s.SweepPresence(ctx, models.SweepInput{StatusTTL: time.Minute, StaleAfter: 90 * time.Second, Node: "n1"}); len(swept) != 0 {
			t.Fatalf("own session swept: %+v", swept)
		}
		swept, err = s.SweepPresence(ctx, models.SweepInput{StatusTTL: time.Minute, StaleAfter: 90 * time.Second, Node: "n2"})
		if err != nil || len(swept) != 1 || swept[0].DisconnectedAt == nil {
			t.Fatalf("stale sweep = %+v, %v", swept, err)
		}
		if _, err := s.HookStatus(ctx, bob.P, models.HookInput{Status: "asleep", Pid: 0, Cwd: ""}, fresh); err == nil {
			t.Error("invalid hook input accepted")
		}
		readOnly := *bob.P
		readOnly.Caps = []string{models.CapRead}
		if _, err := s.HookStatus(ctx, &readOnly, models.HookInput{Status: "idle", Pid: 1, Cwd: "/"}, fresh); err == nil {
			t.Error("a key without state_write set a status")
		}
	})
}
