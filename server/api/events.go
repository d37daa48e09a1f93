package api

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/events"
)

// emit publishes the API hop's event. The guest's address is the agent's
// X-Forwarded-For when there is one, else the peer.
func (s *Server) emit(r *http.Request, rid string, start time.Time, rec *statusRecorder, e *entry) {
	ev := events.Event{
		Time: start, RequestID: rid, Hop: events.HopAPI, Method: r.Method, Path: r.URL.Path,
		Status: rec.status, Bytes: int64(rec.bytes), Probe: s.events.IsProbeQuery(r.URL.Path, r.URL.RawQuery),
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		ev.SourceIP = strings.TrimSpace(strings.Split(xff, ",")[0])
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ev.SourceIP = host
	}
	if e != nil {
		ev.InstanceID, ev.ProjectID = e.instanceID, e.projectID
	}
	ev.Duration = time.Since(start)
	s.events.Publish(ev)
}
