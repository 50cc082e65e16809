package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAnswersLikeTheProviders(t *testing.T) {
	for _, c := range []struct {
		status     int
		path       string
		wantStatus int
	}{
		{0, "/api/v1/capture-event", 201},
		{0, "/api/v1/campaigns/click", 200},
		{0, "/v3/events", 204},
		{0, "/api/public/banner-events", 200},
		{0, "/nope", 404},
		{400, "/api/public/banner-events", 400},
	} {
		srv := httptest.NewServer(handler(c.status, io.Discard))
		res, err := http.Post(srv.URL+c.path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		srv.Close()
		if res.StatusCode != c.wantStatus {
			t.Errorf("--status %d %s: %d, want %d", c.status, c.path, res.StatusCode, c.wantStatus)
		}
	}
}
