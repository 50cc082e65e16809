package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// tokenCheck holds the SHA-256 of admin.token, never the token in a comparable form.
type tokenCheck struct {
	want [sha256.Size]byte
	set  bool
}

func newTokenCheck(token string) tokenCheck {
	return tokenCheck{want: sha256.Sum256([]byte(token)), set: token != ""}
}

// matches reports whether r carries "Authorization: Bearer <token>" (the scheme is
// case-insensitive). Both sides are hashed first, so the comparison takes the same time
// whatever the guess's length or content (subtle.ConstantTimeCompare alone returns at
// once on a length mismatch).
func (c tokenCheck) matches(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	eq := subtle.ConstantTimeCompare(got[:], c.want[:]) == 1
	return eq && c.set
}

// requireToken answers 401 unless the request carries the admin token.
func requireToken(token string, next http.Handler) http.Handler {
	check := newTokenCheck(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !check.matches(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="relay-admin"`)
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong admin token (Authorization: Bearer <admin.token>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}
