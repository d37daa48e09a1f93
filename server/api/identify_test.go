package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/store"
)

// TestSignedIdentification walks every row of nova's identification table
// with service_metadata_proxy on.
func TestSignedIdentification(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	ghost := uuid.NewString()
	good := signedHeaders(inst)
	with := func(changes map[string]string, drop ...string) map[string]string {
		h := map[string]string{}
		for k, v := range good {
			h[k] = v
		}
		for k, v := range changes {
			h[k] = v
		}
		for _, k := range drop {
			delete(h, k)
		}
		return h
	}
	instanceIDPath := "/latest/meta-data/instance-id"
	wantID := fmt.Sprintf("i-%08x", inst.EC2ID)

	tests := []struct {
		name    string
		headers map[string]string
		status  int
		body    string
		log     string // a line that must be logged
	}{
		{"valid", good, 200, wantID, ""},
		{"missing all three", with(nil, "X-Instance-ID", "X-Tenant-ID", "X-Instance-ID-Signature"), 400,
			plainError("400 Bad Request", "X-Instance-ID header is missing from request."), ""},
		{"missing instance id", with(nil, "X-Instance-ID"), 400,
			plainError("400 Bad Request", "X-Instance-ID header is missing from request."), ""},
		{"missing signature before tenant", with(nil, "X-Instance-ID-Signature", "X-Tenant-ID"), 400,
			plainError("400 Bad Request", "X-Instance-ID-Signature header is missing from request."), ""},
		{"missing tenant", with(nil, "X-Tenant-ID"), 400,
			plainError("400 Bad Request", "X-Tenant-ID header is missing from request."), ""},
		{"bad signature", with(map[string]string{"X-Instance-ID-Signature": strings.Repeat("0", 64)}), 403,
			plainError("403 Forbidden", "Invalid proxy request signature."),
			"X-Instance-ID-Signature: " + strings.Repeat("0", 64) + " does not match the expected signature for id: " + inst.ID + ". Request From: 10.90.0.5"},
		{"empty signature", with(map[string]string{"X-Instance-ID-Signature": ""}), 403,
			plainError("403 Forbidden", "Invalid proxy request signature."), "does not match the expected signature"},
		{"other secret", with(map[string]string{"X-Instance-ID-Signature": sign("other", inst.ID)}), 403,
			plainError("403 Forbidden", "Invalid proxy request signature."), ""},
		{"uppercase hex", with(map[string]string{"X-Instance-ID-Signature": strings.ToUpper(sign(testSecret, inst.ID))}), 403,
			plainError("403 Forbidden", "Invalid proxy request signature."), ""},
		{"signature of another id", with(map[string]string{"X-Instance-ID": ghost}), 403,
			plainError("403 Forbidden", "Invalid proxy request signature."), ""},
		{"unknown instance", with(map[string]string{"X-Instance-ID": ghost, "X-Instance-ID-Signature": sign(testSecret, ghost)}), 404,
			plainError("404 Not Found", "The resource could not be found."), "Failed to get metadata for instance id: " + ghost},
		{"name instead of id", with(map[string]string{"X-Instance-ID": "vm1", "X-Instance-ID-Signature": sign(testSecret, "vm1")}), 404,
			plainError("404 Not Found", "The resource could not be found."), "Failed to get metadata for instance id: vm1"},
		{"tenant mismatch", with(map[string]string{"X-Tenant-ID": "someoneelse"}), 404,
			plainError("404 Not Found", "The resource could not be found."),
			"Tenant_id someoneelse does not match tenant_id of instance " + inst.ID + "."},
		{"empty tenant", with(map[string]string{"X-Tenant-ID": ""}), 404,
			plainError("404 Not Found", "The resource could not be found."), "does not match tenant_id"},
		{"provider without forwarded-for", with(map[string]string{"X-Metadata-Provider": "lb1"}, "X-Forwarded-For"), 400,
			plainError("400 Bad Request", "X-Forwarded-For is missing from request."), ""},
		{"provider with bad signature", with(map[string]string{"X-Metadata-Provider": "lb1", "X-Metadata-Provider-Signature": "x"}), 403,
			plainError("403 Forbidden", "Invalid proxy request signature."), "for id: lb1"},
		// handler.py _get_instance_id_from_lb: no subnet has the provider
		// among its advanced_service_providers (mdctl has none).
		{"provider unknown to mdctl", with(map[string]string{"X-Metadata-Provider": "lb1", "X-Metadata-Provider-Signature": sign(testSecret, "lb1")}), 400,
			plainError("400 Bad Request", "Could not find any subnets for provider lb1"),
			`level=ERROR msg="Could not find any subnets for provider lb1"`},
		{"empty provider is ignored", with(map[string]string{"X-Metadata-Provider": ""}), 200, wantID, ""},
		{"root needs no identification", nil, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := instanceIDPath
			if tt.headers == nil {
				path = "/"
			}
			before := len(e.logs.String())
			w := e.get(path, tt.headers)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			if tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("body %q, want %q", w.Body.String(), tt.body)
			}
			logs := e.logs.String()[before:]
			if tt.log != "" && !strings.Contains(logs, tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs)
			}
			id := tt.headers["X-Instance-ID"]
			if p := tt.headers["X-Metadata-Provider"]; p != "" {
				id = p
			}
			expected := sign(testSecret, id)
			if expected != tt.headers["X-Instance-ID-Signature"] && strings.Contains(logs, expected) || strings.Contains(logs, testSecret) {
				t.Errorf("log reveals the secret or the expected signature:\n%s", logs)
			}
		})
	}
}

