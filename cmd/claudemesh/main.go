// Command claudemesh is the peer command line: join a mesh, post to and
// follow end-to-end encrypted topics, send and receive direct messages.
// Everything is in package cli; run `claudemesh --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/claudemesh/claudemesh-go/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
