// Package redistest runs a real redis-server for tests, the way net/http/httptest runs an
// HTTP server: one private process per test on a free loopback port, with its data and
// log in t.TempDir(), killed by t.Cleanup.
//
// A real server is needed wherever miniredis falls short: persistence (AOF), CONFIG and
// INFO, ACLs, and faults (Kill, Pause, Restart). The server runs with appendonly yes and
// maxmemory-policy noeviction unless Options say otherwise, so it matches production.
//
// Every method that fails calls t.Fatal, so call them from the test's goroutine.
package redistest
