package targets

import (
	"context"
	"log/slog"

	"github.com/mdctl/mdctl/bench/rig"
)

// ChildFunc is a server linked into mdbench, run in a child process
// (`mdbench -child NAME -- args`) started by a target with rig.Env.SpawnSelf.
// It serves until ctx is cancelled (SIGTERM from the rig).
type ChildFunc func(ctx context.Context, args []string, log *slog.Logger) error

// All is every target mdbench knows, in run order: bare first (every row is
// compared with it), then each peer before the mdctl target judged against it.
func All() []rig.Target {
	return append([]rig.Target{BareTarget(), HAProxyTarget(), NovaTarget()}, mdctlTargets()...)
}

// Children is every child server, by the name SpawnSelf is given.
func Children() map[string]ChildFunc {
	return mdctlChildren()
}
