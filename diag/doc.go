// Package diag is `mdctl trace`: it walks one instance's metadata path hop
// by hop (route, namespace, iptables, proxy, socket, store, agent, api, metadata),
// records per hop what it saw, how long the check took, a verdict and a fix
// hint, and renders the result for people (WriteText) and scripts
// (WriteJSON). Fix repairs what mdctl itself owns.
//
// It reads the store and the kernel and sends probe requests (each with its
// own X-Request-ID "trace-…"), and, when a lab guest and a serve are there,
// one end-to-end probe from the guest whose per-hop latencies it reads from
// serve's admin event stream; it must never change the system it inspects
// unless asked to through Fix, and never writes to the store.
package diag
