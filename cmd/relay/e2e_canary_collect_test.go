package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// canaryTranscript collects everything the relay says to anyone but an upstream: ingest
// and admin replies, CLI output, so the canary test can search it all at once.
type canaryTranscript struct {
	b strings.Builder
}

func (c *canaryTranscript) add(what, text string) {
	fmt.Fprintf(&c.b, "=== %s\n%s\n", what, text)
}

func (c *canaryTranscript) String() string { return c.b.String() }

// canaryHTTP sends one request (body may be empty) with the admin bearer token when token
// is set, records the exchange in tr and returns the status and reply body.
func canaryHTTP(t *testing.T, tr *canaryTranscript, method, url, token, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	// Headers too: a secret in a Location or WWW-Authenticate header is a leak as well.
	tr.add(fmt.Sprintf("%s %s -> %d %v", method, url, res.StatusCode, res.Header), string(b))
	return res.StatusCode, string(b)
}

// canaryCLI runs the relay binary with args (a CLI command), records its stdout and
// stderr in tr and returns its exit code and both outputs.
func canaryCLI(t *testing.T, tr *canaryTranscript, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, relayBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("relay %v: %v", args, err)
	}
	tr.add(fmt.Sprintf("relay %s -> exit %d", strings.Join(args, " "), code), "stdout:\n"+out.String()+"stderr:\n"+errb.String())
	return code, out.String(), errb.String()
}

// canaryWriteFile writes text to a new file in dir and returns its path.
func canaryWriteFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// canaryDumpRedis renders every key (found with SCAN) and its whole value as text, for
// every Redis type, plus each stream's consumer groups and consumers.
func canaryDumpRedis(t *testing.T, url string) string {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var v any
		switch typ {
		case "none":
			// Expired between SCAN and TYPE (the rate limiter's :slots key lives
			// milliseconds): nothing left to leak.
			continue
		case "stream":
			entries, err1 := rdb.XRange(ctx, k, "-", "+").Result()
			groups, err2 := rdb.XInfoGroups(ctx, k).Result()
			if err := firstErr(err1, err2); err != nil {
				t.Fatalf("stream %s: %v", k, err)
			}
			consumers := map[string]any{}
			for _, g := range groups {
				consumers[g.Name] = rdb.XInfoConsumers(ctx, k, g.Name).Val()
			}
			v = map[string]any{"entries": entries, "groups": groups, "consumers": consumers}
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		default:
			t.Fatalf("key %s has type %s, which the dump does not read", k, typ)
		}
		if errors.Is(err, redis.Nil) {
			continue // expired between TYPE and the read
		}
		if err != nil {
			t.Fatalf("read %s %s: %v", typ, k, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s (%s)\n%s\n", k, typ, j)
	}
	return b.String()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// canaryHitText is everything an upstream received in one request.
func canaryHitText(h fakeHit) string {
	return h.path + "\n" + fmt.Sprint(h.header) + "\n" + h.body
}

// canaryFind reports where secret occurs in text, with some context, or "".
func canaryFind(text, secret string) string {
	i := strings.Index(text, secret)
	if i < 0 {
		return ""
	}
	return "…" + text[max(0, i-120):min(len(text), i+len(secret)+40)] + "…"
}
