package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/mdctl/mdctl/store"
)

const benchInstances = 10000

// benchEnv stores benchInstances instances with a port each, in one
// transaction, and returns one to query.
func benchEnv(b *testing.B) (*env, store.Instance) {
	b.Helper()
	e := newEnv(b, nil)
	var pick store.Instance
	must(b, e.st.Update(context.Background(), func(tx store.Tx) error {
		for i := range benchInstances {
			inst := store.Instance{ID: uuid.NewString(), Name: fmt.Sprintf("vm%d", i), Hostname: fmt.Sprintf("vm%d", i),
				ProjectID: e.project.ID, AvailabilityZone: "nova", Flavor: "m1.small"}
			if err := tx.PutInstance(context.Background(), inst); err != nil {
				return err
			}
			ip := fmt.Sprintf("10.90.%d.%d", i/250+1, i%250+2)
			if err := tx.PutPort(context.Background(), store.Port{ID: uuid.NewString(), NetworkID: e.network.ID,
				ProjectID: e.project.ID, DeviceID: inst.ID, DeviceOwner: store.OwnerCompute,
				FixedIPs: []store.FixedIP{{SubnetID: e.subnet.ID, IPAddress: ip}}}); err != nil {
				return err
			}
			if i == benchInstances/2 {
				pick = inst
			}
		}
		return nil
	}))
	// Production logs at info: no access log on the hot path.
	e.srv = New(Options{Store: e.st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return e, pick
}

// nullWriter is the cheapest ResponseWriter, so the benchmark measures the
// handler.
type nullWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) WriteHeader(code int)        { w.code = code }
func (w *nullWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

func benchPath(b *testing.B, path string) {
	e, inst := benchEnv(b)
	r := httptest.NewRequest(http.MethodGet, "http://169.254.169.254"+path, nil)
	for k, v := range signedHeaders(inst) {
		r.Header.Set(k, v)
	}
	h := e.srv.Handler()
	w := &nullWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	if w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
}

func BenchmarkSignedInstanceID(b *testing.B) { benchPath(b, "/latest/meta-data/instance-id") }
func BenchmarkSignedMetaDataJSON(b *testing.B) {
	benchPath(b, "/openstack/latest/meta_data.json")
}

// BenchmarkConstHandler is the bench/constsrv handler, the yardstick the
// two above are compared with.
func BenchmarkConstHandler(b *testing.B) {
	body := []byte("6f1c0b2e-58a4-4d0e-9c3b-7a2e41d9b805")
	ctype, clen := []string{"text/plain; charset=utf-8"}, []string{"36"}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = ctype
		hdr["Content-Length"] = clen
		_, _ = w.Write(body)
	})
	r := httptest.NewRequest(http.MethodGet, "http://169.254.169.254/latest/meta-data/instance-id", nil)
	w := &nullWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}
