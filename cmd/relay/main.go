// Command relay is the event relay: `relay serve --config FILE` runs it,
// `relay check-config --config FILE` reports every configuration problem at once,
// `relay status`, `relay dlq list|replay|purge`, `relay trace` and `relay tail` talk to a running relay's admin API,
// `relay version` prints the build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: relay <command> [flags]

commands:
  serve --config FILE         run the relay
  check-config --config FILE  validate a configuration file and report every problem
  status --config FILE        delivery state per provider, from the running relay
  dlq list --config FILE --provider P [--limit N]
                              the newest dead letters of a provider
  dlq replay --config FILE --provider P [--id ID ...]
                              send dead letters again (all without --id)
  dlq purge --config FILE --provider P [--id ID ...] [--yes]
                              delete dead letters (all of them needs --yes)
  trace --config FILE --provider P ID
                              what happened to one event: arrival, attempts, where it is now
  tail --config FILE [--provider P] [--route R] [--status S] [--count N]
                              live events (ingested, delivery outcomes) as they happen
  version                     print the version

status, dlq, trace and tail call the admin API at the configuration's admin.listen with admin.token.
Exit status: 0 done, 1 failed, 2 usage.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stderr)
	case "check-config":
		err = checkConfigCmd(args[1:], stdout)
	case "status":
		err = statusCmd(ctx, args[1:], stdout, stderr)
	case "dlq":
		err = dlqCmd(ctx, args[1:], stdout, stderr)
	case "trace":
		err = traceCmd(ctx, args[1:], stdout, stderr)
	case "tail":
		err = tailCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "relay: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
}

// configFlag parses the --config flag every config-reading command takes.
func configFlag(name string, args []string, out io.Writer) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(out, "usage: relay %s --config FILE\n", name)
		return "", errUsage
	}
	return *path, nil
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return "relay " + v
}
