// Package e2e holds mdctl's end-to-end tests: a real store, `serve`'s
// components in-process, real namespaces, veths and iptables rules, and
// cloud-init's own readers (tools/cloudinit) run inside lab guests. It has
// no code of its own beyond test helpers.
package e2e
