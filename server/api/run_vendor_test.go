package api

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunServesAndStops runs the server on a real loopback listener.
func TestRunServesAndStops(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, ln) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/healthz")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}

	req, _ := http.NewRequest(http.MethodHead, base+"/latest/meta-data/hostname", nil)
	for k, v := range signedHeaders(inst) {
		req.Header.Set(k, v)
	}
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len("vm1.novalocal")) {
		t.Fatalf("HEAD over TCP: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	req.Method = http.MethodGet
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "vm1.novalocal" || resp.Header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("GET over TCP: %q %q", body, resp.Header.Get("Content-Type"))
	}
}

func TestStaticVendordata(t *testing.T) {
	file := filepath.Join(t.TempDir(), "vendor.json")
	must(t, os.WriteFile(file, []byte(`{"cloud": "mdctl"}`), 0o644))
	e := newEnv(t, map[string]string{"vendordata_jsonfile_path": file})
	inst, _ := e.addInstance("vm1")
	w := e.get("/openstack/latest/vendor_data.json", signedHeaders(inst))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"cloud": "mdctl"`) {
		t.Fatalf("vendor_data.json: %d %q", w.Code, w.Body.String())
	}
	w = e.get("/openstack/latest/vendor_data2.json", signedHeaders(inst))
	if !strings.Contains(w.Body.String(), `"static": {"cloud": "mdctl"}`) {
		t.Fatalf("vendor_data2.json: %q", w.Body.String())
	}

	// An unreadable file fails the build, as nova's JsonFileVendorData.
	must(t, e.st.SetSetting(context.Background(), "vendordata_jsonfile_path", filepath.Join(t.TempDir(), "missing.json")))
	w = e.get("/openstack/latest/meta_data.json", signedHeaders(inst))
	if w.Code != 500 || w.Body.String() != plainError("500 Internal Server Error", explainUnknown) {
		t.Fatalf("missing vendordata file: %d %q", w.Code, w.Body.String())
	}
	if !strings.Contains(e.logs.String(), "file does not exist") {
		t.Errorf("no warning about the missing file:\n%s", e.logs.String())
	}
}

func TestDynamicVendordata(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var agents []string
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, body)
		agents = append(agents, r.Method+" "+r.Header.Get("User-Agent")+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token": "abc"}`)
	}))
	defer ok.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer failing.Close()

	e := newEnv(t, map[string]string{
		"vendordata_providers":       "StaticJSON,DynamicJSON",
		"vendordata_dynamic_targets": "good@" + ok.URL + "/vd,bad@" + failing.URL,
	})
	inst, _ := e.addInstance("vm1")
	inst.UserData = []byte("#cloud-config\n")
	must(t, e.st.PutInstance(context.Background(), inst))
	w := e.get("/openstack/latest/vendor_data2.json", signedHeaders(inst))
	if w.Code != 200 {
		t.Fatalf("vendor_data2.json: %d %q", w.Code, w.Body.String())
	}
	var doc map[string]json.RawMessage
	must(t, json.Unmarshal(w.Body.Bytes(), &doc))
	if string(doc["good"]) != `{"token": "abc"}` || string(doc["bad"]) != "{}" {
		t.Errorf("vendor_data2.json = %s", w.Body.String())
	}
	if !strings.Contains(e.logs.String(), "Error from dynamic vendordata service bad at "+failing.URL) {
		t.Errorf("no warning for the failing target:\n%s", e.logs.String())
	}
	mu.Lock()
	requests := len(got)
	mu.Unlock()
	if requests != 1 || agents[0] != "POST openstack-nova-vendordata application/json" {
		t.Fatalf("requests %v %v", agents, got)
	}
	b := got[0]
	for k, want := range map[string]any{"project-id": inst.ProjectID, "instance-id": inst.ID, "hostname": "vm1",
		"user-data": "I2Nsb3VkLWNvbmZpZwo=", "image-id": "", "boot-roles": ""} {
		if b[k] != want {
			t.Errorf("%s = %v, want %v", k, b[k], want)
		}
	}
	if m, _ := b["metadata"].(map[string]any); m["role"] != "test" {
		t.Errorf("metadata = %v", b["metadata"])
	}

	// vendordata_dynamic_failure_fatal turns the failure into a 500.
	must(t, e.st.SetSetting(context.Background(), "vendordata_dynamic_failure_fatal", "true"))
	w = e.get("/openstack/latest/vendor_data2.json", signedHeaders(inst))
	if w.Code != 500 || !strings.Contains(e.logs.String(), "dynamic vendordata bad") {
		t.Fatalf("fatal failure: %d %q\n%s", w.Code, w.Body.String(), e.logs.String())
	}
}
