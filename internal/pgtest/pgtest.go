// Package pgtest starts throwaway PostgreSQL servers for tests: initdb and
// pg_ctl (Debian's postgresql package; `make test` installs it) in a temp
// dir, run as the postgres user when the test runs as root, on a random
// free port with its unix socket in that dir, stopped and removed in
// t.Cleanup. Without the server binaries a test fails and says to run
// `make test`, unless MDCTL_TEST_POSTGRES=skip says to skip it.
// StartServer is the same outside a test (mdbench's targets on
// PostgreSQL), stopped and removed by Cluster.Stop.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create databases
)

// SkipEnv, set to "skip", skips tests that need a server instead of
// failing them when the binaries are missing.
const SkipEnv = "MDCTL_TEST_POSTGRES"

// BinEnv names the directory of initdb and pg_ctl, overriding the search.
const BinEnv = "MDCTL_PG_BIN"

// Cluster is one running server.
type Cluster struct {
	bin  string // initdb's and pg_ctl's directory
	dir  string // owns data/, the socket and the log
	port int
	n    atomic.Int64 // databases handed out
	// netns, when set, is the network namespace the server runs in
	// (StartPartitionable), listening on host; else host is "" and the
	// server listens on 127.0.0.1 of the test's own namespace.
	netns, host string

	mu    sync.Mutex
	admin *sql.DB // on the postgres database, for CREATE and DROP DATABASE
}

// Bin finds the directory holding initdb and pg_ctl: $MDCTL_PG_BIN, else
// the newest /usr/lib/postgresql/*/bin (Debian), else $PATH.
func Bin() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%s=%s: no initdb there (%v): run `make test` (it installs postgresql), "+
				"or set %s=skip to skip these tests", BinEnv, d, err, SkipEnv)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or $PATH: " +
		"run `make test` (it installs postgresql), set " + BinEnv + ", or set " + SkipEnv + "=skip to skip these tests")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises and starts a cluster that t.Cleanup stops and removes.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartServer()
	if c != nil {
		t.Cleanup(func() {
			if err := c.Stop(); err != nil {
				t.Errorf("stop postgres: %v", err)
			}
		})
	}
	if err != nil {
		if errors.Is(err, errNoBinaries) && os.Getenv(SkipEnv) == "skip" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return c
}

// StartServer is Start outside a test (mdbench): it initialises and
// starts a cluster in a temp dir that the caller stops and removes with
// Stop, even when StartServer failed half-way (it then returns the
// cluster with the error; nil when nothing was made).
func StartServer() (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoBinaries, err)
	}
	return start(bin)
}

// errNoBinaries marks StartServer's error when initdb and pg_ctl are missing.
var errNoBinaries = errors.New("no PostgreSQL server binaries")

// Stop stops the cluster and removes its directory.
func (c *Cluster) Stop() error { return c.stop(c.bin) }

// PostmasterPID is the server's main process: every backend is its child.
func (c *Cluster) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("pgtest: postmaster.pid: %w", err)
	}
	return pid, nil
}

func start(bin string) (*Cluster, error) { return startIn(bin, "", "") }

// startIn starts a cluster whose server runs in network namespace netns
// on host ("" for the test's own namespace, on 127.0.0.1).
func startIn(bin, netns, host string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{bin: bin, dir: dir, netns: netns, host: host}
	cred, err := credential()
	if err != nil {
		return c, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return c, fmt.Errorf("pgtest: %w", err)
		}
	}
	if c.port, err = freePort(); err != nil {
		return c, err
	}
	data := filepath.Join(dir, "data")
	if err := run(cred, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return c, err
	}
	if host != "" {
		if err := trustOthers(data); err != nil {
			return c, err
		}
	}
	return c, c.pgCtlStart()
}

// trustOthers lets clients from any address in: initdb's pg_hba.conf
// trusts loopback only, and a namespaced server's clients come over a link.
func trustOthers(data string) error {
	f, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString("host all all 0.0.0.0/0 trust\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: pg_hba.conf: %w", err)
	}
	return nil
}

