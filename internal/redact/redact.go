// Package redact masks personal data in text the relay shows or logs: upstream error
// texts (Brevo echoes the contact) and event bodies shown by the admin API.
package redact

// Emails replaces the local part of every e-mail address in s but its first character
// with "***" (jane@example.com → j***@example.com): enough to tell addresses apart while
// debugging, not to contact anyone. Inside JSON it keeps the text valid: escape sequences
// are never part of an address, and only plain characters that cannot be quotes or
// escapes are rewritten.
func Emails(s string) string {
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
