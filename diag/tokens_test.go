package diag

import (
	"testing"

	"github.com/mdctl/mdctl/internal/testworld"
)

// TestTraceTokensRequired: with metadata_tokens=required every hop that
// asks for metadata (agent, api, metadata, the guest's probe) first gets
// a session token as an IMDSv2 client does, so a healthy chain stays
// green; the metadata hop says it read with one.
func TestTraceTokensRequired(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	w.Set("metadata_tokens", "required")
	api := serveAll(w)
	w.LabUp()
	r := waitHealthy(t, opts(w, api), "vm1")
	for _, h := range r.Hops {
		if !h.OK {
			t.Errorf("hop %s with tokens required: %+v", h.Name, h)
		}
	}
	wantProbe(t, r, HopProxy, HopAgent, HopAPI)
}
