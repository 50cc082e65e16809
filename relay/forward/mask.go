package forward

import "regexp"

// emailPattern finds e-mail addresses in upstream error texts (Brevo echoes the contact).
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

// maskEmails keeps e-mail addresses out of logs: "jane@example.com" becomes
// "j***@example.com", enough to tell addresses apart while debugging, not to contact
// anyone. Dead letters in Redis keep the full text for operators.
func maskEmails(s string) string {
	return emailPattern.ReplaceAllStringFunc(s, func(addr string) string {
		for i := 0; i < len(addr); i++ {
			if addr[i] == '@' {
				return addr[:1] + "***" + addr[i:]
			}
		}
		return "***"
	})
}
