package agent

import "github.com/mdctl/mdctl/server/events"

// agentMetrics are the agent's series, resolved once at New so that a
// request bumps a pointer's atomic and never looks a series up.
type agentMetrics struct {
	hits, misses          *events.Counter
	noPort, severalPorts  *events.Counter
	unreachable, timeouts *events.Counter
	apiErrors             *events.Counter
	failovers             *events.Counter
}

func newAgentMetrics(m *events.Metrics) agentMetrics {
	lookup := func(result string) *events.Counter {
		return m.Counter(events.CacheLookups, "cache", "agent", "result", result)
	}
	api := func(kind string) *events.Counter { return m.Counter(events.APIErrors, "kind", kind) }
	return agentMetrics{
		hits: lookup(events.ResultHit), misses: lookup(events.ResultMiss),
		noPort:       m.Counter(events.LookupFailures, "reason", events.ReasonNoPort),
		severalPorts: m.Counter(events.LookupFailures, "reason", events.ReasonSeveralPorts),
		unreachable:  api(events.KindUnreachable), timeouts: api(events.KindTimeout), apiErrors: api(events.KindError),
		failovers: m.Counter(events.APIFailovers),
	}
}
