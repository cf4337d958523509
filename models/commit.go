package models

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
)

// maxBatch bounds one group commit; a bigger queue is drained in several.
const maxBatch = 256

// postReq is one queued post and, once committed, its outcome.
type postReq struct {
	p    *Principal
	in   PostInput
	out  *Posted
	err  error
	done chan struct{}
}

// committer batches concurrent posts per mesh into one transaction. The
// first post to find a mesh idle starts a drain goroutine; it commits what
// is queued, then whatever queued meanwhile, and exits when the queue is
// empty. Posts to one mesh therefore commit strictly one batch after
// another (the mesh row lock would serialise them anyway), and each batch
// pays for one commit instead of one per message.
type committer struct {
	s       *Store
	mu      sync.Mutex
	queues  map[string][]*postReq
	running map[string]bool
	wg      sync.WaitGroup
}

func newCommitter(s *Store) *committer {
	return &committer{s: s, queues: map[string][]*postReq{}, running: map[string]bool{}}
}

func (c *committer) submit(meshID string, r *postReq) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queues[meshID] = append(c.queues[meshID], r)
	if !c.running[meshID] {
		c.running[meshID] = true
		c.wg.Add(1)
		go c.drain(meshID)
	}
}

func (c *committer) drain(meshID string) {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		q := c.queues[meshID]
		if len(q) == 0 {
			delete(c.queues, meshID)
			delete(c.running, meshID)
			c.mu.Unlock()
			return
		}
		n := min(len(q), maxBatch)
		batch := q[:n:n]
		c.queues[meshID] = q[n:]
		c.mu.Unlock()
		c.s.commitBatch(meshID, batch)
	}
}

// wait blocks until every drain has finished (Store.Close).
func (c *committer) wait() { c.wg.Wait() }

// commitBatch commits a batch in one transaction, each post inside its own
// savepoint: a refused post rolls back alone (its seq increment with it, so
// no gap), the rest commit together. Committed messages are handed to the
// commit hook in seq order before any poster is answered.
func (s *Store) commitBatch(meshID string, batch []*postReq) {
	// Not tied to one request: the batch belongs to every poster in it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chain := &auditChain{meshID: meshID}
	var committed []MessageRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		committed = committed[:0]
		chain.reset()
		for i, r := range batch {
			r.out, r.err = nil, nil
			sp := fmt.Sprintf("post_%d", i)
			if err := tx.SavePoint(sp).Error; err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			mark := chain.mark()
			out, err := s.postOne(tx, chain, r)
			if err == nil {
				r.out = out
				if !out.Replayed {
					committed = append(committed, out.Row)
				}
				continue
			}
			if rbErr := tx.RollbackTo(sp).Error; rbErr != nil {
				return fmt.Errorf("rollback to savepoint: %w", rbErr)
			}
			chain.restore(mark)
			if errors.Is(err, errClientIDRace) {
				orig, qerr := s.messageByClientID(tx, r.p.MemberID, r.in.ClientMessageID)
				if qerr == nil && orig != nil {
					r.out = &Posted{Row: *orig, Replayed: true}
					continue
				}
				err = E(KindConflict, "client_message_id_conflict", "a message with this clientMessageId is being posted concurrently; retry")
			}
			if _, domain := AsError(err); !domain {
				// A database failure dooms the whole batch.
				return err
			}
			r.err = err
		}
		return s.step("batch_commit")
	})
	if err != nil {
		for _, r := range batch {
			r.out, r.err = nil, fmt.Errorf("commit messages: %w", err)
			if de, ok := AsError(err); ok {
				r.err = de
			}
		}
		committed = nil
	}
	if len(committed) > 0 && s.onCommit != nil {
		s.onCommit(committed)
	}
	for _, r := range batch {
		close(r.done)
	}
}

// auditChain carries a mesh's previous audit hash through a batch, so each
// message costs one insert rather than a lookup and an insert.
type auditChain struct {
	meshID string
	prev   string
}

func (a *auditChain) reset()           { a.prev = "" }
func (a *auditChain) mark() string     { return a.prev }
func (a *auditChain) restore(m string) { a.prev = m }

// append writes the event with an allocated audit seq.
func (a *auditChain) append(s *Store, tx *gorm.DB, seq int64, kind, actor, target string, meta map[string]any) error {
	if a.prev == "" {
		prev, err := auditPrevHash(tx, a.meshID, seq)
		if err != nil {
			return err
		}
		a.prev = prev
	}
	h, err := s.writeAudit(tx, a.meshID, seq, a.prev, kind, actor, target, meta)
	if err != nil {
		return err
	}
	a.prev = h
	return nil
}
