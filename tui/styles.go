package tui

import (
	"io"

	"github.com/charmbracelet/bubbles/table"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Styles are every lipgloss style the view uses, in one place.
type Styles struct {
	Title, Stat, Warn, Error, OK, Dim, Paused lipgloss.Style
	Pane, PaneTitle, Label                    lipgloss.Style
	Table                                     table.Styles
}

// NewStyles builds the styles for out; with color false (NO_COLOR, or not
// a terminal) they carry no colour at all, only layout and bold.
func NewStyles(out io.Writer, color bool) Styles {
	r := lipgloss.NewRenderer(out)
	if !color {
		r.SetColorProfile(termenv.Ascii)
	}
	st := r.NewStyle
	s := Styles{
		Title:     st().Bold(true).Foreground(lipgloss.Color("12")),
		Stat:      st().Bold(true),
		Warn:      st().Foreground(lipgloss.Color("11")),
		Error:     st().Bold(true).Foreground(lipgloss.Color("9")),
		OK:        st().Foreground(lipgloss.Color("10")),
		Dim:       st().Foreground(lipgloss.Color("8")),
		Paused:    st().Bold(true).Reverse(true),
		Pane:      st().Border(lipgloss.NormalBorder()).BorderForeground(lipgloss.Color("8")).Padding(0, 1),
		PaneTitle: st().Bold(true),
		Label:     st().Foreground(lipgloss.Color("8")).Width(10),
	}
	ts := table.DefaultStyles()
	ts.Header = st().Bold(true).Padding(0, 1).BorderStyle(lipgloss.NormalBorder()).BorderBottom(true).
		BorderForeground(lipgloss.Color("8"))
	ts.Cell = st().Padding(0, 1)
	ts.Selected = st().Bold(true).Reverse(true)
	s.Table = ts
	return s
}
