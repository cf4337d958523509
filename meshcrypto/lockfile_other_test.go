//go:build !unix

package meshcrypto

// lockFile is a no-op where flock is unavailable; concurrent installs there
// are left to npm.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
