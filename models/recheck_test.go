package models_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// TestConcurrentStreamRechecksAreEachAnswered hammers the batched stream
// re-check: streams of different members, keys and topics re-checking at
// once are read by a few shared statements, and each must still get the
// verdict of its own credential and topic.
func TestConcurrentStreamRechecksAreEachAnswered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, owner := newMesh(t, s)
		alice, dave, gone := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "dave"), joinPeer(t, s, cm, "gone")
		for _, name := range []string{"#ops", "#old"} {
			if _, err := s.CreateTopic(ctx, alice.P, models.CreateTopicInput{Name: name, Visibility: models.VisibilityPrivate}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ArchiveTopic(ctx, alice.P, "old"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeMember(ctx, owner, gone.P.MemberID); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			p     *models.Principal
			topic string
			code  string // "" = still valid
		}{
			{alice.P, "general", ""},
			{alice.P, "ops", ""},
			{alice.P, "", ""},
			{dave.P, "general", ""},
			{dave.P, "ops", "topic_not_found"},
			{alice.P, "old", "topic_archived"},
			{alice.P, "nope", "topic_not_found"},
			{gone.P, "general", "credential_revoked"},
			{gone.P, "", "credential_revoked"},
		}
		var wg sync.WaitGroup
		errs := make(chan string, 2000)
		for g := 0; g < 30; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 12; i++ {
					c := cases[(g+i)%len(cases)]
					err := s.RecheckStream(ctx, c.p, c.topic)
					if (c.code == "" && err != nil) || (c.code != "" && !isCode(err, c.code)) {
						errs <- fmt.Sprintf("%s on %q: err = %v, want %q", c.p.DisplayName, c.topic, err, c.code)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}
