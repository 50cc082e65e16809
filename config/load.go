package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Line is the 1-based line in the YAML file, or 0 for problems found by Validate,
	// which look at decoded values rather than at the text.
	Line int
	// Path locates the value, e.g. "sites[1].origins[0]"; empty for the whole file.
	Path string
	// Message says what is wrong. It never contains a secret.
	Message string
}

// String renders a problem on one line: "line 12: providers.ens.api_kee: unknown field"
// for problems in the text, "providers.ens.timeout must be > 0" for validation problems,
// whose messages read as the rest of a sentence starting with the path.
func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Path != "":
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Path, p.Message)
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	case p.Path != "":
		return p.Path + " " + p.Message
	default:
		return p.Message
	}
}

// Errors is every problem Parse (or Validate) found: those with a line in file order, then
// those of validation.
type Errors []Problem

// Error returns one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(*e))
	for i, p := range *e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (e *Errors) add(line int, path, format string, args ...any) {
	*e = append(*e, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// errOrNil returns e as an error, or a true nil when it is empty: a nil *Errors stored in
// an error interface would not compare equal to nil.
func (e Errors) errOrNil() error {
	if len(e) == 0 {
		return nil
	}
	return &e
}

// Load reads the configuration file at path and parses it with Parse.
func Load(path string, getenv func(string) (string, bool), specs []ProviderSpec) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, getenv, specs)
}

// Parse turns YAML into a complete, valid Config: it expands ${NAME} from getenv, decodes
// strictly, applies defaults and validates. getenv reports whether a variable is set, as
// os.LookupEnv does; nil means an empty environment. specs are the providers the relay
// knows (providers.Specs): each section under providers is decoded into the type of the
// spec of its name. Problems are returned as *Errors: those of expansion and of the
// schema together, in file order, then those of validation, which runs on what is left
// once the faulty values are left out (see the package documentation).
func Parse(data []byte, getenv func(string) (string, bool), specs []ProviderSpec) (*Config, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	root, err := parseNode(data)
	if err != nil {
		return nil, err
	}
	cfg := Config{Providers: NewProviders(specs)}
	var errs Errors
	if root != nil {
		// Each phase leaves the values it refused empty (null nodes, keys removed), so
		// the next one still runs and reports what else is wrong.
		expandNode(root, "", getenv, &errs)
		s := schemaChecker{budget: maxSchemaNodes, providers: &cfg.Providers}
		s.check(root, reflect.TypeFor[Config](), "")
		errs = append(errs, s.errs...)
		slices.SortStableFunc(errs, func(a, b Problem) int { return a.Line - b.Line })
		if s.budget == 0 {
			return nil, &errs // the tree was not checked to the end: nothing to validate
		}
		if err := root.Decode(&cfg); err != nil {
			// schemaChecker accepts only what Decode accepts, so this is a bug guard.
			errs = append(errs, Problem{Message: err.Error()})
			return nil, &errs
		}
		if err := cfg.Providers.decode(root); err != nil {
			errs = append(errs, Problem{Message: err.Error()})
			return nil, &errs
		}
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		var v *Errors
		if !errors.As(err, &v) {
			return nil, err
		}
		// A value left out was validated as empty (or as its default): what validation
		// says about it is a consequence of a problem already reported.
		earlier := errs[:len(errs):len(errs)]
		for _, p := range *v {
			if !under(p.Path, earlier) {
				errs = append(errs, p)
			}
		}
	}
	if len(errs) > 0 {
		return nil, &errs
	}
	return &cfg, nil
}

// under reports whether path is the path of one of problems, inside it, or around it
// (a section whose field was left out: "providers.brevo needs api_key or ma_key" when
// providers.brevo.api_key used an unset variable).
func under(path string, problems Errors) bool {
	within := func(inner, outer string) bool {
		return inner == outer || strings.HasPrefix(inner, outer+".") || strings.HasPrefix(inner, outer+"[")
	}
	for _, p := range problems {
		if p.Path != "" && path != "" && (within(path, p.Path) || within(p.Path, path)) {
			return true
		}
	}
	return false
}

