package providers

import (
	"strings"
	"time"
	"unicode"
)

// isCountryCode reports whether s is shaped like an ISO 3166-1 alpha-2 code (two upper-case
// ASCII letters). The list of assigned codes changes; the shape does not.
func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isASCIIDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool {
	return isASCIIDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// allBytes reports whether s is non-empty and every byte of it satisfies ok. Working on
// bytes means any non-ASCII byte fails, which is what the ASCII-only shapes want.
func allBytes(s string, ok func(c byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds a control character (C0, DEL or C1). Identifiers and
// names are not free text: a control character in one is a bug or an attempt to smuggle
// something into logs, dashboards or upstream headers.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// isUUID reports whether s is a UUID (GUID) in canonical 8-4-4-4-12 hex form, in any case.
// Versions and variants are not checked: upstream ids are opaque.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHexDigit(s[i]) {
				return false
			}
		}
	}
	return true
}

// isTimestamp reports whether s is an RFC 3339 timestamp (the profile of ISO 8601 that
// JSON APIs use), fractional seconds allowed. A zone is required: a local time without one
// is ambiguous by hours once it is queued and forwarded.
func isTimestamp(s string) bool {
	if len(s) > 64 {
		return false
	}
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// Limits of an e-mail address (RFC 5321: path, local part, domain label).
const (
	maxEmailLen      = 254
	maxEmailLocalLen = 64
	maxDomainLabel   = 63
)

// isEmail reports whether s is shaped like a deliverable address: one '@', a dot-atom local
// part and a domain of at least two labels with a non-numeric top level. Quoted local parts,
// comments and IP literals are valid RFC 5322 but never real marketing contacts, so they are
// refused; internationalised (UTF-8) addresses are allowed.
func isEmail(s string) bool {
	if len(s) > maxEmailLen || strings.Count(s, "@") != 1 {
		return false
	}
	at := strings.IndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if local == "" || len(local) > maxEmailLocalLen ||
		local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for _, r := range local {
		if !isEmailRune(r, ".!#$%&'*+/=?^_`{|}~-") {
			return false
		}
	}
	return isDomain(domain)
}

// isEmailRune reports an ASCII letter or digit, one of the ASCII symbols in extra, or a
// non-ASCII letter, digit or combining mark (internationalised addresses).
func isEmailRune(r rune, extra string) bool {
	if r <= unicode.MaxASCII {
		c := byte(r)
		return isASCIILetter(c) || isASCIIDigit(c) || strings.IndexByte(extra, c) >= 0
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc)
}

// isDomain reports whether s is a host name of at least two labels whose last label is not
// all digits (so not an IPv4 address).
func isDomain(s string) bool {
	if len(s) > maxEmailLen {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > maxDomainLabel || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !isEmailRune(r, "-") {
				return false
			}
		}
	}
	return !allBytes(labels[len(labels)-1], isASCIIDigit)
}
