package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// initTrace matches a GODEBUG=inittrace=1 line: the package and the bytes
// its init allocated.
var initTrace = regexp.MustCompile(`(?m)^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes`)

// TestNoExpensivePackageInit: nothing expensive runs at package init in
// either binary (the peer binary starts on every Claude Code prompt; the
// broker's other commands should not pay for what serve needs). An
// argon2id hash computed at init allocated 20 MB in models; the check is
// on bytes allocated, which do not depend on the machine's speed.
func TestNoExpensivePackageInit(t *testing.T) {
	broker, cli := binaries(t)
	const limit = 4 << 20
	for _, bin := range []string{cli, broker} {
		cmd := exec.Command(bin, "version")
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s version: %v\n%s", bin, err, errb.String())
		}
		lines := initTrace.FindAllStringSubmatch(errb.String(), -1)
		if len(lines) == 0 {
			t.Fatalf("%s: no init trace in %q", bin, errb.String())
		}
		for _, m := range lines {
			if n, _ := strconv.Atoi(m[2]); n > limit {
				t.Errorf("%s: package %s allocates %d bytes at init (limit %d): make it lazy", bin, m[1], n, limit)
			}
		}
	}
}
