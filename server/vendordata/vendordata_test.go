package vendordata

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/store"
)

func TestDynamic(t *testing.T) {
	var got map[string]any
	var agent string
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent = r.Header.Get("User-Agent")
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
		w.Write([]byte(`{"k": 1}`))
	}))
	defer ok.Close()
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer notJSON.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }))
	defer failing.Close()
	inst := store.Instance{ID: "i-1", ProjectID: "p-1", Hostname: "vm1", UserData: []byte("#!"), Meta: store.Meta{{Key: "a", Value: "b"}}}

	tests := []struct {
		name      string
		settings  map[string]string
		want      map[string]string // name → raw answer
		wantErr   bool
		wantWarns int
	}{
		{"StaticJSON only: nothing asked", map[string]string{"vendordata_dynamic_targets": "a@" + ok.URL}, nil, false, 0},
		{"one good target", map[string]string{"vendordata_providers": "DynamicJSON", "vendordata_dynamic_targets": "a@" + ok.URL},
			map[string]string{"a": `{"k": 1}`}, false, 0},
		{"failures give {} and a warning", map[string]string{"vendordata_providers": "DynamicJSON",
			"vendordata_dynamic_targets": "a@" + ok.URL + ",b@" + notJSON.URL + ",c@" + failing.URL},
			map[string]string{"a": `{"k": 1}`, "b": "{}", "c": "{}"}, false, 2},
		{"failure fatal", map[string]string{"vendordata_providers": "DynamicJSON", "vendordata_dynamic_failure_fatal": "true",
			"vendordata_dynamic_targets": "c@" + failing.URL}, nil, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := store.ParseConfig(tt.settings, nil)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			out, err := Fetcher{}.Dynamic(context.Background(), log, cfg, inst)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(out) != len(tt.want) {
				t.Fatalf("answers %v, want %v", out, tt.want)
			}
			for k, v := range tt.want {
				if string(out[k]) != v {
					t.Errorf("%s = %s, want %s", k, out[k], v)
				}
			}
			if n := strings.Count(logs.String(), "Error from dynamic vendordata service"); n != tt.wantWarns {
				t.Errorf("%d warnings, want %d:\n%s", n, tt.wantWarns, logs.String())
			}
		})
	}
	// nova's request body and User-Agent.
	if agent != "openstack-nova-vendordata" || got["instance-id"] != "i-1" || got["project-id"] != "p-1" ||
		got["hostname"] != "vm1" || got["user-data"] != "IyE=" {
		t.Errorf("service saw agent %q body %v", agent, got)
	}
}
