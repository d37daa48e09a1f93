// Package termquiet keeps mdctl from asking the terminal anything when it
// starts. bubbletea v1's package init calls lipgloss.HasDarkBackground,
// which writes an OSC 11 query to a terminal stdout and waits up to 5 s for
// an answer many terminals never send: every command, even `mdctl
// version`, stalled, and wrote escape bytes under NO_COLOR.
//
// This package settles the default renderer's background before that init
// runs, so nothing is queried. It is a module of its own for one reason:
// Go initializes ready packages in import-path order, and only a path that
// sorts before github.com/charmbracelet/bubbletea (early.mdctl.invalid/…; "e" < "g")
// runs first; cmd/mdctl imports it for that effect alone. mdctl's styles
// use fixed ANSI colours, so no view needs the real background; bubbles'
// adaptive defaults take the dark variant. This goes with bubbletea v2,
// which has no such init.
package termquiet

import "github.com/charmbracelet/lipgloss"

func init() {
	lipgloss.SetHasDarkBackground(true)
}
