package diag

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// The store hop: the agent and the API read every answer from the store,
// so a store that cannot be read fails every guest's request (with a 5xx
// at once) however healthy the hops before it are. It is checked twice:
// by this trace (its own read) and by the running serve (its /healthz
// reads the store through serve's own handle, which may see another file
// or server than this trace does).

// checkStore reads the store once and asks serve whether it can.
func checkStore(ctx context.Context, o Options, t *target) Hop {
	h := Hop{Evidence: []string{"store " + o.storeName()}}
	if err := store.Ping(ctx, o.Store); err != nil {
		return storeDown(o, "this trace cannot read the store: "+err.Error())
	}
	h.Evidence = append(h.Evidence, "read by this trace")
	reason, err := serveHealth(ctx, o)
	switch {
	case err != nil:
		h.OK = true
		h.Detail = "the store answers (no serve answers /healthz to say whether it reads it too)"
	case reason != "":
		h = storeDown(o, "serve cannot read the store (its /healthz: "+reason+"), though this trace can")
	default:
		h.OK = true
		h.Detail = "the store answers, to this trace and to serve (its /healthz)"
	}
	return h
}

// storeDown is the store hop's failure: what is wrong, and the fix.
func storeDown(o Options, detail string) Hop {
	h := Hop{Detail: detail, Evidence: []string{"store " + o.storeName()}}
	h.Hint = "every guest gets a 5xx until the store is back, and serve serves again on its own once it is: "
	if _, pg := o.Store.(*store.Postgres); pg || strings.HasPrefix(o.storeName(), "postgres") {
		h.Hint += "start PostgreSQL (or check the --db URL and the server's address); mdctl serve reconnects"
	} else {
		h.Hint += "put the store file " + o.storeName() + " back, or restore it from a backup (a file that is not a SQLite database is refused); serve reopens it within a second"
	}
	return h
}

// serveHealth asks the data dir's serve for its /healthz: reason "" is
// healthy; err says no serve answered.
func serveHealth(ctx context.Context, o Options) (reason string, err error) {
	c, err := admin.NewClient(filepath.Join(o.DataDir, admin.SocketName))
	if err != nil {
		return "", err
	}
	return c.Health(ctx)
}

// storeName is how hints name the store.
func (o Options) storeName() string {
	if o.StoreName != "" {
		return o.StoreName
	}
	if s, ok := o.Store.(*store.SQLite); ok {
		return s.Path()
	}
	return "(the store)"
}

// StoreUnreadable is the report of a trace whose store cannot be opened
// or read (err): the store hop fails and names it, the socket hop (which
// needs only the data dir) is checked, and every other hop, which needs
// the instance's record, is not checked.
func StoreUnreadable(ctx context.Context, o Options, instanceRef string, err error) Report {
	start := time.Now()
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	r := Report{Instance: instanceRef}
	t := &target{socket: filepath.Join(o.DataDir, server.AgentSocketName)}
	for _, name := range HopNames {
		var h Hop
		switch name {
		case HopSocket:
			h = timed(ctx, name, o, t, checkSocket)
		case HopStore:
			h = storeDown(o, "the store cannot be read: "+err.Error())
			h.Name = name
		default:
			h = Hop{Name: name, NotChecked: true, Detail: "not checked: the store cannot be read, so this trace cannot know " + instanceRef + "'s path"}
		}
		r.Hops = append(r.Hops, h)
	}
	r.MS = ms(time.Since(start))
	r.finish()
	return r
}

// storeUnreadable says a trace's read of the store failed as an outage,
// rather than for want of the instance.
func storeUnreadable(err error) bool { return errors.Is(err, store.ErrUnavailable) }
