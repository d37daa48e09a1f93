package admin

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/mdctl/mdctl/store"
)

// Reach finds node n's admin endpoint from this machine, as the store
// records it, and reads its /status. The socket comes first (no token, and
// it is how one machine's several serves reach each other), but only when
// the serve answering there says it is n: every node's socket is
// /var/lib/mdctl/admin.sock by default, and on another machine that path
// is this machine's serve. Else the TCP endpoint (--admin-listen), with
// token (see NewClientToken). On failure the client returned, when not
// nil, is the best address to retry (a watcher keeps trying it).
func Reach(ctx context.Context, n store.Node, token string) (*Client, Status, error) {
	var why []string
	if n.AdminSocket != "" {
		if fi, err := os.Stat(n.AdminSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			c, err := NewClient(n.AdminSocket)
			if err != nil {
				return nil, Status{}, err
			}
			st, err := c.Status(ctx)
			switch {
			case err == nil && st.Node == n.Name:
				return c, st, nil
			case err == nil:
				why = append(why, fmt.Sprintf("%s is node %q's", n.AdminSocket, st.Node))
			case n.AdminURL == "":
				return c, Status{}, err
			default:
				why = append(why, err.Error())
			}
		}
	}
	if n.AdminURL == "" {
		why = append(why, "it has no TCP admin endpoint (serve --admin-listen) to reach it from another machine")
		return nil, Status{}, fmt.Errorf("node %s: no admin endpoint of it answers here: %s", n.Name, strings.Join(why, "; "))
	}
	c, err := NewClientToken(n.AdminURL, token)
	if err != nil {
		return nil, Status{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return c, Status{}, err
	}
	if st.Node != n.Name {
		return c, Status{}, fmt.Errorf("%s answers as node %q, not %s (the store's record of it is stale)", n.AdminURL, st.Node, n.Name)
	}
	return c, st, nil
}
