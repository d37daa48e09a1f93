package vendordata

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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

	// Each case follows nova's DynamicVendorData.get
	// (nova/api/metadata/vendordata_dynamic.py) and _do_request.
	tests := []struct {
		name     string
		settings map[string]string
		want     []string // name=raw answer, in order
		wantErr  bool
		wantLogs []string // warnings nova logs, in order
	}{
		{"StaticJSON only: nothing asked", map[string]string{"vendordata_dynamic_targets": "a@" + ok.URL}, nil, false, nil},
		{"one good target", map[string]string{"vendordata_providers": "DynamicJSON", "vendordata_dynamic_targets": "a@" + ok.URL},
			[]string{`a={"k": 1}`}, false, nil},
		{"failures give {} and a warning, in the targets' order", map[string]string{"vendordata_providers": "DynamicJSON",
			"vendordata_dynamic_targets": "z@" + ok.URL + ",b@" + notJSON.URL + ",c@" + failing.URL},
			[]string{`z={"k": 1}`, "b={}", "c={}"}, false,
			[]string{"Error from dynamic vendordata service b at " + notJSON.URL, "Error from dynamic vendordata service c at " + failing.URL}},
		{"a repeated name: the first target wins, the second is never asked", map[string]string{"vendordata_providers": "DynamicJSON",
			"vendordata_dynamic_targets": "a@" + ok.URL + ",a@" + failing.URL},
			[]string{`a={"k": 1}`}, false,
			[]string{"Vendordata already contains an entry named a@" + failing.URL + ". Skipping"}},
		{"failure fatal", map[string]string{"vendordata_providers": "DynamicJSON", "vendordata_dynamic_failure_fatal": "true",
			"vendordata_dynamic_targets": "c@" + failing.URL}, nil, true, []string{"Error from dynamic vendordata service c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := store.ParseConfig(tt.settings, nil)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			out, err := Fetcher{}.Dynamic(context.Background(), log, cfg, inst)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var got []string
			for _, a := range out {
				got = append(got, a.Name+"="+string(a.Body))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("answers %q, want %q", got, tt.want)
			}
			var msgs []string
			for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
				var rec struct{ Level, Msg string }
				if line != "" && json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "WARN" {
					msgs = append(msgs, rec.Msg)
				}
			}
			if len(msgs) != len(tt.wantLogs) {
				t.Fatalf("warnings %q, want %q", msgs, tt.wantLogs)
			}
			for i, w := range tt.wantLogs {
				if !strings.HasPrefix(msgs[i], w) {
					t.Errorf("warning %d = %q, want it to start %q", i, msgs[i], w)
				}
			}
		})
	}
	// nova's request body and User-Agent.
	if agent != "openstack-nova-vendordata" || got["instance-id"] != "i-1" || got["project-id"] != "p-1" ||
		got["hostname"] != "vm1" || got["user-data"] != "IyE=" {
		t.Errorf("service saw agent %q body %v", agent, got)
	}
}
