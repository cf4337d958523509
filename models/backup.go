package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	_ "github.com/glebarez/go-sqlite" // database/sql driver "sqlite" for checking a backup
)

// BackupSQLite writes a consistent copy of the embedded database to dest
// with VACUUM INTO: one read transaction, so the copy is the database as
// of one commit while posts go on. dest must not exist. It returns the
// copy's size.
func (s *Store) BackupSQLite(ctx context.Context, dest string) (int64, error) {
	if s.dialect != SQLite {
		return 0, errors.New("backup is for the embedded SQLite; on PostgreSQL use pg_dump (docs/DEPLOY.md)")
	}
	if _, err := os.Stat(dest); err == nil {
		return 0, fmt.Errorf("backup %s: the file exists; choose a new name", dest)
	}
	if err := s.db.WithContext(ctx).Exec("VACUUM INTO ?", dest).Error; err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dest, err)
	}
	st, err := os.Stat(dest)
	if err != nil {
		return 0, fmt.Errorf("backup to %s: %w", dest, err)
	}
	return st.Size(), nil
}

// RestoreSQLite replaces the embedded database at dest with the backup src.
// It holds dest's process lock throughout, so it is refused while a broker
// serves the file; it checks the backup's integrity first, writes a copy
// beside dest and renames it into place, and removes the old WAL and
// shared-memory files, which belong to the database being replaced.
func RestoreSQLite(ctx context.Context, src, dest string) error {
	if err := checkSQLite(ctx, src); err != nil {
		return err
	}
	l, err := lockProcess(ctx, dest, time.Second)
	if err != nil {
		return err
	}
	defer l.release()
	tmp := dest + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, side := range []string{dest + "-wal", dest + "-shm"} {
		if err := os.Remove(side); err != nil && !errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(tmp)
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	return syncDir(filepath.Dir(dest))
}

// checkSQLite opens a backup read-only and runs integrity_check on it.
func checkSQLite(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("open backup %s: %w", path, err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("backup %s is not a readable SQLite database: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("backup %s fails integrity_check: %s", path, res)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// syncDir makes a rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // not every file system syncs directories; the rename stands
	return nil
}
