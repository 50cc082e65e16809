package admin

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strings"
	"testing"
)

// TestTokenCompareIsConstantTime reads auth.go: the token check must go through
// subtle.ConstantTimeCompare, and nothing in it may compare credentials with ==, !=,
// bytes.Equal, strings.Compare or a case-folding compare (the scheme aside).
func TestTokenCompareIsConstantTime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "auth.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	usesConstantTime := false
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			name := ""
			if pkg != nil {
				name = pkg.Name + "." + sel.Sel.Name
			}
			switch name {
			case "subtle.ConstantTimeCompare":
				usesConstantTime = true
			case "bytes.Equal", "strings.Compare", "reflect.DeepEqual", "hmac.Equal":
				t.Errorf("auth.go compares with %s", name)
			case "strings.EqualFold":
				if arg, ok := n.Args[0].(*ast.Ident); !ok || arg.Name != "scheme" {
					t.Errorf("auth.go uses strings.EqualFold on something other than the scheme")
				}
			}
		case *ast.BinaryExpr:
			if n.Op != token.EQL && n.Op != token.NEQ {
				return true
			}
			if lit, ok := n.Y.(*ast.BasicLit); ok && lit.Value == `""` {
				return true // emptiness test, not a comparison of secrets
			}
			if call, ok := n.X.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "ConstantTimeCompare" {
					return true // its result, == 1
				}
			}
			t.Errorf("auth.go compares with %s", n.Op)
		}
		return true
	})
	if !usesConstantTime {
		t.Error("auth.go does not use subtle.ConstantTimeCompare")
	}
}

func TestTokenCheck(t *testing.T) {
	c := newTokenCheck("s3cret-token")
	for h, want := range map[string]bool{
		"Bearer s3cret-token":   true,
		"bearer s3cret-token":   true,
		"Bearer  s3cret-token ": true,
		"Bearer s3cret-toke":    false,
		"Bearer s3cret-tokenn":  false,
		"Bearer":                false,
		"Bearer ":               false,
		"s3cret-token":          false,
		"Token s3cret-token":    false,
		"":                      false,
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		if got := c.matches(r); got != want {
			t.Errorf("Authorization %q: %v, want %v", h, got, want)
		}
	}
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer ")
	if newTokenCheck("").matches(r) {
		t.Error("an empty admin.token matched an empty bearer")
	}
}

func TestValidStreamID(t *testing.T) {
	for id, want := range map[string]bool{
		"1718000000000-0": true, "1-0": true, "5": true, "18446744073709551615-18446744073709551615": true,
		"": false, "-": false, "+": false, "1-": false, "-1": false, "1-2-3": false, "a-0": false, "(1-0": false,
		"1 -0": false, strings.Repeat("1", 42): false,
	} {
		if got := validStreamID(id); got != want {
			t.Errorf("validStreamID(%q) = %v, want %v", id, got, want)
		}
	}
}
