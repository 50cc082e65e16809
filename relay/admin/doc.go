// Package admin is the operator listener: /healthz, /readyz and /metrics, kept apart from
// the public ingest listener so it can stay on a private address.
package admin
