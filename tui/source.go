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
}

// retryEvery is how long a lost stream waits before dialling again.
const retryEvery = 500 * time.Millisecond

// Watch streams node's events into out until ctx ends, reconnecting
// whenever the stream breaks (serve restarted, network blip), and says so
// with ConnMsgs. It never gives up: the TUI outlives serve restarts.
func Watch(ctx context.Context, node string, out chan<- tea.Msg) {
	c, err := admin.NewClient(node)
	if err != nil {
		send(ctx, out, ConnMsg{Node: node, Err: err})
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
