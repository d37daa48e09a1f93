package targets

import (
	"fmt"
	"os/exec"
	"strconv"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/internal/pgtest"
)

// needPostgres is PostgreSQL's server binaries (initdb, pg_ctl), which the
// targets on a PostgreSQL store start a throwaway cluster with.
func needPostgres() rig.Requirement {
	return rig.Requirement{What: "postgresql", Install: "apt-get install -y postgresql", Check: func() error {
		_, err := pgtest.Bin()
		return err
	}}
}

// benchPG is a throwaway PostgreSQL cluster a target runs on.
type benchPG struct {
	URL string // a fresh database's
	PID int    // the postmaster: every backend is its child
}

// startPostgres starts a cluster (internal/pgtest: initdb and pg_ctl as
// the postgres user in a temp dir, on a random port), pins it to the
// server core beside serve (a store in process is on that core too), and
// creates database db in it. env.Stop stops and removes it, after the
// target's processes.
func startPostgres(env *rig.Env, db string) (benchPG, error) {
	c, err := pgtest.StartServer()
	if c != nil {
		env.Defer(func() {
			if err := c.Stop(); err != nil {
				env.Log.Error("stop postgres", "err", err)
			}
		})
	}
	if err != nil {
		return benchPG{}, err
	}
	pid, err := c.PostmasterPID()
	if err != nil {
		return benchPG{}, err
	}
	if err := pinTree(env, pid); err != nil {
		return benchPG{}, err
	}
	u, err := c.CreateDB(db)
	if err != nil {
		return benchPG{}, err
	}
	env.Log.Info("postgres up", "pid", pid)
	return benchPG{URL: u, PID: pid}, nil
}

// pinTree pins every thread of root and its children to the server CPU;
// processes forked later inherit it.
func pinTree(env *rig.Env, root int) error {
	tree, err := rig.Proc{Root: "/proc"}.Tree([]int{root})
	if err != nil {
		return fmt.Errorf("pin postgres: %w", err)
	}
	for _, p := range tree {
		out, err := exec.Command(env.Tools.Taskset, "-a", "-p", "-c", env.Tools.ServerCPU, strconv.Itoa(p.PID)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pin postgres process %d: %w: %s", p.PID, err, out)
		}
	}
	return nil
}
