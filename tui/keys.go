package tui

import "charm.land/bubbles/v2/key"

// keyMap declares every binding once, with its help text, so `?` help is
// generated from it.
type keyMap struct {
	Up, Down, Filter, Pause, Detail, Trace, Instances, Close, Help, Quit key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:      key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Filter:    key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Pause:     key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause")),
		Detail:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Trace:     key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "trace instance")),
		Instances: key.NewBinding(key.WithKeys("i"), key.WithHelp("i", "per instance")),
		Close:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp is the one-line help under the table.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Filter, k.Pause, k.Detail, k.Instances, k.Trace, k.Help, k.Quit}
}

// FullHelp is the `?` help.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.Detail, k.Close}, {k.Filter, k.Pause, k.Instances, k.Trace}, {k.Help, k.Quit}}
}