// setNull makes n an empty (null) scalar: a value a phase refused, which decodes as the
// field's zero value, so that later phases run on the rest.
func setNull(n *yaml.Node) {
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

// parseNode parses the single YAML document in data and returns its root mapping, or nil
// for an empty document. A ${NAME} reference may stand unquoted anywhere a scalar may,
// even inside {...} or [...] where YAML would read its braces as structure: see envMask.
// The nodes hold the references as written; expandNode replaces them.
func parseNode(data []byte) (*yaml.Node, error) {
	masked, mask := maskEnvRefs(data)
	dec := yaml.NewDecoder(bytes.NewReader(masked))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, &Errors{{Message: mask.restore(err.Error())}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Errors{{Line: extra.Line, Message: "only one YAML document is allowed"}}
	}
	var errs Errors
	mask.restoreNode(&doc, &errs)
	if len(errs) > 0 {
		return nil, &errs
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Errors{{Line: root.Line, Message: "the configuration must be a YAML mapping (key: value)"}}
	}
	return root, nil
}

// envMask hides the ${NAME} references (and $${NAME} escapes) of a YAML text from the
// YAML parser. In a flow collection ({...} or [...]) YAML reads the braces of an unquoted
// ${NAME} as structure, so maskEnvRefs replaces each reference by a placeholder,
// prefix+n+"z", made of letters and digits only: a plain scalar wherever a scalar may
// stand, quoted or not, which spells no YAML syntax, does not fold and starts no
// double-quoted escape (\z is none, like \$). After parsing, restoreNode turns every
// placeholder back into the reference it stands for, so the nodes hold the text a quoted
// reference would have given, and expandNode expands them there: environment values never
// pass through the parser and cannot change the file's structure.
type envMask struct {
	prefix string   // occurs nowhere in the text
	refs   []string // refs[n] is the reference placeholder n stands for, e.g. "${HOST}"
}

// maskEnvRefs replaces every ${NAME} with a valid NAME by a placeholder, and so every
// escaped $${NAME}, whose placeholder stands for the whole "$${NAME}". Anything else that
// starts with ${ is left as written, for expandString to report once parsed.
func maskEnvRefs(data []byte) ([]byte, envMask) {
	m := envMask{prefix: "zRelayEnv"}
	for bytes.Contains(data, []byte(m.prefix)) {
		m.prefix += "Q" // the prefix must not occur naturally; longer than data, it cannot
	}
	if !bytes.Contains(data, []byte("${")) {
		return data, m
	}
	index := make(map[string]int)
	out := make([]byte, 0, len(data))
	s := data
	for {
		i := bytes.Index(s, []byte("${"))
		if i < 0 {
			return append(out, s...), m
		}
		end := bytes.IndexByte(s[i+2:], '}')
		if end < 0 || !isEnvName(string(s[i+2:i+2+end])) {
			out = append(out, s[:i+2]...)
			s = s[i+2:]
			continue
		}
		start := i
		if i > 0 && s[i-1] == '$' {
			// As in expandString, a ${ after a $ is an escape. (The byte before s is
			// always { or }, never $.)
			start = i - 1
		}
		ref := string(s[start : i+2+end+1])
		n, ok := index[ref]
		if !ok {
			n = len(m.refs)
			index[ref] = n
			m.refs = append(m.refs, ref)
		}
		out = append(out, s[:start]...)
		out = append(out, m.prefix...)
		out = strconv.AppendInt(out, int64(n), 10)
		out = append(out, 'z')
		s = s[i+2+end+1:]
	}
}

// restore turns the placeholders in s back into their references. Only escapes in a
// double-quoted scalar can spell a placeholder the text did not contain; it then stands
// for a reference the file contains anyway.
func (m *envMask) restore(s string) string {
	if len(m.refs) == 0 || !strings.Contains(s, m.prefix) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, m.prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i+len(m.prefix):]
		digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
		n, err := strconv.Atoi(s[:digits])
		if err != nil || n >= len(m.refs) || strconv.Itoa(n) != s[:digits] || !strings.HasPrefix(s[digits:], "z") {
			b.WriteString(m.prefix)
			continue
		}
		b.WriteString(m.refs[n])
		s = s[digits+1:]
	}
}

