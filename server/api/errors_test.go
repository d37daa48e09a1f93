package api

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestErrorPagesGolden pins the bytes of every error page nova sends, in
// each format webob negotiates. The goldens were checked against webob
// 1.8.6 (Debian python3-webob) raising the same exceptions.
func TestErrorPagesGolden(t *testing.T) {
	pages := []struct {
		name string
		page errorPage
	}{
		{"400-missing-instance-id", errorPage{400, "X-Instance-ID header is missing from request."}},
		{"400-too-large", errorPage{400, explainTooLarge}},
		{"400-methods", errorPage{400, explainMethods}},
		{"403-signature", errorPage{403, explainBadSignature}},
		{"404", errorPage{404, explainNotFound}},
		{"409", errorPage{409, explainConflict}},
		{"500-unknown", errorPage{500, explainUnknown}},
	}
	accepts := []struct {
		name  string
		value *string
	}{
		{"none", nil},
		{"star", ptr("*/*")},
		{"json", ptr("application/json")},
		{"plain", ptr("text/plain")},
		{"invalid", ptr("bogus;;;")},
		{"html-refused", ptr("text/html;q=0, */*")},
	}
	for _, p := range pages {
		var out strings.Builder
		for _, a := range accepts {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			if a.value != nil {
				r.Header.Set("Accept", *a.value)
			}
			w := httptest.NewRecorder()
			writeError(w, r, p.page)
			fmt.Fprintf(&out, "== Accept: %s\n%d\nContent-Type: %s\nContent-Length: %s\n%q\n",
				a.name, w.Code, w.Header().Get("Content-Type"), w.Header().Get("Content-Length"), w.Body.String())
			if fmt.Sprint(w.Body.Len()) != w.Header().Get("Content-Length") {
				t.Errorf("%s/%s: length header %s for %d bytes", p.name, a.name, w.Header().Get("Content-Length"), w.Body.Len())
			}
		}
		golden(t, filepath.Join("testdata", "errors", p.name+".golden"), out.String())
	}
}

func ptr(s string) *string { return &s }

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept  string
		present bool
		want    string
	}{
		{"", false, ""},
		{"", true, ""},
		{"*/*", true, "text/html"},
		{"text/*", true, "text/html"},
		{"application/json", true, "application/json"},
		{"application/json, text/html", true, "text/html"},
		{"text/html;q=0.5, application/json", true, "application/json"},
		{"text/plain", true, ""},
		{"text/html;level=1", true, ""},
		{"application/*;q=0", true, ""},
		{"image/png, */*;q=0.1", true, "text/html"},
		{"text/html;q=2", true, "text/html"}, // invalid q: invalid header, all offers
		{"bogus", true, "text/html"},
		{",,, application/json ,", true, "application/json"},
	}
	for _, tt := range tests {
		if got := negotiate(tt.accept, tt.present); got != tt.want {
			t.Errorf("negotiate(%q, %v) = %q, want %q", tt.accept, tt.present, got, tt.want)
		}
	}
}