func TestRootListing(t *testing.T) {
	e := newEnv(t, nil)
	// "//" too: the bare handler's normpath would keep two leading slashes,
	// but a deployed nova's urlmap folds them first (see pipeline_test.go).
	for _, p := range []string{"/", "//", "/./", "/a/..", "/latest/.."} {
		w := e.get(p, nil)
		if w.Code != 200 || !strings.HasSuffix(w.Body.String(), "\nlatest") || !strings.HasPrefix(w.Body.String(), "1.0\n") {
			t.Errorf("%q: %d %q", p, w.Code, w.Body.String())
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
			t.Errorf("%q: content type %q", p, ct)
		}
	}
}

// TestPeerIdentification covers service_metadata_proxy=false: the peer
// address names the instance through its compute port.
func TestPeerIdentification(t *testing.T) {
	e := newEnv(t, map[string]string{"service_metadata_proxy": "false"})
	inst, ip := e.addInstance("vm1")
	// A router interface with an address is no instance.
	routerIP := e.addPort(uuid.NewString(), store.OwnerRouterInterface)
	// The same address on two networks is nova's
	// FixedIpAssociatedWithMultipleInstances.
	ctx := context.Background()
	net2 := store.Network{ID: uuid.NewString(), Name: "net2", ProjectID: e.project.ID}
	must(t, e.st.PutNetwork(ctx, net2))
	sub2 := store.Subnet{ID: uuid.NewString(), NetworkID: net2.ID, Name: "sub2", IPVersion: 4, CIDR: "10.90.0.0/16"}
	must(t, e.st.PutSubnet(ctx, sub2))
	dup, _ := e.addInstance("vm2")
	other, _ := e.addInstance("vm3")
	dupIP := e.addPort(dup.ID, store.OwnerCompute)
	e.addPortIP(net2.ID, sub2.ID, other.ID, "compute:az2", dupIP)
	wantID := fmt.Sprintf("i-%08x", inst.EC2ID)

	tests := []struct {
		name    string
		headers map[string]string
		status  int
		body    string
		log     string
	}{
		{"instance address", map[string]string{"RemoteAddr": ip + ":40000"}, 200, wantID, ""},
		{"signed headers are ignored", map[string]string{"RemoteAddr": ip + ":40000", "X-Instance-ID": uuid.NewString()}, 200, wantID,
			"X-Instance-ID present in request headers. The 'service_metadata_proxy' option must be enabled to process this header."},
		{"unknown address", map[string]string{"RemoteAddr": "10.90.99.99:1"}, 404,
			plainError("404 Not Found", "The resource could not be found."), "Failed to get metadata for IP 10.90.99.99: no metadata"},
		{"router address", map[string]string{"RemoteAddr": routerIP + ":1"}, 404,
			plainError("404 Not Found", "The resource could not be found."), "no metadata"},
		{"address of two instances", map[string]string{"RemoteAddr": dupIP + ":1"}, 500,
			plainError("500 Internal Server Error", "An unknown error has occurred. Please try your request again."),
			"Failed to get metadata for IP " + dupIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.logs.String())
			w := e.get("/latest/meta-data/instance-id", tt.headers)
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Body.String(), tt.status, tt.body)
			}
			if logs := e.logs.String()[before:]; tt.log != "" && !strings.Contains(logs, tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, logs)
			}
		})
	}
}

