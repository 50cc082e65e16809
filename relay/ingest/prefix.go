package ingest

import "bytes"

// publicPath returns the request path with server.path_prefix removed, the path every
// route is matched against; ok is false when a prefix is set and the path is not under
// it, since with a prefix the bare paths are not served at all (a page's rules then need
// to know of one place only). fasthttp has already normalised and decoded the path, and
// config validation keeps the prefix free of what normalisation rewrites.
func (s *Server) publicPath(path []byte) (rest []byte, ok bool) {
	if len(s.prefix) == 0 {
		return path, true
	}
	if len(path) <= len(s.prefix) || path[len(s.prefix)] != '/' || !bytes.HasPrefix(path, s.prefix) {
		return nil, false
	}
	return path[len(s.prefix):], true
}
