package api

import (
	"net/http"
	"testing"

	"github.com/mdctl/mdctl/server/events"
)

// Each request yields one API event echoing the agent's request id, with
// the instance identified (none when identification failed).
func TestAPIPublishesEvents(t *testing.T) {
	e := newEnv(t, map[string]string{"service_metadata_proxy": "true"})
	bus := events.NewBus()
	e.srv.events = bus // before any request
	e.srv.badSignatures = bus.Metrics().Counter(events.SignatureMismatches)
	sub := bus.Subscribe(events.Filter{}, 10)
	defer sub.Close()
	inst, _ := e.addInstance("vm1")

	good := signedHeaders(inst)
	good["X-Request-ID"] = "req-from-agent"
	bad := signedHeaders(inst)
	bad["X-Instance-ID-Signature"] = "00"
	tests := []struct {
		name     string
		hdr      map[string]string
		path     string
		status   int
		instance string
		rid      string
		src      string
	}{
		{"signed", good, "/openstack/latest/meta_data.json", http.StatusOK, inst.ID, "req-from-agent", "10.90.0.5"},
		{"bad signature", bad, "/openstack/latest/meta_data.json", http.StatusForbidden, "", "", "10.90.0.5"},
		{"root listing", map[string]string{"RemoteAddr": "192.0.2.9:4000"}, "/", http.StatusOK, "", "", "192.0.2.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.get(tt.path, tt.hdr)
			if len(sub.C) != 1 {
				t.Fatalf("%d events, want 1", len(sub.C))
			}
			ev := <-sub.C
			rid := tt.rid
			if rid == "" {
				rid = w.Header().Get("X-Request-Id") // the API made one
			}
			if ev.Hop != events.HopAPI || ev.Status != tt.status || ev.Status != w.Code || ev.InstanceID != tt.instance ||
				ev.RequestID != rid || ev.SourceIP != tt.src || ev.Bytes != int64(w.Body.Len()) || ev.Path != tt.path {
				t.Errorf("event %+v; answer %d (%d bytes), want status %d instance %q rid %q src %q",
					ev, w.Code, w.Body.Len(), tt.status, tt.instance, rid, tt.src)
			}
			if tt.instance != "" && ev.ProjectID != inst.ProjectID {
				t.Errorf("project %q, want %q", ev.ProjectID, inst.ProjectID)
			}
		})
	}
	if n := bus.Metrics().Counter(events.SignatureMismatches).Value(); n != 1 {
		t.Errorf("signature mismatches = %d, want 1 (the bad signature)", n)
	}
}