// restoreNode restores the placeholders everywhere under n: values, mapping keys and
// comments. A reference in an anchor, alias or tag, which YAML would have refused
// unmasked, is an error. The restored text never contains the prefix, so restoring twice
// changes nothing.
func (m *envMask) restoreNode(n *yaml.Node, errs *Errors) {
	if len(m.refs) == 0 {
		return
	}
	if strings.Contains(n.Anchor, m.prefix) || strings.Contains(n.Tag, m.prefix) ||
		(n.Kind == yaml.AliasNode && strings.Contains(n.Value, m.prefix)) {
		errs.add(n.Line, "", "${...} cannot stand in an anchor, alias or tag")
	}
	for _, f := range []*string{&n.Value, &n.HeadComment, &n.LineComment, &n.FootComment} {
		*f = m.restore(*f)
	}
	for _, c := range n.Content {
		m.restoreNode(c, errs)
	}
}

// expandNode replaces ${NAME} in every scalar value under n, in place. Mapping keys are
// left alone: they are schema names. Aliases are skipped because their anchor is expanded
// where it is defined (expanding twice would undo $${ escapes).
func expandNode(n *yaml.Node, path string, getenv func(string) (string, bool), errs *Errors) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandNode(n.Content[i+1], joinPath(path, n.Content[i].Value), getenv, errs)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			expandNode(item, fmt.Sprintf("%s[%d]", path, i), getenv, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		value, problems := expandString(n.Value, getenv)
		for _, msg := range problems {
			errs.add(n.Line, path, "%s", msg)
		}
		if len(problems) > 0 {
			setNull(n) // left empty: validated as if not set
			return
		}
		if value == n.Value {
			return
		}
		n.Value = value
		if n.Style == 0 {
			// A plain scalar takes the type its new text spells (workers: ${WORKERS} is an
			// int), except null: an empty or "null" secret must stay a string.
			n.Tag = ""
			if n.ShortTag() == "!!null" {
				n.Tag = "!!str"
			}
		}
	}
}

// expandString replaces each ${NAME} in s by its value; $${ is a literal ${. Values are
// inserted as they are, never expanded again. It returns what is wrong, one message per
// reference, without the values.
func expandString(s string, getenv func(string) (string, bool)) (string, []string) {
	var b strings.Builder
	var problems []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), problems
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			problems = append(problems, "unterminated ${ (write $${ for a literal ${)")
			return b.String(), problems
		}
		name := s[i+2 : i+2+end]
		s = s[i+2+end+1:]
		if !isEnvName(name) {
			problems = append(problems, "invalid variable name in ${...}: use letters, digits and _")
			continue
		}
		value, ok := getenv(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("environment variable %s is not set", name))
			continue
		}
		b.WriteString(value)
	}
}

func isEnvName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// maxSchemaNodes bounds the nodes schemaChecker visits, since following aliases can make
// a small file describe an exponentially large tree ("billion laughs").
const maxSchemaNodes = 100_000

// schemaChecker walks the YAML tree alongside the Go types it will decode into and
// reports, with line and path, every unknown or duplicate key and every value of the
// wrong kind. yaml's own strict mode (Decoder.KnownFields) cannot do this job: it names
// Go types instead of paths, does not apply to Node.Decode (needed to expand before
// decoding), and does not know the provider sections, whose types come from specs.
type schemaChecker struct {
	errs   Errors
	budget int
	// providers knows the section type of each provider name.
	providers *Providers
}

