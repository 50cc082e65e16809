package admin

import (
	"net/http"
)

// pagePath is the page inside the embedded FS.
const pagePath = "ui/index.html"

// pageCSP lets the self-contained page run its inline script and style and call the API
// on its own origin, and nothing else.
const pageCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"

// handlePage serves the delivery page at /admin/ and /admin/index.html, without the
// token: the page holds nothing secret and asks the operator for the token itself.
func handlePage(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/{$}", servePage)
	mux.HandleFunc("GET /admin/index.html", servePage)
	mux.Handle("GET /admin", http.RedirectHandler("/admin/", http.StatusMovedPermanently))
}

func servePage(w http.ResponseWriter, _ *http.Request) {
	b, err := page.ReadFile(pagePath)
	if err != nil { // cannot happen: the file is embedded at build time
		http.Error(w, "page missing from the build", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b)
}
