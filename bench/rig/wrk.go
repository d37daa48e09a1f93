package rig

import (
	"bufio"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Mode is how the load generator uses connections.
type Mode string

// The two connection modes every target is run in.
const (
	KeepAlive Mode = "keepalive" // 64 long-lived connections
	Close     Mode = "close"     // Connection: close: one TCP connection per request
)

// WrkResult is what one wrk run reports.
type WrkResult struct {
	Requests  uint64        // completed requests
	Duration  time.Duration // wall time of the run as wrk measured it
	ReqPerSec float64
	P50, P99  time.Duration
	// Errors, as wrk counts them. Status counts non-2xx/3xx answers.
	ErrConnect, ErrRead, ErrWrite, ErrTimeout, ErrStatus uint64
}

// Errors is the total of all error counts.
func (r WrkResult) Errors() uint64 {
	return r.ErrConnect + r.ErrRead + r.ErrWrite + r.ErrTimeout + r.ErrStatus
}

// doneLine is the marker of the line the rig's Lua done() hook prints. It
// carries exact counts and microsecond percentiles, where wrk's own text
// rounds to two decimals of the largest unit.
const doneLine = "MDBENCH "

// LuaScript returns the wrk script for a mode: the done() hook that prints
// the machine-readable summary line, plus Connection: close in Close mode.
func LuaScript(m Mode) string {
	var b strings.Builder
	if m == Close {
		b.WriteString("wrk.headers[\"Connection\"] = \"close\"\n")
	}
	b.WriteString(`done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("` + doneLine + `requests=%d duration_us=%d p50_us=%d p99_us=%d errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
`)
	return b.String()
}

// ParseWrk reads wrk's output (run with --latency, optionally with the rig's
// Lua script). The text sections give the figures when there is no done()
// line; the done() line, when present, overrides them with exact values.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var sawRate, sawTotal, sawDone bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		var err error
		switch {
		case strings.HasPrefix(line, doneLine):
			err = parseDoneLine(line, &r)
			sawDone = true
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			r.ReqPerSec, err = strconv.ParseFloat(f[1], 64)
			sawRate = true
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			// "1050000 requests in 10.00s, 150.00MB read"
			if !sawDone {
				if r.Requests, err = strconv.ParseUint(f[0], 10, 64); err == nil {
					r.Duration, err = parseWrkDuration(strings.TrimSuffix(f[3], ","))
				}
			}
			sawTotal = true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			if sawDone {
				break
			}
			var d time.Duration
			if d, err = parseWrkDuration(f[1]); err == nil {
				if f[0] == "50%" {
					r.P50 = d
				} else {
					r.P99 = d
				}
			}
		case strings.HasPrefix(line, "Socket errors:") && !sawDone:
			err = parseSocketErrors(strings.TrimPrefix(line, "Socket errors:"), &r)
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && !sawDone:
			r.ErrStatus, err = strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
		}
		if err != nil {
			return WrkResult{}, fmt.Errorf("parse wrk line %q: %w", line, err)
		}
	}
	if !sawRate || !(sawTotal || sawDone) {
		return WrkResult{}, fmt.Errorf("parse wrk output: no summary (did wrk run?): %q", truncate(out))
	}
	return r, nil
}

func parseDoneLine(line string, r *WrkResult) error {
	for _, kv := range strings.Fields(strings.TrimPrefix(line, doneLine)) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("field %q is not key=value", kv)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("field %s: %w", k, err)
		}
		switch k {
		case "requests":
			r.Requests = n
		case "duration_us":
			r.Duration = time.Duration(n) * time.Microsecond
		case "p50_us":
			r.P50 = time.Duration(n) * time.Microsecond
		case "p99_us":
			r.P99 = time.Duration(n) * time.Microsecond
		case "errors_connect":
			r.ErrConnect = n
		case "errors_read":
			r.ErrRead = n
		case "errors_write":
			r.ErrWrite = n
		case "errors_status":
			r.ErrStatus = n
		case "errors_timeout":
			r.ErrTimeout = n
		}
	}
	return nil
}

// parseSocketErrors reads " connect 0, read 0, write 0, timeout 22".
func parseSocketErrors(s string, r *WrkResult) error {
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return fmt.Errorf("socket errors part %q", part)
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("socket errors part %q: %w", part, err)
		}
		switch f[0] {
		case "connect":
			r.ErrConnect = n
		case "read":
			r.ErrRead = n
		case "write":
			r.ErrWrite = n
		case "timeout":
			r.ErrTimeout = n
		}
	}
	return nil
}

// parseWrkDuration reads wrk's time units: "580.00us", "1.20ms", "2.05s",
// "1.50m", "1.00h".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		return time.Duration(math.Round(v * float64(u.unit))), nil
	}
	return 0, fmt.Errorf("duration %q: unknown unit", s)
}
