package tui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
)

// EventMsg is one event from a node's admin endpoint.
type EventMsg struct {
	Node  string
	Event events.Event
}

// ConnMsg reports a node's stream connecting or going away.
type ConnMsg struct {
	Node string
	Up   bool
	// Reconnected is set when Up follows a loss: serve restarted.
	Reconnected bool
	Err         error
	// Final: the node is not watched at all (Source.Addr is empty), so
	// no reconnection follows.
	Final bool
}

// Source is one node's admin endpoint to watch.
type Source struct {
	// Name labels the node's rows and its header line: the node's name,
	// or the address when given by hand.
	Name string
	// Addr is a socket path or http://host:port; "" when the node has no
	// endpoint reachable from here (Err says why), shown and not watched.
	Addr string
	// Token is the bearer token for an http:// Addr ("" for
	// $MDCTL_ADMIN_TOKEN).
	Token string
	Err   error
}

// Label is how the node is shown: its name, else its address.
func (s Source) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Addr
}

// Labels are the sources' labels, in order (Options.Nodes).
func Labels(srcs []Source) []string {
	out := make([]string, len(srcs))
	for i, s := range srcs {
		out[i] = s.Label()
	}
	return out
}

// retryEvery is how long a lost stream waits before dialling again.
const retryEvery = 500 * time.Millisecond

// Watch streams src's events into out until ctx ends, reconnecting
// whenever the stream breaks (serve restarted, network blip), and says so
// with ConnMsgs, each labelled src.Label(). It never gives up: the TUI
// outlives serve restarts. A source without an address is reported once.
func Watch(ctx context.Context, src Source, out chan<- tea.Msg) {
	node := src.Label()
	if src.Addr == "" {
		send(ctx, out, ConnMsg{Node: node, Err: src.Err, Final: true})
		return
	}
	c, err := admin.NewClientToken(src.Addr, src.Token)
	if err != nil {
		send(ctx, out, ConnMsg{Node: node, Err: err, Final: true})
		return
	}
	lost, reported := false, false
	for ctx.Err() == nil {
		st, err := c.Events(ctx, events.Filter{})
		if err != nil {
			if !reported {
				send(ctx, out, ConnMsg{Node: node, Err: err})
				reported = true
			}
			lost = true
			sleep(ctx, retryEvery)
			continue
		}
		send(ctx, out, ConnMsg{Node: node, Up: true, Reconnected: lost})
		reported = false
		for {
			e, err := st.Next()
			if err != nil {
				st.Close()
				if ctx.Err() == nil {
					send(ctx, out, ConnMsg{Node: node, Err: err})
					reported, lost = true, true
				}
				break
			}
			send(ctx, out, EventMsg{Node: node, Event: e})
		}
		sleep(ctx, retryEvery)
	}
}

func send(ctx context.Context, out chan<- tea.Msg, m tea.Msg) {
	select {
	case out <- m:
	case <-ctx.Done():
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// listen is the tea.Cmd that reads the next message from the watchers.
func listen(ch <-chan tea.Msg) tea.Cmd {
	if ch == nil {
		return nil
	}
	return func() tea.Msg { return <-ch }
}
