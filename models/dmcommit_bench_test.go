package models_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// BenchmarkDirectCycle: 1, 32 and 128 pairs of one mesh, each running the whole life
// of direct messages back to back (send, claim, ack: three group-commit
// requests and three audit events a message), on PostgreSQL. It reports
// completed messages a second for the mesh. Run:
//
//	go test -run '^$' -bench DirectCycle -benchtime 20000x ./models/
func BenchmarkDirectCycle(b *testing.B) {
	for _, pairs := range []int{1, 32, 128} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			s := storetest.Open(b, models.Postgres)
			ctx := context.Background()
			u, _, err := s.Signup(ctx, models.SignupInput{Email: models.NewID()[:8] + "@example.com", Password: "correct horse battery", Name: "Owner"})
			if err != nil {
				b.Fatal(err)
			}
			cm, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			type pair struct{ from, to peer }
			ps := make([]pair, pairs)
			for i := range ps {
				ps[i] = pair{benchPeer(b, s, cm, fmt.Sprintf("a%d", i)), benchPeer(b, s, cm, fmt.Sprintf("b%d", i))}
				if _, err := s.ConnectSession(ctx, models.ConnectInput{MeshID: cm.Mesh.ID, MemberID: ps[i].to.P.MemberID, SessionID: "s",
					NodeID: "n1", ConnID: fmt.Sprintf("c%d", i), FreshWindow: time.Minute}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i, p := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					env := models.Envelope{RecipientID: p.to.P.MemberID, Nonce: benchNonce, Ciphertext: benchBox}
					for next.Add(1) <= int64(b.N) {
						if _, err := s.EnqueueDirect(ctx, p.from.P, models.EnqueueInput{Envelopes: []models.Envelope{env}}); err != nil {
							b.Error(err)
							return
						}
						rows, err := s.ClaimQueued(ctx, models.ClaimInput{MeshID: cm.Mesh.ID, RecipientID: p.to.P.MemberID, ConnID: fmt.Sprintf("c%d", i),
							Priorities: everything})
						if err != nil || len(rows) != 1 {
							b.Errorf("claim: %d rows, %v", len(rows), err)
							return
						}
						if n, err := s.AckQueued(ctx, cm.Mesh.ID, p.to.P.MemberID, []string{rows[0].ID}); err != nil || n != 1 {
							b.Errorf("ack: %d, %v", n, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// A body the broker cannot tell from a crypto_box: a 24-byte nonce, 66 bytes.
var (
	benchNonce = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	benchBox   = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

func benchPeer(b *testing.B, s *models.Store, cm *models.CreatedMesh, name string) peer {
	b.Helper()
	ctx := context.Background()
	id, err := meshcrypto.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	_, token, err := s.CreateInvite(ctx, models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{})
	if err != nil {
		b.Fatal(err)
	}
	j, err := s.Join(ctx, models.JoinInput{Token: token, Pubkey: id.PublicKeyHex(), DisplayName: name})
	if err != nil {
		b.Fatal(err)
	}
	p, err := s.AuthenticateAPIKey(ctx, j.KeySecret)
	if err != nil {
		b.Fatal(err)
	}
	return peer{P: p}
}