func (s *schemaChecker) check(n *yaml.Node, t reflect.Type, path string) {
	if s.budget == 0 {
		return // already reported
	}
	if s.budget--; s.budget == 0 {
		s.errs.add(n.Line, path, "the document is too large (too many nodes or aliases)")
		return
	}
	if n.Kind == yaml.AliasNode {
		s.check(n.Alias, t, path)
		return
	}
	if isNull(n) {
		return // zero value; for a provider, "enabled with defaults"
	}
	switch t.Kind() {
	case reflect.Pointer:
		s.check(n, t.Elem(), path)
	case reflect.Struct:
		fields := yamlFields(t)
		s.mapping(n, path, func(key *yaml.Node, value *yaml.Node) bool {
			if t == reflect.TypeFor[Config]() && key.Value == "providers" {
				s.sections(value, joinPath(path, key.Value))
				return true
			}
			ft, ok := fields[key.Value]
			if !ok {
				s.errs.add(key.Line, joinPath(path, key.Value), "unknown field")
				return false
			}
			s.check(value, ft, joinPath(path, key.Value))
			return true
		})
	case reflect.Map:
		s.mapping(n, path, func(key *yaml.Node, value *yaml.Node) bool {
			s.check(value, t.Elem(), joinPath(path, key.Value))
			return true
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			s.errs.add(n.Line, path, "must be a list")
			setNull(n)
			return
		}
		for i, item := range n.Content {
			s.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			s.errs.add(n.Line, path, "must be %s", kindName(t))
			setNull(n)
		}
	}
}

// mapping checks that n is a mapping with unique scalar keys and calls each for every
// pair. The pairs it refuses, and those each returns false for, are removed from n (a
// mapping that is not one becomes null), so that n decodes into what the schema accepts.
func (s *schemaChecker) mapping(n *yaml.Node, path string, each func(key, value *yaml.Node) bool) {
	if n.Kind != yaml.MappingNode {
		s.errs.add(n.Line, path, "must be a mapping (key: value)")
		setNull(n)
		return
	}
	seen := make(map[string]int)
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		keep := false
		switch {
		case key.Kind != yaml.ScalarNode:
			s.errs.add(key.Line, path, "keys must be plain names")
		case key.Value == "<<" && key.ShortTag() == "!!merge":
			s.errs.add(key.Line, joinPath(path, "<<"), "merge keys are not supported")
		case seen[key.Value] > 0:
			s.errs.add(key.Line, joinPath(path, key.Value), "duplicate key (first at line %d)", seen[key.Value])
		default:
			seen[key.Value] = key.Line
			keep = each(key, value)
		}
		if keep {
			kept = append(kept, key, value)
		}
	}
	n.Content = kept
}

// yamlFields maps the yaml names of t's fields to their types, flattening inline fields
// the way the yaml package does.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type)
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
			continue
		case opts == "inline":
			for n, ft := range yamlFields(f.Type) {
				fields[n] = ft
			}
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func kindName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 500ms, 10s or 1h30m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	default:
		return "a " + t.String()
	}
}

func isNull(n *yaml.Node) bool {
	return n.ShortTag() == "!!null"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// sections checks the providers mapping: each key must name a spec, and its value is
// checked against the type of that spec's section.
func (s *schemaChecker) sections(n *yaml.Node, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	s.mapping(n, path, func(key, value *yaml.Node) bool {
		spec := s.providers.spec(key.Value)
		if spec == nil {
			s.errs.add(key.Line, joinPath(path, key.Value), "unknown field")
			return false
		}
		s.check(value, reflect.TypeOf(spec.NewSection()), joinPath(path, key.Value))
		return true
	})
}

// decode enables a provider by its presence under root's providers key: "bannerflex: {}"
// and a bare "bannerflex:" (null) both enable it, the second with its defaults. The
// schema checker has already accepted every key and value.
func (p *Providers) decode(root *yaml.Node) error {
	var n *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "providers" {
			n = root.Content[i+1]
		}
	}
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || isNull(n) {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		spec := p.spec(key.Value)
		if spec == nil {
			return fmt.Errorf("line %d: providers.%s: unknown provider", key.Line, key.Value)
		}
		sec := spec.NewSection()
		if !isNull(value) {
			if err := value.Decode(sec); err != nil {
				return err
			}
		}
		p.Enable(spec.Name, sec)
	}
	return nil
}