// pgCtlStart starts the server on the cluster's port and socket.
func (c *Cluster) pgCtlStart() error {
	cred, err := credential()
	if err != nil {
		return err
	}
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
		c.dir, c.port, c.tcpHost())
	argv := []string{filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"),
		"-w", "-t", "60", "-o", opts, "start"}
	if c.netns != "" {
		// The server is born in the namespace (ip netns exec needs root),
		// then drops to the postgres user.
		argv = append([]string{"ip", "netns", "exec", c.netns, "setpriv",
			fmt.Sprintf("--reuid=%d", cred.Uid), fmt.Sprintf("--regid=%d", cred.Gid), "--clear-groups"}, argv...)
		cred = nil
	}
	if err := run(cred, argv[0], argv[1:]...); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("%w\n%s", err, log)
	}
	return nil
}

// Pause stops the server (pg_ctl stop -m fast: every connection is closed,
// as when PostgreSQL is stopped or restarted under its clients) until
// Resume starts it again on the same port and socket.
func (c *Cluster) Pause(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	if c.admin != nil {
		c.admin.Close() // its connections die with the server
		c.admin = nil
	}
	c.mu.Unlock()
	cred, err := credential()
	if err == nil {
		err = run(cred, filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "-t", "60", "stop")
	}
	if err != nil {
		t.Fatalf("pause postgres: %v", err)
	}
}

// Resume starts the server Pause stopped.
func (c *Cluster) Resume(t testing.TB) {
	t.Helper()
	if err := c.pgCtlStart(); err != nil {
		t.Fatalf("resume postgres: %v", err)
	}
}

func (c *Cluster) stop(bin string) error {
	defer os.RemoveAll(c.dir)
	c.mu.Lock()
	if c.admin != nil {
		c.admin.Close()
	}
	c.mu.Unlock()
	if _, err := os.Stat(filepath.Join(c.dir, "data", "postmaster.pid")); err != nil {
		return nil // never started
	}
	cred, err := credential()
	if err != nil {
		return err
	}
	return run(cred, filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
}

// credential is the postgres user's when running as root (initdb refuses
// root), else nil: run as ourselves.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a postgres user (the postgresql package makes it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func run(cred *syscall.Credential, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", filepath.Base(name), err, out.Bytes())
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is the connection URL of database db over the unix socket.
func (c *Cluster) URL(db string) string {
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(c.port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// TCPURL is the connection URL of database db over TCP (on 127.0.0.1, or
// across the link of a StartPartitionable cluster).
func (c *Cluster) TCPURL(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", c.tcpHost(), c.port, db)
}

// tcpHost is the address the server listens on.
func (c *Cluster) tcpHost() string {
	if c.host == "" {
		return "127.0.0.1"
	}
	return c.host
}

// NewDB creates an empty database and returns its URL; t.Cleanup drops it.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.n.Add(1))
	u, err := c.CreateDB(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return u
}

// NewTCPDB is NewDB with the database's URL over TCP (TCPURL).
func (c *Cluster) NewTCPDB(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(c.NewDB(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return c.TCPURL(strings.TrimPrefix(u.Path, "/"))
}

// CreateDB creates the empty database name (an SQL identifier) and
// returns its URL; it goes with the cluster.
func (c *Cluster) CreateDB(name string) (string, error) {
	// FILE_COPY: a third quicker than WAL_LOG for a small template, and
	// its checkpoints cost nothing with fsync off.
	if err := c.exec("CREATE DATABASE " + name + " STRATEGY = FILE_COPY"); err != nil {
		return "", err
	}
	return c.URL(name), nil
}

// Exec runs one statement on the postgres database (as the superuser).
func (c *Cluster) Exec(t testing.TB, stmt string) {
	t.Helper()
	if err := c.exec(stmt); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func (c *Cluster) exec(stmt string) error {
	c.mu.Lock()
	if c.admin == nil {
		db, err := sql.Open("pgx", c.URL("postgres"))
		if err != nil {
			c.mu.Unlock()
			return err
		}
		db.SetMaxIdleConns(1)
		c.admin = db
	}
	db := c.admin
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}
