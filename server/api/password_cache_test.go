package api

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPassword(t *testing.T) {
	e := newEnv(t, nil)
	const path = "/openstack/latest/password"
	check := func(w interface {
		Result() *http.Response
	}, status int, body string) {
		t.Helper()
		resp := w.Result()
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(resp.Body)
		if resp.StatusCode != status || buf.String() != body {
			t.Fatalf("got %d %q, want %d %q", resp.StatusCode, buf.String(), status, body)
		}
	}
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)

	w := e.get(path, h)
	check(w, 200, "")
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=UTF-8" {
		t.Errorf("content type %q, want webob's default", ct)
	}
	// Warm the cache, then post: the password must not wait for the TTL.
	e.get("/latest/meta-data/hostname", h)
	check(e.do(http.MethodPost, path, h, "c2VjcmV0"), 200, "")
	check(e.get(path, h), 200, "c2VjcmV0")
	check(e.get("/openstack/2013-04-04/password", h), 200, "c2VjcmV0")
	check(e.do(http.MethodPost, path, h, "again"), 409,
		plainError("409 Conflict", "There was a conflict when trying to complete your request."))
	// nova checks the conflict before the size.
	check(e.do(http.MethodPost, path, h, strings.Repeat("x", 2000)), 409,
		plainError("409 Conflict", "There was a conflict when trying to complete your request."))

	for _, m := range []string{http.MethodPut, http.MethodDelete, "PATCH"} {
		check(e.do(m, path, h, "x"), 400, plainError("400 Bad Request", "GET and POST only are supported."))
	}
	hd := e.do(http.MethodHead, path, h, "")
	check(hd, 400, "")

	big, _ := e.addInstance("vm2")
	hb := signedHeaders(big)
	check(e.do(http.MethodPost, path, hb, strings.Repeat("x", 1021)), 400,
		plainError("400 Bad Request", "Request is too large."))
	check(e.get(path, hb), 200, "")
	check(e.do(http.MethodPost, path, hb, strings.Repeat("y", 1020)), 200, "")
	check(e.get(path, hb), 200, strings.Repeat("y", 1020))

	// Another instance's password stays its own.
	other, _ := e.addInstance("vm3")
	check(e.get(path, signedHeaders(other)), 200, "")
}

// TestPasswordPostKeepsGeneration: a guest's password POST changes
// nothing served, so it leaves the store generation alone and every cache
// (this API's, every serve's) keeps its entries.
func TestPasswordPostKeepsGeneration(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	const p = "/latest/meta-data/hostname"
	e.get(p, h)
	ctx := context.Background()
	g0, err := e.st.Generation(ctx)
	must(t, err)
	views := e.st.views.Load()
	if w := e.do(http.MethodPost, "/openstack/latest/password", h, "c2VjcmV0"); w.Code != 200 {
		t.Fatalf("password POST: %d %q", w.Code, w.Body.String())
	}
	if g, err := e.st.Generation(ctx); err != nil || g != g0 {
		t.Fatalf("generation %d → %d (%v) after a password POST, want it unchanged", g0, g, err)
	}
	e.get(p, h)
	if got := e.st.views.Load(); got != views {
		t.Errorf("the cache was flushed by a password POST: %d instance views, want %d", got, views)
	}
}

