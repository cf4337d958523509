//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// fileLock is an exclusive flock(2) on a file beside the SQLite database.
// The kernel drops it when the process dies, so a crash never leaves a
// stale lock behind.
type fileLock struct{ f *os.File }

// lockPollEvery is how often a waiter retries: flock has no wake-up that a
// context can select on, and a blocking flock could not be cancelled.
const lockPollEvery = 50 * time.Millisecond

// lockProcess takes <db>.lock for a serving broker.
func lockProcess(ctx context.Context, db string, wait time.Duration) (*fileLock, error) {
	l, err := lockFile(ctx, db+".lock", wait)
	if errors.Is(err, errLockBusy) {
		return nil, fmt.Errorf("the embedded SQLite database %s is in use by another broker process (it holds %s.lock): "+
			"one broker process serves one SQLite file; run replicas on PostgreSQL (DATABASE_URL)", db, db)
	}
	return l, err
}

// lockMigration takes <db>.lock for the length of a migration.
func lockMigration(ctx context.Context, db string, wait time.Duration) (*fileLock, error) {
	l, err := lockFile(ctx, db+".lock", wait)
	if errors.Is(err, errLockBusy) {
		return nil, fmt.Errorf("cannot migrate %s: another broker process holds %s.lock (stop it, or let it migrate)", db, db)
	}
	return l, err
}

var errLockBusy = errors.New("lock busy")

func lockFile(ctx context.Context, path string, wait time.Duration) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, errLockBusy
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(lockPollEvery):
		}
	}
}

// release drops the lock; nil-safe.
func (l *fileLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
