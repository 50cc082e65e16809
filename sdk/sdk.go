package sdk

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/tdewolff/minify/v2"
	"github.com/tdewolff/minify/v2/js"
)

// source is the SDK as written; declarations its TypeScript types.
var (
	//go:embed relay.js
	source []byte
	//go:embed relay.d.ts
	declarations []byte
)

// Source returns the SDK's readable source (a copy).
func Source() []byte { return bytes.Clone(source) }

// Declarations returns relay.d.ts (a copy).
func Declarations() []byte { return bytes.Clone(declarations) }

// Script is the SDK as served: the minified script and its gzip encoding, each with its
// own strong ETag (two encodings are two representations). Read-only.
type Script struct {
	// JS is the minified script.
	JS []byte
	// Gzip is JS compressed with gzip at the best compression.
	Gzip []byte
	// ETag and GzipETag are quoted strong validators of JS and Gzip.
	ETag, GzipETag string
}

// Served returns the script the relay serves, built on first use. The build depends only
// on the embedded source, so it is done once per process and shared (read-only); a unit
// test proves it succeeds for the source in this package.
func Served() (*Script, error) { return served() }

var served = sync.OnceValues(Build)

// Build minifies relay.js and compresses it.
func Build() (*Script, error) {
	m := minify.New()
	m.AddFunc("text/javascript", js.Minify)
	min, err := m.Bytes("text/javascript", source)
	if err != nil {
		return nil, fmt.Errorf("minify relay.js: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(min); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &Script{JS: min, Gzip: gz.Bytes(), ETag: etag(min, ""), GzipETag: etag(min, "-gz")}, nil
}

// etag is a strong validator of the script's content; suffix tells encodings apart.
func etag(b []byte, suffix string) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + suffix + `"`
}
