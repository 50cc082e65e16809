// Package config loads, checks and completes the relay's YAML configuration.
//
// Load reads one file and Parse does the work, in four phases; one run reports the
// problems of all of them:
//
//  1. expand: ${NAME} in a scalar value is replaced from the environment given to Parse
//     (an unset variable is an error; $${ stands for a literal ${). A reference may stand
//     unquoted anywhere a scalar may, in {...} and [...] too: references are masked by
//     placeholders while the YAML is parsed. Expansion works on the parsed YAML nodes, not
//     on the text, so a value can never change the file's structure.
//  2. strict decode: every key must be a field of the schema (config.go), every value of
//     the field's type; problems carry their line and path, e.g.
//     "line 12: providers.ens.api_kee: unknown field".
//  3. defaults: every field left out takes the default its doc comment gives.
//  4. validate: Validate checks values and their combinations, e.g.
//     "providers.ens.timeout must be > 0".
//
// A phase leaves out what it refused, so the next runs on the rest: a scalar whose ${NAME}
// is unset or that has the wrong type becomes null (decoded as the field's zero value,
// then defaulted), a mapping or list of the wrong kind becomes null, and an unknown,
// duplicate or merge key is removed with its value. Validation therefore sees those fields
// empty; its problems about them, or about the sections holding them, are consequences
// and are dropped (see under in load.go). Problems with a line come first, in file order,
// then those of validation. Only a file that does not parse as one YAML mapping, or that
// exceeds maxSchemaNodes, stops before validation.
//
// Problems are returned as *Errors. Messages may quote origins, URLs and file paths but
// never a secret (keys, tokens, passwords).
//
// Relative file paths in the configuration (TLS files) are relative to the working
// directory of the process, not to the configuration file.
package config
