package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/tui"
)

type tuiOptions struct {
	IO      *iostreams
	Store   func(context.Context) (store.Store, error)
	DataDir string
	Servers []string
	// Discover: no --server was given, so the store's nodes are watched
	// when it has several (Servers is then the data dir's socket, for one).
	Discover bool
	// TokenFile is --admin-token-file: the token of TCP admin endpoints.
	TokenFile string
	// Trace runs the tracer on `t`.
	Trace tui.TraceFunc
}

func newCmdTUI(f *factory, runF func(context.Context, *tuiOptions) error) *cobra.Command {
	opts := &tuiOptions{IO: f.IO, Store: f.OpenStore}
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Watch serve's requests live",
		Long: `Tui shows every metadata request a running mdctl serve handles, newest
first, with its instance, source, mode, path, status and the time spent at
each hop (proxy, agent, API), and a header with requests/s, error rate and
p99 over the last 10 seconds, with 4xx and 5xx counted apart. It reconnects when serve restarts.

At the top row the cursor follows the newest request (as less +F does);
move down and it stays on its request, g takes it back to the head. A
narrow terminal drops the path column first. A 429 row names the instance
its source address was on before (the proxy refuses before it knows).

Keys: / filter (instance=NAME path=PREFIX status=404|5xx|error, or words),
space pause, enter details, i per-instance view (req/s, 4xx, 5xx, p99, last
status, last seen: a guest gone silent says so), t trace the selected
instance, ? help, q quit. A row's colour is its status: 4xx yellow, 429
(rate limited) magenta, 5xx or a failed hop red. Colours follow the
terminal; NO_COLOR leaves bold and reverse only.

When the store has several nodes (mdctl node list), or its one node is not
this data dir's serve, and no --server is given, tui watches every node's admin endpoint as the store records it
(its socket when it is this machine's, else its --admin-listen URL, whose
token comes from --admin-token-file or $MDCTL_ADMIN_TOKEN): their requests
merge into one table whose NODE column says which node saw each. A node
that cannot be reached stays on the header with why (a dead one is not
watched; a live one is retried).

Without a terminal tui refuses; read the event stream instead:
  curl --unix-socket <data-dir>/admin.sock http://mdctl/events`,
		Example: `  mdctl tui
  mdctl tui --server /var/lib/mdctl/admin.sock --server http://10.0.0.6:8776`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.DataDir = f.DataDir
			if len(opts.Servers) == 0 {
				opts.Servers, opts.Discover = []string{adminAddr(f.DataDir, "")}, true
			}
			opts.Trace = traceCommand(f.DataDir, f.DB, opts.TokenFile)
			return runOrTest(cmd, opts, runF, tuiRun)
		},
	}
	addAdminTokenFileFlag(cmd, &opts.TokenFile)
	cmd.Flags().StringArrayVar(&opts.Servers, "server", nil, "admin endpoint to watch: a socket path or http://host:port, whose bearer token comes from $MDCTL_ADMIN_TOKEN (repeatable; default <data-dir>/admin.sock)")
	return cmd
}

// tuiRun takes over the process's terminal (os.Stdin, os.Stdout), not
// opts.IO: a full-screen view is for a person at a terminal only.
func tuiRun(ctx context.Context, opts *tuiOptions) error {
	if !isatty.IsTerminal(os.Stdin.Fd()) || !isatty.IsTerminal(os.Stdout.Fd()) {
		return fmt.Errorf("tui needs a terminal; read the event stream instead: curl --unix-socket %s http://mdctl/events",
			filepath.Join(opts.DataDir, admin.SocketName))
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	srcs, err := tuiSources(ctx, opts)
	if err != nil {
		return err
	}
	return tui.Run(ctx, srcs, opts.Trace, os.Stdin, os.Stdout, !noColor)
}

// tuiSources are the endpoints to watch: --server's, else every node of
// the store when it has several, else the data dir's serve.
func tuiSources(ctx context.Context, opts *tuiOptions) ([]tui.Source, error) {
	token, err := adminToken(opts.TokenFile)
	if err != nil {
		return nil, err
	}
	if opts.Discover {
		nodes, down := storeNodes(ctx, opts.Store, opts.IO.ErrOut)
		if acrossNodes(nodes, opts.DataDir) {
			eps := reachNodes(ctx, nodes, down, token)
			srcs := make([]tui.Source, 0, len(eps))
			for _, e := range eps {
				s := tui.Source{Name: e.Node.Name, Token: token, Err: e.Err}
				if e.Client != nil && e.Alive {
					s.Addr = e.Client.Addr()
				}
				srcs = append(srcs, s)
			}
			return srcs, nil
		}
	}
	srcs := make([]tui.Source, 0, len(opts.Servers))
	for _, s := range opts.Servers {
		srcs = append(srcs, tui.Source{Addr: s, Token: token})
	}
	return srcs, nil
}

// traceJSON is `mdctl trace --json`'s contract (CLI.md).
type traceJSON struct {
	OK        bool   `json:"ok"`
	FailedHop string `json:"failed_hop"`
	Node      string `json:"node"`
	Hops      []struct {
		Name   string  `json:"name"`
		OK     bool    `json:"ok"`
		MS     float64 `json:"ms"`
		Detail string  `json:"detail"`
		Hint   string  `json:"hint"`
		Node   string  `json:"node"`
	} `json:"hops"`
}

// traceCommand runs this binary's `mdctl trace INSTANCE --json`, so the
// TUI shows exactly what the command says, as the issue asks.
func traceCommand(dataDir, db, tokenFile string) tui.TraceFunc {
	return func(ctx context.Context, instance string) tui.TraceResult {
		exe, err := os.Executable()
		if err != nil {
			return tui.TraceResult{Err: fmt.Errorf("find mdctl: %w", err)}
		}
		args := []string{"--data-dir", dataDir, "trace", instance, "--json"}
		if tokenFile != "" {
			args = append(args, "--admin-token-file", tokenFile)
		}
		if db != "" {
			args = append([]string{"--db", db}, args...)
		}
		var out, errOut bytes.Buffer
		c := exec.CommandContext(ctx, exe, args...)
		c.Stdout, c.Stderr = &out, &errOut
		runErr := c.Run() // exit 1 is a failed hop, with JSON all the same
		return parseTrace(out.Bytes(), errOut.String(), runErr)
	}
}

func parseTrace(out []byte, errOut string, runErr error) tui.TraceResult {
	var tj traceJSON
	if err := json.Unmarshal(out, &tj); err != nil {
		msg := strings.TrimSpace(errOut)
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		return tui.TraceResult{Err: fmt.Errorf("mdctl trace: %s", orText(msg, "no JSON answer"))}
	}
	tr := tui.TraceResult{OK: tj.OK, FailedHop: tj.FailedHop}
	for _, h := range tj.Hops {
		mark := "ok  "
		if !h.OK {
			mark = "FAIL"
		}
		l := fmt.Sprintf("%s %-9s %6.1fms  %s", mark, h.Name, h.MS, h.Detail)
		if h.Node != "" && h.Node != tj.Node {
			l += " [on node " + h.Node + "]"
		}
		if h.Hint != "" {
			l += " — " + h.Hint
		}
		tr.Lines = append(tr.Lines, l)
	}
	return tr
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
