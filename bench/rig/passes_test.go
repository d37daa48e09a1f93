package rig

import (
	"fmt"
	"testing"
)

func TestMedianRows(t *testing.T) {
	row := func(target string, mode Mode, rps, cpu float64) Row {
		return Row{Target: target, Mode: mode, Path: "/p", Wrk: WrkResult{ReqPerSec: rps}, CPUPerReq: cpu}
	}
	tests := []struct {
		name   string
		passes [][]Row
		want   []string // target mode req/s cpu, in order
	}{
		{"one pass is itself", [][]Row{{row("a", KeepAlive, 10, 1), row("b", KeepAlive, 20, 2)}},
			[]string{"a keepalive 10 1", "b keepalive 20 2"}},
		{"median run, its own CPU", [][]Row{
			{row("a", KeepAlive, 10, 9)}, {row("a", KeepAlive, 30, 3)}, {row("a", KeepAlive, 20, 5)}},
			[]string{"a keepalive 20 5"}},
		{"modes apart, a target missing from a pass", [][]Row{
			{row("a", KeepAlive, 10, 1), row("a", Close, 5, 1)},
			{row("a", KeepAlive, 12, 1)},
			{row("a", KeepAlive, 11, 1), row("a", Close, 7, 1)}},
			[]string{"a keepalive 11 1", "a close 7 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MedianRows(tt.passes)
			var s []string
			for _, r := range got {
				s = append(s, fmt.Sprintf("%s %s %g %g", r.Target, r.Mode, r.Wrk.ReqPerSec, r.CPUPerReq))
			}
			if fmt.Sprint(s) != fmt.Sprint(tt.want) {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
}
