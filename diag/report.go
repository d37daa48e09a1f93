package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"charm.land/lipgloss/v2"
)

// Hop names, in the order a guest's request crosses them (CLI.md).
const (
	HopRoute     = "route"
	HopNamespace = "namespace"
	HopIPTables  = "iptables"
	HopProxy     = "proxy"
	HopSocket    = "socket"
	HopStore     = "store"
	HopAgent     = "agent"
	HopAPI       = "api"
	HopMetadata  = "metadata"
)

// HopNames is every hop in order.
var HopNames = []string{HopRoute, HopNamespace, HopIPTables, HopProxy, HopSocket, HopStore, HopAgent, HopAPI, HopMetadata}

// Modes: how a guest's metadata request leaves its network.
const (
	ModeRouter = "router"
	ModeDHCP   = "dhcp"
	ModeNone   = "none"
)

// Report is one trace: the verdict and every hop, as `mdctl trace --json`
// prints it.
type Report struct {
	Instance   string `json:"instance"`
	InstanceID string `json:"instance_id"`
	Mode       string `json:"mode"`
	ModeReason string `json:"mode_reason,omitempty"`
	OK         bool   `json:"ok"`
	// FailedHop is the first hop that failed, "" when none did.
	FailedHop string `json:"failed_hop"`
	// NotChecked names the hops that could not be checked (Hop.NotChecked):
	// with none failed, the trace is not verified rather than OK.
	NotChecked []string `json:"not_checked,omitempty"`
	Hops       []Hop    `json:"hops"`
	// Probe is the end-to-end probe through the running serve: each
	// hop's own latency, or why no probe was sent. Nil when the trace
	// could not start.
	Probe *Probe `json:"probe,omitempty"`
	// Error and Hint are set when the trace could not start (the instance
	// is not in the store, the store cannot be read); Hops is then empty.
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	// NoServe is set when no serve answers on the data dir: what that
	// means and how to start one. The text report says it first.
	NoServe string `json:"no_serve,omitempty"`
	// ServeOverrides say which of the running serve's --set values the
	// trace used, one line each.
	ServeOverrides []string `json:"serve_overrides,omitempty"`
	// Node is the node the trace ran on (its data dir's serve), "" when
	// unknown.
	Node string `json:"node,omitempty"`
	// Host is the node hosting the instance's router (router mode) or
	// DHCP network (DHCP mode): where KernelHops are checked. "" when no
	// node hosts it. OtherHosts are a network's further DHCP hosts.
	Host       string   `json:"host,omitempty"`
	OtherHosts []string `json:"other_hosts,omitempty"`
	// MS is the trace's wall time.
	MS float64 `json:"ms"`
}

// modeText says a mode in words (the JSON keeps the mode's name).
var modeText = map[string]string{
	ModeRouter: "reaches metadata through its router",
	ModeDHCP:   "reaches metadata through its network's DHCP port",
	ModeNone:   "has no way to reach metadata",
}

// Hop is one hop's verdict.
type Hop struct {
	Name string  `json:"name"`
	OK   bool    `json:"ok"`
	MS   float64 `json:"ms"`
	// Detail says what was found, in one line.
	Detail string `json:"detail"`
	// Hint is the fix, with the exact command or setting; "" when OK.
	Hint string `json:"hint"`
	// Skipped: the hop could not be checked (what it depends on is
	// missing); it then counts as failed.
	Skipped bool `json:"skipped,omitempty"`
	// NotChecked: the hop cannot be checked from here (a real VM's route
	// table) and no evidence shows a fault; Evidence says what stands in.
	// It neither passes nor fails, and the report is not OK.
	NotChecked bool `json:"not_checked,omitempty"`
	// Warnings are faults that do not fail the hop (one API replica of
	// several down), one line each.
	Warnings []string `json:"warnings,omitempty"`
	// Evidence is what the check saw (routes, rules, statuses).
	Evidence []string `json:"evidence,omitempty"`
	// RequestIDs are the X-Request-IDs of the probes this hop sent.
	RequestIDs []string `json:"request_ids,omitempty"`
	// Node is the node the hop was checked on (or, not checked, would
	// have been), "" when nodes are unknown.
	Node string `json:"node,omitempty"`
	// bySetting: Hint's fix is a setting (mdctl config set), which is the
	// operator's to change: --fix says so and leaves it.
	bySetting bool
}

// settingHint sets a hint whose fix is a setting.
func (h *Hop) settingHint(hint string) { h.Hint, h.bySetting = hint, true }

// finish sets OK and FailedHop from the hops.
func (r *Report) finish() {
	r.OK, r.FailedHop, r.NotChecked = r.Error == "", "", nil
	for _, h := range r.Hops {
		if h.NotChecked {
			r.OK = false
			r.NotChecked = append(r.NotChecked, h.Name)
			continue
		}
		if !h.OK {
			r.OK = false
			if r.FailedHop == "" {
				r.FailedHop = h.Name
			}
		}
	}
}

// Hop returns the named hop (zero Hop when the report has none).
func (r Report) Hop(name string) Hop {
	for _, h := range r.Hops {
		if h.Name == name {
			return h
		}
	}
	return Hop{}
}

// WriteJSON writes the report as one indented JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("trace: write json: %w", err)
	}
	return nil
}

// styles are the text rendering's colours; all identity when color is off,
// so plain output carries no escape codes at all.
type styles struct {
	ok, fail, skip, name, dim, hint, verdictOK, verdictFail func(string) string
}