// TestServeStatuses checks what identified requests get per path.
func TestServeStatuses(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	tests := []struct {
		path   string
		status int
		ctype  string
		body   string
	}{
		{"/latest/meta-data/hostname", 200, "text/plain; charset=UTF-8", "vm1.novalocal"},
		{"/latest/meta-data/hostname/", 200, "text/plain; charset=UTF-8", "vm1.novalocal"},
		{"/2009-04-04/meta-data/placement/availability-zone", 200, "text/plain; charset=UTF-8", "nova"},
		{"/openstack/latest/meta_data.json", 200, "application/json", ""},
		{"/1999-01-01/meta-data/", 404, "text/plain; charset=UTF-8", plainError("404 Not Found", "The resource could not be found.")},
		{"/latest/meta-data/nope", 404, "text/plain; charset=UTF-8", plainError("404 Not Found", "The resource could not be found.")},
		{"/latest/meta-data/hostname/x", 500, "text/plain", ""}, // eventlet's bare 500, see pipeline_test.go
		{"/openstack/2012-08-10/password", 404, "text/plain; charset=UTF-8", plainError("404 Not Found", "The resource could not be found.")},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := e.get(tt.path, h)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %q", w.Code, tt.status, w.Body.String())
			}
			if ct := w.Header().Get("Content-Type"); ct != tt.ctype {
				t.Errorf("content type %q, want %q", ct, tt.ctype)
			}
			if tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("body %q, want %q", w.Body.String(), tt.body)
			}
			if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(w.Body.Len()) {
				t.Errorf("Content-Length %s for %d bytes", cl, w.Body.Len())
			}
		})
	}
	w := e.get("/openstack/latest/meta_data.json", h)
	for _, want := range []string{`"uuid": "` + inst.ID + `"`, `"project_id": "` + inst.ProjectID + `"`, `"random_seed": "`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("meta_data.json lacks %s: %s", want, w.Body.String())
		}
	}
}

func TestHeadMirrorsGet(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	for _, p := range []string{"/latest/meta-data/hostname", "/openstack/latest/network_data.json", "/latest/meta-data/nope"} {
		g := e.get(p, h)
		hd := e.do(http.MethodHead, p, h, "")
		if hd.Code != g.Code {
			t.Errorf("%s: HEAD %d, GET %d", p, hd.Code, g.Code)
		}
		if hd.Body.Len() != 0 {
			t.Errorf("%s: HEAD has a body %q", p, hd.Body.String())
		}
		if g.Code == 200 && hd.Header().Get("Content-Length") != g.Header().Get("Content-Length") {
			t.Errorf("%s: HEAD length %s, GET %s", p, hd.Header().Get("Content-Length"), g.Header().Get("Content-Length"))
		}
		if g.Code != 200 && (hd.Header().Get("Content-Length") != "0" || hd.Header().Get("Content-Type") != "text/html; charset=UTF-8") {
			t.Errorf("%s: HEAD error headers %v, want webob's empty text/html", p, hd.Header())
		}
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, nil)
	w := e.get("/latest/meta-data/", map[string]string{"X-Request-ID": "req-from-agent"})
	if got := w.Header().Get("X-Request-ID"); got != "req-from-agent" {
		t.Errorf("echoed %q", got)
	}
	if !strings.Contains(e.logs.String(), "request_id=req-from-agent") {
		t.Errorf("logs lack the request id:\n%s", e.logs.String())
	}
	w = e.get("/", map[string]string{"X-Openstack-Request-Id": "req-os"})
	if got := w.Header().Get("X-Openstack-Request-Id"); got != "req-os" {
		t.Errorf("echoed %q", got)
	}
	a, b := e.get("/", nil).Header().Get("X-Request-ID"), e.get("/", nil).Header().Get("X-Request-ID")
	if !strings.HasPrefix(a, "req-") || len(a) != 40 || a == b {
		t.Errorf("generated ids %q, %q", a, b)
	}
	if _, err := uuid.Parse(strings.TrimPrefix(a, "req-")); err != nil {
		t.Errorf("generated id %q is not uuid-shaped: %v", a, err)
	}
}
