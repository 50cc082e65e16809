package queue

import "github.com/redis/go-redis/v9"

// onceCmd wraps every command of an enqueue pipeline so that go-redis never sends the
// pipeline a second time: its NoRetry makes go-redis fail the pipeline's commands with
// the error instead of re-sending them.
//
// Why per command, and not MaxRetries or a context deadline: go-redis re-sends a whole
// pipeline after a read timeout, an EOF, or a retryable error (TRYAGAIN, LOADING,
// CLUSTERDOWN) on its first command, all cases where some of its writes may already have
// been applied; a plain XADD (relay-generated id, no dedupe marker) would then be
// written twice. The single and Sentinel clients bound that by MaxRetries, but a Cluster
// client's pipeline loop is bounded by MaxRedirects, which also follows MOVED and ASK;
// and a context deadline at the read deadline only makes the re-send lose a race with
// the context's timer. Every form checks NoRetry before it re-sends a pipeline (a
// Cluster client checks it per node's part), and none checks it before following MOVED
// or ASK, which Redis answers without running the command: redirections still work.
// The shared client keeps MaxRetries 1 for everything else.
//
// A pipeline so failed is answered ErrUnavailable (503 with Retry-After): a keyed event's
// resend is then a duplicate, a plain event's may be a second entry (docs/guarantees.md).
type onceCmd struct{ redis.Cmder }

// NoRetry reports true: see onceCmd.
func (onceCmd) NoRetry() bool { return true }

var _ redis.Cmder = (*onceCmd)(nil)
