package providers

// isCountryCode reports whether s is shaped like an ISO 3166-1 alpha-2 code (two upper-case
// ASCII letters). The list of assigned codes changes; the shape does not.
func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
