package config

// Internals reached by the external tests (package config_test), which import package
// providers for the provider sections and so cannot live inside package config.
var (
	ExpandString = expandString
	ParseNode    = parseNode
	ExpandNode   = expandNode
	MaskEnvRefs  = maskEnvRefs
	YAMLFields   = yamlFields
	JoinPath     = joinPath
)

// SetDefaults applies the defaults, as Parse does.
func (c *Config) SetDefaults() { c.setDefaults() }

// Restore is restore.
func (m *envMask) Restore(s string) string { return m.restore(s) }

// Refs are the references masked.
func (m *envMask) Refs() []string { return m.refs }

// Prefix is the placeholders' prefix.
func (m *envMask) Prefix() string { return m.prefix }
