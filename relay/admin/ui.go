package admin

import "embed"

// page is the self-contained delivery page served at GET /admin/ (no external assets).
//
//go:embed ui/index.html
var page embed.FS
