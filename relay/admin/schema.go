package admin

import "encoding/json"

// The JSON shapes of the admin API (see the package doc). They are part of the contract:
// the page and the CLI decode them. Add fields; never rename or remove one.

// ProvidersReply is the reply of GET /admin/api/providers.
type ProvidersReply struct {
	Providers []ProviderStatus `json:"providers"`
}

// ProviderStatus is one provider's delivery state.
type ProviderStatus struct {
	Name string `json:"name"`
	// Breaker is "closed", "half-open", "open" or "unknown".
	Breaker string `json:"breaker"`
	Ready   int64  `json:"ready"`
	Pending int64  `json:"pending"`
	Retry   int64  `json:"retry"`
	Dead    int64  `json:"dead"`
	// OldestUndeliveredSeconds is approximate (see the package doc); 0 when none.
	OldestUndeliveredSeconds float64 `json:"oldest_undelivered_seconds"`
	// LastMinute estimates the outcomes of the last 60 s, deployment-wide.
	LastMinute MinuteCounts `json:"last_minute"`
}

// MinuteCounts are delivery outcomes over one minute.
type MinuteCounts struct {
	Delivered int64 `json:"delivered"`
	Retried   int64 `json:"retried"`
	Dead      int64 `json:"dead"`
}

// SeriesReply is the reply of GET /admin/api/series?provider=P.
type SeriesReply struct {
	Provider string `json:"provider"`
	// Now is Redis's clock when the series was read (RFC 3339, UTC, milliseconds).
	Now string `json:"now"`
	// Points are one per minute, oldest first; the last is the current, partial minute.
	Points []SeriesPoint `json:"points"`
}

// SeriesPoint is one minute of a provider's series: the deployment's outcomes in it and
// the queue depth sampled in it (null when no relay sampled that minute).
type SeriesPoint struct {
	// Minute is the minute's start (RFC 3339, UTC).
	Minute string `json:"minute"`
	MinuteCounts
	Depth *QueueDepth `json:"depth"`
}

// QueueDepth is a provider's queue depth, as ProviderStatus counts it.
type QueueDepth struct {
	Ready   int64 `json:"ready"`
	Pending int64 `json:"pending"`
	Retry   int64 `json:"retry"`
	Dead    int64 `json:"dead"`
}

// DeadListReply is the reply of GET /admin/api/dead/{provider}.
type DeadListReply struct {
	Provider string `json:"provider"`
	// Total is the length of the dead-letter stream.
	Total int64 `json:"total"`
	// Dead is newest first.
	Dead []DeadLetter `json:"dead"`
}

// DeadLetter is one dead-letter entry, without its body.
type DeadLetter struct {
	// StreamID is the entry's id in the dead-letter stream: the handle for get, replay
	// and purge.
	StreamID string `json:"stream_id"`
	// EventsStreamID is the id the event had in the events stream.
	EventsStreamID string `json:"events_stream_id"`
	// ID is the relay's event id.
	ID       string `json:"id"`
	Route    string `json:"route"`
	Source   string `json:"source"`
	Reason   string `json:"reason"`
	Status   int    `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
	// DeadAt and ReceivedAt are RFC 3339 (UTC, milliseconds), "" when unknown.
	DeadAt     string `json:"dead_at"`
	ReceivedAt string `json:"received_at"`
}

// DeadLetterDetail is the reply of GET /admin/api/dead/{provider}/{stream_id}.
type DeadLetterDetail struct {
	DeadLetter
	// Body is the stored event JSON with e-mail addresses masked (a JSON string when the
	// stored body is not JSON).
	Body      json.RawMessage `json:"body"`
	IP        string          `json:"ip"`
	UserAgent string          `json:"ua"`
	Country   string          `json:"country"`
	Customer  string          `json:"customer"`
}

// ReplayRequest is the optional body of POST /admin/api/dead/{provider}/replay.
type ReplayRequest struct {
	// IDs selects dead letters by stream id; nil means all (bounded by the fields below).
	IDs []string `json:"ids"`
	// Limit caps how many dead letters one call looks at; 0 means no cap.
	Limit int `json:"limit,omitempty"`
	// After starts the scan after this stream id (exclusive).
	After string `json:"after,omitempty"`
	// Until ends the scan at this stream id (inclusive); empty means the newest one now.
	Until string `json:"until,omitempty"`
	// Filter replays only the dead letters it matches (with IDs: those of the ids).
	Filter *DeadFilter `json:"filter,omitempty"`
	// DryRun counts what would be replayed and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// DeadFilter selects dead letters for a replay or purge; an absent field matches all.
type DeadFilter struct {
	// Since and Until (RFC 3339) bound when the letter was dead-lettered (its
	// dead-letter stream id's time, by Redis's clock): at or after Since, before Until.
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
	// Reason is permanent, max_attempts, max_age, trimmed or malformed.
	Reason string `json:"reason,omitempty"`
	// Status is the last HTTP status (0: no reply).
	Status *int `json:"status,omitempty"`
	// Route is the ingest route, "<provider>/<operation>" ("ens/click").
	Route string `json:"route,omitempty"`
}

// ReplayReply is the reply of a replay. In a dry run, Replayed and Skipped are what a
// replay would do.
type ReplayReply struct {
	Replayed int64 `json:"replayed"`
	Missing  int64 `json:"missing"`
	Skipped  int64 `json:"skipped"`
	// Matched is how many dead letters the filter matched (all looked at without one).
	Matched int64 `json:"matched"`
	// DryRun reports that nothing was changed.
	DryRun bool `json:"dry_run,omitempty"`
	// LastID is the last dead letter looked at ("" when none): the next chunk's After.
	LastID string `json:"last_id"`
	// Until is the scan's upper bound (pass it back with the next chunk).
	Until string `json:"until"`
	// Done reports that the scan reached Until (always true for a replay by ids).
	Done bool `json:"done"`
}

// PurgeRequest is the optional body of DELETE /admin/api/dead/{provider}.
type PurgeRequest struct {
	// IDs selects dead letters by stream id; nil means all.
	IDs []string `json:"ids"`
	// Filter purges only the dead letters it matches (with IDs: those of the ids).
	Filter *DeadFilter `json:"filter,omitempty"`
	// DryRun counts what would be purged and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Limit, After and Until page a purge by filter as they do a replay.
	Limit int    `json:"limit,omitempty"`
	After string `json:"after,omitempty"`
	Until string `json:"until,omitempty"`
}

// PurgeReply is the reply of a purge. In a dry run, Purged is what a purge would delete.
type PurgeReply struct {
	Purged int64 `json:"purged"`
	// The fields below are set by a purge by filter, dry run or page (not by a purge of
	// everything or by ids without a filter): Matched as in ReplayReply, LastID, Until
	// and Done as in ReplayReply.
	Matched int64  `json:"matched,omitempty"`
	LastID  string `json:"last_id,omitempty"`
	Until   string `json:"until,omitempty"`
	Done    bool   `json:"done,omitempty"`
	DryRun  bool   `json:"dry_run,omitempty"`
}

// ErrorReply is every error reply.
type ErrorReply struct {
	OK    bool      `json:"ok"`
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes.
const (
	CodeUnauthorized    = "unauthorized"
	CodeUnknownProvider = "unknown_provider"
	CodeNotFound        = "not_found"
	CodeBadRequest      = "bad_request"
	CodeUnavailable     = "unavailable"
)
