package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// Styles are every lipgloss style the view uses, in one place.
type Styles struct {
	Title, Stat, Warn, Error, OK, Dim, Paused lipgloss.Style
	Pane, PaneTitle, Label                    lipgloss.Style
	// Header and Rule are the request table's column titles and the line
	// under them; Selected is added to the cursor's row.
	Header, Rule, Selected lipgloss.Style
	// Limited colours a 429: the guest was refused for asking too fast,
	// which is neither its mistake (4xx) nor serve failing (5xx).
	Limited lipgloss.Style
	// Help and Input are bubbles' own: the key help and the filter line.
	Help  help.Styles
	Input textinput.Styles
}

// NewStyles builds the styles; with color false (NO_COLOR, or not a
// terminal) they carry no colour at all, only bold and reverse. The
// colours are the 16 ANSI ones, which follow the user's palette.
func NewStyles(color bool) Styles {
	fg := func(s lipgloss.Style, c string) lipgloss.Style {
		if !color {
			return s
		}
		return s.Foreground(lipgloss.Color(c))
	}
	border := func(s lipgloss.Style) lipgloss.Style {
		if !color {
			return s
		}
		return s.BorderForeground(lipgloss.Color("8"))
	}
	st := lipgloss.NewStyle
	// bubbles' dark variants, which v1 chose too: asking the terminal for
	// its background is what mdctl must never do outside the TUI.
	hl, in := help.DefaultDarkStyles(), textinput.DefaultDarkStyles()
	if !color {
		hl, in = help.Styles{}, textinput.Styles{Cursor: textinput.CursorStyle{Shape: tea.CursorBlock, Blink: true}}
	}
	return Styles{
		Title:     fg(st().Bold(true), "12"),
		Stat:      st().Bold(true),
		Warn:      fg(st(), "11"),
		Error:     fg(st().Bold(true), "9"),
		OK:        fg(st(), "10"),
		Dim:       fg(st(), "8"),
		Paused:    st().Bold(true).Reverse(true),
		Pane:      border(st().Border(lipgloss.NormalBorder()).Padding(0, 1)),
		PaneTitle: st().Bold(true),
		Label:     fg(st(), "8").Width(10),
		Header:    st().Bold(true),
		Rule:      fg(st(), "8"),
		Selected:  st().Bold(true).Reverse(true),
		Limited:   fg(st(), "13"),
		Help:      hl,
		Input:     in,
	}
}

// Status is a row's style by what the guest got: 5xx (or a failed hop)
// red, 429 its own, other 4xx yellow, anything else plain. silent (an
// instance not heard from in the window) dims it whatever its status.
func (s Styles) Status(status int, failed, silent bool) lipgloss.Style {
	switch {
	case silent:
		return s.Dim
	case failed || status >= 500:
		return s.Error
	case status == 429:
		return s.Limited
	case status >= 400:
		return s.Warn
	}
	return lipgloss.NewStyle()
}
