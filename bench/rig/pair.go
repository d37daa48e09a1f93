package rig

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// EventStream is a server's live event stream as the rig sees it: a way to
// start a consumer of it and to read how many events the server dropped.
// The rig measures a target that has one in interleaved pairs of runs
// (off, on, off, on, …) on the same running server, so the only thing
// that differs between the two rows is the consumer.
type EventStream struct {
	// Consume starts one consumer (pinned to the load CPU, outside the
	// measured tree) and returns once the server counts it as subscribed.
	// stop ends it and returns how many events it received.
	Consume func(ctx context.Context, env *Env) (stop func() (received uint64, err error), err error)
	// Dropped reads how many events the server has dropped so far (serve's
	// /status events_dropped).
	Dropped func(ctx context.Context) (uint64, error)
}

// PairConfig sets the paired runs of targets with an event stream.
type PairConfig struct {
	Duration time.Duration // each measured run of a pair; 0: no pairs
	Warmup   time.Duration // unmeasured run before each, consumer already reading
	Rounds   int           // off+on rounds per mode and path, interleaved
}

// Suffixes of the two rows of a pair: target+events:off has the bus and
// the admin endpoint but no subscriber, target+events:on has a consumer
// reading the stream during the whole run.
const (
	PairOff = "+events:off"
	PairOn  = "+events:on"
)

// PairGoal is issue 7's bound on what a consumed stream may cost.
const PairGoal = 0.95

// Pair is one mode and path of a target measured in interleaved rounds.
type Pair struct {
	Target, Peer string
	Mode         Mode
	Path         string
	Off, On      []Row // one per round, in run order
	// Received is what the consumers got over the On runs, warm-ups
	// included; OnRequests is what wrk completed over the same time.
	Received, OnRequests uint64
	// Dropped is how many events the server dropped over the On runs.
	Dropped uint64
	LoadCPU string // where the consumer ran
}

// Rows are the pair's two table rows, the mean of their rounds: off is
// judged against the target's own peer, on against off (so the table's
// "× peer" columns of the on row are the with/without ratios).
func (p Pair) Rows() (off, on Row) {
	off, on = MeanRow(p.Off), MeanRow(p.On)
	off.Target, off.Peer, off.Mode, off.Path = p.Target+PairOff, p.Peer, p.Mode, p.Path
	on.Target, on.Peer, on.Mode, on.Path = p.Target+PairOn, p.Target+PairOff, p.Mode, p.Path
	return off, on
}

// MeanRow averages rounds of one run: req/s, latency percentiles and CPU
// per request are means (percentiles of the rounds, not of the merged
// samples), requests and errors are totals, peak RSS is the highest.
func MeanRow(rows []Row) Row {
	if len(rows) == 0 {
		return Row{}
	}
	var m Row
	var p50, p99 time.Duration
	for _, r := range rows {
		m.Wrk.ReqPerSec += r.Wrk.ReqPerSec
		m.CPUPerReq += r.CPUPerReq
		p50 += r.Wrk.P50
		p99 += r.Wrk.P99
		m.Wrk.Requests += r.Wrk.Requests
		m.Wrk.Duration += r.Wrk.Duration
		m.Wrk.ErrConnect += r.Wrk.ErrConnect
		m.Wrk.ErrRead += r.Wrk.ErrRead
		m.Wrk.ErrWrite += r.Wrk.ErrWrite
		m.Wrk.ErrTimeout += r.Wrk.ErrTimeout
		m.Wrk.ErrStatus += r.Wrk.ErrStatus
		m.PeakRSS = max(m.PeakRSS, r.PeakRSS)
	}
	n := float64(len(rows))
	m.Wrk.ReqPerSec /= n
	m.CPUPerReq /= n
	m.Wrk.P50 = p50 / time.Duration(len(rows))
	m.Wrk.P99 = p99 / time.Duration(len(rows))
	return m
}

// RateRatio is the mean req/s with the stream consumed ÷ without (0 when
// either is missing).
func (p Pair) RateRatio() float64 {
	off, on := MeanRow(p.Off), MeanRow(p.On)
	if off.Wrk.ReqPerSec <= 0 || len(p.On) == 0 {
		return 0
	}
	return on.Wrk.ReqPerSec / off.Wrk.ReqPerSec
}

// CPURatio is the mean server CPU per request with ÷ without (0 when
// either is missing).
func (p Pair) CPURatio() float64 {
	off, on := MeanRow(p.Off), MeanRow(p.On)
	if off.CPUPerReq <= 0 || len(p.On) == 0 {
		return 0
	}
	return on.CPUPerReq / off.CPUPerReq
}

// Finding judges the pair against issue 7's "throughput drops by no more
// than 5 %", with the CPU ratio and the stream's counts beside it.
func (p Pair) Finding() Finding {
	rate, cpu := p.RateRatio(), p.CPURatio()
	f := Finding{
		Name: fmt.Sprintf("%s %s %s: event stream consumed, req/s ÷ without", p.Target, p.Mode, p.Path),
		Goal: "drop ≤ 5 % (≥ 0.95×)",
	}
	if rate == 0 {
		f.Value, f.Met = "no figures", Missed
		return f
	}
	f.Value = fmt.Sprintf("%.3f× (%+.1f %%); CPU/req %.2f×", rate, (rate-1)*100, cpu)
	f.Met = Judge(rate >= PairGoal)
	var rounds []string
	for i := range min(len(p.Off), len(p.On)) {
		rounds = append(rounds, fmt.Sprintf("%.0f→%.0f", p.Off[i].Wrk.ReqPerSec, p.On[i].Wrk.ReqPerSec))
	}
	perReq := "–"
	if p.OnRequests > 0 {
		perReq = fmt.Sprintf("%.2f", float64(p.Received)/float64(p.OnRequests))
	}
	f.Detail = fmt.Sprintf("mean of %d interleaved rounds on one server, req/s without→with: %s (rounds without differ by %.0f %%: the noise); stream: %d events received (%s per request, warm-ups included), %d dropped; consumer: admin /events client on CPU %s",
		len(rounds), strings.Join(rounds, ", "), Spread(p.Off)*100, p.Received, perReq, p.Dropped, p.LoadCPU)
	return f
}

// Spread is (highest − lowest) ÷ mean req/s of rows: how far runs of the
// same thing differ, against which a ratio near 1 must be read.
func Spread(rows []Row) float64 {
	m := MeanRow(rows).Wrk.ReqPerSec
	if len(rows) < 2 || m <= 0 {
		return 0
	}
	lo, hi := rows[0].Wrk.ReqPerSec, rows[0].Wrk.ReqPerSec
	for _, r := range rows[1:] {
		lo, hi = min(lo, r.Wrk.ReqPerSec), max(hi, r.Wrk.ReqPerSec)
	}
	return (hi - lo) / m
}
