// Package strictjson is the relay's strict JSON pre-pass: it parses a request body into
// a small value tree and refuses what encoding/json would quietly accept at a security
// boundary: invalid UTF-8 (also from \u escapes), duplicate keys (also case variants, which
// encoding/json would merge), nesting deeper than a limit, numbers outside float64, trailing
// data. Keys keep their exact spelling and order, so validators can reject unknown or
// wrongly-cased fields and the tree can be written back unchanged.
package strictjson
