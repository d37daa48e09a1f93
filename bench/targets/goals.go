package targets

import (
	"fmt"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
)

// Goals checks the table against issue 8's targets (ratios within this
// run): API ≥ 0.6× bare and ≥ 15× nova; proxy hop ≥ 1.5× haproxy's req/s
// at no more CPU per request; chain ≥ 25× nova behind haproxy with p99
// under 5 ms; serve's RSS with SeedInstances instances ≤ 60 MiB; the chain
// on PostgreSQL ≥ 0.8× the chain on SQLite (a request's store work stays
// in memory: the generation is the feed's, the instance cached). A row
// without its peer in the run is not judged.
func Goals(lines []rig.Line) []rig.Finding {
	var out []rig.Finding
	label := func(l rig.Line, what string) string {
		return fmt.Sprintf("%s %s %s: %s", l.Target, l.Mode, l.Path, what)
	}
	var chainRSS uint64
	for _, l := range lines {
		switch l.Target {
		case MdctlAPI:
			if l.VsBare > 0 {
				out = append(out, rig.Finding{Name: label(l, "× bare req/s"), Value: fmt.Sprintf("%.2f×", l.VsBare), Goal: "≥ 0.6×", Met: rig.Judge(l.VsBare >= 0.6)})
			}
			if l.PeerRate > 0 {
				out = append(out, rig.Finding{Name: label(l, "× nova req/s"), Value: fmt.Sprintf("%.2f×", l.PeerRate), Goal: "≥ 15×", Met: rig.Judge(l.PeerRate >= 15)})
			}
		case MdctlProxy:
			if l.PeerRate > 0 {
				out = append(out, rig.Finding{Name: label(l, "× haproxy req/s"), Value: fmt.Sprintf("%.2f×", l.PeerRate), Goal: "≥ 1.5×", Met: rig.Judge(l.PeerRate >= 1.5)})
			}
			if l.PeerCPU > 0 {
				out = append(out, rig.Finding{Name: label(l, "× haproxy CPU/req"), Value: fmt.Sprintf("%.2f× (%.1f µs)", l.PeerCPU, l.CPUPerReq), Goal: "≤ 1×", Met: rig.Judge(l.PeerCPU <= 1)})
			}
		case Chain:
			if l.PeerRate > 0 {
				out = append(out, rig.Finding{Name: label(l, "× nova+haproxy req/s"), Value: fmt.Sprintf("%.2f×", l.PeerRate), Goal: "≥ 25×", Met: rig.Judge(l.PeerRate >= 25)})
			}
			if l.Wrk.P99 > 0 {
				out = append(out, rig.Finding{Name: label(l, "p99"), Value: rig.FormatLatency(l.Wrk.P99), Goal: "< 5 ms", Met: rig.Judge(l.Wrk.P99 < 5*time.Millisecond)})
			}
			chainRSS = max(chainRSS, l.PeakRSS)
		case ChainPG:
			if l.PeerRate > 0 {
				out = append(out, rig.Finding{Name: label(l, "× chain (SQLite) req/s"), Value: fmt.Sprintf("%.2f×", l.PeerRate), Goal: "≥ 0.8×", Met: rig.Judge(l.PeerRate >= 0.8),
					Detail: fmt.Sprintf("CPU/req %.2f× the SQLite chain's (serve and PostgreSQL's backends)", l.PeerCPU)})
			}
		}
	}
	if chainRSS > 0 {
		out = append(out, rig.Finding{Name: fmt.Sprintf("serve RSS, %d instances, peak under load (chain)", SeedInstances),
			Value: fmt.Sprintf("%.1f MiB", float64(chainRSS)/(1<<20)), Goal: "≤ 60 MiB", Met: rig.Judge(chainRSS <= 60<<20)})
	}
	return out
}

// Scenarios is every scenario mdbench knows.
func Scenarios() []rig.Scenario {
	return []rig.Scenario{StormScenario(), HammerScenario(), VMStormScenario(), PropagateScenario()}
}
