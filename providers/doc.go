// Package providers knows the five upstreams. Per provider, one file decodes and validates
// the inbound body of each of its ingest routes (Op), and builds the upstream request and
// classifies the reply. The engine (package relay/...) knows nothing provider-specific.
//
// Validation is done on the strictjson tree, not on encoding/json structs, so that field
// names match exactly (no case-insensitive matching), unknown fields are refused and numbers
// keep their type (a Linkrunner amount sent as "12.5" is refused, not coerced).
package providers
