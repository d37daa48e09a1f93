package targets

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/events"
)

// EventsConsumer is the child that reads serve's event stream during the
// "+events:on" runs.
const EventsConsumer = "events-consumer"

// subscribeTimeout bounds waiting for a consumer to be subscribed.
const subscribeTimeout = 10 * time.Second

// ConsumerCount is what an events consumer writes when it stops.
type ConsumerCount struct {
	Received uint64            `json:"received"`
	ByHop    map[string]uint64 `json:"by_hop"`
	// CPUSeconds is the consumer's own CPU time: the load CPU's, taken
	// from wrk, so a costly consumer lowers req/s without the server
	// doing any more work.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Error is why the stream ended, when serve ended it rather than the
	// consumer being stopped.
	Error string `json:"error,omitempty"`
}

// ReadConsumerCount reads the file an events consumer wrote; a stream
// serve broke is an error, with what was received up to then.
func ReadConsumerCount(path string) (ConsumerCount, error) {
	var c ConsumerCount
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("consumer count: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("consumer count %s: %w", path, err)
	}
	if c.Error != "" {
		return c, fmt.Errorf("event stream broke after %d events: %s", c.Received, c.Error)
	}
	return c, nil
}

// adminStream is serve's event stream on its admin socket, for the rig's
// paired runs: each Consume spawns an EventsConsumer child on the load
// CPU, and Dropped reads /status.
func adminStream(socket string) (*rig.EventStream, error) {
	client, err := admin.NewClient(socket)
	if err != nil {
		return nil, err
	}
	var n atomic.Int64
	return &rig.EventStream{
		Dropped: func(ctx context.Context) (uint64, error) {
			st, err := client.Status(ctx)
			return st.Dropped, err
		},
		Consume: func(ctx context.Context, env *rig.Env) (func() (uint64, error), error) {
			before, err := client.Status(ctx)
			if err != nil {
				return nil, err
			}
			name := EventsConsumer + "-" + strconv.FormatInt(n.Add(1), 10)
			out := filepath.Join(env.Dir, name+".json")
			pid, err := env.SpawnSelfLoad(name, nil, EventsConsumer, "-socket", socket, "-out", out)
			if err != nil {
				return nil, err
			}
			stop := func() (uint64, error) {
				if err := env.StopPID(pid); err != nil {
					return 0, err
				}
				c, err := ReadConsumerCount(out)
				if c.Received > 0 {
					env.Log.Info("events consumer", "events", c.Received,
						"cpu_us_per_event", fmt.Sprintf("%.2f", c.CPUSeconds*1e6/float64(c.Received)))
				}
				return c.Received, err
			}
			if err := waitSubscribers(ctx, env, client, before.Subscribers+1); err != nil {
				_, _ = stop()
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return stop, nil
		},
	}, nil
}

// waitSubscribers polls /status until serve counts at least want event
// subscribers: the consumer's stream is open before the load starts.
func waitSubscribers(ctx context.Context, env *rig.Env, c *admin.Client, want int) error {
	ctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	for {
		if err := env.Exited(); err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err == nil && st.Subscribers >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not subscribed after %v (status: %+v, %v)", subscribeTimeout, st, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// consumeEvents is the events-consumer child: -socket PATH -out FILE. It
// reads /events as the TUI does (admin.Client, every event decoded) until
// stopped, then writes its ConsumerCount to FILE.
func consumeEvents(ctx context.Context, args []string, _ *slog.Logger) error {
	fs := flag.NewFlagSet(EventsConsumer, flag.ContinueOnError)
	socket := fs.String("socket", "", "serve's admin socket")
	out := fs.String("out", "", "file the count is written to when stopped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || *out == "" {
		return fmt.Errorf("%s: -socket and -out are required", EventsConsumer)
	}
	c, err := admin.NewClient(*socket)
	if err != nil {
		return err
	}
	st, err := c.Events(ctx, events.Filter{})
	if err != nil {
		return fmt.Errorf("%s: %w", EventsConsumer, err)
	}
	count := drain(ctx, st)
	count.CPUSeconds = ownCPU().Seconds()
	b, err := json.Marshal(count)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("%s: %w", EventsConsumer, err)
	}
	return nil
}

// drain counts the stream's events until ctx ends (a clean stop) or the
// stream breaks (recorded in Error).
func drain(ctx context.Context, st *admin.Stream) ConsumerCount {
	stopped := context.AfterFunc(ctx, func() { st.Close() })
	defer stopped()
	c := ConsumerCount{ByHop: map[string]uint64{}}
	for {
		e, err := st.Next()
		if err != nil {
			if ctx.Err() == nil {
				c.Error = err.Error()
			}
			return c
		}
		c.Received++
		c.ByHop[e.Hop]++
	}
}

// ownCPU is this process's user and system CPU time so far.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
