package api

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// FuzzPath: any path from an identified instance answers 200, 404 or 500
// (400 for the password endpoint under other methods), never panics.
func FuzzPath(f *testing.F) {
	for _, p := range []string{"/", "/latest/meta-data/", "/openstack/latest/meta_data.json", "/latest/meta-data/hostname/x",
		"/openstack/content/0000", "/openstack/latest/password", "//", "/../..", "/ec2/latest", "/openstack/latest/content", "\x00"} {
		f.Add(p, false)
	}
	e := newEnv(f, nil)
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	f.Fuzz(func(t *testing.T, path string, head bool) {
		e := e.with(t)
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		w := e.do(method, path, h, "")
		switch w.Code {
		case 200, 404, 500:
		case 400: // only the password endpoint refuses a method
			g := e.do(http.MethodGet, path, h, "")
			if !head || g.Code != 200 || g.Header().Get("Content-Type") != "text/html; charset=UTF-8" {
				t.Fatalf("%s %q: 400 but GET gives %d %q", method, path, g.Code, g.Header().Get("Content-Type"))
			}
		default:
			t.Fatalf("%s %q: status %d %q", method, path, w.Code, w.Body.String())
		}
		// A path webob cannot decode as UTF-8 is eventlet's bare 500
		// (pipelinePath), even one that normalizes to the root.
		if utf8.ValidString(path) && metadata.IsRoot(metadata.PipelinePath(path)) && w.Code != 200 {
			t.Fatalf("root %q: status %d", path, w.Code)
		}
		if head && w.Body.Len() != 0 {
			t.Fatalf("HEAD %q has a body", path)
		}
	})
}

// FuzzHeaders: whatever identity headers arrive, a 200 needs the exact
// signature of the instance id and the instance's own tenant.
func FuzzHeaders(f *testing.F) {
	e := newEnv(f, nil)
	inst, _ := e.addInstance("vm1")
	good := sign(testSecret, inst.ID)
	f.Add(inst.ID, inst.ProjectID, good, "", true, true, true)
	f.Add(inst.ID, inst.ProjectID, good[:63]+"0", "", true, true, true)
	f.Add(inst.ID, "x", good, "", true, true, true)
	f.Add("vm1", inst.ProjectID, sign(testSecret, "vm1"), "", true, true, true)
	f.Add(inst.ID, inst.ProjectID, good, "lb", true, true, true)
	f.Add("", "", "", "", false, true, false)
	f.Fuzz(func(t *testing.T, id, tenant, sig, provider string, hasID, hasTenant, hasSig bool) {
		e := e.with(t)
		for _, s := range []string{id, tenant, sig, provider} {
			if !validHeaderValue(s) {
				return // cannot arrive over HTTP
			}
		}
		h := map[string]string{}
		if hasID {
			h["X-Instance-ID"] = id
		}
		if hasTenant {
			h["X-Tenant-ID"] = tenant
		}
		if hasSig {
			h["X-Instance-ID-Signature"] = sig
		}
		if provider != "" {
			h["X-Metadata-Provider"] = provider
		}
		w := e.get("/latest/meta-data/instance-id", h)
		if w.Code == 200 && !(hasID && hasSig && hasTenant && provider == "" && sig == sign(testSecret, id) &&
			id == inst.ID && tenant == inst.ProjectID) {
			t.Fatalf("200 for id=%q tenant=%q sig=%q provider=%q", id, tenant, sig, provider)
		}
		switch w.Code {
		case 200, 400, 403, 404:
		default:
			t.Fatalf("status %d for id=%q", w.Code, id)
		}
	})
}

func validHeaderValue(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzPasswordBody: a first POST stores any UTF-8 body up to 1020 bytes and
// the next GET returns it exactly; anything larger is refused.
func FuzzPasswordBody(f *testing.F) {
	for _, b := range []string{"", "c2VjcmV0", strings.Repeat("a", 1020), strings.Repeat("b", 1021), "\xff\xfe", "é"} {
		f.Add(b)
	}
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		e := e.with(t)
		inst := store.Instance{ID: uuid.NewString(), Name: uuid.NewString(), ProjectID: e.project.ID}
		must(t, e.st.PutInstance(t.Context(), inst))
		h := signedHeaders(inst)
		w := e.do(http.MethodPost, "/openstack/latest/password", h, body)
		got := e.get("/openstack/latest/password", h)
		switch {
		case len(body) > maxPassword:
			if w.Code != 400 || got.Body.Len() != 0 {
				t.Fatalf("%d-byte body: POST %d, stored %q", len(body), w.Code, got.Body.String())
			}
		case !utf8.ValidString(body):
			if w.Code != 500 || got.Body.Len() != 0 {
				t.Fatalf("invalid UTF-8: POST %d, stored %q", w.Code, got.Body.String())
			}
		default:
			if w.Code != 200 || got.Body.String() != body {
				t.Fatalf("POST %d, GET %q, want %q", w.Code, got.Body.String(), body)
			}
		}
	})
}
