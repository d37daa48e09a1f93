// Package testworld builds one test's mdctl universe for the tests of
// other packages (diag, e2e): a fresh SQLite store with a topology applied,
// a data plane whose namespaces are named for that test only, `serve` run
// in-process, lab guests, and the helpers those tests share (commands in a
// namespace, curl from a guest, cloud-init's reader).
//
// It creates real network namespaces, veths and iptables rules and removes
// them in t.Cleanup, so it must only be imported from _test.go files and
// used by tests that run as root (RequireRoot skips the others). It never
// touches namespaces it did not name, and it asserts nothing about mdctl:
// the tests that use it do.
package testworld
