package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/admin"
)

// cliTimeout bounds one admin API call of the CLI.
const cliTimeout = 60 * time.Second

// errUnauthorized means the relay refused the CLI's admin token.
var errUnauthorized = errors.New("admin.token does not match the running relay's")

// adminClient calls a running relay's admin API, as `relay status` and `relay dlq` do.
type adminClient struct {
	// base is "http://host:port" without a trailing slash.
	base  string
	token string
	http  *http.Client
}

// newAdminClient reads the configuration at path and aims at its admin listener.
func newAdminClient(path string) (*adminClient, error) {
	cfg, err := config.Load(path, os.LookupEnv, providers.Specs())
	if err != nil {
		return nil, fmt.Errorf("%s:\n%w", path, err)
	}
	base, err := adminBaseURL(cfg.Admin.Listen)
	if err != nil {
		return nil, err
	}
	return &adminClient{base: base, token: cfg.Admin.Token, http: &http.Client{Timeout: cliTimeout}}, nil
}

// adminBaseURL turns admin.listen into the URL to call: a wildcard or empty host
// (":9090", "0.0.0.0:9090", "[::]:9090") means this machine, 127.0.0.1.
func adminBaseURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("admin.listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// call sends one API request with the token; in (may be nil) is the JSON body and out
// receives the JSON reply.
func (c *adminClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("cannot reach the relay's admin API at %s: is `relay serve` running? (%w)", c.base, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API %s %s: reading the reply: %w", method, path, err)
	}
	if res.StatusCode == http.StatusUnauthorized {
		return errUnauthorized
	}
	if res.StatusCode/100 != 2 {
		var e admin.ErrorReply
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %s", e.Error.Message)
		}
		return fmt.Errorf("admin API %s %s: %s", method, path, res.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API %s %s: the reply is not what this relay version expects: %w", method, path, err)
	}
	return nil
}

// stringList is a flag that may be repeated (--id A --id B).
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

// Set adds one value.
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

var _ flag.Value = (*stringList)(nil)

// cliFlags are the flags of the admin subcommands; each takes the ones it needs.
type cliFlags struct {
	fs       *flag.FlagSet
	config   string
	provider string
	limit    int
	ids      stringList
	yes      bool
}

// newCLIFlags makes the flag set of `relay <name>`; --config is always there.
func newCLIFlags(name string, stderr io.Writer) *cliFlags {
	f := &cliFlags{fs: flag.NewFlagSet("relay "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.config, "config", "", "configuration file of the running relay (YAML)")
	return f
}

func (f *cliFlags) withProvider() *cliFlags {
	f.fs.StringVar(&f.provider, "provider", "", "provider name (ens, brevo, ...)")
	return f
}

// parse parses args and checks the required flags; usage problems wrap errUsage.
func (f *cliFlags) parse(args []string, usageLine string) error {
	if err := f.parseOnly(args, usageLine); err != nil {
		return err
	}
	missing := f.config == ""
	if f.fs.Lookup("provider") != nil && f.provider == "" {
		missing = true
	}
	if missing || f.fs.NArg() > 0 {
		fmt.Fprintf(f.fs.Output(), "usage: %s\n", usageLine)
		return errUsage
	}
	return nil
}

// parseOnly parses args with usageLine as the usage text and checks no
// required flag: a command whose flags are all filters checks what it needs.
func (f *cliFlags) parseOnly(args []string, usageLine string) error {
	f.fs.Usage = func() {
		fmt.Fprintf(f.fs.Output(), "usage: %s\n", usageLine)
		f.fs.PrintDefaults()
	}
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