func newStyles(color bool) styles {
	if !color {
		id := func(s string) string { return s }
		return styles{id, id, id, id, id, id, id, id}
	}
	// The caller decided this is a colour terminal; the 16 ANSI colours
	// follow the user's palette and keep golden files stable.
	ns := lipgloss.NewStyle
	st := func(s lipgloss.Style) func(string) string { return func(x string) string { return s.Render(x) } }
	green, red, yellow, grey := lipgloss.Color("2"), lipgloss.Color("1"), lipgloss.Color("3"), lipgloss.Color("8")
	return styles{
		ok:          st(ns().Foreground(green)),
		fail:        st(ns().Foreground(red).Bold(true)),
		skip:        st(ns().Foreground(yellow)),
		name:        st(ns().Bold(true)),
		dim:         st(ns().Foreground(grey)),
		hint:        st(ns().Foreground(yellow)),
		verdictOK:   st(ns().Foreground(green).Bold(true)),
		verdictFail: st(ns().Foreground(red).Bold(true)),
	}
}

// writeHop writes one hop's line: ✓ only for a hop that was checked and
// passed; a hop that could not be checked (NotChecked, or Skipped because
// what it needs is missing) says NOT CHECKED, whatever its OK says.
func (r Report) writeHop(b *strings.Builder, s styles, h Hop) {
	mark, detail := s.ok("✓"), h.Detail
	unchecked := h.NotChecked || h.Skipped
	switch {
	case unchecked:
		mark, detail = s.skip("?"), s.skip("NOT CHECKED")+": "+strings.TrimPrefix(h.Detail, "not checked: ")
	case !h.OK:
		mark = s.fail("✗")
	}
	if h.Node != "" && h.Node != r.Node {
		detail += s.dim(" [on node " + h.Node + "]")
	}
	name := s.name(fmt.Sprintf("%-9s", h.Name))
	fmt.Fprintf(b, "%s %s %s  %s\n", mark, name, s.dim(fmt.Sprintf("%7.1fms", h.MS)), detail)
	for _, w := range h.Warnings {
		b.WriteString("    " + s.skip("warning: "+w) + "\n")
	}
	switch {
	case h.NotChecked:
		for _, e := range h.Evidence {
			b.WriteString("    " + s.dim(e) + "\n")
		}
		if h.Hint != "" {
			b.WriteString("    " + s.hint("check: "+h.Hint) + "\n")
		}
	case !h.OK && h.Hint != "":
		b.WriteString("    " + s.hint("fix: "+h.Hint) + "\n")
	}
}

// hostLine says which node hosts the instance's metadata namespace, and
// where its hops were checked.
func (r Report) hostLine() string {
	if r.Host == "" {
		return ""
	}
	what := "router"
	if r.Mode == ModeDHCP {
		what = "DHCP network"
	}
	l := "the " + what + " is hosted by node " + r.Host
	if len(r.OtherHosts) > 0 {
		l += " (also by " + strings.Join(r.OtherHosts, ", ") + ")"
	}
	switch {
	case r.Host == r.Node:
		return l + ", this one"
	case r.Hop(KernelHops[0]).Node == r.Host:
		return l + ": " + strings.Join(KernelHops, ", ") + " are checked there, through its admin endpoint"
	}
	// One machine's store (SQLite): its namespaces are this machine's.
	return l + ", on this machine: " + strings.Join(KernelHops, ", ") + " are checked here"
}

// WriteText writes the report for a person: a header with the mode, one
// line per hop (mark, name, time, detail), the hint under each failed hop,
// and a verdict. color false (not a TTY, NO_COLOR) writes plain text.
func (r Report) WriteText(w io.Writer, color bool) error {
	s := newStyles(color)
	var b strings.Builder
	if r.NoServe != "" {
		b.WriteString(s.fail("no serve") + ": " + r.NoServe + "\n")
	}
	id := r.InstanceID
	if id == "" {
		id = "?"
	}
	fmt.Fprintf(&b, "trace %s (%s)", r.Instance, id)
	if m := modeText[r.Mode]; m != "" {
		b.WriteString(": the guest " + m)
	}
	b.WriteString("\n")
	if r.ModeReason != "" {
		b.WriteString("  " + s.dim(r.ModeReason) + "\n")
	}
	if l := r.hostLine(); l != "" {
		b.WriteString("  " + s.dim(l) + "\n")
	}
	for _, o := range r.ServeOverrides {
		b.WriteString("  " + s.dim(o) + "\n")
	}
	for _, h := range r.Hops {
		r.writeHop(&b, s, h)
	}
	if r.Probe != nil {
		b.WriteString("  " + s.dim(r.Probe.line()) + "\n")
	}
	switch {
	case r.Error != "":
		b.WriteString(s.verdictFail("FAIL") + ": " + r.Error + "\n")
		if r.Hint != "" {
			b.WriteString("    " + s.hint("fix: "+r.Hint) + "\n")
		}
	case r.OK:
		fmt.Fprintf(&b, "%s: every hop passed (%.1fms)\n", s.verdictOK("OK"), r.MS)
	case r.FailedHop == "" && len(r.NotChecked) > 0:
		fmt.Fprintf(&b, "%s: every checked hop passed, but %s could not be checked from here (%.1fms)\n",
			s.skip("NOT VERIFIED"), strings.Join(r.NotChecked, ", "), r.MS)
	default:
		// The hop's line above says what failed and how to fix it.
		fmt.Fprintf(&b, "%s at %s, the first hop that failed (%.1fms)\n", s.verdictFail("FAIL"), r.FailedHop, r.MS)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("trace: write text: %w", err)
	}
	return nil
}
