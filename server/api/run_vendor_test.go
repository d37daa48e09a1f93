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

	// nova asks the targets on every vendor_data2.json request (base.py
	// _vendor_data2 calls DynamicVendorData.get each time, past the
	// metadata cache) and for no other document.
	e.get("/openstack/latest/meta_data.json", signedHeaders(inst))
	e.get("/latest/meta-data/hostname", signedHeaders(inst))
	e.get("/openstack/latest/vendor_data2.json", signedHeaders(inst))
	mu.Lock()
	requests = len(got)
	mu.Unlock()
	if requests != 2 {
		t.Errorf("%d requests to the good target after two vendor_data2.json reads and two other documents, want 2", requests)
	}

	// vendordata_dynamic_failure_fatal: _do_request re-raises, so
	// vendor_data2.json is eventlet's bare 500, and only it.
	must(t, e.st.SetSetting(context.Background(), "vendordata_dynamic_failure_fatal", "true"))
	w = e.get("/openstack/latest/vendor_data2.json", signedHeaders(inst))
	if w.Code != 500 || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "text/plain" ||
		!strings.Contains(e.logs.String(), "dynamic vendordata bad") {
		t.Fatalf("fatal failure: %d %q %v\n%s", w.Code, w.Body.String(), w.Header(), e.logs.String())
	}
	if w := e.get("/openstack/latest/meta_data.json", signedHeaders(inst)); w.Code != 200 {
		t.Errorf("meta_data.json with a fatal vendordata failure: %d, want 200 as nova", w.Code)
	}
}

// TestDynamicVendordataDuplicates: a target named like a key already
// there is dropped with nova's warning, on each request (base.py
// _vendor_data2 "Removing duplicate metadata key: %s"), and a repeated
// target name is the first target's (vendordata_dynamic.py get).
func TestDynamicVendordataDuplicates(t *testing.T) {
	answer := func(s string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, s) }))
	}
	first, second, static := answer(`{"n": 1}`), answer(`{"n": 2}`), answer(`{"n": 3}`)
	defer first.Close()
	defer second.Close()
	defer static.Close()
	e := newEnv(t, map[string]string{
		"vendordata_providers":       "StaticJSON,DynamicJSON",
		"vendordata_dynamic_targets": "zz@" + first.URL + ",zz@" + second.URL + ",static@" + static.URL + ",aa@" + first.URL,
	})
	inst, _ := e.addInstance("vm1")
	w := e.get("/openstack/latest/vendor_data2.json", signedHeaders(inst))
	if want := `{"static": {}, "zz": {"n": 1}, "aa": {"n": 1}}`; w.Code != 200 || w.Body.String() != want {
		t.Errorf("vendor_data2.json = %d %s, want %s", w.Code, w.Body.String(), want)
	}
	logs := e.logs.String()
	for _, want := range []string{"Vendordata already contains an entry named zz@" + second.URL + ". Skipping",
		"Removing duplicate metadata key: static"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}