// TestCacheFollowsStoreWrites: a write through the store (as `mdctl
// instance set` does) is served on the very next request, TTL or not.
func TestCacheFollowsStoreWrites(t *testing.T) {
	e := newEnv(t, nil) // metadata_cache_expiration defaults to 15 s
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	const p = "/latest/meta-data/hostname"
	if b := e.get(p, h).Body.String(); b != "vm1.novalocal" {
		t.Fatalf("hostname %q", b)
	}
	views := e.st.views.Load()
	for range 5 {
		e.get(p, h)
	}
	if got := e.st.views.Load(); got != views {
		t.Fatalf("cache hits read the store: %d instance views, want %d", got, views)
	}
	inst.Hostname = "renamed"
	must(t, e.st.PutInstance(context.Background(), inst))
	if b := e.get(p, h).Body.String(); b != "renamed.novalocal" {
		t.Fatalf("after a store write hostname is %q, want the new one", b)
	}
	// A settings change is a write too.
	must(t, e.st.SetSetting(context.Background(), "dhcp_domain", "example.org"))
	if b := e.get(p, h).Body.String(); b != "renamed.example.org" {
		t.Fatalf("after dhcp_domain changed hostname is %q", b)
	}
	// Deleting the instance ends its metadata at once.
	must(t, e.st.DeleteInstance(context.Background(), inst.ID))
	if w := e.get(p, h); w.Code != 404 {
		t.Fatalf("deleted instance: %d %q", w.Code, w.Body.String())
	}
}

func TestCacheExpiry(t *testing.T) {
	e := newEnv(t, map[string]string{"metadata_cache_expiration": "15"})
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	const p = "/latest/meta-data/instance-id"
	e.get(p, h)
	start := e.st.views.Load()
	e.clock.Advance(14 * time.Second)
	e.get(p, h)
	if got := e.st.views.Load(); got != start {
		t.Fatalf("within the TTL the store was read again (%d → %d)", start, got)
	}
	e.clock.Advance(2 * time.Second)
	e.get(p, h)
	if got := e.st.views.Load(); got != start+1 {
		t.Fatalf("after the TTL: %d instance views, want %d", got, start+1)
	}
	// A cached entry still checks the signature and the tenant.
	if w := e.get(p, map[string]string{"X-Instance-ID": inst.ID, "X-Tenant-ID": inst.ProjectID, "X-Instance-ID-Signature": "bad"}); w.Code != 403 {
		t.Errorf("cached instance, bad signature: %d", w.Code)
	}
	bad := signedHeaders(inst)
	bad["X-Tenant-ID"] = "other"
	if w := e.get(p, bad); w.Code != 404 {
		t.Errorf("cached instance, wrong tenant: %d", w.Code)
	}
}

func TestCacheDisabled(t *testing.T) {
	e := newEnv(t, map[string]string{"metadata_cache_expiration": "0"})
	inst, _ := e.addInstance("vm1")
	h := signedHeaders(inst)
	for range 3 {
		if w := e.get("/latest/meta-data/instance-id", h); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	if got := e.st.views.Load(); got != 3 {
		t.Fatalf("with expiration 0: %d instance views, want 3", got)
	}
	if n := e.srv.byID.len(); n != 0 {
		t.Fatalf("cache holds %d entries with expiration 0", n)
	}
}

func TestCachePeerMode(t *testing.T) {
	e := newEnv(t, map[string]string{"service_metadata_proxy": "false"})
	inst, ip := e.addInstance("vm1")
	h := map[string]string{"RemoteAddr": ip + ":5000"}
	e.get("/latest/meta-data/hostname", h)
	ports := e.st.ports.Load()
	e.get("/latest/meta-data/hostname", h)
	if e.st.ports.Load() != ports {
		t.Fatal("peer-mode cache hit listed ports")
	}
	inst.Hostname = "vm1b"
	must(t, e.st.PutInstance(context.Background(), inst))
	if b := e.get("/latest/meta-data/hostname", h).Body.String(); b != "vm1b.novalocal" {
		t.Fatalf("peer mode served %q after a write", b)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(3)
	now := time.Unix(100, 0)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		c.put(k, &entry{gen: 1, expires: now.Add(time.Minute)})
		if c.len() > 3 {
			t.Fatalf("after %d puts the cache holds %d", i+1, c.len())
		}
	}
	if c.get("e", 1, now) == nil {
		t.Fatal("the newest entry is gone")
	}
	if c.get("e", 2, now) != nil {
		t.Fatal("an entry of an older generation was served")
	}
	if c.get("e", 1, now.Add(time.Minute)) != nil {
		t.Fatal("an expired entry was served")
	}
}
