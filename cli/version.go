package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/claudemesh/claudemesh-go/cli.Version=…";
// otherwise the module version from the build info, else "dev".
var Version = "dev"

func buildVersion() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

type versionOptions struct{ io ioStreams }

func (a *app) versionCommand() *cobra.Command {
	opts := &versionOptions{}
	return &cobra.Command{Use: "version", Short: "Print the claudemesh version", Args: cobra.NoArgs, Example: "  claudemesh version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runVersion(opts)
		}}
}

func runVersion(opts *versionOptions) error {
	fmt.Fprintln(opts.io.Out, "claudemesh", buildVersion())
	return nil
}
