package deploy_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// runbooksDoc is where every alert's runbook lives.
const runbooksDoc = "../docs/runbooks.md"

// runbookURLPrefix starts every runbook_url: the repository's docs/runbooks.md.
const runbookURLPrefix = "https://github.com/eventrelay/relay/blob/main/docs/runbooks.md#"

// headingAnchors are the anchors GitHub gives the Markdown headings of doc: lower case,
// punctuation other than '-' and '_' dropped, spaces turned into '-', a repeated anchor
// suffixed -1, -2, ... Fenced code blocks hold no headings.
func headingAnchors(doc []byte) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		anchors[a] = true
	}
	return anchors
}

// TestEveryAlertHasARunbook checks that each alert rule's runbook_url annotation points at
// a heading of docs/runbooks.md, and that the section says what to check and how to fix.
func TestEveryAlertHasARunbook(t *testing.T) {
	doc := readFile(t, runbooksDoc)
	anchors := headingAnchors(doc)
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, alertsFile)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue // a recording rule alerts nobody
			}
			alerts++
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, runbookURLPrefix)
			if !ok {
				t.Errorf("%s alert %s: runbook_url %q, want %s<anchor>", alertsFile, r.Alert, url, runbookURLPrefix)
				continue
			}
			if !anchors[anchor] {
				t.Errorf("%s alert %s: runbook_url anchor #%s is no heading of docs/runbooks.md", alertsFile, r.Alert, anchor)
				continue
			}
			section := runbookSection(doc, anchor)
			for _, part := range []string{"**Means:**", "**Check:**", "**Fix:**"} {
				if !strings.Contains(section, part) {
					t.Errorf("docs/runbooks.md#%s: no %s paragraph", anchor, part)
				}
			}
			if !strings.Contains(section, "`relay ") && !strings.Contains(section, "/admin/api/") &&
				!strings.Contains(section, "kubectl ") {
				t.Errorf("docs/runbooks.md#%s: names no command (relay CLI, admin API or kubectl)", anchor)
			}
		}
	}
	if alerts == 0 {
		t.Fatalf("%s: no alert rules", alertsFile)
	}
}

// runbookSection is the text of the "## " section whose anchor is anchor.
func runbookSection(doc []byte, anchor string) string {
	var out strings.Builder
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = headingAnchors([]byte(line))[anchor]
			continue
		}
		if in {
			out.WriteString(line + "\n")
		}
	}
	return out.String()
}

// TestRunbookLinksResolve checks the links of docs/runbooks.md into docs/*.md (itself
// included): each file exists and each #anchor is a heading of it.
func TestRunbookLinksResolve(t *testing.T) {
	doc := readFile(t, runbooksDoc)
	links := regexp.MustCompile(`\]\(([a-z]*\.md)?#([^)\s]+)\)`).FindAllSubmatch(doc, -1)
	if len(links) == 0 {
		t.Fatal("docs/runbooks.md links nowhere")
	}
	for _, l := range links {
		file := string(l[1])
		target := runbooksDoc
		if file != "" {
			target = filepath.Join("../docs", file)
		}
		if !headingAnchors(readFile(t, target))[string(l[2])] {
			t.Errorf("docs/runbooks.md: link %s#%s: no such heading in %s", file, l[2], target)
		}
	}
}

func TestHeadingAnchors(t *testing.T) {
	got := headingAnchors([]byte("# A b\n## RelayBreakerOpen\n```\n# not a heading\n```\n### `POST /admin/api/dead/{provider}/replay`\n## A b\n"))
	for _, want := range []string{"a-b", "relaybreakeropen", "post-adminapideadproviderreplay", "a-b-1"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a line of a code block counted as a heading")
	}
}
