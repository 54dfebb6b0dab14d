package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestExitCodeAndJSON(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	target := srv.Listener.Addr().String()

	f := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append([]string{"--target", target}, args...), &out, &errOut); code != wantCode {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, wantCode, errOut.String())
		}
		return out.String()
	}
	var res struct {
		AcceptedSpans int64            `json:"accepted_spans"`
		Errors        map[string]int64 `json:"errors"`
	}
	if err := json.Unmarshal([]byte(f(0, "--count", "100", "--spans-per-request", "10", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.AcceptedSpans != 50 || res.Errors["http 503"] != 5 {
		t.Errorf("accepted %d, errors %v; want 50 and 5 × http 503", res.AcceptedSpans, res.Errors)
	}
	f(1, "--count", "100", "--spans-per-request", "10", "--fail-on-error")
	if out := f(0, "--count", "10", "--spans-per-request", "1"); !strings.Contains(out, "http 503") || !strings.Contains(out, "p99") {
		t.Errorf("table lacks errors or latency:\n%s", out)
	}
	f(2, "--protocol", "zipkin-thrift")
}
