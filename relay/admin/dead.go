package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/queue"
)

// Dead-letter list limits.
const (
	defaultDeadLimit = 50
	maxDeadLimit     = 1000
)

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// purgeAllScript deletes a dead-letter stream and returns how many entries it had, in one
// step. UNLINK frees a large stream off Redis's main thread. KEYS: dead.
var purgeAllScript = redis.NewScript(`
local n = redis.call('XLEN', KEYS[1])
redis.call('UNLINK', KEYS[1])
return n
`)

// deadList serves GET /admin/api/dead/{provider}?limit=N, newest first.
func (a *api) deadList(w http.ResponseWriter, r *http.Request, provider string) {
	limit := defaultDeadLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "limit must be a positive integer")
			return
		}
		limit = min(n, maxDeadLimit)
	}
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	key := a.keys.Dead(provider)
	var (
		total *redis.IntCmd
		list  *redis.XMessageSliceCmd
	)
	_, err := a.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		total = pipe.XLen(ctx, key)
		list = pipe.XRevRangeN(ctx, key, "+", "-", int64(limit))
		return nil
	})
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	reply := DeadListReply{Provider: provider, Total: total.Val(), Dead: make([]DeadLetter, 0, len(list.Val()))}
	for _, m := range list.Val() {
		reply.Dead = append(reply.Dead, deadLetter(m))
	}
	writeJSON(w, http.StatusOK, reply)
}

// deadGet serves GET /admin/api/dead/{provider}/{stream_id}: one entry with its body.
func (a *api) deadGet(w http.ResponseWriter, r *http.Request, provider string) {
	id := r.PathValue("stream_id")
	if !validStreamID(id) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "not a stream id")
		return
	}
	ctx, cancel := a.redisCtx(r)
	defer cancel()
	msgs, err := a.client.XRangeN(ctx, a.keys.Dead(provider), id, id, 1).Result()
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	if len(msgs) == 0 {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such dead letter")
		return
	}
	m := msgs[0]
	writeJSON(w, http.StatusOK, DeadLetterDetail{
		DeadLetter: deadLetter(m),
		Body:       maskedBody(str(m.Values, queue.FieldBody)),
		IP:         str(m.Values, queue.FieldIP),
		UserAgent:  str(m.Values, queue.FieldUA),
		Country:    str(m.Values, queue.FieldCountry),
		Customer:   str(m.Values, queue.FieldCustomer),
	})
}

// purge serves DELETE /admin/api/dead/{provider}: all, or {"ids":[...]}.
func (a *api) purge(w http.ResponseWriter, r *http.Request, provider string) {
	var req PurgeRequest
	err := decodeBody(w, r, &req)
	if err == nil {
		err = checkIDs(req.IDs)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	key := a.keys.Dead(provider)
	var purged int64
	scope := "ids"
	if req.IDs == nil {
		scope = "all"
		ctx, cancel := a.redisCtx(r)
		purged, err = purgeAllScript.Run(ctx, a.client, []string{key}).Int64()
		cancel()
	} else {
		for start := 0; start < len(req.IDs) && err == nil; start += chunk {
			ctx, cancel := a.redisCtx(r)
			var n int64
			n, err = a.client.XDel(ctx, key, req.IDs[start:min(start+chunk, len(req.IDs))]...).Result()
			cancel()
			purged += n
		}
	}
	if purged > 0 || err == nil {
		a.auditLog(r, provider, "purge", scope, purged)
	}
	if err != nil {
		a.redisFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, PurgeReply{Purged: purged})
}

// deadLetter decodes a dead-letter entry without its body.
func deadLetter(m redis.XMessage) DeadLetter {
	v := m.Values
	status, _ := strconv.Atoi(str(v, queue.FieldStatus))
	attempts, _ := strconv.Atoi(str(v, queue.FieldAttempts))
	return DeadLetter{
		StreamID:       m.ID,
		EventsStreamID: str(v, queue.FieldStreamID),
		ID:             str(v, queue.FieldID),
		Route:          str(v, queue.FieldRoute),
		Source:         str(v, queue.FieldSource),
		Reason:         str(v, queue.FieldReason),
		Status:         status,
		Attempts:       attempts,
		Error:          str(v, queue.FieldError),
		DeadAt:         msTime(str(v, queue.FieldDeadAt)),
		ReceivedAt:     msTime(str(v, queue.FieldAt)),
	}
}

// str is a field's string value, "" when absent.
func str(values map[string]any, field string) string {
	s, _ := values[field].(string)
	return s
}

// msTime renders unix milliseconds as RFC 3339, "" when s is not a number.
func msTime(s string) string {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(timeLayout)
}

// maskedBody is the stored body with e-mail addresses masked, as JSON: the body itself
// when it is JSON, else a JSON string.
func maskedBody(body string) json.RawMessage {
	masked := maskEmails(body)
	if json.Valid([]byte(masked)) {
		return json.RawMessage(masked)
	}
	b, err := json.Marshal(masked)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

// maskEmails replaces the local part of every e-mail address in s but its first
// character with "***" (jane@example.com → j***@example.com). Inside JSON it keeps the
// text valid: escape sequences are never part of an address, and only plain characters
// that cannot be quotes or escapes are rewritten.
func maskEmails(s string) string {
	esc := escaped(s)
	out := make([]byte, 0, len(s))
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '@' || esc[i] {
			continue
		}
		start, ok := emailAt(s, esc, i)
		if !ok || start < last {
			continue
		}
		out = append(out, s[last:start+1]...)
		out = append(out, "***"...)
		last = i
	}
	return string(append(out, s[last:]...))
}

// escaped marks the bytes of s that belong to a backslash escape (\n, \\, \u00e9).
func escaped(s string) []bool {
	esc := make([]bool, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		n := 2
		if i+1 < len(s) && s[i+1] == 'u' {
			n = 6
		}
		for j := i; j < min(i+n, len(s)); j++ {
			esc[j] = true
		}
		i += n - 1
	}
	return esc
}

// emailAt returns where the local part of an address whose '@' is at s[at] starts, and
// false when s[at] does not sit inside something like an address (a local part before
// it, a dotted domain after it).
func emailAt(s string, esc []bool, at int) (int, bool) {
	start := at
	for start > 0 && !esc[start-1] && isLocalChar(s[start-1]) {
		start--
	}
	if start == at {
		return 0, false
	}
	end, dots := at+1, 0
	for end < len(s) && !esc[end] && (isDomainChar(s[end]) || s[end] == '.') {
		if s[end] == '.' {
			dots++
		}
		end++
	}
	return start, dots > 0 && end > at+2
}

func isLocalChar(c byte) bool {
	return isDomainChar(c) || c == '.' || c == '_' || c == '%' || c == '+'
}

func isDomainChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}
