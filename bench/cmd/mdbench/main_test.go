package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/bench/targets"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args             []string
		duration, warmup time.Duration
		pairs            rig.PairConfig
		child            string
		childArgs        []string
		bad              bool
	}{
		{args: nil, duration: 10 * time.Second, warmup: 2 * time.Second,
			pairs: rig.PairConfig{Duration: 2 * time.Second, Warmup: time.Second, Rounds: 2}},
		{args: []string{"-quick"}, duration: 2 * time.Second, warmup: time.Second,
			pairs: rig.PairConfig{Duration: time.Second, Warmup: time.Second, Rounds: 2}},
		{args: []string{"-quick", "-events-duration", "0"}, duration: 2 * time.Second, warmup: time.Second,
			pairs: rig.PairConfig{Duration: 0, Warmup: time.Second, Rounds: 2}},
		{args: []string{"-events-duration", "5s", "-events-rounds", "3", "-warmup", "500ms"}, duration: 10 * time.Second, warmup: 500 * time.Millisecond,
			pairs: rig.PairConfig{Duration: 5 * time.Second, Warmup: 500 * time.Millisecond, Rounds: 3}},
		{args: []string{"-duration", "30s"}, duration: 30 * time.Second, warmup: 2 * time.Second,
			pairs: rig.PairConfig{Duration: 2 * time.Second, Warmup: time.Second, Rounds: 2}},
		{args: []string{"-child", "mdctl-serve", "--", "-db", "x.db"}, duration: 10 * time.Second, warmup: 2 * time.Second,
			pairs: rig.PairConfig{Duration: 2 * time.Second, Warmup: time.Second, Rounds: 2},
			child: "mdctl-serve", childArgs: []string{"-db", "x.db"}},
		{args: []string{"-events-rounds", "0"}, bad: true},
		{args: []string{"stray"}, bad: true},
		{args: []string{"-nope"}, bad: true},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, io.Discard)
		if tt.bad {
			if err == nil {
				t.Errorf("parseFlags(%q): no error", tt.args)
			}
			continue
		}
		if err != nil || o.duration != tt.duration || o.warmup != tt.warmup || o.pairs != tt.pairs || o.child != tt.child || !slices.Equal(o.childArgs, tt.childArgs) {
			t.Errorf("parseFlags(%q) = %+v, %v", tt.args, o, err)
		}
	}
}

func TestChooseAndModes(t *testing.T) {
	all := targets.All()
	got, err := choose(all, "nova, bare")
	if err != nil || len(got) != 2 || got[0].Name != "nova" || got[1].Name != "bare" {
		t.Errorf("choose(nova, bare) = %v, %v", got, err)
	}
	if _, err := choose(all, "bare,varnish"); err == nil || !strings.Contains(err.Error(), "mdctl-api") {
		t.Errorf("unknown target: %v, want an error listing the targets", err)
	}
	if got, _ := choose(all, ""); len(got) != len(all) {
		t.Errorf("default choice = %d targets, want all %d", len(got), len(all))
	}
	modes, err := parseModes("close,keepalive")
	if err != nil || !slices.Equal(modes, []rig.Mode{rig.Close, rig.KeepAlive}) {
		t.Errorf("parseModes = %v, %v", modes, err)
	}
	if _, err := parseModes("pipelined"); err == nil {
		t.Error("parseModes(pipelined): no error")
	}
}
