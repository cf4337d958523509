//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package models

import (
	"context"
	"time"
)

// fileLock is a no-op where flock(2) is missing (Windows, Plan 9): there a
// single broker process per SQLite file is the operator's promise.
type fileLock struct{}

func lockProcess(context.Context, string, time.Duration) (*fileLock, error)   { return nil, nil }
func lockMigration(context.Context, string, time.Duration) (*fileLock, error) { return nil, nil }
func (l *fileLock) release()                                                  {}
