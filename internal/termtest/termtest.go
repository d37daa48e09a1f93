// Package termtest checks what mdctl writes to terminals. It is imported
// by _test.go files only.
package termtest

import (
	"regexp"
	"strconv"
	"strings"
)

var sgr = regexp.MustCompile("\x1b\\[([0-9;:]*)m")

// ColourCode returns the first SGR sequence in s that sets a foreground or
// background colour (30–49, 90–107, which include 38/48's extended
// forms), or "" when s has none: bold, reverse and resets are no colour.
func ColourCode(s string) string {
	for _, m := range sgr.FindAllStringSubmatch(s, -1) {
		for _, p := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ';' || r == ':' }) {
			if n, err := strconv.Atoi(p); err == nil && (n >= 30 && n <= 49 || n >= 90 && n <= 107) {
				return m[0]
			}
		}
	}
	return ""
}
