// Package rig is the side-by-side load rig behind `make bench`: it starts
// each target server pinned to one core, loads it with wrk pinned to the
// other (keep-alive and one connection per request), and measures req/s,
// p50/p99, CPU µs per request from /proc/PID/stat and peak RSS from VmHWM,
// then prints the figures as ratios to the bare server and to each target's
// peer (haproxy, nova) measured in the same run.
//
// It owns measuring and reporting. It must never install packages, assert
// timings in tests, or run a server inside its own process (its CPU would be
// counted, and its core is the load generator's).
package rig
