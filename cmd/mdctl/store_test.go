package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/store"
)

func TestStoreMigrate(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %d %s", code, stderr)
	}
	pg := pgtest.Start(t)
	db := pg.NewDB(t)

	code, out, stderr := runCLI(t, dir, "", "store", "migrate", "--to", db)
	if code != 0 {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	src := "sqlite://" + filepath.Join(dir, "mdctl.db")
	if !strings.HasPrefix(out, "copied "+src+" to postgres://postgres@/") || !strings.Contains(out, "instances  1") {
		t.Errorf("migrate output:\n%s", out)
	}
	if code, out, _ := runCLI(t, dir, "", "--db", db, "config", "get", "force_metadata"); code != 0 || out != "true\n" {
		t.Errorf("config get on the copy: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, dir, "", "--db", db, "instance", "show", "vm1", "-o", "json"); code != 0 || !strings.Contains(out, `"ip_address": "10.90.1.5"`) {
		t.Errorf("instance show on the copy: %d %s", code, out)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		errLine string
	}{
		{"into a store with records", []string{"--to", db}, exitFail, "target store is not empty: it has 1 projects; copy into an empty store"},
		{"from a missing file", []string{"--from", "sqlite:///" + dir + "/nope.db", "--to", pg.NewDB(t)}, exitFail, "no such file or directory"},
		{"onto itself", []string{"--from", db, "--to", db}, exitUsage, "--from and --to name the same store"},
		{"without --to", nil, exitUsage, "store migrate needs --to URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, dir, "", append([]string{"store", "migrate"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.errLine) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.errLine)
			}
		})
	}

	// And back: PostgreSQL to a new SQLite file, as data.
	back := filepath.Join(t.TempDir(), "back.db")
	code, out, stderr = runCLI(t, dir, "", "store", "migrate", "--from", db, "--to", "sqlite://"+back, "-o", "json")
	var res storeMigrateResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("migrate back: %d %s %s", code, out, stderr)
	}
	if res.To != "sqlite://"+back || res.Copied["instances"] != 1 || res.Copied["ports"] != 4 {
		t.Errorf("migrate back: %+v", res)
	}

	// The record commands work on the copy as they did on the file.
	iso := filepath.Join(t.TempDir(), "vm1.iso")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "list"}, "10.90.2.0/24"},
		{[]string{"router", "show", "r1", "-o", "json"}, `"net1"`},
		{[]string{"config", "list"}, "force_metadata"},
		{[]string{"configdrive", "build", "vm1", "-o", iso}, ""},
		{[]string{"instance", "delete", "vm1"}, "deleted instance vm1"},
		{[]string{"network", "delete", "iso"}, "deleted network iso"},
		{[]string{"instance", "list"}, ""},
	} {
		code, out, stderr := runCLI(t, dir, "", append([]string{"--db", db}, c.args...)...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("mdctl --db … %s: %d %q %s", strings.Join(c.args, " "), code, out, stderr)
		}
	}
	if fi, err := os.Stat(iso); err != nil || fi.Size() == 0 {
		t.Errorf("config drive from the PostgreSQL store: %v", err)
	}
}

// startAPI runs `mdctl serve --components api` on the store at db, with a
// data dir of its own, and returns its address.
func startAPI(t *testing.T, db string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	io, _, _, errOut := testIO()
	done := make(chan error, 1)
	open := func(context.Context) (store.Store, error) { return store.Open("", db) }
	go func() {
		done <- serveRun(ctx, &serveOptions{IO: io, Store: open, DataDir: t.TempDir(), Components: []string{"api"}, APIListen: addr})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, errOut)
		}
	})
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("api on %s never answered:\n%s", addr, errOut)
	return ""
}

// TestServesShareOnePostgres: two serves (two hosts' worth) on one
// PostgreSQL store. A `config set` through the CLI switches both; a
// password posted to one is read from the other, and moves no generation.
func TestServesShareOnePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDB(t)
	dir := t.TempDir()
	cli := func(args ...string) string {
		t.Helper()
		code, out, stderr := runCLI(t, dir, topo, append([]string{"--db", db}, args...)...)
		if code != 0 {
			t.Fatalf("mdctl %s: %d %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	cli("apply", "-f", "-")
	cli("config", "set", "metadata_proxy_shared_secret", "first")
	var views []store.InstanceView
	if err := json.Unmarshal([]byte(cli("instance", "list", "-o", "json")), &views); err != nil || len(views) != 1 {
		t.Fatalf("instance list: %v %+v", err, views)
	}
	if _, err := os.Stat(filepath.Join(dir, "mdctl.db")); err == nil {
		t.Error("--db postgres:// still wrote the SQLite file")
	}
	inst := views[0].Instance
	a, b := startAPI(t, db), startAPI(t, db)

	do := func(method, addr, path, secret, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(inst.ID))
		req.Header.Set("X-Instance-ID", inst.ID)
		req.Header.Set("X-Tenant-ID", inst.ProjectID)
		req.Header.Set("X-Instance-ID-Signature", hex.EncodeToString(m.Sum(nil)))
		req.Header.Set("X-Forwarded-For", "10.90.1.5")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got)
	}
	const md = "/openstack/latest/meta_data.json"
	for _, addr := range []string{a, b} {
		if code, body := do("GET", addr, md, "first", ""); code != 200 || !strings.Contains(body, `"name": "vm1"`) {
			t.Fatalf("%s: %d %s", addr, code, body)
		}
	}

	cli("config", "set", "metadata_proxy_shared_secret", "second")
	start := time.Now()
	for _, addr := range []string{a, b} {
		for i := 0; ; i++ {
			old, _ := do("GET", addr, md, "first", "")
			cur, _ := do("GET", addr, md, "second", "")
			if old == http.StatusForbidden && cur == http.StatusOK {
				break
			}
			if i == 500 {
				t.Fatalf("%s still answers %d to the old secret and %d to the new one", addr, old, cur)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("both serves took the new secret %v after config set", time.Since(start))

	st, err := store.Open("", db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g0, _ := st.Generation(context.Background())
	if code, _ := do("POST", a, "/openstack/latest/password", "second", "pw"); code != 200 {
		t.Fatalf("POST password: %d", code)
	}
	if code, body := do("GET", b, "/openstack/latest/password", "second", ""); code != 200 || body != "pw" {
		t.Errorf("GET password from the other serve: %d %q", code, body)
	}
	if g, _ := st.Generation(context.Background()); g != g0 {
		t.Errorf("a password POST moved the generation %d → %d", g0, g)
	}
}
