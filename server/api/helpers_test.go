package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/internal/testlog"
	"github.com/mdctl/mdctl/store"
)

const testSecret = "s3cret"

// countingStore is a real SQLite store that counts the reads the cache
// exists to avoid.
type countingStore struct {
	*store.SQLite
	views atomic.Int64
	ports atomic.Int64
}

func (c *countingStore) InstanceView(ctx context.Context, ref string) (store.InstanceView, error) {
	c.views.Add(1)
	return c.SQLite.InstanceView(ctx, ref)
}

func (c *countingStore) ListPorts(ctx context.Context, f store.PortFilter) ([]store.Port, error) {
	c.ports.Add(1)
	return c.SQLite.ListPorts(ctx, f)
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t       testing.TB
	st      *countingStore
	srv     *Server
	logs    *testlog.Buffer
	clock   *clock
	project store.Project
	network store.Network
	subnet  store.Subnet
	nextIP  int
	// disableFile is the server's healthcheck disable_by_file_path.
	disableFile string
}

// newEnv opens a real SQLite store in t.TempDir() with settings applied,
// one project, network and subnet, and a Server over it.
func newEnv(t testing.TB, settings map[string]string) *env {
	t.Helper()
	sq, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	ctx := context.Background()
	e := &env{t: t, st: &countingStore{SQLite: sq}, logs: &testlog.Buffer{}, nextIP: 10,
		clock: &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}}
	base := map[string]string{"metadata_proxy_shared_secret": testSecret}
	for k, v := range settings {
		base[k] = v
	}
	for k, v := range base {
		must(t, sq.SetSetting(ctx, k, v))
	}
	e.project = store.Project{ID: strings.ReplaceAll(uuid.NewString(), "-", ""), Name: "demo"}
	must(t, sq.PutProject(ctx, e.project))
	e.network = store.Network{ID: uuid.NewString(), Name: "net1", ProjectID: e.project.ID, MTU: 1450}
	must(t, sq.PutNetwork(ctx, e.network))
	e.subnet = store.Subnet{ID: uuid.NewString(), NetworkID: e.network.ID, Name: "sub1", IPVersion: 4,
		CIDR: "10.90.0.0/16", GatewayIP: "10.90.0.1", EnableDHCP: true}
	must(t, sq.PutSubnet(ctx, e.subnet))
	e.disableFile = filepath.Join(t.TempDir(), "healthcheck_disable")
	e.srv = New(Options{
		Store:                  e.st,
		Logger:                 slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:                    e.clock.Now,
		HealthcheckDisableFile: e.disableFile,
	})
	return e
}

// with returns a view of e reporting to t (fuzz targets must not use the
// F's helpers).
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// addInstance stores an instance with one compute port and returns it with
// its address.
func (e *env) addInstance(name string) (store.Instance, string) {
	e.t.Helper()
	ctx := context.Background()
	inst := store.Instance{ID: uuid.NewString(), Name: name, Hostname: name, ProjectID: e.project.ID,
		AvailabilityZone: "nova", Flavor: "m1.small", Meta: store.Meta{{Key: "role", Value: "test"}}}
	must(e.t, e.st.PutInstance(ctx, inst))
	inst, err := e.st.GetInstance(ctx, inst.ID)
	must(e.t, err)
	ip := e.addPort(inst.ID, store.OwnerCompute)
	return inst, ip
}

// addPort adds a port with the next free address on the env's subnet.
func (e *env) addPort(deviceID, owner string) string {
	e.t.Helper()
	e.nextIP++
	ip := fmt.Sprintf("10.90.%d.%d", e.nextIP/250, e.nextIP%250+2)
	e.addPortIP(e.network.ID, e.subnet.ID, deviceID, owner, ip)
	return ip
}

func (e *env) addPortIP(networkID, subnetID, deviceID, owner, ip string) {
	e.t.Helper()
	var groups []string
	if owner == store.OwnerCompute {
		groups = []string{store.DefaultSecurityGroup} // as topology.Apply binds them
	}
	must(e.t, e.st.PutPort(context.Background(), store.Port{ID: uuid.NewString(), NetworkID: networkID,
		ProjectID: e.project.ID, DeviceID: deviceID, DeviceOwner: owner, SecurityGroups: groups,
		FixedIPs: []store.FixedIP{{SubnetID: subnetID, IPAddress: ip}}}))
}

func sign(secret, id string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// signedHeaders are what the agent sends for inst.
func signedHeaders(inst store.Instance) map[string]string {
	return map[string]string{
		"X-Instance-ID":           inst.ID,
		"X-Tenant-ID":             inst.ProjectID,
		"X-Instance-ID-Signature": sign(testSecret, inst.ID),
		"X-Forwarded-For":         "10.90.0.5",
	}
}

// do runs one request through the handler.
func (e *env) do(method, path string, headers map[string]string, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.doChunked(method, path, headers, body, false)
}

// doChunked is do, with the body of unknown length when chunked.
func (e *env) doChunked(method, path string, headers map[string]string, body string, chunked bool) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, "http://169.254.169.254/", strings.NewReader(body))
	if chunked {
		r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
	}
	r.URL.Path = path // any bytes, as a proxy may forward them
	r.RequestURI = "" // as handed over in process: the URL says it
	for k, v := range headers {
		if k == "RemoteAddr" {
			r.RemoteAddr = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	return w
}

func (e *env) get(path string, headers map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(http.MethodGet, path, headers, "")
}

// plainError is webob's text/plain error page.
func plainError(status, explanation string) string {
	return status + "\n\n" + explanation + "\n\n   "
}
